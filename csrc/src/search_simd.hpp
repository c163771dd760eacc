// AVX-512 inner loops of the search kernels (search_simd.cpp), picked at run time. Internal to
// csrc/src: the public contract is edgemed/search.hpp. On other CPUs and architectures the
// has_* checks are false and search.cpp uses its portable loops.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgemed::search::simd {

// AVX-512 F/BW/VL (float32 and float16 rows).
bool has_avx512() noexcept;
// AVX-512 F/BW/VL and VNNI (int8 rows).
bool has_avx512_vnni() noexcept;

// Float32 q . r and r . r in 16 lanes with FMA. Used only for the approximate first pass, whose
// error bound (gamma_n) holds in any summation order; the candidates are re-scored exactly.
float dot_f32(const float* q, const float* r, std::size_t n) noexcept;
void dot_sumsq_f32(const float* q, const float* r, std::size_t n, float& dot,
                   float& sumsq) noexcept;

// Two rows against four queries (q: four consecutive rows of n floats), each row loaded once
// per step for all four: dots[0..3] for r0, dots[4..7] for r1, and the rows' sums of squares
// in sumsq[0..1] when sumsq is not null. An approximate first pass too (any summation order).
// next0/next1 (both or neither null): rows read later, fetched into the cache meanwhile.
void dots_2x4_f32(const float* q, const float* r0, const float* r1, std::size_t n, float* dots,
                  float* sumsq, const float* next0, const float* next1) noexcept;

// The same over a binary16 row (raw bits), converted in registers.
void dot_sumsq_f16(const float* q, const std::uint16_t* h, std::size_t n, float& dot,
                   float& sumsq) noexcept;

// Exact integer q . m and m . m of an int16 query and an int8 row (VNNI vpdpwssd).
void dot_sumsq_i16_i8(const std::int16_t* q, const std::int8_t* m, std::size_t n,
                      std::int64_t& dot, std::int64_t& sumsq) noexcept;
std::int64_t dot_i16_i8(const std::int16_t* q, const std::int8_t* m, std::size_t n) noexcept;

}  // namespace edgemed::search::simd
