// R-peak detection: a port of sleepecg.detect_heartbeats and its C backend
// (sleepecg/heartbeats.py and sleepecg/_heartbeat_detection.c, (c) SleepECG developers, author
// Florian Hofer, BSD 3-clause licence, https://github.com/cbrnr/sleepecg). The detector is
// Pan & Tompkins (1985) with sleepecg's modifications: 5-30 Hz zero-phase Butterworth band-pass,
// centered integration window, learning phase 1 from the first 2 s, extra searchback triggers and
// up to 15 searchback passes with halved thresholds.
//
// Differences from the original, all at the edges: the band-pass comes from edgemed's own
// butter_sos + sosfiltfilt (same transfer function as scipy.signal.butter, no SciPy at run time);
// learning phase 1 is clipped to the signal when it is shorter than 2 s (sleepecg reads past the
// end there) and the 150 ms integration window to the signal (sleepecg raises there); the RR
// history is sized so it cannot overflow.
#include "edgemed/ecg.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "edgemed/signal.hpp"

namespace edgemed::ecg {

void squared_moving_integration(const double* x, std::size_t n, std::size_t width,
                                double* out) noexcept {
    // Running sum over a ring buffer, as sleepecg's C code: out[i] = sum of x^2 over the window
    // [i - (width+1)/2 + 1 - (width % 2 == 0), ...], i.e. np.convolve(x**2, ones(width), 'same').
    std::vector<double> ring(width, 0.0);
    const std::size_t half = (width + 1) / 2;
    double sum = 0.0;
    for (std::size_t i = 0; i < half; ++i) {
        ring[i % width] = x[i] * x[i];
        sum += ring[i % width];
    }
    for (std::size_t i = half; i < n; ++i) {
        out[i - half] = sum;
        sum -= ring[i % width];
        ring[i % width] = x[i] * x[i];
        sum += ring[i % width];
    }
    for (std::size_t i = n; i < n + half; ++i) {
        out[i - half] = sum;
        sum -= ring[i % width];
    }
}

namespace {

// The thresholding state machine of sleepecg's _thresholding, one member function per step of
// the original loop. Names follow Pan & Tompkins: SPK/NPK = running signal/noise peak estimates,
// F = band-passed signal, I = integrated signal.
class Thresholder {
   public:
    Thresholder(const double* f, const double* integ, std::size_t n, double fs, std::uint8_t* mask)
        : f_(f), i_(integ), n_(static_cast<long>(n)), fs_(fs), mask_(mask),
          refractory_(static_cast<long>(0.2 * fs)), t_wave_(static_cast<long>(0.36 * fs)),
          rr_(n / static_cast<std::size_t>(refractory_) + 2, 0.0) {
        learning_phase();
        peak_ = prev_peak_ = -refractory_ + 1;
        search_start_ = prev_peak_ + refractory_;
    }

    void run() {
        long index = 1;
        while (index < n_ - 1) {
            bool signal = false, noise = false;
            if (searchback_due(index)) {
                signal = searchback(index);
                if (!signal) search_start_ = index;  // next pass only inspects newer samples
            } else if (f_[index] > f_[index + 1]) {
                if (f_[index] > f_[index - 1]) {
                    peak_f_ = f_[index];
                    peak_i_ = i_[index];
                    signal = peak_f_ > thr_f_ && peak_i_ > thr_i_;
                    noise = !signal;
                    if (signal) {
                        spk_f_ = 0.125 * peak_f_ + 0.875 * spk_f_;
                        spk_i_ = 0.125 * peak_i_ + 0.875 * spk_i_;
                        peak_ = index;
                    }
                }
                ++index;  // the next sample is lower, so it cannot be a peak
            }
            if (signal && found_ > 0 && peak_ - prev_peak_ < t_wave_ && is_t_wave()) {
                signal = false;
                noise = true;
            }
            if (signal) {
                accept_peak();
                index = peak_ + refractory_;  // nothing can happen during the refractory period
            } else if (noise) {
                npk_i_ = 0.125 * peak_i_ + 0.875 * npk_i_;
                npk_f_ = 0.125 * peak_f_ + 0.875 * npk_f_;
                update_thresholds();
            }
            ++index;
        }
    }

