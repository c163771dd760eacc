// Thin pybind11 layer over edgemed::signal and edgemed::ecg: validate layout, release the GIL,
// call the core. Signals are read in place through their strides (views, negative strides and
// Fortran order included): no copies of the input.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "edgemed/ecg.hpp"
#include "edgemed/signal.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

using Sos = py::array_t<double, py::array::c_style | py::array::forcecast>;
constexpr auto kItem = static_cast<py::ssize_t>(sizeof(double));

std::string shape_of(const py::array& arr) {
    std::string s = "(";
    for (py::ssize_t d = 0; d < arr.ndim(); ++d) s += (d ? ", " : "") + std::to_string(arr.shape(d));
    return s + (arr.ndim() == 1 ? ",)" : ")");
}

// A float64 (channels, samples) array, or (samples,) when `allow_1d`, with element strides.
signal::Block check_signal(const py::array& arr, const char* name, bool allow_1d) {
    const std::string layout = allow_1d ? "(samples,)" : "(channels, samples)";
    if (!py::isinstance<py::array_t<double>>(arr)) {
        throw py::type_error(std::string(name) + ": expected float64 array " + layout +
                             ", got dtype " + std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != (allow_1d ? 1 : 2)) {
        throw py::value_error(std::string(name) + ": expected float64 array " + layout +
                              ", got shape " + shape_of(arr));
    }
    if (reinterpret_cast<std::uintptr_t>(arr.data()) % alignof(double) != 0) {
        throw py::value_error(std::string(name) + ": data must be 8-byte aligned");
    }
    for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
        if (arr.strides(d) % kItem != 0) {
            throw py::value_error(std::string(name) + ": strides must be multiples of 8 bytes");
        }
    }
    const auto* data = static_cast<const double*>(arr.data());
    if (allow_1d) return {data, 1, static_cast<std::size_t>(arr.shape(0)), 0, arr.strides(0) / kItem};
    return {data, static_cast<std::size_t>(arr.shape(0)), static_cast<std::size_t>(arr.shape(1)),
            arr.strides(0) / kItem, arr.strides(1) / kItem};
}

std::size_t check_sos(const Sos& sos) {
    if (sos.ndim() != 2 || sos.shape(1) != 6 || sos.shape(0) < 1) {
        throw py::value_error("sos: expected float64 array (n_sections, 6) with n_sections >= 1, "
                              "got shape " + shape_of(sos));
    }
    for (py::ssize_t s = 0; s < sos.shape(0); ++s) {
        if (sos.at(s, 3) != 1.0) throw py::value_error("sos: sos[:, 3] must be all ones");
    }
    return static_cast<std::size_t>(sos.shape(0));
}

py::array_t<double> new_array(std::size_t rows, std::size_t cols) {
    return py::array_t<double>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
}

// y for a (channels, n) x; with zi (n_sections, channels, 2) also the final delays zf.
py::tuple sosfilt(const Sos& sos, const py::array& x, const py::object& zi) {
    const std::size_t ns = check_sos(sos);
    const signal::Block b = check_signal(x, "x", false);
    py::array_t<double> y = new_array(b.channels, b.n);
    py::object zf = py::none();
    double* state = nullptr;
    if (!zi.is_none()) {
        Sos z = zi.cast<Sos>();
        if (z.ndim() != 3 || z.shape(0) != static_cast<py::ssize_t>(ns) ||
            z.shape(1) != static_cast<py::ssize_t>(b.channels) || z.shape(2) != 2) {
            throw py::value_error("zi: expected shape (n_sections, channels, 2) = (" +
                                  std::to_string(ns) + ", " + std::to_string(b.channels) +
                                  ", 2), got " + shape_of(z));
        }
        py::array_t<double> out({z.shape(0), z.shape(1), z.shape(2)});
        std::copy(z.data(), z.data() + z.size(), out.mutable_data());
        state = out.mutable_data();
        zf = out;
    }
    double* out = y.mutable_data();
    {
        py::gil_scoped_release release;
        signal::sosfilt(sos.data(), ns, b, out, state);
    }
    return py::make_tuple(y, zf);
}

py::array_t<double> sosfilt_zi(const Sos& sos) {
    const std::size_t ns = check_sos(sos);
    py::array_t<double> zi = new_array(ns, 2);
    if (!signal::sosfilt_zi(sos.data(), ns, zi.mutable_data())) {
        throw py::value_error("sos: a section has a pole at z = 1 (no steady state)");
    }
    return zi;
}

