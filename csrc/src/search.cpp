#include "edgemed/search.hpp"

#include "search_simd.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

// Function multi-versioning: an AVX2 clone picked at load time on x86-64, the baseline elsewhere
// (aarch64 builds get NEON from -O3 auto-vectorisation). No -march=native: wheels stay portable.
// GCC only: older clang lacks target_clones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EDGEMED_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EDGEMED_CLONES
#endif

// float16 rows on x86-64 CPUs with F16C (every AVX2 CPU but a few Atoms): converted by the
// hardware, picked at run time; the portable conversion elsewhere. Results are the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
#define EDGEMED_F16C 1
#include <immintrin.h>
#endif

namespace edgemed::search {
namespace {

// Accumulate in double: 384..1024-dim float dot products lose ~1e-6 relative precision otherwise,
// and the tests compare against NumPy's float64-accumulated reference. Four fixed lanes let the
// compiler vectorise without -ffast-math and keep results reproducible.
EDGEMED_CLONES double dot(const float* a, const float* b, std::size_t n) noexcept {
    double acc[4] = {};
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (std::size_t j = 0; j < 4; ++j) acc[j] += static_cast<double>(a[i + j]) * b[i + j];
    for (; i < n; ++i) acc[0] += static_cast<double>(a[i]) * b[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// "Better" = higher score, then lower index: a strict weak order that makes results deterministic.
bool better(const std::pair<float, std::int64_t>& a, const std::pair<float, std::int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// The k best hits seen so far: a heap ordered by `better`, so its front is the worst kept hit and
// most rows are rejected with one comparison.
class TopK {
public:
    explicit TopK(std::size_t k) : k_(k) { heap_.reserve(k); }

    void push(float score, std::int64_t index) {
        const std::pair<float, std::int64_t> hit{score, index};
        if (heap_.size() < k_) {
            heap_.push_back(hit);
            std::push_heap(heap_.begin(), heap_.end(), better);
        } else if (better(hit, heap_.front())) {
            std::pop_heap(heap_.begin(), heap_.end(), better);
            heap_.back() = hit;
            std::push_heap(heap_.begin(), heap_.end(), better);
        }
    }

    // The score a hit must reach to be kept (-inf until k hits are held).
    float floor() const noexcept { return heap_.size() < k_ ? -INFINITY : heap_.front().first; }

    void merge(const TopK& other) {
        for (const auto& hit : other.heap_) push(hit.first, hit.second);
    }

    // Best first. Consumes the heap.
    void write(std::int64_t* index, float* score) {
        std::sort_heap(heap_.begin(), heap_.end(), better);
        for (std::size_t i = 0; i < heap_.size(); ++i) {
            index[i] = heap_[i].second;
            score[i] = heap_[i].first;
        }
    }

private:
    std::size_t k_;
    std::vector<std::pair<float, std::int64_t>> heap_;
};

// Scans rows [begin, end) for every query, pushing into one TopK per query.
using RangeScan = std::function<void(std::size_t, std::size_t, std::vector<TopK>&)>;

// Below this many multiply-adds a second thread costs more (~50 us to start) than it saves.
// (2^20 was tried: 1 x 384 against 5,000 float32 rows got slower on a loaded 2-vCPU machine.)
constexpr std::size_t kParallelWork = std::size_t{1} << 21;

// Splits the rows into contiguous ranges, one per thread, and merges the per-range top-k lists.
// The result does not depend on the split: `better` is a strict total order on (score, index).
void parallel_topk(const RangeScan& scan, std::size_t n_queries, std::size_t n_rows,
                   std::size_t work, std::size_t k, unsigned max_threads,
                   std::int64_t* out_index, float* out_score) {
    std::size_t n_parts = work >= kParallelWork ? std::max(1u, max_threads) : 1;
    n_parts = std::min(n_parts, std::max<std::size_t>(1, n_rows / 1024));
    std::vector<std::vector<TopK>> parts(n_parts, std::vector<TopK>(n_queries, TopK(k)));
    auto bound = [&](std::size_t p) { return n_rows * p / n_parts; };
    std::vector<std::exception_ptr> errors(n_parts);
    auto run = [&](std::size_t p) {
        try {  // an exception escaping a std::thread would terminate the process
            scan(bound(p), bound(p + 1), parts[p]);
        } catch (...) {
            errors[p] = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (std::size_t p = 1; p < n_parts; ++p) {
        try {
            pool.emplace_back(run, p);
        } catch (const std::system_error&) {  // no thread available: do that range here
            run(p);
        }
    }
    run(0);
    for (auto& t : pool) t.join();
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
    for (std::size_t q = 0; q < n_queries; ++q) {
        for (std::size_t p = 1; p < n_parts; ++p) parts[0][q].merge(parts[p][q]);
        parts[0][q].write(out_index + q * k, out_score + q * k);
    }
}

double inverse_or_zero(double norm) { return norm > 0.0 ? 1.0 / norm : 0.0; }

// Exact integer dot product of an int16 query and an int8 row. |q| <= 32767 and |m| <= 127, so
// 256 products sum to < 2^31: accumulate blocks in int32 (vectorises to pmaddwd), then in int64.
EDGEMED_CLONES std::int64_t dot_i16_i8(const std::int16_t* q, const std::int8_t* m,
                                       std::size_t n) noexcept {
    std::int64_t total = 0;
    for (std::size_t b = 0; b < n; b += 256) {
        const std::size_t e = std::min(n, b + 256);
        std::int32_t acc = 0;
        for (std::size_t i = b; i < e; ++i) acc += static_cast<std::int32_t>(q[i]) * m[i];
        total += acc;
    }
    return total;
}

struct DotNorm {
    std::int64_t dot, sumsq;
};

// dot_i16_i8 fused with the row's sum of squares (|m| <= 127: no overflow in a block either):
// one pass over the row loads each byte once for both, ~35% faster than two passes.
EDGEMED_CLONES DotNorm dot_sumsq_i16_i8(const std::int16_t* q, const std::int8_t* m,
                                        std::size_t n) noexcept {
    DotNorm total{0, 0};
    for (std::size_t b = 0; b < n; b += 256) {
        const std::size_t e = std::min(n, b + 256);
        std::int32_t dot = 0, sumsq = 0;
        for (std::size_t i = b; i < e; ++i) {
            const std::int32_t v = m[i];
            dot += static_cast<std::int32_t>(q[i]) * v;
            sumsq += v * v;
        }
        total.dot += dot;
        total.sumsq += sumsq;
    }
    return total;
}

// Eight independent float accumulators: without -ffast-math this is what lets the compiler
// vectorise a float reduction; the order is fixed, so results are reproducible.
EDGEMED_CLONES float dot_f32(const float* a, const float* b, std::size_t n) noexcept {
    float acc[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    for (std::size_t j = 0; i < n; ++i, ++j) acc[j] += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Converts a row; false if it holds an infinity or NaN (exponent bits all ones). Checking here,
// fused with the conversion, saves the caller a separate np.isfinite pass over the whole matrix.
EDGEMED_CLONES bool half_row_to_float(const std::uint16_t* h, std::size_t n, float* out) noexcept {
    unsigned non_finite = 0;
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = half_to_float(h[i]);
        non_finite |= (h[i] & 0x7c00u) == 0x7c00u;
    }
    return non_finite == 0;
}

#ifdef EDGEMED_F16C
struct HalfDots {
    float query, self;  // dot_f32(query, row), dot_f32(row, row)
};

// One float16 row converted into `row` and dotted with the first query and itself in one pass:
// the same eight lanes, products and order as half_row_to_float + dot_f32 (multiply then add,
// no FMA), so the scores are bit-identical to the portable path. False on NaN or infinity.
__attribute__((target("avx2,f16c"))) bool half_dots_f16c(const std::uint16_t* h,
                                                         const float* q, std::size_t n,
                                                         float* row, HalfDots& out) noexcept {
    __m256 aq = _mm256_setzero_ps(), ar = _mm256_setzero_ps();
    const __m128i exponent = _mm_set1_epi16(0x7c00);
    __m128i bad = _mm_setzero_si128();
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i hv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(hv, exponent), exponent));
        const __m256 r = _mm256_cvtph_ps(hv);
        _mm256_storeu_ps(row + i, r);
        aq = _mm256_add_ps(aq, _mm256_mul_ps(_mm256_loadu_ps(q + i), r));
        ar = _mm256_add_ps(ar, _mm256_mul_ps(r, r));
    }
    alignas(32) float accq[8], accr[8];
    _mm256_store_ps(accq, aq);
    _mm256_store_ps(accr, ar);
    unsigned non_finite = static_cast<unsigned>(_mm_movemask_epi8(bad));
    for (std::size_t j = 0; i < n; ++i, ++j) {
        row[i] = half_to_float(h[i]);
        non_finite |= (h[i] & 0x7c00u) == 0x7c00u;
        accq[j] += q[i] * row[i];
        accr[j] += row[i] * row[i];
    }
    auto sum = [](const float* a) {
        return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    };
    out = {sum(accq), sum(accr)};
    return non_finite == 0;
}

bool has_f16c() noexcept {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    return yes;
}
#endif

}  // namespace

float half_to_float(std::uint16_t h) noexcept {
    // Move exponent+mantissa into float position and rebias by multiplying with 2^112: this also
    // normalises subnormals exactly (F. Giesen, "half_to_float_fast5"). Inf/NaN need their
    // exponent forced to all ones.
    std::uint32_t bits = static_cast<std::uint32_t>(h & 0x7fffu) << 13;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    f *= 0x1p112f;
    std::memcpy(&bits, &f, sizeof f);
    if (f >= 65536.0f) bits |= 0x7f800000u;
    bits |= static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

void l2_normalize_rows(float* data, std::size_t rows, std::size_t dim, std::ptrdiff_t row_stride,
                       float eps) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        float* row = data + static_cast<std::ptrdiff_t>(r) * row_stride;
        const double norm = std::sqrt(dot(row, row, dim));
        if (norm < eps) continue;
        const float inv = static_cast<float>(1.0 / norm);
        for (std::size_t i = 0; i < dim; ++i) row[i] *= inv;
    }
}

namespace {

// Eight float32 lanes summed pairwise: the one order every float32 pass here reduces in.
inline float pairwise8(const float* l) noexcept {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// float32 row . query in eight lanes and the row's float32 sum of squares, in one pass. GCC
// vectors where available: written with plain lanes, GCC keeps the two accumulators scalar.
#if defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
typedef float vf8 __attribute__((vector_size(32)));

EDGEMED_CLONES void dot_sumsq_f32(const float* q, const float* r, std::size_t n, float& dot,
                                  float& sumsq) noexcept {
    // Two chains each: one accumulator would wait on the previous add (latency-bound).
    vf8 d0 = {}, d1 = {}, s0 = {}, s1 = {}, a, b, c, e;
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        std::memcpy(&a, q + i, sizeof a);
        std::memcpy(&b, r + i, sizeof b);
        std::memcpy(&c, q + i + 8, sizeof c);
        std::memcpy(&e, r + i + 8, sizeof e);
        d0 += a * b, s0 += b * b, d1 += c * e, s1 += e * e;
    }
    for (; i + 8 <= n; i += 8) {
        std::memcpy(&a, q + i, sizeof a);
        std::memcpy(&b, r + i, sizeof b);
        d0 += a * b, s0 += b * b;
    }
    const vf8 d = d0 + d1, s = s0 + s1;
    float dl[8], sl[8];
    std::memcpy(dl, &d, sizeof dl);
    std::memcpy(sl, &s, sizeof sl);
#else
void dot_sumsq_f32(const float* q, const float* r, std::size_t n, float& dot,
                   float& sumsq) noexcept {
    float dl[8] = {}, sl[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) dl[j] += q[i + j] * r[i + j], sl[j] += r[i + j] * r[i + j];
#endif
    for (std::size_t j = 0; i < n; ++i, ++j) dl[j] += q[i] * r[i], sl[j] += r[i] * r[i];
    dot = pairwise8(dl);
    sumsq = pairwise8(sl);
}

#if defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
EDGEMED_CLONES float dot_vf8(const float* q, const float* r, std::size_t n) noexcept {
    vf8 d0 = {}, d1 = {}, d2 = {}, d3 = {}, a, b;  // four chains: not bound by add latency
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        vf8 c, e, f, g, h, x;
        std::memcpy(&a, q + i, sizeof a), std::memcpy(&b, r + i, sizeof b);
        std::memcpy(&c, q + i + 8, sizeof c), std::memcpy(&e, r + i + 8, sizeof e);
        std::memcpy(&f, q + i + 16, sizeof f), std::memcpy(&g, r + i + 16, sizeof g);
        std::memcpy(&h, q + i + 24, sizeof h), std::memcpy(&x, r + i + 24, sizeof x);
        d0 += a * b, d1 += c * e, d2 += f * g, d3 += h * x;
    }
    for (; i + 8 <= n; i += 8) {
        std::memcpy(&a, q + i, sizeof a), std::memcpy(&b, r + i, sizeof b);
        d0 += a * b;
    }
    const vf8 d = (d0 + d1) + (d2 + d3);
    float dl[8];
    std::memcpy(dl, &d, sizeof dl);
    for (std::size_t j = 0; i < n; ++i, ++j) dl[j] += q[i] * r[i];
    return pairwise8(dl);
}

// simd::dots_2x4_f32 in eight lanes (see there); the tail in plain lanes.
EDGEMED_CLONES void dots_2x4_f32(const float* q, const float* r0, const float* r1, std::size_t n,
                                 float* dots, float* sumsq, const float* next0,
                                 const float* next1) noexcept {
    vf8 acc[8] = {}, s0 = {}, s1 = {}, x, y, w;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (next0 != nullptr && i % 16 == 0)  // one 64-byte line of each per two steps
            __builtin_prefetch(next0 + i), __builtin_prefetch(next1 + i);
        std::memcpy(&x, r0 + i, sizeof x), std::memcpy(&y, r1 + i, sizeof y);
        for (std::size_t j = 0; j < 4; ++j) {
            std::memcpy(&w, q + j * n + i, sizeof w);
            acc[j] += w * x, acc[4 + j] += w * y;
        }
        if (sumsq != nullptr) s0 += x * x, s1 += y * y;
    }
    // Each output: its lanes summed pairwise, plus the tail's products in plain floats.
    const auto total = [&](const vf8& v, const float* a, const float* b) {
        float lanes[8], tail = 0.0f;
        std::memcpy(lanes, &v, sizeof lanes);
        for (std::size_t t = i; t < n; ++t) tail += a[t] * b[t];
        return pairwise8(lanes) + tail;
    };
    for (std::size_t j = 0; j < 8; ++j) dots[j] = total(acc[j], q + (j % 4) * n, j < 4 ? r0 : r1);
    if (sumsq != nullptr) sumsq[0] = total(s0, r0, r0), sumsq[1] = total(s1, r1, r1);
}
#else
float dot_vf8(const float* q, const float* r, std::size_t n) noexcept { return dot_f32(q, r, n); }

void dots_2x4_f32(const float* q, const float* r0, const float* r1, std::size_t n, float* dots,
                  float* sumsq, const float*, const float*) noexcept {
    for (std::size_t j = 0; j < 8; ++j) dots[j] = dot_f32(q + (j % 4) * n, j < 4 ? r0 : r1, n);
    if (sumsq != nullptr) sumsq[0] = dot_f32(r0, r0, n), sumsq[1] = dot_f32(r1, r1, n);
}
#endif

// The lowest first-pass score a row may have and still be in the exact top k: the k-th best
// less the first pass's error bound `tol` (every row when there are no more than k).
float candidate_bound(const float* a, std::size_t len, std::size_t k, float tol,
                      std::vector<float>& kth) {
    if (len <= k) return -INFINITY;
    std::copy(a, a + len, kth.begin());
    std::nth_element(kth.begin(), kth.begin() + static_cast<std::ptrdiff_t>(k - 1), kth.end(),
                     std::greater<float>());
    return kth[k - 1] - tol;
}

}  // namespace

// Two passes per range of rows: float32 scores of every row (eight vectorised lanes, 4-8x the
// double-accumulating dot), then the double-precision score, exactly as before, of the rows
// within the float32 error bound of each query's k-th: a float32 cosine is within
// (2 dim + 8) u of the exact one (dot product error <= gamma_dim |q||r|, plus the norms'), so
// every row that can be in the exact top k is re-scored. Rows whose float32 sum of squares
// under- or overflows are scored exactly right away.
bool cosine_topk(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                 const float* matrix, std::size_t n_rows, std::ptrdiff_t matrix_stride,
                 std::size_t dim, std::size_t k, std::int64_t* out_index, float* out_score,
                 unsigned max_threads, bool unit_rows, bool* not_unit) {
    // Unit queries: blocks of four scored together, then the rest (fewer than four) one by one.
    const std::size_t n_blocked = n_queries / 4 * 4;
    std::vector<double> q_inv(n_queries);
    std::vector<float> q_unit(n_queries * dim);
    for (std::size_t q = 0; q < n_queries; ++q) {
        const float* src = queries + static_cast<std::ptrdiff_t>(q) * query_stride;
        q_inv[q] = inverse_or_zero(std::sqrt(dot(src, src, dim)));
        for (std::size_t i = 0; i < dim; ++i)
            q_unit[q * dim + i] = static_cast<float>(src[i] * q_inv[q]);
    }
    const float tol = 2.0f * static_cast<float>(2 * dim + 8) * 0x1p-24f;
    const bool wide = simd::has_avx512();
    const auto dots_2x4 = wide ? simd::dots_2x4_f32 : dots_2x4_f32;
    std::atomic<bool> finite{true}, off_unit{false};
    auto exact = [&](std::size_t q, const float* row, double r_inv) {
        const float* src = queries + static_cast<std::ptrdiff_t>(q) * query_stride;
        return static_cast<float>(dot(src, row, dim) * q_inv[q] * r_inv);
    };
    // One row's scores against the queries not in a block of four, into approx[q * len + i];
    // its float32 sum of squares too when `ss` is not null (then there is such a query).
    auto score_rest = [&](float* approx, std::size_t len, std::size_t i, const float* row,
                          float* ss) {
        for (std::size_t q = n_blocked; q < n_queries; ++q) {
            const float* qu = &q_unit[q * dim];
            float& d = approx[q * len + i];
            if (ss != nullptr && q == n_blocked && wide)
                simd::dot_sumsq_f32(qu, row, dim, d, *ss);
            else if (ss != nullptr && q == n_blocked)
                dot_sumsq_f32(qu, row, dim, d, *ss);
            else
                d = wide ? simd::dot_f32(qu, row, dim) : dot_vf8(qu, row, dim);
        }
    };
    const RangeScan scan = [&](std::size_t begin, std::size_t end, std::vector<TopK>& tops) {
        const std::size_t len = end - begin;
        std::vector<float> approx(n_queries * len), kth(len);
        // A row's float32 scores made cosines: scaled by its norm, or left as they are for
        // promised unit rows (whose sum of squares is not computed: a non-finite score is the
        // sign of a non-finite row), or scored exactly when the float32 sum of squares under- or
        // overflows.
        auto finish_row = [&](std::size_t i, const float* row, float ss) {
            if (unit_rows) {
                ss = 0.0f;
                for (std::size_t q = 0; q < n_queries; ++q) ss += approx[q * len + i];
                if (std::isfinite(ss)) return;
            } else if (ss > 1e-30f && ss < 1e30f) {
                const float inv = 1.0f / std::sqrt(ss);
                for (std::size_t q = 0; q < n_queries; ++q) approx[q * len + i] *= inv;
                return;
            }
            const double sumsq = dot(row, row, dim);  // float32 squares cannot overflow a double
            const bool ok = std::isfinite(sumsq);  // so this is exactly "the row holds NaN or inf"
            if (!ok) finite = false;
            const double r_inv = inverse_or_zero(std::sqrt(sumsq));
            for (std::size_t q = 0; q < n_queries; ++q)
                approx[q * len + i] = ok ? exact(q, row, r_inv) : -INFINITY;
        };
        // Rows two at a time against queries four at a time: each step of a row is loaded once
        // for four queries and each step of a query once for two rows.
        float dots[8], ss[2] = {1.0f, 1.0f};
        float* want_ss = unit_rows ? nullptr : ss;
        for (std::size_t r = begin; r < end; r += 2) {
            const std::size_t pair = std::min<std::size_t>(2, end - r);
            const float* row0 = matrix + static_cast<std::ptrdiff_t>(r) * matrix_stride;
            const float* rows[2] = {row0, pair == 2 ? row0 + matrix_stride : row0};
            // The pair after next is fetched meanwhile (the best of 1, 2 and 3 pairs ahead).
            const bool fetch = r + 5 < end;
            const float* next0 = fetch ? rows[0] + 4 * matrix_stride : nullptr;
            const float* next1 = fetch ? rows[0] + 5 * matrix_stride : nullptr;
            for (std::size_t b = 0; b < n_blocked; b += 4) {
                const bool first = b == 0;
                dots_2x4(&q_unit[b * dim], rows[0], rows[1], dim, dots,
                         first ? want_ss : nullptr, first ? next0 : nullptr,
                         first ? next1 : nullptr);
                for (std::size_t p = 0; p < pair; ++p)
                    for (std::size_t j = 0; j < 4; ++j)
                        approx[(b + j) * len + (r - begin + p)] = dots[p * 4 + j];
            }
            for (std::size_t p = 0; p < pair; ++p) {
                score_rest(approx.data(), len, r - begin + p, rows[p],
                           n_blocked == 0 && want_ss != nullptr ? &ss[p] : nullptr);
                finish_row(r - begin + p, rows[p], ss[p]);
            }
        }
        for (std::size_t q = 0; q < n_queries; ++q) {
            const float* a = &approx[q * len];
            const float bound = candidate_bound(a, len, k, tol, kth);
            for (std::size_t i = 0; i < len; ++i) {
                if (!(a[i] >= bound) || a[i] == -INFINITY) continue;  // NaN rows are skipped
                const float* row = matrix + static_cast<std::ptrdiff_t>(begin + i) * matrix_stride;
                const double sumsq = dot(row, row, dim);
                if (unit_rows && sumsq != 0.0 && std::fabs(sumsq - 1.0) > 2e-5) off_unit = true;
                tops[q].push(exact(q, row, inverse_or_zero(std::sqrt(sumsq))),
                             static_cast<std::int64_t>(begin + i));
            }
        }
    };
    parallel_topk(scan, n_queries, n_rows, n_queries * n_rows * dim, k, max_threads, out_index,
                  out_score);
    if (not_unit != nullptr) *not_unit = off_unit;
    return finite;
}

void quantize_rows_int8(const float* matrix, std::size_t rows, std::size_t dim,
                        std::ptrdiff_t row_stride, std::int8_t* out, float* scale) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = matrix + static_cast<std::ptrdiff_t>(r) * row_stride;
        std::int8_t* dst = out + r * dim;
        float max_abs = 0.0f;
        for (std::size_t i = 0; i < dim; ++i) max_abs = std::max(max_abs, std::fabs(row[i]));
        scale[r] = max_abs / 127.0f;
        for (std::size_t i = 0; i < dim; ++i) {
            // Divide (not multiply by a reciprocal) so the result is NumPy's rint(x / scale).
            const float v = scale[r] > 0.0f ? std::nearbyint(row[i] / scale[r]) : 0.0f;
            dst[i] = static_cast<std::int8_t>(std::clamp(v, -127.0f, 127.0f));
        }
    }
}

