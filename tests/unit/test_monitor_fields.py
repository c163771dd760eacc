"""Monitor reader, the structure half (pure Python, no model): alarm limits are never values,
"no value" markers and units, labels read in one box, the confidence gate, NEWS2 that says when
missing fields could escalate."""

from __future__ import annotations

import numpy as np
import pytest

from edgemed.results import MONITOR_FIELDS, WITHHELD_REASONS, News2Partial, OcrText
from edgemed.tasks.monitor_reader.field_confidence import FEATURES, FieldConfidence
from edgemed.tasks.monitor_reader.postprocess import read_fields
from edgemed.tasks.monitor_reader.vitals_text import Box, Candidate, pair_fields

GREEN = np.array([0.0, 1.0, 0.0])
CYAN = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
ALWAYS = FieldConfidence(tuple(0.0 for _ in FEATURES), 10.0, 0.5)  # confidence ~1


def box(i: int, text: str, x: float, y: float, h: float = 20, colour: np.ndarray = GREEN) -> Box:
    w = 0.6 * h * len(text)
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    return Box(i, text, corners, colour, 0.99, 0.98)


def read(boxes: list[Box], confidence: FieldConfidence = ALWAYS) -> tuple[dict, dict]:
    texts = [
        OcrText(
            text=b.text,
            confidence=b.confidence,
            box=tuple(map(tuple, b.corners.astype(int))),
            box_score=0.9,
        )
        for b in boxes
    ]
    fields, withheld = read_fields(pair_fields(boxes), texts, confidence)
    return {k: (v.value if v else None) for k, v in fields.items()}, withheld


def by_name(boxes: list[Box]) -> dict[str, Candidate]:
    return {c.name: c for c in pair_fields(boxes)}


def test_value_with_alarm_limits_beside_it_reads_the_value_and_returns_the_limits() -> None:
    # HR 134 drawn large, limits 120 over 50 small to its right (the case read as 50 in 1.0.0)
    boxes = [
        box(0, "HR", 0, 0),
        box(1, "134", 10, 30, 70),
        box(2, "120", 130, 32),
        box(3, "50", 130, 58),
    ]
    got, withheld = read(boxes)
    assert got["hr"] == 134 and "hr" not in withheld
    c = by_name(boxes)["hr"]
    assert c.alarm_limits == (50.0, 120.0)


def test_limits_left_of_the_value_and_side_by_side() -> None:
    boxes = [
        box(0, "SpO2", 0, 0),
        box(1, "100", 5, 30),
        box(2, "90", 5, 55),
        box(3, "97", 70, 28, 70),
    ]
    got, _ = read(boxes)
    assert got["spo2"] == 97
    assert by_name(boxes)["spo2"].alarm_limits == (90.0, 100.0)


@pytest.mark.parametrize("limits", [("120", "50"), ("38.0", "35.5")])
def test_only_limits_legible_gives_none_never_a_limit(limits: tuple[str, str]) -> None:
    label = "HR" if limits[0] == "120" else "Temp"
    name = "hr" if label == "HR" else "temperature"
    boxes = [box(0, label, 0, 0), box(1, limits[0], 130, 32), box(2, limits[1], 130, 58)]
    got, withheld = read(boxes)
    assert got[name] is None
    assert withheld[name].reason == "only-small-numbers"
    assert withheld[name].alarm_limits == tuple(sorted(float(x) for x in limits))


def test_label_glued_to_its_low_limit_is_not_read_as_the_value() -> None:
    # The detector merged "HR" and the low limit "45" into one box; the value stands beside.
    boxes = [box(0, "130", 20, 0, 18), box(1, "HR45", 0, 22, 22), box(2, "129", 200, 0, 90)]
    got, withheld = read(boxes)
    assert got["hr"] is None or got["hr"] == 129
    assert got["hr"] != 45
    assert "hr" in withheld and withheld["hr"].reason in (
        "ambiguous-pairing",
        "conflicting-readings",
    )


@pytest.mark.parametrize(
    "marker", ["--", "---", "-?-", "?", "***", "OFF", "STBY", "STBY 25", "OFF 8", "--- 120"]
)
def test_no_value_markers_give_none_with_a_reason(marker: str) -> None:
    boxes = [
        box(0, "Temp", 0, 0),
        box(1, marker, 10, 30, 60),
        box(2, "39.0", 150, 32),
        box(3, "35.0", 150, 58),
    ]
    got, withheld = read(boxes)
    assert got["temperature"] is None
    assert withheld["temperature"].reason in ("no-value", "only-small-numbers")


