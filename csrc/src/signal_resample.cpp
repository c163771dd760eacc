// Polyphase resampling (firwin + Kaiser window) and windowed z-scores for edgemed::signal.
#include <algorithm>
#include <cmath>
#include <vector>

#include "edgemed/signal.hpp"

namespace edgemed::signal {

double bessel_i0(double x) noexcept {
    // Power series sum((x/2)^2k / (k!)^2): all terms positive, so it is accurate to a few ulp.
    const double q = 0.25 * x * x;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 1000 && term > sum * 1e-17; ++k) {
        term *= q / (static_cast<double>(k) * k);
        sum += term;
    }
    return sum;
}

void firwin_kaiser(std::size_t numtaps, double cutoff, double beta, double* h) noexcept {
    // scipy.signal.firwin: cutoff * sinc(cutoff * m) windowed (scipy.signal.windows.kaiser, sym),
    // then scaled so the taps sum to 1 (unit gain at DC).
    const double alpha = 0.5 * static_cast<double>(numtaps - 1);
    const double i0_beta = bessel_i0(beta);
    double sum = 0.0;
    for (std::size_t i = 0; i < numtaps; ++i) {
        const double m = static_cast<double>(i) - alpha;
        const double arg = M_PI * (cutoff * m == 0.0 ? 1e-20 : cutoff * m);  // as np.sinc
        const double r = alpha > 0.0 ? m / alpha : 0.0;
        const double win = bessel_i0(beta * std::sqrt(1.0 - r * r)) / i0_beta;
        h[i] = cutoff * (std::sin(arg) / arg) * win;
        sum += h[i];
    }
    for (std::size_t i = 0; i < numtaps; ++i) h[i] /= sum;
}

namespace {

std::size_t gcd(std::size_t a, std::size_t b) noexcept {
    while (b != 0) {
        const std::size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

// Polyphase bank of the upsampled FIR: phase ph holds h[ph + j * up] stored in reverse, so that
// output k is a forward dot product with x[i_lo .. i_max].
struct Polyphase {
    std::size_t up, down, half_len, taps;  // taps per phase (the longest)
    std::vector<double> bank;              // up x taps, zero-padded at the front

    Polyphase(std::size_t up_, std::size_t down_) : up(up_), down(down_) {
        const std::size_t max_rate = std::max(up, down);
        half_len = 10 * max_rate;
        const std::size_t len = 2 * half_len + 1;
        std::vector<double> h(len);
        firwin_kaiser(len, 1.0 / static_cast<double>(max_rate), 5.0, h.data());
        taps = (len + up - 1) / up;
        bank.assign(up * taps, 0.0);
        for (std::size_t i = 0; i < len; ++i) {
            const std::size_t ph = i % up, j = i / up;
            bank[ph * taps + taps - 1 - j] = h[i] * static_cast<double>(up);
        }
    }

    // Output k = sum_i h[half_len + k * down - i * up] x[i]: SciPy's upfirdn output after the
    // pre-pad and pre-remove that center the filter, with zeros outside x (padtype 'constant').
    double output(const double* x, std::size_t n, std::size_t k) const noexcept {
        const std::size_t r = half_len + k * down;
        const std::size_t i_max = r / up;
        const double* f = bank.data() + (r % up) * taps;  // f[t] pairs with x[i_max - taps+1 + t]
        const std::ptrdiff_t i_lo = static_cast<std::ptrdiff_t>(i_max) -
                                    static_cast<std::ptrdiff_t>(taps) + 1;
        const std::size_t begin = i_lo < 0 ? 0 : static_cast<std::size_t>(i_lo);
        const std::size_t end = std::min(i_max + 1, n);
        double acc[4] = {0.0, 0.0, 0.0, 0.0};  // 4 partial sums break the add latency chain
        std::size_t i = begin;
        for (; i + 4 <= end; i += 4) {
            for (std::size_t u = 0; u < 4; ++u) acc[u] += x[i + u] * f[i + u - i_lo];
        }
        for (; i < end; ++i) acc[0] += x[i] * f[i - i_lo];
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
};

}  // namespace

std::size_t resample_length(std::size_t n, std::size_t up, std::size_t down) noexcept {
    const std::size_t g = gcd(up, down);
    up /= g;
    down /= g;
    return (n * up + down - 1) / down;
}

void resample_poly(const Block& x, std::size_t up, std::size_t down, double* y) {
    const std::size_t g = gcd(up, down), n_out = resample_length(x.n, up, down);
    const Polyphase bank(up / g, down / g);
    const bool identity = up == down;
    std::vector<double> row(x.n);  // one contiguous copy per channel: the dot products need it
    for (std::size_t c = 0; c < x.channels; ++c) {
        const double* src = x.data + static_cast<std::ptrdiff_t>(c) * x.ch_stride;
        for (std::size_t i = 0; i < x.n; ++i, src += x.stride) row[i] = *src;
        double* dst = y + c * n_out;
        for (std::size_t k = 0; k < n_out; ++k)
            dst[k] = identity ? row[k] : bank.output(row.data(), x.n, k);
    }
}

// ---- windows -------------------------------------------------------------------------------

void zscore_windows(const Block& x, std::size_t window, std::size_t step, double eps,
                    float* out) noexcept {
    if (x.n < window || window == 0 || step == 0) return;
    const std::size_t n_windows = (x.n - window) / step + 1;
    for (std::size_t w = 0; w < n_windows; ++w) {
        for (std::size_t c = 0; c < x.channels; ++c) {
            const double* src = x.data + static_cast<std::ptrdiff_t>(c) * x.ch_stride +
                                static_cast<std::ptrdiff_t>(w * step) * x.stride;
            float* dst = out + (w * x.channels + c) * window;
            double sum = 0.0;  // two passes in double: exact enough for 1e-7 float32 output
            for (std::size_t i = 0; i < window; ++i) sum += src[static_cast<std::ptrdiff_t>(i) * x.stride];
            const double mean = sum / static_cast<double>(window);
            double ss = 0.0;
            for (std::size_t i = 0; i < window; ++i) {
                const double d = src[static_cast<std::ptrdiff_t>(i) * x.stride] - mean;
                ss += d * d;
            }
            const double sd = std::sqrt(ss / static_cast<double>(window));
            const double inv = sd < eps ? 0.0 : 1.0 / sd;
            for (std::size_t i = 0; i < window; ++i)
                dst[i] = static_cast<float>((src[static_cast<std::ptrdiff_t>(i) * x.stride] - mean) * inv);
        }
    }
}

}  // namespace edgemed::signal
