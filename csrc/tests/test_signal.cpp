// Native unit tests for edgemed::signal (no framework: exit status is the verdict). References
// are independent: textbook difference equations, analytic frequency responses, known constants.
#include <cmath>
#include <complex>
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "edgemed/signal.hpp"

namespace sig = edgemed::signal;

// Direct Form I reference of the cascade (a different realisation from the kernel's DF2T).
static std::vector<double> df1(const double* sos, std::size_t ns, const std::vector<double>& x) {
    std::vector<double> cur = x;
    for (std::size_t s = 0; s < ns; ++s) {
        const double* c = sos + 6 * s;
        std::vector<double> out(cur.size());
        for (std::size_t i = 0; i < cur.size(); ++i) {
            const double x1 = i >= 1 ? cur[i - 1] : 0.0, x2 = i >= 2 ? cur[i - 2] : 0.0;
            const double y1 = i >= 1 ? out[i - 1] : 0.0, y2 = i >= 2 ? out[i - 2] : 0.0;
            out[i] = c[0] * cur[i] + c[1] * x1 + c[2] * x2 - c[4] * y1 - c[5] * y2;
        }
        cur = out;
    }
    return cur;
}

static std::complex<double> response(const double* sos, std::size_t ns, double w) {
    const std::complex<double> z1 = std::polar(1.0, -w), z2 = z1 * z1;
    std::complex<double> h = 1.0;
    for (std::size_t s = 0; s < ns; ++s) {
        const double* c = sos + 6 * s;
        h *= (c[0] + c[1] * z1 + c[2] * z2) / (c[3] + c[4] * z1 + c[5] * z2);
    }
    return h;
}

// Band-pass low-40 Hz at 500 Hz, order 4 (4 sections), from our own design.
static std::vector<double> bandpass(std::size_t* ns, double low = 0.5) {
    const double band[2] = {low, 40.0};
    *ns = sig::butter_sections(4, sig::BandType::bandpass);
    std::vector<double> sos(6 * *ns);
    sig::butter_sos(4, band, sig::BandType::bandpass, 500.0, sos.data());
    return sos;
}

static void test_impulse_response_of_one_pole() {
    const double sos[6] = {1.0, 0.0, 0.0, 1.0, -0.5, 0.0};  // y[n] = x[n] + 0.5 y[n-1]
    std::vector<double> x(8, 0.0), y(8);
    x[0] = 1.0;
    sig::sosfilt(sos, 1, {x.data(), 1, 8, 0, 1}, y.data(), nullptr);
    for (int i = 0; i < 8; ++i) CHECK_NEAR(y[static_cast<std::size_t>(i)], std::pow(0.5, i), 1e-15);
}

// Every lane width (1, 4, 8, 12 and dead lanes) against the DF1 reference, per channel. A 5 Hz
// low edge keeps the poles away from z = 1: near it the two realisations round differently by
// ~1e-10, which says nothing about the kernel.
static void test_sosfilt_matches_df1_for_all_channel_counts() {
    std::size_t ns = 0;
    const std::vector<double> sos = bandpass(&ns, 5.0);
    std::mt19937 rng(7);
    std::normal_distribution<double> dist;
    for (std::size_t channels : {1u, 2u, 3u, 5u, 12u, 13u}) {
        const std::size_t n = 700;  // not a multiple of the tile
        std::vector<double> x(channels * n), y(channels * n);
        for (double& v : x) v = dist(rng);
        sig::sosfilt(sos.data(), ns, {x.data(), channels, n, static_cast<std::ptrdiff_t>(n), 1},
                     y.data(), nullptr);
        for (std::size_t c = 0; c < channels; ++c) {
            const std::vector<double> ref = df1(sos.data(), ns, {x.begin() + c * n, x.begin() + (c + 1) * n});
            for (std::size_t i = 0; i < n; ++i) CHECK_NEAR(y[c * n + i], ref[i], 1e-11);
        }
    }
}

static void test_zi_is_the_step_steady_state() {
    const double cut = 10.0;
    std::vector<double> sos(6 * sig::butter_sections(4, sig::BandType::lowpass));
    sig::butter_sos(4, &cut, sig::BandType::lowpass, 250.0, sos.data());
    const std::size_t ns = sos.size() / 6;
    std::vector<double> zi(2 * ns), x(300, 3.0), y(300);
    CHECK(sig::sosfilt_zi(sos.data(), ns, zi.data()));
    std::vector<double> state = zi;
    for (double& v : state) v *= 3.0;
    sig::sosfilt(sos.data(), ns, {x.data(), 1, 300, 0, 1}, y.data(), state.data());
    for (double v : y) CHECK_NEAR(v, 3.0, 1e-12);  // unit DC gain, no transient
    for (std::size_t i = 0; i < zi.size(); ++i) CHECK_NEAR(state[i], 3.0 * zi[i], 1e-12);
    const double integrator[6] = {1.0, 0.0, 0.0, 1.0, -1.0, 0.0};  // pole at z = 1
    CHECK(!sig::sosfilt_zi(integrator, 1, zi.data()));
}

