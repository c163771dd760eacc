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
// Zero-norm rows (query or matrix) score 0. Requires k <= n_rows.
void cosine_topk(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                 const float* matrix, std::size_t n_rows, std::ptrdiff_t matrix_stride,
                 std::size_t dim, std::size_t k, std::int64_t* out_index, float* out_score);

}  // namespace edgemed::search
