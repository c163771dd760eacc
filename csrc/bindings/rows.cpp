// Rows of named numbers (Python dicts) -> one float64 table: a tabular model's batch input.
//
// Python objects only, so there is no C++ core behind this binding (and the GIL stays held).
// It replaces three Python-level passes over a batch (itemgetter per row, a set of the
// values' types, np.array) with one. Anything off the plain path (a row that is not a dict,
// a name missing or unknown, a value that is not exactly a float or an int, an int beyond
// float64) gives None: the caller's row-by-row checks then raise the exact error.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

// rows: list or tuple of dicts; names: tuple of str, the columns' order.
py::object dict_rows(const py::object& rows, const py::tuple& names) {
    PyObject* seq = rows.ptr();
    if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) return py::none();
    const Py_ssize_t n_rows = PySequence_Fast_GET_SIZE(seq);
    const Py_ssize_t n = PyTuple_GET_SIZE(names.ptr());
    if (n_rows == 0 || n == 0) return py::none();
    PyObject** items = PySequence_Fast_ITEMS(seq);
    PyObject** keys = &PyTuple_GET_ITEM(names.ptr(), 0);
    py::array_t<double> table({n_rows, n});
    double* out = table.mutable_data();
    for (Py_ssize_t i = 0; i < n_rows; ++i) {
        PyObject* row = items[i];
        // Exactly n entries and every name found: no name is missing and none is unknown.
        if (!PyDict_CheckExact(row) || PyDict_GET_SIZE(row) != n) return py::none();
        for (Py_ssize_t j = 0; j < n; ++j) {
            PyObject* value = PyDict_GetItemWithError(row, keys[j]);  // borrowed
            if (value == nullptr) {
                if (PyErr_Occurred()) throw py::error_already_set();  // an unhashable key
                return py::none();
            }
            if (PyFloat_CheckExact(value)) {
                *out++ = PyFloat_AS_DOUBLE(value);
            } else if (PyLong_CheckExact(value)) {  // exact: a bool is not a number here
                const double v = PyLong_AsDouble(value);
                if (v == -1.0 && PyErr_Occurred()) {  // beyond float64
                    PyErr_Clear();
                    return py::none();
                }
                *out++ = v;
            } else {
                return py::none();
            }
        }
    }
    return std::move(table);
}

}  // namespace

void bind_rows(py::module_& m) {
    m.def("dict_rows", &dict_rows, py::arg("rows"), py::arg("names"),
          "list/tuple of dicts with exactly `names` as keys and plain float/int values -> float64 "
          "(rows, len(names)) in `names` order; None for anything else (the caller checks it row by "
          "row)");
}

}  // namespace edgemed::bindings