// filtfilt == forward sosfilt (zi * first), reverse, sosfilt (zi * last), reverse (padtype none).
// The paths differ in lane width, so with FMA contraction (aarch64) they round differently.
static void test_filtfilt_composes_from_sosfilt() {
    std::size_t ns = 0;
    const std::vector<double> sos = bandpass(&ns, 5.0);
    std::vector<double> zi(2 * ns);
    sig::sosfilt_zi(sos.data(), ns, zi.data());
    std::mt19937 rng(3);
    std::normal_distribution<double> dist;
    const std::size_t channels = 9, n = 1000;
    std::vector<double> x(channels * n), y(channels * n), fwd(n), back(n);
    for (double& v : x) v = dist(rng);
    sig::sosfiltfilt(sos.data(), ns, {x.data(), channels, n, static_cast<std::ptrdiff_t>(n), 1},
                     sig::PadType::none, 0, y.data());
    for (std::size_t c = 0; c < channels; ++c) {
        std::vector<double> st = zi;
        for (double& v : st) v *= x[c * n];
        sig::sosfilt(sos.data(), ns, {x.data() + c * n, 1, n, 0, 1}, fwd.data(), st.data());
        st = zi;
        for (double& v : st) v *= fwd[n - 1];
        sig::sosfilt(sos.data(), ns, {fwd.data() + n - 1, 1, n, 0, -1}, back.data(), st.data());
        for (std::size_t i = 0; i < n; ++i) CHECK_NEAR(y[c * n + i], back[n - 1 - i], 1e-11);
    }
}

// Every extension of a constant is the same constant and zi makes the start transient-free, so a
// unit-DC-gain filter returns a constant unchanged through the padded path; layouts agree.
static void test_filtfilt_padded_constant_and_strides() {
    const double cut = 20.0;
    std::vector<double> sos(6 * 2);
    sig::butter_sos(4, &cut, sig::BandType::lowpass, 500.0, sos.data());
    const std::size_t n = 100, padlen = sig::default_padlen(sos.data(), 2);
    CHECK(padlen == 15);
    std::vector<double> x(2 * n, -2.5), y(2 * n), y2(2 * n);
    for (sig::PadType pad : {sig::PadType::odd, sig::PadType::even, sig::PadType::constant}) {
        sig::sosfiltfilt(sos.data(), 2, {x.data(), 2, n, static_cast<std::ptrdiff_t>(n), 1}, pad,
                         padlen, y.data());
        for (double v : y) CHECK_NEAR(v, -2.5, 1e-12);
    }
    std::mt19937 rng(5);
    std::normal_distribution<double> dist;
    for (double& v : x) v = dist(rng);
    // Channel-interleaved (Fortran order) and reversed views read the same samples in place.
    std::vector<double> xf(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        xf[2 * i] = x[i];
        xf[2 * i + 1] = x[n + i];
    }
    sig::sosfiltfilt(sos.data(), 2, {x.data(), 2, n, static_cast<std::ptrdiff_t>(n), 1},
                     sig::PadType::odd, padlen, y.data());
    sig::sosfiltfilt(sos.data(), 2, {xf.data(), 2, n, 1, 2}, sig::PadType::odd, padlen, y2.data());
    for (std::size_t i = 0; i < 2 * n; ++i) CHECK(y[i] == y2[i]);
}