   private:
    // Learning phase 1: signal estimates from the maxima, noise estimates from the means of the
    // first 2 s (clipped to the signal).
    void learning_phase() {
        const long len = std::min(n_, static_cast<long>(static_cast<unsigned>(2 * fs_)));
        double max_f = 0.0, sum_f = 0.0, max_i = 0.0, sum_i = 0.0;
        for (long k = 0; k < len; ++k) {
            max_f = std::max(max_f, f_[k]);
            max_i = std::max(max_i, i_[k]);
            sum_f += f_[k];
            sum_i += i_[k];
        }
        spk_f_ = max_f;
        npk_f_ = sum_f / static_cast<double>(len);
        spk_i_ = max_i;
        npk_i_ = sum_i / static_cast<double>(len);
        update_thresholds();
    }

    void update_thresholds() {
        thr_i_ = npk_i_ + 0.25 * (spk_i_ - npk_i_);
        thr_f_ = npk_f_ + 0.25 * (spk_f_ - npk_f_);
    }

    // Original criterion (no beat for 1.66 mean RR) plus sleepecg's two start-up triggers: no
    // beat in the first second, no second beat 1.5 s after the first.
    bool searchback_due(long index) const {
        return (found_ > 1 && index - prev_peak_ > rr_missed_ && do_searchback_) ||
               (found_ == 0 && index > fs_) ||
               (found_ == 1 && index - prev_peak_ > 1.5 * fs_);
    }

    // Highest local maximum since the last beat that passes thresholds divided by 2^pass (one
    // signal between the reduced and the full threshold, the other above the reduced one).
    bool searchback(long index) {
        for (int pass = 1; pass < 16; ++pass) {
            const double div = static_cast<double>(1 << pass);
            long best = search_start_;
            double best_amp = -1.0;
            bool found = false;
            for (long k = search_start_; k < index; ++k) {
                peak_f_ = f_[k];
                if (peak_f_ <= f_[k + 1]) continue;
                if (peak_f_ > f_[k - 1]) {
                    peak_i_ = i_[k];
                    const bool lo_f = thr_f_ / div < peak_f_, lo_i = thr_i_ / div < peak_i_;
                    if (((lo_f && peak_f_ < thr_f_ && lo_i) || (lo_i && peak_i_ < thr_i_ && lo_f)) &&
                        peak_f_ > best_amp) {
                        best = k;
                        best_amp = f_[k];
                        found = true;
                    }
                }
                ++k;  // the next sample is lower, so it cannot be a peak
            }
            if (found) {
                // As sleepecg: PEAKF/PEAKI hold the last inspected maximum, not necessarily best.
                spk_i_ = 0.25 * peak_i_ + 0.75 * spk_i_;
                spk_f_ = 0.25 * peak_f_ + 0.75 * spk_f_;
                peak_ = best;
                do_searchback_ = false;
                return true;
            }
        }
        return false;
    }

    // Steepest rising slope of the filtered signal leading up to peak `at`.
    double max_slope(long at) const {
        double best = -1.0;
        for (long k = at; k > 0 && f_[k - 1] <= f_[k]; --k) best = std::max(best, f_[k] - f_[k - 1]);
        return best;
    }

    // Within 360 ms of the previous beat: a T wave if its slope is under half the previous one's.
    bool is_t_wave() const { return max_slope(peak_) < max_slope(prev_peak_) / 2.0; }

    void accept_peak() {
        ++found_;
        mask_[peak_] = 1;
        update_thresholds();
        if (found_ > 1) update_rr();
        do_searchback_ = true;
        prev_peak_ = peak_;
        search_start_ = peak_ + refractory_;
    }

