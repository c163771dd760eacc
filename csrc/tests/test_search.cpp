// Native unit tests for edgemed::search (no framework: exit status is the verdict).
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "edgemed/search.hpp"


static void test_normalize() {
    std::vector<float> x = {3.f, 4.f, 99.f, 0.f, 0.f, 99.f};  // 2 rows of 2, row stride 3
    edgemed::search::l2_normalize_rows(x.data(), 2, 2, 3, 1e-12f);
    CHECK(std::fabs(x[0] - 0.6f) < 1e-7f && std::fabs(x[1] - 0.8f) < 1e-7f);
    CHECK(x[2] == 99.f);                      // padding untouched
    CHECK(x[3] == 0.f && x[4] == 0.f);        // zero row left alone
}

static void test_topk() {
    const float m[] = {1.f, 0.f, 0.f, 1.f, 1.f, 1.f, -1.f, 0.f};  // 4 rows of 2
    const float q[] = {2.f, 0.1f};
    std::int64_t idx[3];
    float score[3];
    edgemed::search::cosine_topk(q, 1, 2, m, 4, 2, 2, 3, idx, score);
    CHECK(idx[0] == 0 && idx[1] == 2 && idx[2] == 1);
    CHECK(score[0] > score[1] && score[1] > score[2]);
    const float tie[] = {1.f, 0.f, 1.f, 0.f};
    edgemed::search::cosine_topk(q, 1, 2, tie, 2, 2, 2, 2, idx, score);
    CHECK(idx[0] == 0 && idx[1] == 1);        // ties: lower index first
}

int main() {
    test_normalize();
    test_topk();
    return check_report("test_search");
}
