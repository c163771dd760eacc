// Single-lead ECG beat detection. Pure C++17; no Python.
//
// Port of sleepecg.detect_heartbeats (SleepECG developers, BSD 3-clause licence; the algorithm is
// a modified Pan & Tompkins 1985 detector, see ecg.cpp for the credit and the differences).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace edgemed::ecg {

// Lowest sampling rate the detector accepts: its 5-30 Hz band-pass needs 30 Hz < fs / 2.
constexpr double kMinFs = 60.0;

// Sample indices of the R peaks of `n` samples spaced `stride` elements apart, sampled at `fs` Hz.
// Throws std::invalid_argument when fs <= kMinFs, the signal has fewer than 2 samples, is flat, or
// its non-flat part is too short for the zero-phase pre-filter (16 samples).
std::vector<std::int64_t> detect_r_peaks(const double* ecg, std::size_t n, std::ptrdiff_t stride,
                                         double fs);

// Squares x and sums it over a centered window of `width` samples (even widths lean left, like
// np.convolve(x**2, np.ones(width), 'same')). Requires 0 < width <= n.
void squared_moving_integration(const double* x, std::size_t n, std::size_t width,
                                double* out) noexcept;

// Pan & Tompkins adaptive thresholding with searchback and T-wave rejection on the band-passed
// and the integrated signal (both n samples). Writes 1 at beats, 0 elsewhere into `mask`.
void threshold_beats(const double* filtered, const double* integrated, std::size_t n, double fs,
                     std::uint8_t* mask);

}  // namespace edgemed::ecg
