#include "edgemed/vitals.hpp"

#include <cmath>

namespace edgemed::vitals {
namespace {

// Round to the chart's resolution (1 unit, or 0.1 C as tenths), halves up. The small epsilon
// keeps decimal inputs such as 36.05 on the side a person reading the chart would choose.
long chart_units(double value, double per_unit) {
    return static_cast<long>(std::floor(value * per_unit + 0.5 + 1e-9));
}

int respiration(long rr) {
    if (rr <= 8) return 3;
    if (rr <= 11) return 1;
    if (rr <= 20) return 0;
    if (rr <= 24) return 2;
    return 3;
}

int spo2_scale1(long s) {
    if (s <= 91) return 3;
    if (s <= 93) return 2;
    if (s <= 95) return 1;
    return 0;
}

// Scale 2: 88-92 % scores 0, and so does >= 93 % on room air; above 92 % on oxygen scores up.
int spo2_scale2(long s, bool on_oxygen) {
    if (s <= 83) return 3;
    if (s <= 85) return 2;
    if (s <= 87) return 1;
    if (s <= 92 || !on_oxygen) return 0;
    if (s <= 94) return 1;
    if (s <= 96) return 2;
    return 3;
}

int systolic(long sbp) {
    if (sbp <= 90) return 3;
    if (sbp <= 100) return 2;
    if (sbp <= 110) return 1;
    if (sbp <= 219) return 0;
    return 3;
}

int pulse_score(long hr) {
    if (hr <= 40) return 3;
    if (hr <= 50) return 1;
    if (hr <= 90) return 0;
    if (hr <= 110) return 1;
    if (hr <= 130) return 2;
    return 3;
}

int temperature_score(long tenths) {
    if (tenths <= 350) return 3;
    if (tenths <= 360) return 1;
    if (tenths <= 380) return 0;
    if (tenths <= 390) return 1;
    return 2;
}

bool within(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

}  // namespace

int invalid_field(const Observation& o) noexcept {
    if (!within(o.respiration_rate, 0, 100)) return 0;
    if (!within(o.spo2, 0, 100)) return 1;
    if (o.spo2_scale != 1 && o.spo2_scale != 2) return 3;
    if (!within(o.systolic_bp, 0, 350)) return 4;
    if (!within(o.pulse, 0, 350)) return 5;
    const int c = static_cast<int>(o.consciousness);
    if (c < 0 || c > 4) return 6;
    if (!within(o.temperature, 20, 46)) return 7;
    return -1;
}

Score news2(const Observation& o) noexcept {
    const long spo2 = chart_units(o.spo2, 1);
    const int s[kParameters] = {
        respiration(chart_units(o.respiration_rate, 1)),
        o.spo2_scale == 2 ? spo2_scale2(spo2, o.on_oxygen) : spo2_scale1(spo2),
        o.on_oxygen ? 2 : 0,
        systolic(chart_units(o.systolic_bp, 1)),
        pulse_score(chart_units(o.pulse, 1)),
        o.consciousness == Consciousness::alert ? 0 : 3,
        temperature_score(chart_units(o.temperature, 10)),
    };
    Score out{};
    bool red = false;
    for (int i = 0; i < kParameters; ++i) {
        out.scores[i] = static_cast<std::int8_t>(s[i]);
        out.total += s[i];
        red = red || s[i] == 3;
    }
    if (out.total >= 7) {
        out.band = Band::high;
    } else if (out.total >= 5) {
        out.band = Band::medium;
    } else {
        out.band = red ? Band::low_medium : Band::low;
    }
    return out;
}

}  // namespace edgemed::vitals
