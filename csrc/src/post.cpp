#include "edgemed/post.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

// An AVX2 clone picked at load time on x86-64 (GCC), the baseline elsewhere; as search.cpp.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGEMED_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EDGEMED_CLONES
#endif

namespace edgemed::post {
namespace {

std::uint32_t bits(float f) noexcept {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float from_bits(std::uint32_t u) noexcept {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// exp(x) for x <= 0, written so the compiler vectorises loops over it (libm's expf is a call
// per element): Cody-Waite reduction x = n ln2 + r, Cephes' degree-6 polynomial for e^r
// (~1 ulp), and 2^n applied as two exact power-of-two factors so that results down to the
// smallest subnormal are right. Below -104 the result is 0. Selects are done on the bits
// (for x <= 0 a larger magnitude is a larger unsigned pattern): float selects are not
// if-converted by GCC without -ffast-math, which would keep the loop scalar.
inline float exp_nonpositive(float x) noexcept {
    const std::uint32_t u = bits(x), limit = 0xC2D00000u;  // bits of -104.0f
    x = from_bits(u < limit ? u : limit);
    const float n = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;  // round to nearest
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = p * r * r + r + 1.0f;
    const auto k = static_cast<std::int32_t>(n);  // in [-150, 0]
    const std::int32_t k1 = k / 2, k2 = k - k1;     // each >= -75: a normal power of two
    return e * from_bits(static_cast<std::uint32_t>(k1 + 127) << 23) *
           from_bits(static_cast<std::uint32_t>(k2 + 127) << 23);
}

// IoU of two xyxy boxes; 0 when the union is empty (two degenerate boxes do not suppress).
float iou(const float* a, const float* b) noexcept {
    const float w = std::min(a[2], b[2]) - std::max(a[0], b[0]);
    const float h = std::min(a[3], b[3]) - std::max(a[1], b[1]);
    const float inter = w > 0.f && h > 0.f ? w * h : 0.f;
    const float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return uni > 0.f ? inter / uni : 0.f;
}

// Index of the largest sample of x[begin, end); the first one on ties.
std::size_t peak_index(const float* x, std::ptrdiff_t stride, std::size_t begin,
                       std::size_t end) noexcept {
    std::size_t best = begin;
    for (std::size_t i = begin + 1; i < end; ++i)
        if (x[static_cast<std::ptrdiff_t>(i) * stride] >
            x[static_cast<std::ptrdiff_t>(best) * stride])
            best = i;
    return best;
}

// Raw hysteresis segments [start, end) before merging and filtering.
std::vector<Event> segments(const float* x, std::size_t n, std::ptrdiff_t stride, float high,
                            float low) {
    std::vector<Event> out;
    std::size_t i = 0;
    while (i < n) {
        while (i < n && !(x[static_cast<std::ptrdiff_t>(i) * stride] >= high)) ++i;
        if (i == n) break;
        const std::size_t start = i;
        while (i < n && x[static_cast<std::ptrdiff_t>(i) * stride] >= low) ++i;
        out.push_back({static_cast<std::int64_t>(start), static_cast<std::int64_t>(i), 0, 0.f});
    }
    return out;
}

}  // namespace

// x * 0 is NaN exactly when x is NaN or infinite: branch-free lanes that vectorise.
static EDGEMED_CLONES bool finite_contiguous(const float* x, std::size_t n) noexcept {
    float acc[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) acc[j] += x[i + j] * 0.f;
    for (; i < n; ++i) acc[0] += x[i] * 0.f;
    for (const float a : acc)
        if (a != 0.f) return false;
    return true;
}

bool all_finite(const Strided2D& x) noexcept {
    if (x.col_stride == 1) {
        for (std::size_t r = 0; r < x.rows; ++r)
            if (!finite_contiguous(x.data + static_cast<std::ptrdiff_t>(r) * x.row_stride, x.n))
                return false;
        return true;
    }
    for (std::size_t r = 0; r < x.rows; ++r)
        for (std::size_t i = 0; i < x.n; ++i)
            if (!std::isfinite(x.at(r, i))) return false;
    return true;
}

// One contiguous row: every loop has unit stride and fixed lanes (max and the double sum in
// eight lanes), so each vectorises; the strided loop below keeps one serial chain per loop.
static EDGEMED_CLONES void softmax_contiguous(const float* x, std::size_t n, float* dst) noexcept {
    float lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                     -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) lane[j] = std::max(lane[j], x[i + j]);
    for (; i < n; ++i) lane[0] = std::max(lane[0], x[i]);
    const float max = *std::max_element(lane, lane + 8);
    for (i = 0; i < n; ++i) dst[i] = exp_nonpositive(x[i] - max);
    double sum[8] = {};
    for (i = 0; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) sum[j] += dst[i + j];
    for (; i < n; ++i) sum[0] += dst[i];
    const double inv =
        1.0 / (((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7])));
    for (i = 0; i < n; ++i) dst[i] = static_cast<float>(dst[i] * inv);
}

void softmax_rows(const Strided2D& x, float* out) noexcept {
    if (x.col_stride == 1 && x.n >= 8) {
        for (std::size_t r = 0; r < x.rows; ++r)
            softmax_contiguous(x.data + static_cast<std::ptrdiff_t>(r) * x.row_stride, x.n,
                               out + r * x.n);
        return;
    }
    for (std::size_t r = 0; r < x.rows; ++r) {
        float* dst = out + r * x.n;
        float max = -INFINITY;
        for (std::size_t i = 0; i < x.n; ++i) max = std::max(max, x.at(r, i));
        for (std::size_t i = 0; i < x.n; ++i) dst[i] = x.at(r, i) - max;
        for (std::size_t i = 0; i < x.n; ++i) dst[i] = exp_nonpositive(dst[i]);  // <= 1
        double sum = 0.0;
        for (std::size_t i = 0; i < x.n; ++i) sum += dst[i];
        const double inv = 1.0 / sum;  // sum >= 1: the maximum contributes exp(0)
        for (std::size_t i = 0; i < x.n; ++i) dst[i] = static_cast<float>(dst[i] * inv);
    }
}

// One block of w <= kBlock pixels of `classes` planes `plane` floats apart: each loop runs over
// the pixels with unit stride, so it vectorises. Max-subtracted like softmax_rows, but summed
// and scaled in float (a class map has few classes; double conversions per pixel cost more
// than the exp): within 2 ulp of softmax_rows. Returns false if an input is NaN or infinite.
constexpr std::size_t kBlock = 256;

static EDGEMED_CLONES bool softmax_block(const float* x, std::size_t classes, std::size_t plane,
                                         std::size_t w, float* out) noexcept {
    float max[kBlock], bad[kBlock], sum[kBlock];
    for (std::size_t i = 0; i < w; ++i) max[i] = x[i], bad[i] = x[i] * 0.f, sum[i] = 0.f;
    for (std::size_t c = 1; c < classes; ++c) {
        const float* p = x + c * plane;
        for (std::size_t i = 0; i < w; ++i) {
            max[i] = max[i] < p[i] ? p[i] : max[i];
            bad[i] += p[i] * 0.f;  // NaN exactly when an input is NaN or infinite
        }
    }
    float any = 0.f;
    for (std::size_t i = 0; i < w; ++i) any += bad[i];
    if (any != 0.f) return false;
    for (std::size_t c = 0; c < classes; ++c) {
        const float* p = x + c * plane;
        float* o = out + c * plane;
        for (std::size_t i = 0; i < w; ++i) {
            o[i] = exp_nonpositive(p[i] - max[i]);
            sum[i] += o[i];
        }
    }
    for (std::size_t i = 0; i < w; ++i) sum[i] = 1.f / sum[i];  // sum >= 1: the max gives exp(0)
    for (std::size_t c = 0; c < classes; ++c) {
        float* o = out + c * plane;
        for (std::size_t i = 0; i < w; ++i) o[i] *= sum[i];
    }
    return true;
}

bool softmax_planes(const float* x, std::size_t outer, std::size_t classes, std::size_t inner,
                    float* out) noexcept {
    for (std::size_t o = 0; o < outer; ++o) {
        const std::size_t base = o * classes * inner;
        for (std::size_t i = 0; i < inner; i += kBlock)
            if (!softmax_block(x + base + i, classes, inner, std::min(kBlock, inner - i),
                               out + base + i))
                return false;
    }
    return true;
}

void sigmoid(const float* x, std::size_t n, std::ptrdiff_t stride, float* out) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        const float v = x[static_cast<std::ptrdiff_t>(i) * stride];
        // exp of a non-positive argument only: no overflow, full precision on both tails.
        const float e = exp_nonpositive(-std::fabs(v));
        const bool negative = bits(v) >> 31;  // -0.0 too: e = 1 gives 0.5 either way
        out[i] = from_bits(negative ? bits(e) : bits(1.f)) / (1.f + e);
    }
}

