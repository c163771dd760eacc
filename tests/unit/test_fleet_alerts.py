"""Alert rules on results and device states, and the wire checks on the fields they read."""

from __future__ import annotations

import json

import pytest
from payloads import news2_body, result_payload, seizure_body

from edgemed.errors import PayloadError
from edgemed.fleet.alerts import AlertRules
from edgemed.wire import decode_result

RULES = AlertRules(backlog_threshold=100, offline_after_s=60.0)


def _alerts(body: dict[str, object], *, seq: int = 5, low: int | None = None) -> list[str]:
    msg = decode_result(result_payload("bed-1", seq, body, low=low), topic_device_id="bed-1")
    return [f"{a.rule}/{a.severity}" for a in RULES.on_result(msg, now=1000.0)]


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({}, []),
        ({"respiration_rate": 2, "pulse": 2}, []),  # 4: low
        ({"respiration_rate": 2, "pulse": 2, "temperature": 1}, ["news2-urgent/urgent"]),  # 5
        ({"spo2": 3}, ["news2-urgent/urgent"]),  # a single red score: urgent at aggregate 3
        ({"consciousness": 3, "pulse": 2, "temperature": 1}, ["news2-urgent/urgent"]),  # 6
        ({"respiration_rate": 3, "spo2": 2, "air_or_oxygen": 2}, ["news2-emergency/emergency"]),
        (
            {name: 3 for name in ("respiration_rate", "spo2", "systolic_bp")},
            ["news2-emergency/emergency"],
        ),
    ],
)
def test_news2_escalation_bands(scores: dict[str, int], expected: list[str]) -> None:
    assert _alerts(news2_body(**scores)) == expected


def test_news2_detail_names_the_red_parameters_and_no_patient_data() -> None:
    msg = decode_result(
        result_payload("bed-1", 1, news2_body(spo2=3, pulse=3, temperature=1)),
        topic_device_id="bed-1",
    )
    (alert,) = RULES.on_result(msg, now=0.0)
    assert alert.detail == "NEWS2 7; scoring 3: pulse, spo2"


def test_seizure_at_or_above_the_model_threshold() -> None:
    assert _alerts(seizure_body(0.49, 0.5)) == []
    assert _alerts(seizure_body(0.5, 0.5)) == ["seizure/urgent"]
    assert _alerts(seizure_body(0.93, 0.8)) == ["seizure/urgent"]


def test_outbox_backlog_from_results_and_birth() -> None:
    assert _alerts(seizure_body(0.1), seq=150, low=52) == []  # 99 held
    assert _alerts(seizure_body(0.1), seq=150, low=51) == ["outbox-backlog/warning"]  # 100
    birth = {"state": "online", "outbox_depth": 250}
    (alert,) = RULES.on_status("bed-1", birth, now=7200.0)
    assert alert.dedupe_key == "outbox-backlog:bed-1:2"  # one per device per hour
    assert RULES.on_status("bed-1", {"state": "online", "outbox_depth": 3}, now=0.0) == []


def test_offline_alert_once_per_episode() -> None:
    a = RULES.offline("bed-1", since=100.0, now=400.0)
    assert (a.rule, a.severity, a.detail) == (
        "device-offline",
        "warning",
        "offline for 5.0 min (limit 1.0 min)",
    )
    assert a.dedupe_key == RULES.offline("bed-1", since=100.0, now=999.0).dedupe_key
    assert a.dedupe_key != RULES.offline("bed-1", since=500.0, now=999.0).dedupe_key


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(score=b["score"] + 1), "not the sum"),
        (lambda b: b["parameter_scores"].pop("pulse"), "parameter_scores"),
        (lambda b: b["parameter_scores"].update(pulse=4), "parameter_scores"),
        (lambda b: b["parameter_scores"].update(pulse=True), "parameter_scores"),
        (lambda b: b.update(score="7"), "score"),
    ],
)
def test_malformed_news2_is_a_payload_error(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    body = news2_body(pulse=2)
    mutate(body)
    with pytest.raises(PayloadError, match=message):
        decode_result(result_payload("bed-1", 1, body), topic_device_id="bed-1")


@pytest.mark.parametrize("probability", [float("nan"), float("inf"), -0.1, 1.5])
def test_seizure_probability_outside_0_1_is_a_payload_error(probability: float) -> None:
    raw = result_payload("bed-1", 1, seizure_body(0.5))
    data = json.loads(raw)
    data["result"]["probability"] = probability
    # NaN and Infinity are not JSON: refused when parsed, before any field is read
    with pytest.raises(PayloadError, match=r"probability|numbers must be finite"):
        decode_result(json.dumps(data).encode(), topic_device_id="bed-1")


def test_rules_reject_nonsense_thresholds() -> None:
    with pytest.raises(ValueError):
        AlertRules(backlog_threshold=0)


def test_monitor_readings_raise_news2_alerts_full_and_partial() -> None:
    """A real monitor-reader result: its NEWS2 (full, or partial = a lower bound) alerts."""
    from pathlib import Path

    import edgemed
    from edgemed.wire import encode_result

    screens = Path(__file__).parents[1] / "fixtures" / "monitor-screens"
    reader = edgemed.load("monitor-reader")
    rules = AlertRules()
    seen_full = 0
    for i, png in enumerate(sorted(screens.glob("screen-*.png"))[:6], start=1):
        for frame in (
            edgemed.MonitorFrame(image=png, consciousness="A", on_oxygen=False),
            edgemed.MonitorFrame(image=png),
        ):
            reading = reader(frame)
            assert isinstance(reading, edgemed.MonitorReading)
            raw = encode_result(
                reading, device_id="bed-1", seq=i, boot_id="b", lowest_unacked_seq=i,
                clock_synced=True,
            )  # fmt: skip
            msg = decode_result(raw, topic_device_id="bed-1")
            rules_fired = [a.rule for a in rules.on_result(msg, now=0.0)]
            if reading.news2 is not None:
                seen_full += 1
                score = reading.news2["score"]
                threes = 3 in reading.news2["parameter_scores"].values()
            else:
                assert reading.news2_partial is not None
                score = reading.news2_partial.score
                threes = 3 in reading.news2_partial.parameter_scores.values()
            expected = (
                ["news2-emergency"]
                if score >= 7
                else ["news2-urgent"]
                if score >= 5 or threes
                else []
            )
            assert rules_fired == expected, (png.name, score, rules_fired)
    assert seen_full >= 2  # screens with every vital read give a complete NEWS2


def test_monitor_reading_news2_fields_are_checked_on_the_wire() -> None:
    full = news2_body(spo2=3)
    bad_partial = {"complete": False, "parameter_scores": {"spo2": 3}, "partial_score": 2}
    ok = {"kind": "monitor-reading", "news2": full, "news2_partial": None}
    assert decode_result(result_payload("bed-1", 1, ok), topic_device_id="bed-1").kind
    with pytest.raises(PayloadError, match="partial_score"):
        decode_result(
            result_payload("bed-1", 1, {"kind": "monitor-reading", "news2_partial": bad_partial}),
            topic_device_id="bed-1",
        )
    tampered = {**full, "score": full["score"] + 1}  # type: ignore[operator]
    with pytest.raises(PayloadError, match="sum"):
        decode_result(
            result_payload("bed-1", 1, {"kind": "monitor-reading", "news2": tampered}),
            topic_device_id="bed-1",
        )