void cosine_topk_int8(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                      const std::int8_t* matrix, std::size_t n_rows, std::ptrdiff_t matrix_stride,
                      std::size_t dim, std::size_t k, unsigned max_threads,
                      std::int64_t* out_index, float* out_score) {
    if (n_queries == 0) return;  // the scan reads the first query unconditionally
    // int16 queries: 2^-15 relative rounding, far below the int8 matrix's own ~2^-8.
    std::vector<std::int16_t> q16(n_queries * dim);
    std::vector<double> q_inv(n_queries), q_inv_sq(n_queries);
    for (std::size_t q = 0; q < n_queries; ++q) {
        const float* src = queries + static_cast<std::ptrdiff_t>(q) * query_stride;
        float max_abs = 0.0f;
        for (std::size_t i = 0; i < dim; ++i) max_abs = std::max(max_abs, std::fabs(src[i]));
        const float mult = max_abs > 0.0f ? 32767.0f / max_abs : 0.0f;
        double sumsq = 0.0;
        for (std::size_t i = 0; i < dim; ++i) {
            const float v = std::clamp(std::nearbyint(src[i] * mult), -32767.0f, 32767.0f);
            q16[q * dim + i] = static_cast<std::int16_t>(v);
            sumsq += static_cast<double>(v) * v;
        }
        q_inv[q] = inverse_or_zero(std::sqrt(sumsq));
        q_inv_sq[q] = q_inv[q] * q_inv[q];
    }
    const bool vnni = simd::has_avx512_vnni();
    const RangeScan scan = [&](std::size_t begin, std::size_t end, std::vector<TopK>& tops) {
        for (std::size_t r = begin; r < end; ++r) {
            const std::int8_t* row = matrix + static_cast<std::ptrdiff_t>(r) * matrix_stride;
            DotNorm first{};
            if (vnni)
                simd::dot_sumsq_i16_i8(q16.data(), row, dim, first.dot, first.sumsq);
            else
                first = dot_sumsq_i16_i8(q16.data(), row, dim);
            const auto sumsq = static_cast<double>(first.sumsq);
            // Most rows cannot beat the worst kept hit; tell them apart without the square root:
            // with floor f > 0, a row's cosine is below f(1 - 1e-6) (so its float score is below
            // f) when dot |dot| q_inv^2 < f^2 (1 - 2e-6) sumsq (a dot <= 0 always is). The margin
            // covers the rounding of the double products by orders of magnitude. One branch, and
            // a predictable one: a data-dependent "dot <= 0" test mispredicts on half the rows.
            if (n_queries == 1) {
                const auto dot = static_cast<double>(first.dot);
                const double f = tops[0].floor();
                if (f > 0.0 && dot * std::fabs(dot) * q_inv_sq[0] < f * f * (1.0 - 2e-6) * sumsq)
                    continue;
            }
            const double r_inv = inverse_or_zero(std::sqrt(sumsq));
            for (std::size_t q = 0; q < n_queries; ++q) {
                const std::int16_t* qq = &q16[q * dim];
                const auto dot = static_cast<double>(
                    q == 0 ? first.dot
                           : (vnni ? simd::dot_i16_i8(qq, row, dim) : dot_i16_i8(qq, row, dim)));
                tops[q].push(static_cast<float>(dot * q_inv[q] * r_inv),
                             static_cast<std::int64_t>(r));
            }
        }
    };
    parallel_topk(scan, n_queries, n_rows, n_queries * n_rows * dim, k, max_threads, out_index,
                  out_score);
}

