// IIR filter design for edgemed::signal: iirnotch and Butterworth (zpk -> SOS), following
// scipy.signal's formulas so that the transfer functions match SciPy's.
#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "edgemed/signal.hpp"

namespace edgemed::signal {

void notch_sos(double f0, double q, double fs, double* sos) noexcept {
    // scipy.signal.iirnotch (Orfanidis, Introduction to Signal Processing, eqs. 11.3.4-11.3.7).
    const double w0 = 2.0 * f0 / fs;
    const double bw = w0 / q * M_PI;
    const double gain = 1.0 / (1.0 + std::tan(bw / 2.0));
    const double cosw = std::cos(w0 * M_PI);
    sos[0] = gain;
    sos[1] = gain * (-2.0 * cosw);
    sos[2] = gain;
    sos[3] = 1.0;
    sos[4] = -2.0 * gain * cosw;
    sos[5] = 2.0 * gain - 1.0;
}

std::size_t butter_sections(int order, BandType type) noexcept {
    const bool band = type == BandType::bandpass || type == BandType::bandstop;
    return band ? static_cast<std::size_t>(order) : static_cast<std::size_t>(order + 1) / 2;
}

namespace {

using cplx = std::complex<double>;

// Zeros, poles and gain, transformed like scipy.signal's lp2*_zpk and bilinear_zpk.
struct Zpk {
    std::vector<cplx> z, p;
    double k = 1.0;
};

cplx prod_minus(const std::vector<cplx>& v, cplx at) {  // prod(at - v)
    cplx r = 1.0;
    for (const cplx& e : v) r *= at - e;
    return r;
}

// scipy.signal.iirfilter for the Butterworth prototype: normalise to Nyquist, prewarp for a
// bilinear transform at fs = 2, frequency-transform the analog prototype, then map to z.
Zpk butter_zpk(int order, const double* cutoff, BandType type, double fs) {
    Zpk f;
    for (int m = -order + 1; m < order; m += 2) {  // buttap; m = 0 gives an exactly real pole
        f.p.push_back(m == 0 ? cplx(-1.0, 0.0) : -std::exp(cplx(0.0, M_PI * m / (2.0 * order))));
    }
    const std::size_t degree = f.p.size();
    const double w1 = 4.0 * std::tan(M_PI * (2.0 * cutoff[0] / fs) / 2.0);
    const bool band = type == BandType::bandpass || type == BandType::bandstop;
    const double w2 = band ? 4.0 * std::tan(M_PI * (2.0 * cutoff[1] / fs) / 2.0) : w1;
    if (type == BandType::lowpass) {
        for (cplx& p : f.p) p *= w1;
        f.k = std::pow(w1, static_cast<double>(degree));
    } else if (type == BandType::highpass) {
        f.k = std::real(1.0 / prod_minus(f.p, 0.0));
        for (cplx& p : f.p) p = w1 / p;
        f.z.assign(degree, 0.0);
    } else {
        const double bw = w2 - w1, wo = std::sqrt(w1 * w2);
        const bool pass = type == BandType::bandpass;
        if (!pass) f.k = std::real(1.0 / prod_minus(f.p, 0.0));
        std::vector<cplx> p2;
        for (const cplx& p : f.p) {
            const cplx lp = pass ? p * (bw / 2.0) : (bw / 2.0) / p;
            const cplx root = std::sqrt(lp * lp - wo * wo);
            p2.push_back(lp + root);
            p2.push_back(lp - root);
        }
        f.p = p2;
        for (std::size_t i = 0; i < degree; ++i) {
            if (pass) {
                f.z.push_back(0.0);
            } else {
                f.z.push_back(cplx(0.0, wo));
                f.z.push_back(cplx(0.0, -wo));
            }
        }
        if (pass) f.k = std::pow(bw, static_cast<double>(degree));
    }
    // Bilinear transform at fs = 2 (scipy.signal.bilinear_zpk); missing zeros go to z = -1.
    const double fs2 = 4.0;
    f.k *= std::real(prod_minus(f.z, fs2) / prod_minus(f.p, fs2));
    for (cplx& z : f.z) z = (fs2 + z) / (fs2 - z);
    for (cplx& p : f.p) p = (fs2 + p) / (fs2 - p);
    f.z.resize(f.p.size(), cplx(-1.0, 0.0));
    return f;
}

// Groups roots into conjugate pairs, real pairs and at most one single real root. Real roots are
// paired smallest with largest, so a band-pass section gets one zero at -1 and one at +1.
std::vector<std::vector<cplx>> root_units(const std::vector<cplx>& roots) {
    std::vector<std::vector<cplx>> units;
    std::vector<double> reals;
    for (const cplx& r : roots) {
        const double tol = 1e-13 * std::max(1.0, std::abs(r));
        if (std::fabs(r.imag()) <= tol) {
            reals.push_back(r.real());
        } else if (r.imag() > 0) {
            units.push_back({r, std::conj(r)});
        }
    }
    std::sort(reals.begin(), reals.end());
    std::size_t lo = 0, hi = reals.size();
    for (; hi - lo >= 2; ++lo, --hi) units.push_back({reals[lo], reals[hi - 1]});
    if (hi - lo == 1) units.push_back({reals[lo]});
    return units;
}

void unit_poly(const std::vector<cplx>& u, double* c) {  // monic polynomial with roots u
    c[0] = 1.0;
    c[1] = u.size() == 2 ? -std::real(u[0] + u[1]) : -u[0].real();
    c[2] = u.size() == 2 ? std::real(u[0] * u[1]) : 0.0;
}

}  // namespace

void butter_sos(int order, const double* cutoff, BandType type, double fs, double* sos) {
    const Zpk f = butter_zpk(order, cutoff, type, fs);
    std::vector<std::vector<cplx>> poles = root_units(f.p), zeros = root_units(f.z);
    // Poles closest to the unit circle last (as scipy's zpk2sos orders them): less overflow risk.
    std::stable_sort(poles.begin(), poles.end(), [](const auto& a, const auto& b) {
        return std::abs(a[0]) < std::abs(b[0]);
    });
    // Units have matching sizes (the filter has as many zeros as poles, and an odd count means
    // exactly one single real root on each side): pairs go with pairs, the single with the single.
    std::stable_partition(zeros.begin(), zeros.end(), [](const auto& u) { return u.size() == 2; });
    std::size_t next_pair = 0;
    for (std::size_t s = 0; s < poles.size(); ++s) {
        const std::vector<cplx>& zu = poles[s].size() == 1 ? zeros.back() : zeros[next_pair++];
        unit_poly(zu, sos + 6 * s);
        unit_poly(poles[s], sos + 6 * s + 3);
    }
    for (int i = 0; i < 3; ++i) sos[i] *= f.k;
}

}  // namespace edgemed::signal
