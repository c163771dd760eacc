// edgemed._kernels: the private native module. One binding file per concept; this file only
// assembles them. The typed public facade is edgemed/kernels.py.
#include <pybind11/pybind11.h>

namespace edgemed::bindings {
void bind_post(pybind11::module_& m);
}

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "edgemed native pre/post-processing kernels (private; use edgemed.kernels)";
    edgemed::bindings::bind_post(m);
}
