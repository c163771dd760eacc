// Native unit tests for edgemed::post: hand-computed answers (exit status is the verdict).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.hpp"
#include "edgemed/post.hpp"

using edgemed::post::Strided2D;

static void test_softmax() {
    // Row 0: softmax(0, ln 3) = (1/4, 3/4). Row 1 read through a column stride of 2 with huge
    // logits that would overflow a naive exp: equal values -> (1/2, 1/2).
    const float x[] = {0.f, std::log(3.f), 1000.f, -7.f, 1000.f, -7.f};
    float out[2];
    edgemed::post::softmax_rows(Strided2D{x, 1, 2, 2, 1}, out);
    CHECK_NEAR(out[0], 0.25, 1e-7);
    CHECK_NEAR(out[1], 0.75, 1e-7);
    edgemed::post::softmax_rows(Strided2D{x + 2, 1, 2, 4, 2}, out);
    CHECK(out[0] == 0.5f && out[1] == 0.5f);
}

static void test_softmax_planes() {
    // 2 classes x 300 pixels (more than one block): each pixel within 2 ulp of softmax_rows.
    std::vector<float> x(600), out(600);
    for (std::size_t i = 0; i < 600; ++i) x[i] = static_cast<float>(std::sin(0.37 * i) * 40.0);
    CHECK(edgemed::post::softmax_planes(x.data(), 1, 2, 300, out.data()));
    for (std::size_t i = 0; i < 300; ++i) {
        const float pair[] = {x[i], x[300 + i]};
        float ref[2];
        edgemed::post::softmax_rows(Strided2D{pair, 1, 2, 2, 1}, ref);
        CHECK_NEAR(out[i], ref[0], 2.4e-7 * ref[0] + 1e-30);
        CHECK_NEAR(out[300 + i], ref[1], 2.4e-7 * ref[1] + 1e-30);
    }
    x[437] = std::numeric_limits<float>::infinity();
    CHECK(!edgemed::post::softmax_planes(x.data(), 1, 2, 300, out.data()));
}

static void test_sigmoid() {
    const float x[] = {0.f, 100.f, -100.f, std::log(3.f)};
    float out[4];
    edgemed::post::sigmoid(x, 4, 1, out);
    CHECK(out[0] == 0.5f && out[1] == 1.f);
    CHECK_NEAR(out[2], 3.7200759760208e-44, 1e-45);  // e^-100: a subnormal, not 0 or NaN
    CHECK_NEAR(out[3], 0.75, 1e-7);
}

static void test_topk_argmax() {
    const float x[] = {1.f, 3.f, 3.f, 2.f, 5.f, 5.f, 0.f, 5.f};  // 2 rows of 4
    float v[4];
    std::int64_t i[4];
    edgemed::post::topk_rows(Strided2D{x, 2, 4, 4, 1}, 2, v, i);
    CHECK(i[0] == 1 && i[1] == 2 && v[0] == 3.f && v[1] == 3.f);  // tie: lower index first
    CHECK(i[2] == 0 && i[3] == 1 && v[2] == 5.f);
    std::int64_t am[2];
    edgemed::post::argmax_rows(Strided2D{x, 2, 4, 4, 1}, am);
    CHECK(am[0] == 1 && am[1] == 0);
    edgemed::post::argmax_rows(Strided2D{x + 3, 1, 4, 0, -1}, am);  // reversed row 0: 2,3,3,1
    CHECK(am[0] == 1);
    const float nan_row[] = {1.f, NAN};
    CHECK(!edgemed::post::all_finite(Strided2D{nan_row, 1, 2, 2, 1}));
    CHECK(edgemed::post::all_finite(Strided2D{x, 2, 4, 4, 1}));
}

static void test_nms() {
    // Box 1 overlaps box 0 with IoU 81/100 and is suppressed; box 2 is disjoint; box 3 has
    // IoU exactly 0.5 with box 2 (50 / 100): kept, only IoU > threshold suppresses.
    const float boxes[] = {0, 0, 10, 10, 1, 1, 10, 10, 20, 20, 30, 30, 20, 20, 30, 25, 5, 5, 5, 5};
    const float scores[] = {0.9f, 0.95f, 0.5f, 0.4f, 0.3f};
    std::int64_t keep[5];
    std::size_t n = edgemed::post::nms(boxes, 4, scores, 1, 5, 0.5f, 0.f, 5, keep);
    CHECK(n == 4 && keep[0] == 1 && keep[1] == 2 && keep[2] == 3 && keep[3] == 4);
    n = edgemed::post::nms(boxes, 4, scores, 1, 5, 0.5f, 0.4f, 5, keep);  // 0.4 is not > 0.4
    CHECK(n == 2 && keep[0] == 1 && keep[1] == 2);
    n = edgemed::post::nms(boxes, 4, scores, 1, 5, 0.5f, 0.f, 1, keep);
    CHECK(n == 1 && keep[0] == 1);
    const float tied[] = {0.5f, 0.5f};  // identical boxes, equal scores: the lower index wins
    n = edgemed::post::nms(boxes, 0, tied, 1, 2, 0.5f, 0.f, 2, keep);
    CHECK(n == 1 && keep[0] == 0);
}

static void test_events() {
    const float x[] = {0, 5, 6, 1, 0, 7, 2, 0, 4, 4, 9, 3, 3, 0};
    auto e = edgemed::post::detect_events(x, 14, 1, 4.f, 2.f, 1, 0);
    CHECK(e.size() == 3);
    CHECK(e[0].start == 1 && e[0].end == 3 && e[0].peak == 2 && e[0].peak_value == 6.f);
    CHECK(e[1].start == 5 && e[1].end == 7 && e[1].peak == 5);
    CHECK(e[2].start == 8 && e[2].end == 13 && e[2].peak == 10 && e[2].peak_value == 9.f);
    e = edgemed::post::detect_events(x, 14, 1, 4.f, 2.f, 3, 0);  // drop events shorter than 3
    CHECK(e.size() == 1 && e[0].start == 8);
    e = edgemed::post::detect_events(x, 14, 1, 4.f, 2.f, 5, 3);  // gaps 2 and 1 < 3: one event
    CHECK(e.size() == 1 && e[0].start == 1 && e[0].end == 13 && e[0].peak == 10);
    const float open[] = {9, 9, 1};  // stride 2 reads 9, 1 ... open at the end -> end = n
    e = edgemed::post::detect_events(open, 2, 1, 4.f, 0.f, 1, 0);
    CHECK(e.size() == 1 && e[0].start == 0 && e[0].end == 2 && e[0].peak == 0);
    e = edgemed::post::detect_events(open, 2, 2, 4.f, 2.f, 1, 0);
    CHECK(e.size() == 1 && e[0].end == 1);
    CHECK(edgemed::post::detect_events(x, 0, 1, 4.f, 2.f, 1, 0).empty());
}

int main() {
    test_softmax();
    test_softmax_planes();
    test_sigmoid();
    test_topk_argmax();
    test_nms();
    test_events();
    return check_report("test_post");
}
