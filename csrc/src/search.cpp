#include "edgemed/search.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace edgemed::search {
namespace {

// Accumulate in double: 384..1024-dim float dot products lose ~1e-6 relative precision otherwise,
// and the tests compare against NumPy's float64-accumulated reference.
double dot(const float* a, const float* b, std::size_t n) noexcept {
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i) acc += static_cast<double>(a[i]) * b[i];
    return acc;
}

// "Better" = higher score, then lower index: a strict weak order that makes results deterministic.
bool better(const std::pair<float, std::int64_t>& a, const std::pair<float, std::int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

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

void cosine_topk(const float* queries, std::size_t n_queries, std::ptrdiff_t query_stride,
                 const float* matrix, std::size_t n_rows, std::ptrdiff_t matrix_stride,
                 std::size_t dim, std::size_t k, std::int64_t* out_index, float* out_score) {
    std::vector<double> inv_norm(n_rows);
    for (std::size_t r = 0; r < n_rows; ++r) {
        const float* row = matrix + static_cast<std::ptrdiff_t>(r) * matrix_stride;
        const double norm = std::sqrt(dot(row, row, dim));
        inv_norm[r] = norm > 0.0 ? 1.0 / norm : 0.0;
    }
    std::vector<std::pair<float, std::int64_t>> scored(n_rows);
    for (std::size_t q = 0; q < n_queries; ++q) {
        const float* query = queries + static_cast<std::ptrdiff_t>(q) * query_stride;
        const double qn = std::sqrt(dot(query, query, dim));
        const double q_inv = qn > 0.0 ? 1.0 / qn : 0.0;
        for (std::size_t r = 0; r < n_rows; ++r) {
            const float* row = matrix + static_cast<std::ptrdiff_t>(r) * matrix_stride;
            const double cos = dot(query, row, dim) * q_inv * inv_norm[r];
            scored[r] = {static_cast<float>(cos), static_cast<std::int64_t>(r)};
        }
        std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k),
                          scored.end(), better);
        for (std::size_t i = 0; i < k; ++i) {
            out_index[q * k + i] = scored[i].second;
            out_score[q * k + i] = scored[i].first;
        }
    }
}

}  // namespace edgemed::search
