// Thin layer over edgemed::search: validate layout, release the GIL, call the core. No copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "edgemed/search.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::forcecast>;

// A 2-D float32 array whose rows are contiguous (row stride may be larger: slices are fine).
struct Rows {
    const float* data;
    std::size_t rows;
    std::size_t dim;
    std::ptrdiff_t stride;  // in elements
};

Rows check_rows(const py::array& arr, const char* name) {
    if (!py::isinstance<py::array_t<float>>(arr)) {
        throw py::type_error(std::string(name) + ": expected a float32 array, got dtype " +
                             std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != 2) {
        throw py::value_error(std::string(name) + ": expected shape (rows, dim), got ndim " +
                              std::to_string(arr.ndim()));
    }
    const auto item = static_cast<py::ssize_t>(sizeof(float));
    if (arr.shape(1) > 1 && arr.strides(1) != item) {
        throw py::value_error(std::string(name) +
                              ": rows must be contiguous (inner stride 4 bytes); pass "
                              "np.ascontiguousarray(x)");
    }
    if (arr.strides(0) % item != 0 || arr.strides(0) < 0) {
        throw py::value_error(std::string(name) + ": row stride must be a positive multiple of 4");
    }
    return {static_cast<const float*>(arr.data()), static_cast<std::size_t>(arr.shape(0)),
            static_cast<std::size_t>(arr.shape(1)), arr.strides(0) / item};
}

void l2_normalize_inplace(py::array& arr, float eps) {
    if (!arr.writeable()) throw py::value_error("x: array is read-only");
    const Rows r = check_rows(arr, "x");
    float* data = static_cast<float*>(arr.mutable_data());
    py::gil_scoped_release release;
    search::l2_normalize_rows(data, r.rows, r.dim, r.stride, eps);
}

py::tuple cosine_topk(const py::array& queries, const py::array& matrix, std::size_t k) {
    const Rows q = check_rows(queries, "queries");
    const Rows m = check_rows(matrix, "matrix");
    if (q.dim != m.dim) {
        throw py::value_error("queries and matrix must have the same dim, got " +
                              std::to_string(q.dim) + " and " + std::to_string(m.dim));
    }
    if (k == 0 || k > m.rows) {
        throw py::value_error("k must be in [1, " + std::to_string(m.rows) + "], got " +
                              std::to_string(k));
    }
    py::array_t<std::int64_t> index({static_cast<py::ssize_t>(q.rows), static_cast<py::ssize_t>(k)});
    py::array_t<float> score({static_cast<py::ssize_t>(q.rows), static_cast<py::ssize_t>(k)});
    std::int64_t* out_index = index.mutable_data();
    float* out_score = score.mutable_data();
    {
        py::gil_scoped_release release;
        search::cosine_topk(q.data, q.rows, q.stride, m.data, m.rows, m.stride, m.dim, k, out_index,
                          out_score);
    }
    return py::make_tuple(index, score);
}

}  // namespace

void bind_search(py::module_& m) {
    m.def("l2_normalize_inplace", &l2_normalize_inplace, py::arg("x"), py::arg("eps") = 1e-12f,
          "Scale each row of a 2-D float32 array to unit L2 norm, in place.");
    m.def("cosine_topk", &cosine_topk, py::arg("queries"), py::arg("matrix"), py::arg("k"),
          "Top-k cosine similarity of each query row against matrix rows -> (index, score).");
}

}  // namespace edgemed::bindings
