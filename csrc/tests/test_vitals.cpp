// NEWS2 known answers from the RCP 2017 chart: every band edge of every parameter.
#include <cmath>

#include "check.hpp"
#include "edgemed/vitals.hpp"

using edgemed::vitals::Band;
using edgemed::vitals::Consciousness;
using edgemed::vitals::Observation;

namespace {

// A patient scoring 0 on everything; tests change one field at a time.
Observation normal() { return {16, 98, false, 1, 120, 70, Consciousness::alert, 37.0}; }

int score_of(Observation o, int parameter) { return edgemed::vitals::news2(o).scores[parameter]; }

void test_edges() {
    const struct { double value; int score; } rr[] = {{8, 3}, {9, 1}, {11, 1}, {12, 0}, {20, 0}, {21, 2}, {24, 2}, {25, 3}};
    for (auto c : rr) { auto o = normal(); o.respiration_rate = c.value; CHECK(score_of(o, 0) == c.score); }
    const struct { double value; int score; } s1[] = {{91, 3}, {92, 2}, {93, 2}, {94, 1}, {95, 1}, {96, 0}};
    for (auto c : s1) { auto o = normal(); o.spo2 = c.value; CHECK(score_of(o, 1) == c.score); }
    const struct { double value; bool o2; int score; } s2[] = {{83, false, 3}, {84, false, 2}, {85, false, 2},
        {86, false, 1}, {87, false, 1}, {88, false, 0}, {92, true, 0}, {93, false, 0}, {100, false, 0},
        {93, true, 1}, {94, true, 1}, {95, true, 2}, {96, true, 2}, {97, true, 3}};
    for (auto c : s2) {
        auto o = normal(); o.spo2_scale = 2; o.spo2 = c.value; o.on_oxygen = c.o2;
        CHECK(score_of(o, 1) == c.score);
    }
    auto oxygen = normal(); oxygen.on_oxygen = true;
    CHECK(score_of(oxygen, 2) == 2 && score_of(normal(), 2) == 0);
    const struct { double value; int score; } bp[] = {{90, 3}, {91, 2}, {100, 2}, {101, 1}, {110, 1}, {111, 0}, {219, 0}, {220, 3}};
    for (auto c : bp) { auto o = normal(); o.systolic_bp = c.value; CHECK(score_of(o, 3) == c.score); }
    const struct { double value; int score; } hr[] = {{40, 3}, {41, 1}, {50, 1}, {51, 0}, {90, 0}, {91, 1}, {110, 1}, {111, 2}, {130, 2}, {131, 3}};
    for (auto c : hr) { auto o = normal(); o.pulse = c.value; CHECK(score_of(o, 4) == c.score); }
    for (int level = 1; level <= 4; ++level) {
        auto o = normal(); o.consciousness = static_cast<Consciousness>(level);
        CHECK(score_of(o, 5) == 3);
    }
    const struct { double value; int score; } t[] = {{35.0, 3}, {35.1, 1}, {36.0, 1}, {36.1, 0}, {38.0, 0}, {38.1, 1}, {39.0, 1}, {39.1, 2}, {36.05, 0}, {35.04, 3}};
    for (auto c : t) { auto o = normal(); o.temperature = c.value; CHECK(score_of(o, 6) == c.score); }
}

void test_bands() {
    CHECK(edgemed::vitals::news2(normal()).band == Band::low);
    auto red = normal(); red.consciousness = Consciousness::voice;  // single 3, total 3
    CHECK(edgemed::vitals::news2(red).band == Band::low_medium && edgemed::vitals::news2(red).total == 3);
    auto five = normal(); five.respiration_rate = 22; five.pulse = 115; five.temperature = 38.5;  // 2+2+1
    CHECK(edgemed::vitals::news2(five).total == 5 && edgemed::vitals::news2(five).band == Band::medium);
    auto seven = five; seven.on_oxygen = true;  // +2 (scale 1 SpO2 98 stays 0)
    CHECK(edgemed::vitals::news2(seven).total == 7 && edgemed::vitals::news2(seven).band == Band::high);
}

void test_validation() {
    CHECK(edgemed::vitals::invalid_field(normal()) == -1);
    auto o = normal(); o.spo2 = 101; CHECK(edgemed::vitals::invalid_field(o) == 1);
    o = normal(); o.temperature = std::nan(""); CHECK(edgemed::vitals::invalid_field(o) == 7);
    o = normal(); o.spo2_scale = 3; CHECK(edgemed::vitals::invalid_field(o) == 3);
}

}  // namespace

int main() {
    test_edges();
    test_bands();
    test_validation();
    return check_report("test_vitals");
}
