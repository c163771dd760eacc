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

// Time-domain heart rate variability features per analysis window, as sleepecg's
// _hrv_timedomain_features (feature_extraction.py), in this order: meanNN maxNN minNN rangeNN SDNN
// RMSSD SDSD NN50 NN20 pNN50 pNN20 medianNN madNN iqrNN cvNN cvSD meanHR maxHR minHR stdHR SD1 SD2
// S SD1_SD2_ratio CSI CVI. Window w holds the RR intervals `rri` (s) whose times `rri_times` (s,
// ascending) lie in [window_times[w] - lookback, window_times[w] + lookforward). Standard
// deviations use ddof 1; statistics of too few intervals are NaN. As in sleepecg, pNN50/pNN20
// divide by (longest window's interval count - 1), not by the window's own count.
constexpr std::size_t kHrvFeatures = 26;
void hrv_time_domain(const double* rri, const double* rri_times, std::size_t n,
                     const double* window_times, std::size_t n_windows, double lookback,
                     double lookforward, double* out);

}  // namespace edgemed::ecg