void topk_rows(const Strided2D& x, std::size_t k, float* values, std::int64_t* index) {
    std::vector<std::int64_t> order(x.n);
    for (std::size_t r = 0; r < x.rows; ++r) {
        std::iota(order.begin(), order.end(), std::int64_t{0});
        auto first = [&](std::int64_t a, std::int64_t b) {
            const float va = x.at(r, static_cast<std::size_t>(a));
            const float vb = x.at(r, static_cast<std::size_t>(b));
            return va > vb || (va == vb && a < b);
        };
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k),
                          order.end(), first);
        for (std::size_t j = 0; j < k; ++j) {
            index[r * k + j] = order[j];
            values[r * k + j] = x.at(r, static_cast<std::size_t>(order[j]));
        }
    }
}

void argmax_rows(const Strided2D& x, std::int64_t* index) noexcept {
    for (std::size_t r = 0; r < x.rows; ++r) {
        const float* row = x.data + static_cast<std::ptrdiff_t>(r) * x.row_stride;
        index[r] = static_cast<std::int64_t>(peak_index(row, x.col_stride, 0, x.n));
    }
}

std::size_t nms(const float* boxes, std::ptrdiff_t box_stride, const float* scores,
                std::ptrdiff_t score_stride, std::size_t n, float iou_threshold,
                float score_threshold, std::size_t max_detections, std::int64_t* keep) {
    auto score = [&](std::size_t i) { return scores[static_cast<std::ptrdiff_t>(i) * score_stride]; };
    auto box = [&](std::size_t i) { return boxes + static_cast<std::ptrdiff_t>(i) * box_stride; };
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < n; ++i)
        if (score(i) > score_threshold) order.push_back(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return score(a) > score(b); });
    std::size_t kept = 0;
    for (const std::size_t i : order) {
        if (kept == max_detections) break;
        bool suppressed = false;
        for (std::size_t j = 0; j < kept && !suppressed; ++j)
            suppressed = iou(box(i), box(static_cast<std::size_t>(keep[j]))) > iou_threshold;
        if (!suppressed) keep[kept++] = static_cast<std::int64_t>(i);
    }
    return kept;
}

std::vector<Event> detect_events(const float* x, std::size_t n, std::ptrdiff_t stride, float high,
                                 float low, std::size_t min_duration, std::size_t min_gap) {
    std::vector<Event> merged;
    for (const Event& e : segments(x, n, stride, high, low)) {
        if (!merged.empty() && static_cast<std::size_t>(e.start - merged.back().end) < min_gap)
            merged.back().end = e.end;
        else
            merged.push_back(e);
    }
    std::vector<Event> out;
    for (Event e : merged) {
        if (static_cast<std::size_t>(e.end - e.start) < min_duration) continue;
        const std::size_t p = peak_index(x, stride, static_cast<std::size_t>(e.start),
                                         static_cast<std::size_t>(e.end));
        e.peak = static_cast<std::int64_t>(p);
        e.peak_value = x[static_cast<std::ptrdiff_t>(p) * stride];
        out.push_back(e);
    }
    return out;
}

}  // namespace edgemed::post
