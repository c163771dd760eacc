// Nested Python values (dicts, lists, tuples) -> whether every float in them is finite.
//
// Python objects only, so there is no C++ core behind this binding (and the GIL stays held).
// The device encodes result payloads with orjson, which writes NaN and infinities as null
// where the stdlib's encoder refused them: this one native pass refuses them first, at a
// fraction of a Python walk's cost (a text result: 1.5 us, call included, against 10 us).
#include <pybind11/pybind11.h>

#include <cmath>

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

// Deeper than this is left to the encoders, which refuse such nesting themselves.
constexpr int kMaxDepth = 1024;

bool finite_in(PyObject* value, int depth) {
    if (PyFloat_Check(value)) return std::isfinite(PyFloat_AS_DOUBLE(value));  // subclasses too
    if (depth >= kMaxDepth) return true;
    if (PyDict_Check(value)) {
        Py_ssize_t pos = 0;
        PyObject* key = nullptr;
        PyObject* item = nullptr;  // borrowed; no Python code runs, so the dict cannot change
        while (PyDict_Next(value, &pos, &key, &item)) {
            if (!finite_in(item, depth + 1)) return false;
        }
        return true;
    }
    if (PyList_Check(value) || PyTuple_Check(value)) {
        const Py_ssize_t n = PySequence_Fast_GET_SIZE(value);
        PyObject** items = PySequence_Fast_ITEMS(value);
        for (Py_ssize_t i = 0; i < n; ++i) {
            if (!finite_in(items[i], depth + 1)) return false;
        }
    }
    return true;
}

}  // namespace

void bind_values(py::module_& m) {
    m.def(
        "all_finite", [](const py::handle& value) { return finite_in(value.ptr(), 0); },
        py::arg("value"),
        "False if a float (or float subclass) nested in dicts, lists and tuples is NaN or "
        "infinite; anything else (str, int, None, other objects) is not looked into");
}

}  // namespace edgemed::bindings
