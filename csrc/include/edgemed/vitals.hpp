// NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017), from one set
// of vital signs. Pure C++17; no Python. Decision support only: the chart, not a diagnosis.
#pragma once

#include <cstdint>

namespace edgemed::vitals {

// ACVPU: alert, new confusion, voice, pain, unresponsive.
enum class Consciousness : int { alert = 0, confusion = 1, voice = 2, pain = 3, unresponsive = 4 };

struct Observation {
    double respiration_rate;  // breaths/min
    double spo2;              // %
    bool on_oxygen;           // supplemental oxygen (any device) rather than room air
    int spo2_scale;           // 1, or 2 for patients with hypercapnic respiratory failure
                              // (target SpO2 88-92 % prescribed by a clinician)
    double systolic_bp;       // mmHg
    double pulse;             // beats/min
    Consciousness consciousness;
    double temperature;       // degrees Celsius
};

// Clinical risk bands of the chart; low_medium = a single parameter scoring 3.
enum class Band : int { low = 0, low_medium = 1, medium = 2, high = 3 };

// Parameter order of `scores`, also the wire payload's: respiration rate, SpO2, air or oxygen,
// systolic BP, pulse, consciousness, temperature.
constexpr int kParameters = 7;

struct Score {
    std::int8_t scores[kParameters];
    int total;
    Band band;
};

// Index (0..7, in Observation field order) of the first implausible or non-finite field, or
// -1 when all are usable. Plausible: RR 0-100, SpO2 0-100, SBP 0-350, pulse 0-350,
// temperature 20-46 C, scale 1 or 2, consciousness 0-4.
int invalid_field(const Observation& obs) noexcept;

// Chart values are whole numbers (temperature to 0.1 C): measurements are rounded to the
// chart's resolution, halves up, before scoring. Requires invalid_field(obs) == -1.
Score news2(const Observation& obs) noexcept;

}  // namespace edgemed::vitals
