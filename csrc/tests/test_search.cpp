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
    CHECK(edgemed::search::cosine_topk(q, 1, 2, m, 4, 2, 2, 3, idx, score));
    CHECK(idx[0] == 0 && idx[1] == 2 && idx[2] == 1);
    CHECK(score[0] > score[1] && score[1] > score[2]);
    const float tie[] = {1.f, 0.f, 1.f, 0.f};
    CHECK(edgemed::search::cosine_topk(q, 1, 2, tie, 2, 2, 2, 2, idx, score));
    CHECK(idx[0] == 0 && idx[1] == 1);        // ties: lower index first
    const float inf_row[] = {1.f, 0.f, INFINITY, 0.f};
    CHECK(!edgemed::search::cosine_topk(q, 1, 2, inf_row, 2, 2, 2, 1, idx, score));
}

static void test_quantize() {
    // Row 0: max 2 -> scale 2/127; 1 -> 63.5 rounds half-to-even to 64 (NumPy rint), -2 -> -127.
    // Row 1 is all zeros: scale 0. Row stride 4 with padding that must be ignored.
    const float m[] = {1.f, -2.f, 0.5f, 99.f, 0.f, 0.f, 0.f, 99.f};
    std::int8_t q[6];
    float scale[2];
    edgemed::search::quantize_rows_int8(m, 2, 3, 4, q, scale);
    CHECK(scale[0] == 2.f / 127.f && scale[1] == 0.f);
    CHECK(q[0] == 64 && q[1] == -127 && q[2] == 32);  // 0.5 / (2/127) = 31.75 -> 32
    CHECK(q[3] == 0 && q[4] == 0 && q[5] == 0);
}

static void test_topk_int8() {
    // Same geometry as test_topk, scaled: cosine ignores each row's positive scale. Row 4 is zero.
    const std::int8_t m[] = {100, 0, 0, 7, 50, 50, -127, 0, 0, 0};
    const float q[] = {2.f, 0.1f};
    std::int64_t idx[5];
    float score[5];
    edgemed::search::cosine_topk_int8(q, 1, 2, m, 5, 2, 2, 5, 1, idx, score);
    CHECK(idx[0] == 0 && idx[1] == 2 && idx[2] == 1 && idx[3] == 4 && idx[4] == 3);
    CHECK_NEAR(score[0], 2.0 / std::sqrt(4.01), 1e-4);  // query rounding to int16 only
    CHECK_NEAR(score[1], 2.1 / std::sqrt(4.01) / std::sqrt(2.0), 1e-4);
    CHECK(score[3] == 0.f);
    CHECK_NEAR(score[4], -2.0 / std::sqrt(4.01), 1e-4);
}

static void test_half_to_float() {
    using edgemed::search::half_to_float;
    CHECK(half_to_float(0x3c00) == 1.f && half_to_float(0xc000) == -2.f);
    CHECK(half_to_float(0x7bff) == 65504.f);                 // largest finite
    CHECK(half_to_float(0x0001) == std::ldexp(1.f, -24));    // smallest subnormal
    CHECK(half_to_float(0x03ff) == std::ldexp(1023.f, -24)); // largest subnormal
    CHECK(half_to_float(0x8000) == 0.f && std::signbit(half_to_float(0x8000)));
    CHECK(std::isinf(half_to_float(0x7c00)) && half_to_float(0xfc00) < 0.f);
    CHECK(std::isnan(half_to_float(0x7e00)));
}

static void test_topk_fp16() {
    const std::uint16_t m[] = {0x3c00, 0, 0, 0x3c00, 0x3c00, 0x3c00, 0xbc00, 0};  // as test_topk
    const float q[] = {2.f, 0.1f};
    std::int64_t idx[3];
    float score[3];
    CHECK(edgemed::search::cosine_topk_fp16(q, 1, 2, m, 4, 2, 2, 3, 1, idx, score));
    CHECK(idx[0] == 0 && idx[1] == 2 && idx[2] == 1);
    CHECK_NEAR(score[0], 2.0 / std::sqrt(4.01), 1e-6);
    const std::uint16_t nan_row[] = {0x3c00, 0, 0x7e00, 0};
    CHECK(!edgemed::search::cosine_topk_fp16(q, 1, 2, nan_row, 2, 2, 2, 1, 1, idx, score));
}