def test_a_label_with_a_marker_glued_to_it_still_claims_the_number_beside_it() -> None:
    """Seed 1800584's screen: "SpO2 %" read "Sp02*" (a no-value marker glued to the label) and
    the HR's "--" not detected; released by the SpO2 label, its 78 went to the HR label above."""
    boxes = [
        box(0, "HR", 0, 0),
        box(1, "Sp02*", 0, 90),
        box(2, "78", 120, 125, 48),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "no-value"
    assert got["spo2"] is None and withheld["spo2"].reason == "ambiguous-pairing"
    got, withheld = read(boxes[:2])  # nothing beside it: the marker's "no value"
    assert withheld["spo2"].reason == "no-value"


def test_a_label_whose_own_box_holds_unread_digits_takes_no_neighbour_s_value() -> None:
    """Seed 2200887's central station: "HR 144 4(" (label, value and limits as one box) and the
    SpO2's 97 beside it, its label unread. A mean pressure beside the NIBP label is no value."""
    boxes = [box(0, "HR 144 4(", 0, 0, 30), box(1, "97", 200, 0, 30)]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "ambiguous-pairing"
    assert "digits read as no value" in withheld["hr"].detail
    got, _ = read([box(0, "NIBP (65)", 0, 0), box(1, "114/40", 20, 30, 50)])
    assert (got["nibp_systolic"], got["nibp_diastolic"]) == (114, 40)


def test_a_value_on_another_label_s_rows_is_not_given_to_the_label_above() -> None:
    """Seed 1900787's vertical list: large values drawn higher than their labels. The HR's
    "***" stands above the HR label (claimed by none) and the SpO2's 90, its centre above the
    SpO2 label's top, was given to the HR label; the SpO2 label lies on the 90's rows."""
    boxes = [
        box(0, "HR bpm", 0, 60),
        box(1, "***", 380, 25, 38),
        box(2, "SpO2", 0, 140, 16),
        box(3, "90", 480, 85, 88),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "ambiguous-pairing"
    assert "rows of 'SpO2'" in withheld["hr"].detail
    assert got["spo2"] is None


@pytest.mark.parametrize(("top", "kept"), [(20 + 20 + 4.0 * 20, True), (20 + 20 + 6.5 * 20, False)])
def test_a_value_far_below_its_label_is_withheld(top: float, kept: bool) -> None:
    """Seed 2101484's widescreen: the RR's "-?-" was not detected and the SpO2's 80, in the tile
    below with its small label unread, stood 6.8 RR-label heights below the RR label. Up to
    4.5 label heights is what correct pairs showed on development screens; past 6 the
    value is withheld (box_geometry.MAX_GAP_BELOW_LABEL), still claimed by the label."""
    boxes = [box(0, "RR", 0, 20), box(1, "80", 10, top, 100)]
    got, withheld = read(boxes)
    if kept:
        assert got["rr"] == 80
    else:
        assert got["rr"] is None and withheld["rr"].reason == "ambiguous-pairing"
        assert "6.5 label heights below 'RR'" in withheld["rr"].detail


def test_labels_and_values_in_one_row_keep_their_own_values() -> None:
    """A bar "HR 72  SpO2 98": the SpO2 label is on the 72's rows, but on its other side."""
    boxes = [
        box(0, "HR", 0, 100),
        box(1, "72", 60, 90, 40),
        box(2, "SpO2", 160, 100),
        box(3, "98", 260, 90, 40),
    ]
    got, _ = read(boxes)
    assert got["hr"] == 72 and got["spo2"] == 98


def test_blank_tile_with_label_only() -> None:
    got, withheld = read([box(0, "RR", 0, 0)])
    assert got["rr"] is None and withheld["rr"].reason == "no-value"
    assert withheld["hr"].reason == "not-shown"
    assert set(withheld) | {k for k, v in got.items() if v is not None} == set(MONITOR_FIELDS)
    assert all(w.reason in WITHHELD_REASONS for w in withheld.values())


def test_fahrenheit_is_converted_and_unit_disagreements_refused() -> None:
    got, _ = read([box(0, "Temp °F", 0, 0), box(1, "98.6", 10, 30, 60)])
    assert got["temperature"] == 37.0
    c = by_name([box(0, "Temp °F", 0, 0), box(1, "98.6", 10, 30, 60)])["temperature"]
    assert c.unit_shown == "°F"
    got, withheld = read([box(0, "Temp", 0, 0), box(1, "98.6", 10, 30, 60)])
    assert got["temperature"] is None and withheld["temperature"].reason == "unit-unknown"
    got, withheld = read([box(0, "Temp °C", 0, 0), box(1, "98.6", 10, 30, 60)])
    assert withheld["temperature"].reason == "unit-mismatch"
    got, withheld = read([box(0, "Temp °F", 0, 0), box(1, "37.2", 10, 30, 60)])
    assert withheld["temperature"].reason == "unit-mismatch"
    got, _ = read([box(0, "Temp", 0, 0), box(1, "98.6°F", 10, 30, 60)])
    assert got["temperature"] == 37.0


def test_kpa_blood_pressure_is_converted_to_mmhg() -> None:
    got, _ = read([box(0, "NIBP", 0, 0), box(1, "kPa", 0, 22), box(2, "16.0/10.7", 60, 30, 60)])
    assert (got["nibp_systolic"], got["nibp_diastolic"]) == (120, 80)
    got, withheld = read([box(0, "NIBP kPa", 0, 0), box(1, "120/80", 10, 30, 60)])
    assert got["nibp_systolic"] is None and withheld["nibp_systolic"].reason == "unit-mismatch"


@pytest.mark.parametrize("drawn", ["19/6.1", "11.9/61", "120/8.0", "NIBP 19/6.1"])
def test_a_pressure_drawn_in_two_formats_is_withheld(drawn: str) -> None:
    """A monitor draws both numbers of a pressure alike; seed 5000272's "11.9/6.1" kPa read
    "19/6.1" (a digit and the point lost) would have given 143/46 mmHg for 89/46."""
    got, withheld = read([box(0, "BP", 0, 0), box(1, "kPa", 0, 22), box(2, drawn, 60, 30, 60)])
    assert got["nibp_systolic"] is None and withheld["nibp_systolic"].reason == "implausible"
    got, _ = read([box(0, "BP", 0, 0), box(1, "kPa", 0, 22), box(2, "11.9/6.1", 60, 30, 60)])
    assert (got["nibp_systolic"], got["nibp_diastolic"]) == (89, 46)


def test_two_labels_read_as_one_box_keep_their_own_values() -> None:
    # "HR bpm SpO2" read as one box: each label keeps its part of the box, so the SpO2 value
    # beside "SpO2" is not given to HR.
    boxes = [
        box(0, "HR bpm SpO2", 0, 0, 30),
        box(1, "139", 10, 40, 60),
        box(2, "85", 150, 40, 90, GREEN),
    ]
    got, _ = read(boxes)
    assert got["hr"] in (139, None) and got["spo2"] in (85, None)
    assert got["hr"] != 85


def test_a_parameter_read_twice_differently_is_withheld() -> None:
    boxes = [
        box(0, "HR", 0, 0),
        box(1, "72", 10, 30, 60),
        box(2, "HR", 0, 300),
        box(3, "75", 10, 330, 60),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "conflicting-readings"


def test_values_of_unreported_parameters_are_never_taken() -> None:
    boxes = [
        box(0, "PR", 0, 0),
        box(1, "88", 10, 30, 60),
        box(2, "HR", 300, 0),
        box(3, "--", 310, 30, 60),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "no-value"


def test_colour_mismatch_and_implausible_values_are_refused() -> None:
    got, _ = read([box(0, "RR", 0, 0), box(1, "97", 10, 30, 60, CYAN)])
    assert got["rr"] is None
    got, withheld = read([box(0, "SpO2", 0, 0), box(1, "140", 10, 30, 60)])
    assert got["spo2"] is None and withheld["spo2"].reason == "implausible"
    got, withheld = read([box(0, "HR", 0, 0), box(1, "72.5", 10, 30, 60)])
    assert got["hr"] is None


def test_below_the_operating_threshold_a_field_is_withheld_with_its_score() -> None:
    strict = FieldConfidence(tuple(0.0 for _ in FEATURES), 0.0, 0.6)  # confidence 0.5 < 0.6
    got, withheld = read([box(0, "HR", 0, 0), box(1, "72", 10, 30, 60)], strict)
    assert got["hr"] is None
    assert withheld["hr"].reason == "low-confidence" and withheld["hr"].confidence == 0.5


def test_confidence_rises_with_recognition_and_margin() -> None:
    weights = dict.fromkeys(FEATURES, 0.0) | {"rec_min": 1.0, "margin": 1.0}
    conf = FieldConfidence(tuple(weights[f] for f in FEATURES), 0.0, 0.5)
    base = dict.fromkeys(FEATURES, 1.0) | {"rec_mean": 0.9, "rec_min": 0.9, "margin": 2.0}
    assert conf(base | {"rec_min": 0.99}) > conf(base) > conf(base | {"rec_min": 0.6})
    assert conf(base | {"margin": 5.0}) > conf(base)


def test_news2_partial_says_when_missing_fields_could_escalate() -> None:
    calm = News2Partial(
        parameter_scores={"respiration_rate": 0, "spo2": 0, "systolic_bp": 0, "consciousness": 0},
        missing=("pulse", "temperature", "air_or_oxygen"),
        assumed=(),
    )
    assert calm.score == 0 and calm.max_possible_score == 8 and calm.escalation_possible
    body = calm.body()
    assert body["max_possible_score"] == 8 and body["escalation_possible"] is True
    only_o2 = News2Partial(
        parameter_scores={
            k: 0
            for k in (
                "respiration_rate",
                "spo2",
                "systolic_bp",
                "pulse",
                "consciousness",
                "temperature",
            )
        },
        missing=("air_or_oxygen",),
        assumed=(),
    )
    assert only_o2.max_possible_score == 2 and not only_o2.escalation_possible


def test_label_glued_to_a_limit_with_the_value_beside_is_withheld() -> None:
    # "HR 40" (label + low limit in one box) with the value 61 and the high limit near it
    boxes = [box(0, "HR 40", 0, 10, 36), box(1, "120", 40, 0, 27), box(2, "61", 90, 10, 42)]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "ambiguous-pairing"


def test_label_glued_to_a_limit_with_the_other_limit_above_is_withheld() -> None:
    # "SpO2 88" with "100" stacked above it and the value itself ("---") unread
    boxes = [box(0, "100", 55, 0, 25), box(1, "SpO2 88", 0, 3, 36)]
    got, withheld = read(boxes)
    assert got["spo2"] is None and withheld["spo2"].reason == "ambiguous-pairing"


def test_label_and_value_in_one_box_alone_is_read() -> None:
    got, _ = read([box(0, "HR 72", 0, 0, 40), box(1, "SpO2 97", 0, 200, 40, CYAN)])
    assert got["hr"] == 72 and got["spo2"] == 97


def test_an_unreadable_number_as_tall_as_the_value_withholds_it() -> None:
    # "2476": the value and a neighbour merged into something no parameter shows
    boxes = [box(0, "RR", 0, 0), box(1, "24", 10, 30, 60), box(2, "2476", 150, 30, 58)]
    got, withheld = read(boxes)
    assert got["rr"] is None and withheld["rr"].reason == "ambiguous-pairing"


def test_a_value_far_smaller_than_the_screens_other_values_is_withheld() -> None:
    # HR's own value unread; the "40" beside its label is limit-sized next to the other values
    boxes = [
        box(0, "HR", 0, 0, 10),
        box(1, "40", 20, 15, 26),
        box(2, "SpO2", 200, 0, 20, CYAN),
        box(3, "97", 210, 25, 60, CYAN),
        box(4, "RR", 400, 0),
        box(5, "16", 410, 25, 62),
        box(6, "Temp", 600, 0),
        box(7, "36.8", 610, 25, 58),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "only-small-numbers"
    assert (got["spo2"], got["rr"], got["temperature"]) == (97, 16, 36.8)


def test_with_two_values_on_the_screen_only_a_far_smaller_one_is_withheld() -> None:
    """Seed 2100155's top bar: the HR's value read merged with its neighbour's "--" (no
    number), its high limit "130" under the HR label given as the value; the only other value
    read was the RR's 34, four times its height. A value half the other's height (a
    temperature drawn smaller) is still read."""
    boxes = [
        box(0, "HR", 9, 10, 13),
        box(1, "130", 8, 28, 16),
        box(2, "Resp", 430, 14, 30),
        box(3, "34", 441, 95, 62),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "only-small-numbers"
    assert got["rr"] == 34
    half = [box(0, "Temp", 9, 10, 27), box(1, "40.9", 8, 40, 44), *boxes[2:]]
    half[3] = box(3, "34", 441, 95, 87)
    got, _ = read(half)
    assert (got["temperature"], got["rr"]) == (40.9, 34)


def test_a_number_between_label_and_a_far_bigger_one_withholds_both() -> None:
    # "137" beside HR and a far bigger "80" of a neighbour whose label was unread
    boxes = [box(0, "HR", 0, 0, 27), box(1, "137", 30, 0, 45), box(2, "80", 200, -10, 87)]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "ambiguous-pairing"


@pytest.mark.parametrize(("label", "value", "field"), [("SpO2", "97", "spo2"), ("RR", "18", "rr")])
def test_a_blank_tile_with_a_unit_lends_it_to_no_other_tile(
    label: str, value: str, field: str
) -> None:
    """'Temp °F --' shows no value: its °F must not become the next tile's unit (in 1.1.0 the
    next tile's value was withheld as a unit mismatch, and a temperature tile after it would
    have been converted from °F)."""
    boxes = [box(0, "Temp °F --", 0, 0), box(1, label, 300, 0), box(2, value, 310, 30, 60)]
    got, withheld = read(boxes)
    assert got[field] == float(value) and field not in withheld
    assert withheld["temperature"].reason == "no-value"
    second = [box(0, "Temp °F --", 0, 0), box(1, "Temp", 300, 0), box(2, "37.2", 310, 30, 60)]
    assert by_name(second)["temperature"].value in (None, (37.2,))  # never 37.2 °F -> 2.9 °C


def _quad(i: int, text: str, x0: float, y0: float, x1: float, y1: float) -> Box:
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    return Box(i, text, corners, GREEN, 0.99, 0.98)


def test_a_value_is_not_given_to_a_label_across_a_text_the_way_passes_through() -> None:
    """Seed 2000364's side column: the HR shows no value, the SpO2 label read "YSp02%" (a
    waveform peak glued to it: an unknown label) and its 94 below went to the HR label above.
    The misread label's centre lies off the way from "HR" to "94"; its box does not."""
    boxes = [
        _quad(0, "ECGHRbpm", 352, 10, 472, 34),
        _quad(1, "YSp02%", 327, 96, 446, 120),
        _quad(2, "94", 381, 120, 454, 171),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "ambiguous-pairing"
    assert "'YSp02%' stands between" in withheld["hr"].detail
    # The same screen with the text moved off the way: the HR label keeps its value.
    moved = [boxes[0], _quad(1, "YSp02%", 200, 96, 320, 120), boxes[2]]
    got, _ = read(moved)
    assert got["hr"] == 94


def test_a_label_glued_to_a_limit_with_the_other_limit_on_its_box_in_another_tint() -> None:
    """Seed 2500773: "HR 50" (label and low limit, the value "--" not boxed) with the high
    limit's "100" overlapping its box, drawn a lighter green than the label: no label owns it
    by colour, the overlap still says the 50 may be a limit."""
    lime = np.array([0.03, 0.82, 0.57])
    boxes = [
        _quad(0, "HR 50", 0, 155, 72, 202),
        Box(1, "100", np.array([[32, 153], [72, 153], [72, 177], [32, 177]], float), lime),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and withheld["hr"].reason == "ambiguous-pairing"
    got, _ = read(boxes[:1])
    assert got["hr"] == 50  # alone, "HR 50" in one box is read


def test_a_value_below_its_label_with_a_number_on_the_label_s_rows_is_withheld() -> None:
    """Seed 2600108's vertical list: the HR's 179 drawn higher than the HR label (claimed by
    no label), the RR's 24 below it, its own label unread: the 24 is not known to be the HR."""
    boxes = [
        _quad(0, "HR", 20, 148, 50, 162),
        _quad(1, "179", 490, 100, 640, 166),
        _quad(2, "24", 440, 192, 550, 252),
    ]
    got, withheld = read(boxes)
    assert got["hr"] is None and "stands on the rows of 'HR'" in withheld["hr"].detail
    got, _ = read([boxes[0], _quad(1, "24", 440, 192, 550, 252)])
    assert got["hr"] == 24  # with nothing on the label's rows, a value below is its own


def test_a_temperature_with_two_decimals_is_a_misread_not_a_value_to_round() -> None:
    """Seed 1900630: "36.7" boxed with the next tile's "8" read "36.78", reported as 36.8.
    Monitors show temperature (and kPa) to one decimal."""
    got, withheld = read([box(0, "Temp", 0, 0), box(1, "36.78", 10, 30, 60)])
    assert got["temperature"] is None and withheld["temperature"].reason == "implausible"
    got, _ = read([box(0, "Temp", 0, 0), box(1, "36.7", 10, 30, 60)])
    assert got["temperature"] == 36.7
