#include "search_simd.hpp"

// x86-64 with GCC or clang: AVX-512 functions compiled for that target only (no -march flag:
// the wheel still runs on any x86-64) and used when the CPU reports the features.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(EDGEMED_PORTABLE_VECTORS)
// GCC 12 flags the intrinsics' own "undefined" placeholders as (maybe-)uninitialized once
// inlined into a function built for another target: a false positive in the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#define EDGEMED_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define EDGEMED_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace edgemed::search::simd {

bool has_avx512() noexcept {
    static const bool yes = __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl");
    return yes;
}

bool has_avx512_vnni() noexcept {
    static const bool yes = has_avx512() && __builtin_cpu_supports("avx512vnni");
    return yes;
}

namespace {

// Lanes [0, n) of a 16-lane step; n < 16 only in the last step.
EDGEMED_AVX512 inline __mmask16 mask16(std::size_t n) noexcept {
    return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u);
}

EDGEMED_AVX512 inline __mmask32 mask32(std::size_t n) noexcept {
    return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((std::uint32_t{1} << n) - 1u);
}

}  // namespace

// Two chains per sum: one accumulator would wait on the previous FMA (latency-bound).
EDGEMED_AVX512 float dot_f32(const float* q, const float* r, std::size_t n) noexcept {
    __m512 d0 = _mm512_setzero_ps(), d1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        d0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(r + i), d0);
        d1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), _mm512_loadu_ps(r + i + 16), d1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        d0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, r + i), d0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(d0, d1));
}

// Two chains per sum, as above.
EDGEMED_AVX512 void dot_sumsq_f32(const float* q, const float* r, std::size_t n, float& dot,
                                  float& sumsq) noexcept {
    __m512 d0 = _mm512_setzero_ps(), s0 = _mm512_setzero_ps();
    __m512 d1 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_loadu_ps(r + i), b = _mm512_loadu_ps(r + i + 16);
        d0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), a, d0);
        d1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), b, d1);
        s0 = _mm512_fmadd_ps(a, a, s0);
        s1 = _mm512_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        const __m512 a = _mm512_maskz_loadu_ps(m, r + i);
        d0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), a, d0);
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    dot = _mm512_reduce_add_ps(_mm512_add_ps(d0, d1));
    sumsq = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// One chain per output (eight, ten with the norms): enough to hide the FMA latency. A query
// step is loaded once for both rows, a row step once for the four queries. Two rows read in
// step are too few streams for the hardware prefetcher to run ahead (measured: 1.8x slower than
// four single-row dots over a 30 MB matrix), hence the explicit prefetch of a later pair.
EDGEMED_AVX512 void dots_2x4_f32(const float* q, const float* r0, const float* r1, std::size_t n,
                                 float* dots, float* sumsq, const float* next0,
                                 const float* next1) noexcept {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    __m512 s0 = a0, s1 = a0;
    for (std::size_t i = 0; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        if (next0 != nullptr) {
            _mm_prefetch(reinterpret_cast<const char*>(next0 + i), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(next1 + i), _MM_HINT_T0);
        }
        const __m512 x = _mm512_maskz_loadu_ps(m, r0 + i), y = _mm512_maskz_loadu_ps(m, r1 + i);
        __m512 w = _mm512_maskz_loadu_ps(m, q + i);
        a0 = _mm512_fmadd_ps(w, x, a0), b0 = _mm512_fmadd_ps(w, y, b0);
        w = _mm512_maskz_loadu_ps(m, q + n + i);
        a1 = _mm512_fmadd_ps(w, x, a1), b1 = _mm512_fmadd_ps(w, y, b1);
        w = _mm512_maskz_loadu_ps(m, q + 2 * n + i);
        a2 = _mm512_fmadd_ps(w, x, a2), b2 = _mm512_fmadd_ps(w, y, b2);
        w = _mm512_maskz_loadu_ps(m, q + 3 * n + i);
        a3 = _mm512_fmadd_ps(w, x, a3), b3 = _mm512_fmadd_ps(w, y, b3);
        if (sumsq != nullptr) s0 = _mm512_fmadd_ps(x, x, s0), s1 = _mm512_fmadd_ps(y, y, s1);
    }
    const __m512 out[8] = {a0, a1, a2, a3, b0, b1, b2, b3};
    for (int j = 0; j < 8; ++j) dots[j] = _mm512_reduce_add_ps(out[j]);
    if (sumsq != nullptr) sumsq[0] = _mm512_reduce_add_ps(s0), sumsq[1] = _mm512_reduce_add_ps(s1);
}

