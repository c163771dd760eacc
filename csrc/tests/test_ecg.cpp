// Native unit tests for edgemed::ecg (no framework: exit status is the verdict).
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "edgemed/ecg.hpp"

namespace ecg = edgemed::ecg;

// Brute-force np.convolve(x**2, ones(w), 'same'): out[i] = sum x[k]^2, k in [i - (w-1)/2 ... ]
// with numpy's centering (full[i + (w - 1) / 2]).
static void test_moving_integration_matches_convolution() {
    const std::vector<double> x = {1, -2, 3, 0.5, -1, 4, 2, -3, 1.5};
    for (std::size_t w : {1u, 2u, 3u, 4u, 9u}) {
        std::vector<double> out(x.size());
        ecg::squared_moving_integration(x.data(), x.size(), w, out.data());
        for (std::size_t i = 0; i < x.size(); ++i) {
            const long full = static_cast<long>(i + (w - 1) / 2);  // index into the full conv
            double ref = 0.0;
            for (long k = full - static_cast<long>(w) + 1; k <= full; ++k)
                if (k >= 0 && k < static_cast<long>(x.size())) ref += x[static_cast<std::size_t>(k)] * x[static_cast<std::size_t>(k)];
            CHECK_NEAR(out[i], ref, 1e-12);
        }
    }
}

// A synthetic ECG: narrow QRS-like Gaussian spikes every 0.8 s (75 bpm), a broad T wave 250 ms
// after each, baseline wander and a little noise. Every spike must be found within 20 ms, and
// nothing else (T waves, wander) may be reported.
static void test_detects_synthetic_beats() {
    const double fs = 360.0;
    const std::size_t n = static_cast<std::size_t>(20 * fs);
    std::vector<double> x(n);
    std::vector<double> beats;
    for (double t = 0.5; t < 19.7; t += 0.8) beats.push_back(t);
    std::uint32_t seed = 12345;
    for (std::size_t i = 0; i < n; ++i) {
        const double t = static_cast<double>(i) / fs;
        double v = 0.3 * std::sin(2 * M_PI * 0.2 * t);
        for (double b : beats) {
            v += 1.5 * std::exp(-0.5 * std::pow((t - b) / 0.012, 2));
            v += 0.3 * std::exp(-0.5 * std::pow((t - b - 0.25) / 0.05, 2));
        }
        seed = seed * 1664525u + 1013904223u;  // LCG noise, +-0.01
        x[i] = v + 0.02 * (static_cast<double>(seed >> 8) / 16777216.0 - 0.5);
    }
    const std::vector<std::int64_t> found = ecg::detect_r_peaks(x.data(), n, 1, fs);
    CHECK(found.size() == beats.size());
    for (std::size_t k = 0; k < found.size() && k < beats.size(); ++k)
        CHECK(std::fabs(static_cast<double>(found[k]) / fs - beats[k]) < 0.02);
    // Leading flat samples shift every index by the flat length (detection starts after them).
    std::vector<double> padded(100, x[0]);
    padded.insert(padded.end(), x.begin(), x.end());
    padded[100] = x[0] + 1e-3;  // make sample 1 of the original differ from the flat run
    const std::vector<std::int64_t> shifted = ecg::detect_r_peaks(padded.data(), padded.size(), 1, fs);
    CHECK(shifted.size() == found.size());
    for (std::size_t k = 0; k < found.size() && k < shifted.size(); ++k)
        CHECK(std::llabs(shifted[k] - found[k] - 100) <= 1);
}

static bool throws(const std::vector<double>& x, double fs) {
    try {
        ecg::detect_r_peaks(x.data(), x.size(), 1, fs);
    } catch (const std::invalid_argument&) {
        return true;
    }
    return false;
}

static void test_rejects_bad_input() {
    CHECK(throws(std::vector<double>(1000, 1.0), 360.0));   // flat
    CHECK(throws(std::vector<double>(1, 1.0), 360.0));      // one sample
    CHECK(throws({0.0, 1.0, 0.0, 1.0}, 360.0));             // shorter than the filter padding
    std::vector<double> ok(1000);
    for (std::size_t i = 0; i < ok.size(); ++i) ok[i] = std::sin(0.1 * static_cast<double>(i));
    CHECK(throws(ok, 50.0));                                 // 30 Hz edge above Nyquist
    CHECK(!throws(ok, 360.0));
}

int main() {
    test_moving_integration_matches_convolution();
    test_detects_synthetic_beats();
    test_rejects_bad_input();
    return check_report("test_ecg");
}
