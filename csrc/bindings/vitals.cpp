// Thin pybind11 layer over edgemed::vitals: a table of observations in, scores out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "edgemed/vitals.hpp"

namespace py = pybind11;

namespace edgemed::bindings {
namespace {

// Column names and the plausible range each must fall in (for the error message).
constexpr const char* kField[8] = {"respiration_rate (0-100 /min)", "spo2 (0-100 %)", "on_oxygen (0 or 1)",
                                   "spo2_scale (1 or 2)", "systolic_bp (0-350 mmHg)", "pulse (0-350 /min)",
                                   "consciousness (0-4: A, C, V, P, U)", "temperature (20-46 C)"};
constexpr const char* kColumns =
    "respiration_rate, spo2, on_oxygen, spo2_scale, systolic_bp, pulse, consciousness, temperature";

// A whole number in [lo, hi] (checked before any cast: casting NaN or 1e300 to int is UB).
bool whole_in(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi && v == std::floor(v); }

// One table row -> observation; returns the first bad column or -1.
int parse_row(const double* r, vitals::Observation& o) {
    if (!(r[2] == 0.0 || r[2] == 1.0)) return 2;
    if (!whole_in(r[3], 1, 2)) return 3;
    if (!whole_in(r[6], 0, 4)) return 6;
    o = {r[0], r[1], r[2] == 1.0, static_cast<int>(r[3]), r[4], r[5],
         static_cast<vitals::Consciousness>(static_cast<int>(r[6])), r[7]};
    return vitals::invalid_field(o);
}

// obs: float64 (n, 8) in kColumns order -> (scores int8 (n, 7), total int32 (n,), band int8 (n,)).
py::tuple news2(const py::array_t<double, py::array::c_style>& obs) {
    if (obs.ndim() != 2 || obs.shape(1) != 8) {
        throw py::value_error(std::string("observations: expected float64 (n, 8) with columns ") + kColumns);
    }
    const py::ssize_t n = obs.shape(0);
    py::array_t<std::int8_t> scores({n, static_cast<py::ssize_t>(vitals::kParameters)});
    py::array_t<std::int32_t> total(n);
    py::array_t<std::int8_t> band(n);
    const double* in = obs.data();
    std::int8_t* s = scores.mutable_data();
    std::int32_t* t = total.mutable_data();
    std::int8_t* b = band.mutable_data();
    py::ssize_t bad_row = -1;
    int bad_field = -1;
    {
        py::gil_scoped_release release;
        for (py::ssize_t i = 0; i < n && bad_row < 0; ++i) {
            vitals::Observation o{};
            bad_field = parse_row(in + i * 8, o);
            if (bad_field >= 0) {
                bad_row = i;
                break;
            }
            const vitals::Score sc = vitals::news2(o);
            for (int p = 0; p < vitals::kParameters; ++p) s[i * vitals::kParameters + p] = sc.scores[p];
            t[i] = sc.total;
            b[i] = static_cast<std::int8_t>(sc.band);
        }
    }
    if (bad_row >= 0) {
        throw py::value_error("observations row " + std::to_string(bad_row) + ": " + kField[bad_field] +
                              " is missing, non-finite or outside its plausible range");
    }
    return py::make_tuple(scores, total, band);
}

}  // namespace

void bind_vitals(py::module_& m) {
    m.def("news2", &news2, py::arg("observations"),
          "NEWS2 (RCP 2017) for each row of a float64 (n, 8) observation table -> (scores, total, band).");
}

}  // namespace edgemed::bindings
