// Thin layer over edgemed::search: validate layout, release the GIL, call the core. No copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>

#include "edgemed/search.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

// A 2-D array whose rows are contiguous (row stride may be larger: slices are fine).
template <class T>
struct Rows {
    const T* data;
    std::size_t rows;
    std::size_t dim;
    std::ptrdiff_t stride;  // in elements
};

// `dtype_name` is the NumPy name of the one accepted dtype, for the message.
template <class T>
Rows<T> check_rows(const py::array& arr, const char* name, const py::dtype& want,
                   const char* dtype_name) {
    if (!arr.dtype().is(want)) {
        throw py::type_error(std::string(name) + ": expected a " + dtype_name +
                             " array, got dtype " + std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != 2) {
        throw py::value_error(std::string(name) + ": expected shape (rows, dim), got ndim " +
                              std::to_string(arr.ndim()));
    }
    const auto item = static_cast<py::ssize_t>(sizeof(T));
    if (arr.size() == 0) {  // NumPy may give empty arrays any strides; nothing is read
        return {static_cast<const T*>(arr.data()), static_cast<std::size_t>(arr.shape(0)),
                static_cast<std::size_t>(arr.shape(1)), 0};
    }
    if (arr.shape(1) > 1 && arr.strides(1) != item) {
        throw py::value_error(std::string(name) + ": rows must be contiguous (inner stride " +
                              std::to_string(item) + " bytes); pass np.ascontiguousarray(x)");
    }
    if (arr.strides(0) % item != 0 || arr.strides(0) < 0) {
        throw py::value_error(std::string(name) + ": row stride must be a positive multiple of " +
                              std::to_string(item));
    }
    return {static_cast<const T*>(arr.data()), static_cast<std::size_t>(arr.shape(0)),
            static_cast<std::size_t>(arr.shape(1)), arr.strides(0) / item};
}

Rows<float> check_rows(const py::array& arr, const char* name) {
    return check_rows<float>(arr, name, py::dtype::of<float>(), "float32");
}

void l2_normalize_inplace(py::array& arr, float eps) {
    if (!arr.writeable()) throw py::value_error("x: array is read-only");
    const Rows<float> r = check_rows(arr, "x");
    float* data = static_cast<float*>(arr.mutable_data());
    py::gil_scoped_release release;
    search::l2_normalize_rows(data, r.rows, r.dim, r.stride, eps);
}

void check_query_matrix(const Rows<float>& q, std::size_t m_rows, std::size_t m_dim,
                        std::size_t k) {
    if (q.dim != m_dim) {
        throw py::value_error("queries and matrix must have the same dim, got " +
                              std::to_string(q.dim) + " and " + std::to_string(m_dim));
    }
    if (k == 0 || k > m_rows) {
        throw py::value_error("k must be in [1, " + std::to_string(m_rows) + "], got " +
                              std::to_string(k));
    }
}

// Allocates the (n_queries, k) outputs, releases the GIL and runs `compute(index, score)`.
template <class F>
py::tuple topk_outputs(std::size_t n_queries, std::size_t k, F&& compute) {
    py::array_t<std::int64_t> index({static_cast<py::ssize_t>(n_queries), static_cast<py::ssize_t>(k)});
    py::array_t<float> score({static_cast<py::ssize_t>(n_queries), static_cast<py::ssize_t>(k)});
    std::int64_t* out_index = index.mutable_data();
    float* out_score = score.mutable_data();
    {
        py::gil_scoped_release release;
        compute(out_index, out_score);
    }
    return py::make_tuple(index, score);
}

// Two threads at most: the target is a 2-core bedside box that also runs the model.
unsigned search_threads() { return std::max(1u, std::min(2u, std::thread::hardware_concurrency())); }

py::tuple cosine_topk(const py::array& queries, const py::array& matrix, std::size_t k,
                      bool unit_rows) {
    const Rows<float> q = check_rows(queries, "queries");
    const Rows<float> m = check_rows(matrix, "matrix");
    check_query_matrix(q, m.rows, m.dim, k);
    bool finite = true, not_unit = false;
    py::tuple out = topk_outputs(q.rows, k, [&](std::int64_t* index, float* score) {
        finite = search::cosine_topk(q.data, q.rows, q.stride, m.data, m.rows, m.stride, m.dim, k,
                                     index, score, search_threads(), unit_rows, &not_unit);
    });
    if (!finite) throw py::value_error("matrix: contains NaN or infinity");
    if (not_unit) {
        throw py::value_error("matrix: rows are not unit-norm; call without normalized=True");
    }
    return out;
}

py::tuple cosine_topk_int8(const py::array& queries, const py::array& matrix, std::size_t k) {
    const Rows<float> q = check_rows(queries, "queries");
    const auto m = check_rows<std::int8_t>(matrix, "matrix", py::dtype::of<std::int8_t>(), "int8");
    check_query_matrix(q, m.rows, m.dim, k);
    return topk_outputs(q.rows, k, [&](std::int64_t* index, float* score) {
        search::cosine_topk_int8(q.data, q.rows, q.stride, m.data, m.rows, m.stride, m.dim, k,
                                 search_threads(), index, score);
    });
}

py::tuple cosine_topk_fp16(const py::array& queries, const py::array& matrix, std::size_t k) {
    const Rows<float> q = check_rows(queries, "queries");
    const auto m = check_rows<std::uint16_t>(matrix, "matrix", py::dtype("float16"), "float16");
    check_query_matrix(q, m.rows, m.dim, k);
    bool finite = true;
    py::tuple out = topk_outputs(q.rows, k, [&](std::int64_t* index, float* score) {
        finite = search::cosine_topk_fp16(q.data, q.rows, q.stride, m.data, m.rows, m.stride,
                                          m.dim, k, search_threads(), index, score);
    });
    if (!finite) throw py::value_error("matrix: contains NaN or infinity");
    return out;
}

py::tuple quantize_rows_int8(const py::array& matrix) {
    const Rows<float> m = check_rows(matrix, "matrix");
    py::array_t<std::int8_t> out({static_cast<py::ssize_t>(m.rows), static_cast<py::ssize_t>(m.dim)});
    py::array_t<float> scale(static_cast<py::ssize_t>(m.rows));
    std::int8_t* out_data = out.mutable_data();
    float* scale_data = scale.mutable_data();
    {
        py::gil_scoped_release release;
        search::quantize_rows_int8(m.data, m.rows, m.dim, m.stride, out_data, scale_data);
    }
    return py::make_tuple(out, scale);
}

}  // namespace

void bind_search(py::module_& m) {
    m.def("l2_normalize_inplace", &l2_normalize_inplace, py::arg("x"), py::arg("eps") = 1e-12f,
          "Scale each row of a 2-D float32 array to unit L2 norm, in place.");
    m.def("cosine_topk", &cosine_topk, py::arg("queries"), py::arg("matrix"), py::arg("k"),
          py::arg("unit_rows") = false,
          "Top-k cosine similarity of each query row against matrix rows -> (index, score).");
    m.def("cosine_topk_int8", &cosine_topk_int8, py::arg("queries"), py::arg("matrix"),
          py::arg("k"), "cosine_topk over an int8 matrix (float32 queries) -> (index, score).");
    m.def("cosine_topk_fp16", &cosine_topk_fp16, py::arg("queries"), py::arg("matrix"),
          py::arg("k"), "cosine_topk over a float16 matrix (float32 queries) -> (index, score).");
    m.def("quantize_rows_int8", &quantize_rows_int8, py::arg("matrix"),
          "Symmetric per-row int8 quantisation of a float32 matrix -> (int8 rows, scales).");
}

}  // namespace edgemed::bindings