signal::PadType parse_pad(const std::string& padtype) {
    if (padtype == "odd") return signal::PadType::odd;
    if (padtype == "even") return signal::PadType::even;
    if (padtype == "constant") return signal::PadType::constant;
    if (padtype == "none") return signal::PadType::none;
    throw py::value_error("padtype: expected 'odd', 'even', 'constant' or None, got '" + padtype +
                          "'");
}

// padlen < 0 selects SciPy's default. Like SciPy, x must be longer than the padding.
py::array_t<double> sosfiltfilt(const Sos& sos, const py::array& x, const std::string& padtype,
                                long padlen) {
    const std::size_t ns = check_sos(sos);
    const signal::Block b = check_signal(x, "x", false);
    const signal::PadType pad = parse_pad(padtype);
    std::size_t edge = padlen < 0 ? signal::default_padlen(sos.data(), ns)
                                  : static_cast<std::size_t>(padlen);
    if (pad == signal::PadType::none) edge = 0;
    if (b.n <= edge) {
        throw py::value_error("x: the number of samples (" + std::to_string(b.n) +
                              ") must be greater than padlen, which is " + std::to_string(edge));
    }
    py::array_t<double> y = new_array(b.channels, b.n);
    double* out = y.mutable_data();
    bool ok = false, finite = true, overflowed = false;
    {
        py::gil_scoped_release release;
        ok = signal::sosfiltfilt(sos.data(), ns, b, pad, edge, out);
        // NaN or infinity anywhere in a channel of x makes that channel's y[0] non-finite (see
        // all_finite); a finite x can overflow too (e.g. the odd padding's 2 x[0] - x[k]), so
        // only then is x itself scanned, to say which.
        for (std::size_t c = 0; ok && finite && !overflowed && c < b.channels; ++c) {
            if (!std::isfinite(out[c * b.n])) {
                finite = signal::all_finite(b);
                overflowed = finite;
            }
        }
    }
    if (!ok) throw py::value_error("sos: a section has a pole at z = 1 (no steady state)");
    if (!finite) throw py::value_error("x: contains NaN or infinity");
    if (overflowed) {
        throw py::value_error("x: values too large: filtering them overflowed (a non-finite output)");
    }
    return y;
}

py::array_t<double> notch_sos(double f0, double q, double fs) {
    if (!(fs > 0.0) || !(f0 > 0.0 && f0 < fs / 2.0) || !(q > 0.0)) {
        throw py::value_error("notch: expected fs > 0, 0 < f0 < fs / 2 and q > 0");
    }
    py::array_t<double> sos = new_array(1, 6);
    signal::notch_sos(f0, q, fs, sos.mutable_data());
    return sos;
}

py::array_t<double> butter_sos(int order, const std::vector<double>& cutoff,
                               const std::string& btype, double fs) {
    const signal::BandType type = btype == "lowpass"    ? signal::BandType::lowpass
                                  : btype == "highpass" ? signal::BandType::highpass
                                  : btype == "bandpass" ? signal::BandType::bandpass
                                  : btype == "bandstop" ? signal::BandType::bandstop
                                      : throw py::value_error("btype: expected 'lowpass', "
                                                              "'highpass', 'bandpass' or "
                                                              "'bandstop', got '" + btype + "'");
    const bool band = type == signal::BandType::bandpass || type == signal::BandType::bandstop;
    if (order < 1 || order > 64) throw py::value_error("order: expected 1..64");
    if (cutoff.size() != (band ? 2u : 1u)) {
        throw py::value_error(std::string("cutoff: expected ") + (band ? "2 frequencies" : "1 frequency"));
    }
    for (double c : cutoff) {
        if (!(fs > 0.0) || !(c > 0.0 && c < fs / 2.0)) {
            throw py::value_error("cutoff: each frequency must be in (0, fs / 2)");
        }
    }
    if (band && !(cutoff[0] < cutoff[1])) throw py::value_error("cutoff: expected low < high");
    py::array_t<double> sos = new_array(signal::butter_sections(order, type), 6);
    signal::butter_sos(order, cutoff.data(), type, fs, sos.mutable_data());
    return sos;
}

