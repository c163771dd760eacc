// ocr kernels. Pure C++17: raw pointers, sizes and strides; no Python.
#pragma once

namespace edgemed::ocr {}  // namespace edgemed::ocr
