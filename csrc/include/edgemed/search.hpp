// Embedding search kernels (cosine top-k). Pure C++17: raw pointers, sizes and row strides (in elements).
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgemed::search {

// Scale each row of `data` (rows x dim, rows `row_stride` elements apart) to unit L2 norm, in place.
// Rows whose norm is below `eps` are left unchanged (a zero vector has no direction).
void l2_normalize_rows(float* data, std::size_t rows, std::size_t dim, std::ptrdiff_t row_stride,
                       float eps) noexcept;

// For each of `n_queries` query rows, find the `k` rows of `matrix` (n_rows x dim) with the highest
// cosine similarity. Writes n_queries x k indices and scores, best first; ties keep the lower index.
// Zero-norm rows (query or matrix) score 0. Requires k <= n_rows and finite queries. Dot
// products accumulate in double. Rows are split over up to `max_threads` std::threads when the
// work is large; the result does not depend on the split. Returns false (outputs unspecified)
// if a matrix row holds an infinity or NaN: checked during the scan, no extra pass.
// `unit_rows`: the caller promises rows of unit norm (or zero), so the first, float32 pass
// skips each row's norm; the re-scored candidates still use their exact norms, and
// `*not_unit` is set if one of them is neither of unit norm (within 2e-5) nor zero.
[[nodiscard]] bool cosine_topk(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                 const float* matrix, std::size_t n_rows, std::ptrdiff_t matrix_stride,
                 std::size_t dim, std::size_t k, std::int64_t* out_index, float* out_score,
                 unsigned max_threads = 1, bool unit_rows = false,
                 bool* not_unit = nullptr);

// Symmetric per-row int8 quantisation: scale[r] = max|row| / 127, out = round(row / scale[r]),
// so row ~= scale[r] * out. All-zero rows get scale 0 and zeros. `out` is dense (rows x dim).
void quantize_rows_int8(const float* matrix, std::size_t rows, std::size_t dim,
                        std::ptrdiff_t row_stride, std::int8_t* out, float* scale) noexcept;

// Cosine top-k of float queries over an int8 matrix (rows `matrix_stride` elements apart). Cosine
// is invariant to a positive per-row scale, so the scales of quantize_rows_int8 are not needed.
// Each query is quantised to int16 (max |q| -> 32767) and dot products accumulate exactly in
// integers; rows are split over up to `max_threads` std::threads when the work is large. Same
// ordering contract as cosine_topk.
void cosine_topk_int8(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                      const std::int8_t* matrix, std::size_t n_rows, std::ptrdiff_t matrix_stride,
                      std::size_t dim, std::size_t k, unsigned max_threads,
                      std::int64_t* out_index, float* out_score);

// Cosine top-k of float queries over an IEEE binary16 matrix given as raw uint16 bit patterns.
// Accumulates in float (the matrix itself carries ~5e-4 relative error). Same contract as above.
// Returns false (outputs unspecified) if the matrix holds an infinity or NaN.
[[nodiscard]] bool cosine_topk_fp16(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                      const std::uint16_t* matrix, std::size_t n_rows,
                      std::ptrdiff_t matrix_stride, std::size_t dim, std::size_t k,
                      unsigned max_threads, std::int64_t* out_index, float* out_score);

// IEEE binary16 bits -> float, exact for every finite value, subnormal, infinity and NaN.
float half_to_float(std::uint16_t h) noexcept;

}  // namespace edgemed::search
