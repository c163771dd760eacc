// image kernels. Pure C++17: raw pointers, sizes and strides; no Python.
#pragma once

namespace edgemed::image {}  // namespace edgemed::image