static void test_design_frequency_responses() {
    double notch[6];
    sig::notch_sos(50.0, 30.0, 500.0, notch);
    CHECK(std::abs(response(notch, 1, 2 * M_PI * 50.0 / 500.0)) < 1e-12);
    CHECK_NEAR(std::abs(response(notch, 1, 0.0)), 1.0, 1e-12);
    // Butterworth with a prewarped bilinear transform: |H| = 1/sqrt(2) exactly at each cutoff.
    const double fs = 360.0, lo = 5.0, hi = 30.0, band[2] = {lo, hi};
    std::vector<double> bp(6 * 2), lp(6 * 3), hp(6 * 3);
    sig::butter_sos(2, band, sig::BandType::bandpass, fs, bp.data());
    sig::butter_sos(5, &hi, sig::BandType::lowpass, fs, lp.data());
    sig::butter_sos(5, &lo, sig::BandType::highpass, fs, hp.data());
    const double r2 = std::sqrt(0.5);
    CHECK_NEAR(std::abs(response(bp.data(), 2, 2 * M_PI * lo / fs)), r2, 1e-12);
    CHECK_NEAR(std::abs(response(bp.data(), 2, 2 * M_PI * hi / fs)), r2, 1e-12);
    const double mid = std::abs(response(bp.data(), 2, 2 * M_PI * std::sqrt(lo * hi) / fs));
    CHECK(mid > 0.99 && mid <= 1.0 + 1e-12);
    CHECK_NEAR(std::abs(response(lp.data(), 3, 0.0)), 1.0, 1e-12);
    CHECK_NEAR(std::abs(response(lp.data(), 3, 2 * M_PI * hi / fs)), r2, 1e-12);
    CHECK(std::abs(response(lp.data(), 3, M_PI)) < 1e-12);
    CHECK_NEAR(std::abs(response(hp.data(), 3, M_PI)), 1.0, 1e-12);
    CHECK_NEAR(std::abs(response(hp.data(), 3, 2 * M_PI * lo / fs)), r2, 1e-12);
    CHECK(hp[5] == 0.0 && lp[5] == 0.0);  // odd order: one first-order section
}

static void test_bessel_and_firwin() {
    CHECK(sig::bessel_i0(0.0) == 1.0);
    CHECK_NEAR(sig::bessel_i0(1.0), 1.2660658777520082, 1e-15);  // Abramowitz & Stegun 9.8
    CHECK_NEAR(sig::bessel_i0(5.0) / 27.239871823604442, 1.0, 1e-15);
    std::vector<double> h(41);
    sig::firwin_kaiser(41, 0.25, 5.0, h.data());
    double sum = 0.0;
    for (std::size_t i = 0; i < 41; ++i) {
        sum += h[i];
        CHECK_NEAR(h[i], h[40 - i], 1e-17);  // linear phase
    }
    CHECK_NEAR(sum, 1.0, 1e-14);
}

static void test_resample_constant_and_lengths() {
    CHECK(sig::resample_length(500, 360, 500) == 360);
    CHECK(sig::resample_length(360, 500, 360) == 500);
    CHECK(sig::resample_length(7, 2, 4) == 4);
    CHECK(sig::resample_length(0, 3, 2) == 0);
    const std::size_t n = 1000;
    std::vector<double> x(n, 2.0), y(sig::resample_length(n, 500, 360));
    sig::resample_poly({x.data(), 1, n, 0, 1}, 500, 360, y.data());
    // Away from the zero-padded edges a constant stays constant up to the Kaiser FIR's per-phase
    // DC ripple (< 1e-3 for beta 5).
    for (std::size_t k = 100; k + 100 < y.size(); ++k) CHECK_NEAR(y[k], 2.0, 2e-3);
    std::vector<double> same(n);
    sig::resample_poly({x.data(), 1, n, 0, 1}, 7, 7, same.data());
    for (double v : same) CHECK(v == 2.0);
}

static void test_zscore_windows() {
    const double x[2][6] = {{1, 2, 3, 4, 5, 6}, {7, 7, 7, 7, 7, 7}};
    float out[2 * 2 * 4];  // windows at 0 and 2, 2 channels, 4 samples
    sig::zscore_windows({&x[0][0], 2, 6, 6, 1}, 4, 2, 1e-8, out);
    const double sd = std::sqrt(1.25);
    for (int w = 0; w < 2; ++w) {
        for (int i = 0; i < 4; ++i) {
            CHECK_NEAR(out[(w * 2 + 0) * 4 + i], (i - 1.5) / sd, 1e-6);
            CHECK(out[(w * 2 + 1) * 4 + i] == 0.0f);  // flat lead -> zeros
        }
    }
}

int main() {
    test_impulse_response_of_one_pole();
    test_sosfilt_matches_df1_for_all_channel_counts();
    test_zi_is_the_step_steady_state();
    test_filtfilt_composes_from_sosfilt();
    test_filtfilt_padded_constant_and_strides();
    test_design_frequency_responses();
    test_bessel_and_firwin();
    test_resample_constant_and_lengths();
    test_zscore_windows();
    return check_report("test_signal");
}
