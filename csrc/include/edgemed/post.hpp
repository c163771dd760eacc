// post kernels. Pure C++17: raw pointers, sizes and strides; no Python.
#pragma once

namespace edgemed::post {}  // namespace edgemed::post