py::array_t<double> resample_poly(const py::array& x, std::size_t up, std::size_t down) {
    const signal::Block b = check_signal(x, "x", false);
    if (up < 1 || down < 1 || up > 100000 || down > 100000) {
        throw py::value_error("up and down: expected integers in [1, 100000]");
    }
    py::array_t<double> y = new_array(b.channels, signal::resample_length(b.n, up, down));
    double* out = y.mutable_data();
    py::gil_scoped_release release;
    signal::resample_poly(b, up, down, out);
    return y;
}

py::array_t<float> zscore_windows(const py::array& x, std::size_t window, std::size_t step,
                                  double eps) {
    const signal::Block b = check_signal(x, "x", false);
    if (window < 1 || step < 1) throw py::value_error("window and step: expected >= 1");
    const std::size_t n_windows = b.n >= window ? (b.n - window) / step + 1 : 0;
    py::array_t<float> out({static_cast<py::ssize_t>(n_windows),
                            static_cast<py::ssize_t>(b.channels), static_cast<py::ssize_t>(window)});
    float* dst = out.mutable_data();
    py::gil_scoped_release release;
    signal::zscore_windows(b, window, step, eps, dst);
    return out;
}

py::array_t<std::int64_t> detect_r_peaks(const py::array& ecg, double fs) {
    const signal::Block b = check_signal(ecg, "ecg", true);
    std::vector<std::int64_t> beats;
    {
        py::gil_scoped_release release;
        beats = ecg::detect_r_peaks(b.data, b.n, b.stride, fs);  // std::invalid_argument -> ValueError
    }
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(beats.size()));
    std::copy(beats.begin(), beats.end(), out.mutable_data());
    return out;
}

using Vec = py::array_t<double, py::array::c_style | py::array::forcecast>;

py::array_t<double> hrv_time_domain(const Vec& rri, const Vec& rri_times, const Vec& window_times,
                                    double lookback, double lookforward) {
    if (rri.ndim() != 1 || rri_times.ndim() != 1 || window_times.ndim() != 1 ||
        rri.shape(0) != rri_times.shape(0)) {
        throw py::value_error("rri, rri_times: expected 1-D arrays of equal length (intervals,); "
                              "window_times: expected a 1-D array (windows,)");
    }
    const auto n_windows = static_cast<std::size_t>(window_times.shape(0));
    py::array_t<double> out = new_array(n_windows, ecg::kHrvFeatures);
    double* dst = out.mutable_data();
    py::gil_scoped_release release;
    ecg::hrv_time_domain(rri.data(), rri_times.data(), static_cast<std::size_t>(rri.shape(0)),
                         window_times.data(), n_windows, lookback, lookforward, dst);
    return out;
}

}  // namespace

void bind_signal(py::module_& m) {
    m.def("sosfilt", &sosfilt, py::arg("sos"), py::arg("x"), py::arg("zi") = py::none(),
          "Causal SOS filter of a (channels, samples) float64 array -> (y, zf or None).");
    m.def("sosfilt_zi", &sosfilt_zi, py::arg("sos"), "Steady-state step delays, (n_sections, 2).");
    m.def("sosfiltfilt", &sosfiltfilt, py::arg("sos"), py::arg("x"), py::arg("padtype"),
          py::arg("padlen"), "Zero-phase SOS filter along the last axis; padlen < 0: default.");
    m.def("notch_sos", &notch_sos, py::arg("f0"), py::arg("q"), py::arg("fs"),
          "iirnotch as one SOS row, (1, 6).");
    m.def("butter_sos", &butter_sos, py::arg("order"), py::arg("cutoff"), py::arg("btype"),
          py::arg("fs"), "Digital Butterworth filter as SOS rows.");
    m.def("resample_poly", &resample_poly, py::arg("x"), py::arg("up"), py::arg("down"),
          "Polyphase resampling of a (channels, samples) float64 array along the last axis.");
    m.def("zscore_windows", &zscore_windows, py::arg("x"), py::arg("window"), py::arg("step"),
          py::arg("eps"), "Per-window per-channel z-scores -> float32 (windows, channels, window).");
    m.def("detect_r_peaks", &detect_r_peaks, py::arg("ecg"), py::arg("fs"),
          "R-peak sample indices of a single-lead float64 ECG (port of sleepecg).");
    m.def("hrv_time_domain", &hrv_time_domain, py::arg("rri"), py::arg("rri_times"),
          py::arg("window_times"), py::arg("lookback"), py::arg("lookforward"),
          "26 time-domain HRV features per window (sleepecg's) -> (windows, 26).");
}

}  // namespace edgemed::bindings