    // RR average 2: mean of the 8 most recent RR intervals inside [0.92, 1.16] x the previous
    // average; any interval outside marks the rhythm irregular and halves the thresholds.
    void update_rr() {
        rr_[found_] = static_cast<double>(peak_ - prev_peak_);
        if (found_ == 2) {
            rr_low_ = 0.92 * rr_[found_];
            rr_high_ = 1.16 * rr_[found_];
        }
        double sum = 0.0, count = 0.0;
        bool irregular = false;
        for (long k = found_; k > 1; --k) {
            if (rr_low_ < rr_[k] && rr_[k] < rr_high_) {
                sum += rr_[k];
                if (++count >= 8) break;
            } else {
                irregular = true;
            }
        }
        const double average = sum / count;  // NaN when none qualifies, as in sleepecg
        rr_low_ = 0.92 * average;
        rr_high_ = 1.16 * average;
        rr_missed_ = 1.66 * average;
        if (irregular) {
            thr_f_ /= 2;
            thr_i_ /= 2;
        }
    }

    const double *f_, *i_;
    long n_;
    double fs_;
    std::uint8_t* mask_;
    long refractory_, t_wave_;
    std::vector<double> rr_;
    double spk_f_ = 0, npk_f_ = 0, spk_i_ = 0, npk_i_ = 0, thr_f_ = 0, thr_i_ = 0;
    double peak_f_ = 0, peak_i_ = 0, rr_low_ = 0, rr_high_ = 0, rr_missed_ = 0;
    long found_ = 0, peak_ = 0, prev_peak_ = 0, search_start_ = 0;
    bool do_searchback_ = true;
};

}  // namespace

void threshold_beats(const double* filtered, const double* integrated, std::size_t n, double fs,
                     std::uint8_t* mask) {
    std::fill(mask, mask + n, std::uint8_t{0});
    Thresholder(filtered, integrated, n, fs, mask).run();
}

std::vector<std::int64_t> detect_r_peaks(const double* ecg, std::size_t n, std::ptrdiff_t stride,
                                         double fs) {
    if (!(fs > kMinFs)) throw std::invalid_argument("fs: must be > 60 Hz (5-30 Hz band-pass)");
    if (n < 2) throw std::invalid_argument("ecg: must have more than one sample");
    // Flat samples at the start would spoil learning phase 1: detection starts at the first
    // sample that differs from ecg[0] (only when ecg[1] == ecg[0], as in sleepecg).
    std::size_t start = 0;
    if (ecg[stride] == ecg[0]) {
        while (start < n && ecg[static_cast<std::ptrdiff_t>(start) * stride] == ecg[0]) ++start;
        if (start == n) throw std::invalid_argument("ecg: signal is flat");
    }
    double sos[12];
    const double band[2] = {5.0, 30.0};
    signal::butter_sos(2, band, signal::BandType::bandpass, fs, sos);
    const std::size_t m = n - start, padlen = signal::default_padlen(sos, 2);
    if (m <= padlen) throw std::invalid_argument("ecg: too short after leading flat samples");
    std::vector<double> filtered(m), derivative(m, 0.0), integrated(m);
    const signal::Block x{ecg + static_cast<std::ptrdiff_t>(start) * stride, 1, m, 0, stride};
    signal::sosfiltfilt(sos, 2, x, signal::PadType::odd, padlen, filtered.data());
    // Five-point derivative (np.correlate(f, [-1, -2, 0, 2, 1], 'same'), zeros outside).
    auto at = [&](std::size_t i, long d) {
        const long k = static_cast<long>(i) + d;
        return k < 0 || k >= static_cast<long>(m) ? 0.0 : filtered[static_cast<std::size_t>(k)];
    };
    for (std::size_t i = 0; i < m; ++i)
        derivative[i] = -at(i, -2) - 2.0 * at(i, -1) + 2.0 * at(i, 1) + at(i, 2);
    const std::size_t width = static_cast<std::size_t>(0.15 * fs);  // 150 ms
    squared_moving_integration(derivative.data(), m, std::min(width, m), integrated.data());
    std::vector<std::uint8_t> mask(m);
    threshold_beats(filtered.data(), integrated.data(), m, fs, mask.data());
    std::vector<std::int64_t> beats;
    for (std::size_t i = 0; i < m; ++i)
        if (mask[i]) beats.push_back(static_cast<std::int64_t>(i + start));
    return beats;
}

}  // namespace edgemed::ecg
