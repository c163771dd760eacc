// Thin pybind11 layer over edgemed::ocr: validate layout, release the GIL, call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace edgemed::bindings {

void bind_ocr(py::module_& m) { (void)m; }

}  // namespace edgemed::bindings
