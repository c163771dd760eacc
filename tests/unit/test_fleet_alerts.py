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
    with pytest.raises(PayloadError, match="probability"):
        decode_result(json.dumps(data).encode(), topic_device_id="bed-1")


def test_rules_reject_nonsense_thresholds() -> None:
    with pytest.raises(ValueError):
        AlertRules(backlog_threshold=0)
