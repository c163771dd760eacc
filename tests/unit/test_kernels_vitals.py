"""NEWS2 against a hand-checked table built from the RCP 2017 chart: every band edge."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgemed
from edgemed.contracts import check_result_body
from edgemed.kernels import NEWS2_BANDS, VitalSigns, news2, news2_table
from edgemed.wire import NEWS2_PARAMETERS

NORMAL = {
    "respiration_rate": 16,
    "spo2": 98,
    "on_oxygen": False,
    "systolic_bp": 120,
    "pulse": 70,
    "consciousness": "A",
    "temperature": 37.0,
}

# (field changed from NORMAL, value, parameter scored, expected score): read off the chart.
EDGES = [
    *[
        ("respiration_rate", v, s)
        for v, s in [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)]
    ],
    *[("spo2", v, s) for v, s in [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]],
    *[
        ("systolic_bp", v, s)
        for v, s in [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
    ],
    *[
        ("pulse", v, s)
        for v, s in [
            (40, 3),
            (41, 1),
            (50, 1),
            (51, 0),
            (90, 0),
            (91, 1),
            (110, 1),
            (111, 2),
            (130, 2),
            (131, 3),
        ]
    ],
    *[
        ("temperature", v, s)
        for v, s in [
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
        ]
    ],
    *[("consciousness", v, s) for v, s in [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)]],
    ("on_oxygen", True, 2),
]
FIELD_TO_PARAMETER = {"on_oxygen": "air_or_oxygen", "systolic_bp": "systolic_bp"}


@pytest.mark.parametrize(("field", "value", "expected"), EDGES)
def test_every_band_edge(field: str, value: object, expected: int) -> None:
    result = news2(VitalSigns(**{**NORMAL, field: value}))  # type: ignore[arg-type]
    parameter = FIELD_TO_PARAMETER.get(field, field)
    assert result.parameter_scores[parameter] == expected
    assert result.score == expected  # every other parameter scores 0


# SpO2 scale 2 (target 88-92 %): (spo2, on_oxygen, expected).
SCALE2 = [(83, False, 3), (84, False, 2), (85, True, 2), (86, False, 1), (87, False, 1), (88, False, 0),
          (92, True, 0), (93, False, 0), (99, False, 0), (93, True, 1), (94, True, 1), (95, True, 2),
          (96, True, 2), (97, True, 3)]  # fmt: skip


@pytest.mark.parametrize(("spo2", "oxygen", "expected"), SCALE2)
def test_spo2_scale_2(spo2: int, oxygen: bool, expected: int) -> None:
    vitals = VitalSigns(**{**NORMAL, "spo2": spo2, "on_oxygen": oxygen, "spo2_scale": 2})  # type: ignore[arg-type]
    result = news2(vitals)
    assert result.parameter_scores["spo2"] == expected


def test_bands_and_responses() -> None:
    def band(**changes: object) -> tuple[int, str]:
        r = news2(VitalSigns(**{**NORMAL, **changes}))  # type: ignore[arg-type]
        return r.score, r.band

    assert band() == (0, "low")
    assert band(pulse=95, temperature=38.5) == (2, "low")
    assert band(consciousness="V") == (3, "low-medium")  # a single red score
    assert band(respiration_rate=22, pulse=115, temperature=38.5) == (5, "medium")
    assert band(respiration_rate=22, pulse=115, temperature=38.5, on_oxygen=True) == (7, "high")
    # A septic patient, hand-scored: RR 26 (3), SpO2 93 (2), O2 (2), SBP 95 (2), HR 125 (2),
    # new confusion (3), 39.4 C (2) = 16.
    r = news2(VitalSigns(respiration_rate=26, spo2=93, on_oxygen=True, systolic_bp=95, pulse=125,
                         consciousness="C", temperature=39.4))  # fmt: skip
    assert (r.score, r.band) == (16, "high")
    assert r.response == NEWS2_BANDS["high"]


def test_rounding_to_chart_resolution() -> None:
    for temp, score in [(36.05, 0), (36.04, 1), (35.049, 3), (38.049, 0), (38.05, 1)]:
        r = news2(VitalSigns(**{**NORMAL, "temperature": temp}))  # type: ignore[arg-type]
        assert r.parameter_scores["temperature"] == score, temp
    r = news2(VitalSigns(**{**NORMAL, "pulse": 90.5}))  # type: ignore[arg-type]
    assert r.parameter_scores["pulse"] == 1


def test_body_is_a_valid_wire_result() -> None:
    r = news2(VitalSigns(**{**NORMAL, "pulse": 135}))  # type: ignore[arg-type]
    body = r.body()
    assert set(body["parameter_scores"]) == set(NEWS2_PARAMETERS)  # type: ignore[arg-type]
    check_result_body("news2", body)  # the same ranges the fleet checks on ingest


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"spo2": 101}, "spo2"),
        ({"spo2": float("nan")}, "spo2"),
        ({"temperature": 98.6}, "temperature"),  # Fahrenheit by mistake
        ({"pulse": -1}, "pulse"),
        ({"respiration_rate": float("inf")}, "respiration_rate"),
        ({"consciousness": "X"}, "consciousness"),
        ({"spo2_scale": 3}, "spo2_scale"),
    ],
)
def test_implausible_inputs_raise_input_error(changes: dict[str, object], match: str) -> None:
    with pytest.raises(edgemed.InputError, match=match):
        news2(VitalSigns(**{**NORMAL, **changes}))  # type: ignore[arg-type]


def test_table_errors_name_the_row_and_column() -> None:
    table = np.array([[16, 98, 0, 1, 120, 70, 0, 37.0], [16, 98, 0.5, 1, 120, 70, 0, 37.0]])
    with pytest.raises(edgemed.InputError, match="row 1: on_oxygen"):
        news2_table(table)
    with pytest.raises(edgemed.InputError, match=r"\(n, 8\)"):
        news2_table(np.zeros((2, 7)))


@settings(max_examples=200, deadline=None)
@given(
    rr=st.integers(0, 100), spo2=st.integers(0, 100), o2=st.booleans(), scale=st.sampled_from([1, 2]),
    sbp=st.integers(0, 350), hr=st.integers(0, 350), acvpu=st.integers(0, 4),
    temp10=st.integers(200, 460),
)  # fmt: skip
def test_property_table_agrees_with_a_python_transcription_of_the_chart(
    rr: int, spo2: int, o2: bool, scale: int, sbp: int, hr: int, acvpu: int, temp10: int
) -> None:
    def band_score(v: float, edges: list[tuple[float, int]], top: int) -> int:
        return next((s for limit, s in edges if v <= limit), top)

    if scale == 1:
        s_spo2 = band_score(spo2, [(91, 3), (93, 2), (95, 1)], 0)
    elif spo2 <= 92 or not o2:
        s_spo2 = band_score(spo2, [(83, 3), (85, 2), (87, 1)], 0)
    else:
        s_spo2 = band_score(spo2, [(94, 1), (96, 2)], 3)
    expected = [
        band_score(rr, [(8, 3), (11, 1), (20, 0), (24, 2)], 3),
        s_spo2,
        2 if o2 else 0,
        band_score(sbp, [(90, 3), (100, 2), (110, 1), (219, 0)], 3),
        band_score(hr, [(40, 3), (50, 1), (90, 0), (110, 1), (130, 2)], 3),
        0 if acvpu == 0 else 3,
        band_score(temp10, [(350, 3), (360, 1), (380, 0), (390, 1)], 2),
    ]
    scores, total, band = news2_table([[rr, spo2, o2, scale, sbp, hr, acvpu, temp10 / 10]])
    assert scores[0].tolist() == expected and total[0] == sum(expected)
    names = list(NEWS2_BANDS)
    want = (
        "high"
        if sum(expected) >= 7
        else "medium"
        if sum(expected) >= 5
        else "low-medium"
        if 3 in expected
        else "low"
    )
    assert names[band[0]] == want


def test_two_threads_identical() -> None:
    rng = np.random.default_rng(0)
    table = np.column_stack([
        rng.integers(5, 40, 20000), rng.integers(80, 100, 20000), rng.integers(0, 2, 20000),
        rng.integers(1, 3, 20000), rng.integers(70, 230, 20000), rng.integers(30, 160, 20000),
        rng.integers(0, 5, 20000), rng.uniform(34, 41, 20000),
    ]).astype(np.float64)  # fmt: skip
    expected = news2_table(table)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(news2_table(table))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in got:
        assert all(np.array_equal(a, b) for a, b in zip(result, expected, strict=True))  # type: ignore[call-overload]
