// Biosignal kernels: IIR second-order sections, filter design, polyphase resampling, windowed
// z-scores. Pure C++17: raw pointers, sizes and strides (in elements, may be negative); no Python.
//
// Layout conventions shared by every function here:
//   * `sos` is n_sections rows of 6 contiguous doubles (b0 b1 b2 a0 a1 a2) with a0 == 1,
//     exactly SciPy's `sos` array.
//   * A signal block is `channels` series of `n` samples: sample i of channel c lives at
//     x[c * ch_stride + i * stride]. Outputs are always C-contiguous (channels, n_out).
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgemed::signal {

// A read-only strided block of `channels` series of `n` samples (strides in elements).
struct Block {
    const double* data;
    std::size_t channels;
    std::size_t n;
    std::ptrdiff_t ch_stride;
    std::ptrdiff_t stride;
};

// Causal cascade filter, Direct Form II transposed (scipy.signal.sosfilt). `y` is
// channels x n contiguous. `state` is n_sections x channels x 2 contiguous (SciPy's zi layout for a
// 2-D signal): the initial delays on entry, the final delays on return; nullptr means zeros.
void sosfilt(const double* sos, std::size_t n_sections, const Block& x, double* y,
             double* state) noexcept;

// Steady-state delays of the cascade for a unit step (scipy.signal.sosfilt_zi), n_sections x 2.
// Returns false (zi untouched) when a section has a pole at z = 1 (the steady state is undefined).
bool sosfilt_zi(const double* sos, std::size_t n_sections, double* zi) noexcept;

enum class PadType { none, odd, even, constant };

// SciPy's default sosfiltfilt padlen: 3 * (2 * n_sections + 1 - trailing-zero sections).
std::size_t default_padlen(const double* sos, std::size_t n_sections) noexcept;

// Zero-phase forward-backward filter (scipy.signal.sosfiltfilt) with SciPy's edge extension and
// zi scaling. Requires x.n > padlen (pass padlen 0 for PadType::none). Returns false (y untouched)
// when sosfilt_zi fails. Allocates one work buffer per call; may use 2 threads for large
// multichannel inputs when the process may run on more than one CPU (each channel's result is
// the same as on the single-thread path).
bool sosfiltfilt(const double* sos, std::size_t n_sections, const Block& x, PadType pad,
                 std::size_t padlen, double* y);

// True when no sample of the block is NaN or infinite. sosfiltfilt's callers need it only when
// a channel's first output sample is not finite: a NaN or an infinity anywhere in the input
// makes every later forward-pass state non-finite, so the backward pass, which starts from
// the forward pass's end, is non-finite all the way to sample 0 (+, - and * of a non-finite
// value never give a finite one); a finite input that overflows looks the same, hence the check.
bool all_finite(const Block& x) noexcept;

// scipy.signal.iirnotch(f0, q, fs) as one SOS row. Requires 0 < f0 < fs / 2 and q > 0.
void notch_sos(double f0, double q, double fs, double* sos) noexcept;

enum class BandType { lowpass, highpass, bandpass, bandstop };

// Number of SOS rows butter_sos writes: ceil(order / 2) (lowpass, highpass) or order (band).
std::size_t butter_sections(int order, BandType type) noexcept;

// Digital Butterworth filter (scipy.signal.butter(order, cutoff, type, fs=fs, output='sos')):
// analog prototype, prewarped bilinear transform. The transfer function equals SciPy's; the
// pairing of poles and zeros into rows may differ. `cutoff` holds 1 frequency (low/highpass) or
// 2 (band), each strictly between 0 and fs / 2. Requires 1 <= order <= 64.
void butter_sos(int order, const double* cutoff, BandType type, double fs, double* sos);

// Output length of resample_poly: ceil(n * up / down) after reducing up/down by their gcd.
std::size_t resample_length(std::size_t n, std::size_t up, std::size_t down) noexcept;

// Polyphase rational resampling (scipy.signal.resample_poly with window=('kaiser', 5.0) and
// padtype='constant'): FIR = firwin(20 * max(up, down) + 1, 1 / max(up, down), kaiser 5.0) * up.
// `y` is channels x resample_length(n, up, down). Requires up, down >= 1.
void resample_poly(const Block& x, std::size_t up, std::size_t down, double* y);

// The lowpass FIR of scipy.signal.firwin(numtaps, cutoff, window=('kaiser', beta)), cutoff
// relative to Nyquist (0 < cutoff < 1), scaled to unit DC gain. numtaps must be odd.
void firwin_kaiser(std::size_t numtaps, double cutoff, double beta, double* h) noexcept;

// Modified Bessel function of the first kind, order 0 (power series; |x| <= 700).
double bessel_i0(double x) noexcept;

// Per-window, per-channel z-score of windows starting every `step` samples:
// out[w][c][i] = (x[c][w*step + i] - mean) / std, population std, as float32; a window whose std
// is below `eps` (flat lead, disconnected electrode) becomes all zeros rather than noise / 0.
// `out` is n_windows x channels x window with n_windows = (n - window) / step + 1 (n >= window).
void zscore_windows(const Block& x, std::size_t window, std::size_t step, double eps,
                    float* out) noexcept;

}  // namespace edgemed::signal