// Rows split over two threads must give exactly the single-thread answer, ties included.
static void test_threads_match_serial() {
    const std::size_t rows = 6000, dim = 384, k = 7;  // 2.3M multiply-adds: above the threshold
    std::vector<std::int8_t> m(rows * dim);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = static_cast<std::int8_t>((i * 37 % 251) - 125);
    // 384 = 133 (mod 251) and 251 is prime: rows 3, 254, 505, ... repeat row 3 exactly, in both
    // halves of the split, so the top 7 are all ties at cosine 1 and must come in index order.
    std::vector<float> q(2 * dim);
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(m[3 * dim + i % dim]);
    std::int64_t idx1[2 * k], idx2[2 * k];
    float s1[2 * k], s2[2 * k];
    edgemed::search::cosine_topk_int8(q.data(), 2, dim, m.data(), rows, dim, dim, k, 1, idx1, s1);
    edgemed::search::cosine_topk_int8(q.data(), 2, dim, m.data(), rows, dim, dim, k, 2, idx2, s2);
    for (std::size_t i = 0; i < k; ++i) CHECK(idx1[i] == static_cast<std::int64_t>(3 + 251 * i));
    for (std::size_t i = 0; i < 2 * k; ++i) CHECK(idx1[i] == idx2[i] && s1[i] == s2[i]);
}

// Queries are scored four at a time against two rows at a time (the rest one by one): each
// query's hits must be those of the query alone, with an odd row count (the last row scored in
// a pair with itself), a dim that is no multiple of any vector width and a padded row stride.
static void test_blocked_queries_match_one_at_a_time() {
    const std::size_t rows = 301, dim = 19, stride = 23, nq = 6, k = 5;
    std::vector<float> m(rows * stride, 99.f), q(nq * dim);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t i = 0; i < dim; ++i)
            m[r * stride + i] = static_cast<float>(static_cast<int>((r * 7 + i * 13) % 17) - 8);
    for (std::size_t i = 0; i < q.size(); ++i)
        q[i] = static_cast<float>(static_cast<int>((i * 5) % 11) - 5);
    for (bool unit : {false, true}) {
        if (unit) edgemed::search::l2_normalize_rows(m.data(), rows, dim, stride, 1e-12f);
        std::int64_t idx[nq * k], one_idx[k];
        float score[nq * k], one_score[k];
        bool off = true;
        CHECK(edgemed::search::cosine_topk(q.data(), nq, dim, m.data(), rows, stride, dim, k, idx,
                                           score, 1, unit, &off));
        CHECK(!off);
        for (std::size_t j = 0; j < nq; ++j) {
            CHECK(edgemed::search::cosine_topk(q.data() + j * dim, 1, dim, m.data(), rows, stride,
                                               dim, k, one_idx, one_score, 1, unit, nullptr));
            for (std::size_t i = 0; i < k; ++i)
                CHECK(idx[j * k + i] == one_idx[i] && score[j * k + i] == one_score[i]);
        }
    }
    m[(rows - 1) * stride + 3] = NAN;  // the unpaired last row
    std::int64_t idx[nq * k];
    float score[nq * k];
    CHECK(!edgemed::search::cosine_topk(q.data(), nq, dim, m.data(), rows, stride, dim, k, idx,
                                        score, 1, false, nullptr));
}

int main() {
    test_normalize();
    test_topk();
    test_quantize();
    test_topk_int8();
    test_half_to_float();
    test_topk_fp16();
    test_threads_match_serial();
    test_blocked_queries_match_one_at_a_time();
    return check_report("test_search");
}