EDGEMED_AVX512 void dot_sumsq_f16(const float* q, const std::uint16_t* h, std::size_t n,
                                  float& dot, float& sumsq) noexcept {
    __m512 d0 = _mm512_setzero_ps(), s0 = _mm512_setzero_ps();
    __m512 d1 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i)));
        const __m512 b =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i + 16)));
        d0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), a, d0);
        d1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), b, d1);
        s0 = _mm512_fmadd_ps(a, a, s0);
        s1 = _mm512_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = mask16(n - i);
        const __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i));
        d0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), a, d0);
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    dot = _mm512_reduce_add_ps(_mm512_add_ps(d0, d1));
    sumsq = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// Each vpdpwssd adds two products of |q| <= 32767 and |m| <= 127 to a 32-bit lane, < 2^23.3;
// 128 steps (4,096 elements) stay below 2^31, then the lanes are added up in 64 bits.
constexpr std::size_t kVnniBlock = 4096;

EDGEMED_VNNI inline std::int64_t sum_epi32(__m512i v) noexcept {
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
    const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
    return _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
}

EDGEMED_VNNI void dot_sumsq_i16_i8(const std::int16_t* q, const std::int8_t* m, std::size_t n,
                                   std::int64_t& dot, std::int64_t& sumsq) noexcept {
    dot = 0, sumsq = 0;
    for (std::size_t b = 0; b < n; b += kVnniBlock) {
        const std::size_t e = n - b < kVnniBlock ? n : b + kVnniBlock;
        // Two chains per sum: vpdpwssd's latency would otherwise bound the loop.
        __m512i d = _mm512_setzero_si512(), s = _mm512_setzero_si512();
        __m512i d1 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        std::size_t i = b;
        for (; i + 64 <= e; i += 64) {
            const __m512i r0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(m + i)));
            const __m512i r1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(m + i + 32)));
            d = _mm512_dpwssd_epi32(d, r0, _mm512_loadu_si512(q + i));
            d1 = _mm512_dpwssd_epi32(d1, r1, _mm512_loadu_si512(q + i + 32));
            s = _mm512_dpwssd_epi32(s, r0, r0);
            s1 = _mm512_dpwssd_epi32(s1, r1, r1);
        }
        for (; i < e; i += 32) {
            const __mmask32 k = mask32(e - i);
            const __m512i row = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, m + i));
            d = _mm512_dpwssd_epi32(d, row, _mm512_maskz_loadu_epi16(k, q + i));
            s = _mm512_dpwssd_epi32(s, row, row);
        }
        // Both chains together took at most 128 steps of the block: their sum fits too.
        dot += sum_epi32(_mm512_add_epi32(d, d1));
        sumsq += sum_epi32(_mm512_add_epi32(s, s1));
    }
}

EDGEMED_VNNI std::int64_t dot_i16_i8(const std::int16_t* q, const std::int8_t* m,
                                     std::size_t n) noexcept {
    std::int64_t total = 0;
    for (std::size_t b = 0; b < n; b += kVnniBlock) {
        const std::size_t e = n - b < kVnniBlock ? n : b + kVnniBlock;
        __m512i d = _mm512_setzero_si512();
        for (std::size_t i = b; i < e; i += 32) {
            const __mmask32 k = mask32(e - i);
            const __m512i row = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, m + i));
            d = _mm512_dpwssd_epi32(d, row, _mm512_maskz_loadu_epi16(k, q + i));
        }
        total += sum_epi32(d);
    }
    return total;
}

}  // namespace edgemed::search::simd

#else  // no AVX-512 build: search.cpp never calls the loops below

namespace edgemed::search::simd {

bool has_avx512() noexcept { return false; }
bool has_avx512_vnni() noexcept { return false; }
float dot_f32(const float*, const float*, std::size_t) noexcept { return 0.0f; }
void dot_sumsq_f32(const float*, const float*, std::size_t, float& dot, float& sumsq) noexcept {
    dot = sumsq = 0.0f;
}
void dot_sumsq_f16(const float*, const std::uint16_t*, std::size_t, float& dot,
                   float& sumsq) noexcept {
    dot = sumsq = 0.0f;
}
void dots_2x4_f32(const float*, const float*, const float*, std::size_t, float*, float*,
                  const float*, const float*) noexcept {}
void dot_sumsq_i16_i8(const std::int16_t*, const std::int8_t*, std::size_t, std::int64_t& dot,
                      std::int64_t& sumsq) noexcept {
    dot = sumsq = 0;
}
std::int64_t dot_i16_i8(const std::int16_t*, const std::int8_t*, std::size_t) noexcept {
    return 0;
}

}  // namespace edgemed::search::simd

#endif