// Two passes per range, as cosine_topk: float32 scores of every row from the converted halves
// (16 AVX-512 lanes in registers, or F16C / portable conversion into a row buffer), then the
// exact double-precision cosine of the rows within the float32 error bound of each query's k-th.
// Scores are therefore the same bits on every path. A row holding an infinity or NaN has a
// non-finite sum of squares (finite halves square and sum far below float32's range).
bool cosine_topk_fp16(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                      const std::uint16_t* matrix, std::size_t n_rows,
                      std::ptrdiff_t matrix_stride, std::size_t dim, std::size_t k,
                      unsigned max_threads, std::int64_t* out_index, float* out_score) {
    std::vector<double> q_inv(n_queries);
    std::vector<float> q_unit(n_queries * dim);
    for (std::size_t q = 0; q < n_queries; ++q) {
        const float* src = queries + static_cast<std::ptrdiff_t>(q) * query_stride;
        q_inv[q] = inverse_or_zero(std::sqrt(dot(src, src, dim)));
        for (std::size_t i = 0; i < dim; ++i)
            q_unit[q * dim + i] = static_cast<float>(src[i] * q_inv[q]);
    }
    const float tol = 2.0f * static_cast<float>(2 * dim + 8) * 0x1p-24f;
    const bool wide = simd::has_avx512();
    std::atomic<bool> finite{true};
    const RangeScan scan = [&](std::size_t begin, std::size_t end, std::vector<TopK>& tops) {
        const std::size_t len = end - begin;
        std::vector<float> approx(n_queries * len), kth(len), row(dim);
        for (std::size_t r = begin; r < end; ++r) {
            const std::uint16_t* half = matrix + static_cast<std::ptrdiff_t>(r) * matrix_stride;
            float d = 0.0f, ss = 0.0f;
            for (std::size_t q = 0; q < n_queries; ++q) {
                const float* qu = &q_unit[q * dim];
                if (wide) {
                    simd::dot_sumsq_f16(qu, half, dim, d, ss);
                } else if (q > 0) {
                    d = dot_vf8(qu, row.data(), dim);  // the row converted for the first query
#ifdef EDGEMED_F16C
                } else if (has_f16c()) {
                    HalfDots dots{};
                    half_dots_f16c(half, qu, dim, row.data(), dots);
                    d = dots.query, ss = dots.self;
#endif
                } else {
                    half_row_to_float(half, dim, row.data());
                    d = dot_vf8(qu, row.data(), dim), ss = dot_f32(row.data(), row.data(), dim);
                }
                approx[q * len + (r - begin)] = d;
            }
            const bool ok = std::isfinite(ss);
            if (!ok) finite = false;  // NaN scores would break the ordering: skip, report below
            const float inv = ss > 0.0f ? 1.0f / std::sqrt(ss) : 0.0f;
            for (std::size_t q = 0; q < n_queries; ++q)
                approx[q * len + (r - begin)] = ok ? approx[q * len + (r - begin)] * inv : -INFINITY;
        }
        for (std::size_t q = 0; q < n_queries; ++q) {
            const float* a = &approx[q * len];
            const float bound = candidate_bound(a, len, k, tol, kth);
            const float* src = queries + static_cast<std::ptrdiff_t>(q) * query_stride;
            for (std::size_t i = 0; i < len; ++i) {
                if (!(a[i] >= bound) || a[i] == -INFINITY) continue;
                half_row_to_float(matrix + static_cast<std::ptrdiff_t>(begin + i) * matrix_stride,
                                  dim, row.data());
                const double r_inv = inverse_or_zero(std::sqrt(dot(row.data(), row.data(), dim)));
                tops[q].push(static_cast<float>(dot(src, row.data(), dim) * q_inv[q] * r_inv),
                             static_cast<std::int64_t>(begin + i));
            }
        }
    };
    parallel_topk(scan, n_queries, n_rows, n_queries * n_rows * dim, k, max_threads, out_index,
                  out_score);
    return finite;
}

}  // namespace edgemed::search
