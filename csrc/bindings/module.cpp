// edgemed._kernels: the private native module. One binding file per concept; this file only
// assembles them. The typed public facade is the edgemed.kernels package.
#include <pybind11/pybind11.h>

namespace edgemed::bindings {
void bind_image(pybind11::module_& m);
void bind_signal(pybind11::module_& m);
void bind_post(pybind11::module_& m);
void bind_ocr(pybind11::module_& m);
void bind_search(pybind11::module_& m);
void bind_vitals(pybind11::module_& m);
void bind_rows(pybind11::module_& m);
void bind_values(pybind11::module_& m);
}  // namespace edgemed::bindings

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "edgemed native pre/post-processing kernels (private; use edgemed.kernels)";
    edgemed::bindings::bind_image(m);
    edgemed::bindings::bind_signal(m);
    edgemed::bindings::bind_post(m);
    edgemed::bindings::bind_ocr(m);
    edgemed::bindings::bind_search(m);
    edgemed::bindings::bind_vitals(m);
    edgemed::bindings::bind_rows(m);
    edgemed::bindings::bind_values(m);
}
