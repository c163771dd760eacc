"""Alert rules on results and device states, and the wire checks on the fields they read."""

from __future__ import annotations

import json

import pytest
from payloads import monitor_partial_body, news2_body, result_payload, seizure_body

from edgemed.errors import PayloadError
from edgemed.fleet.alerts import Alert, AlertRules, EpisodeClear, news2_partial_bounds
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


def _evaluate(body: dict[str, object]) -> list[Alert | EpisodeClear]:
    raw = result_payload("bed-1", 5, body, created_at=900.0)
    return RULES.evaluate(decode_result(raw, topic_device_id="bed-1"), now=1000.0)


# Scored: everything but pulse and temperature (at most 3 each): partial 2, up to 8.
KNOWN = {"respiration_rate": 2, "spo2": 0, "air_or_oxygen": 0, "systolic_bp": 0, "consciousness": 0}


def test_a_low_partial_news2_that_could_escalate_raises_an_incomplete_notice() -> None:
    body = monitor_partial_body(
        ["pulse", "temperature"], max_possible=8, escalation_possible=True, **KNOWN
    )
    (alert,) = _evaluate(body)  # a notice, and no EpisodeClear of anything
    assert isinstance(alert, Alert)
    assert (alert.rule, alert.severity, alert.episode, alert.value) == (
        "news2-incomplete",
        "warning",  # a notice, not a clinical escalation
        "news2-incomplete",
        2.0,
    )
    assert (
        alert.detail == "NEWS2 incomplete: pulse, temperature not read; partial 2, could be up to 8"
    )


def test_no_incomplete_notice_when_the_unknown_parameters_cannot_escalate() -> None:
    # Only air/oxygen unknown (at most 2): partial 2 can reach 4, no red parameter: reassuring.
    scores = {**KNOWN, "pulse": 0, "temperature": 0}
    del scores["air_or_oxygen"]
    body = monitor_partial_body(
        ["air_or_oxygen"], max_possible=4, escalation_possible=False, **scores
    )
    assert _evaluate(body) == [
        EpisodeClear(device_id="bed-1", episode="news2-incomplete", at=900.0)
    ]


def test_a_device_understating_the_bound_cannot_silence_the_notice() -> None:
    # Pulse and temperature unread, yet the body claims nothing could escalate: the fleet's
    # own bound (up to 8, a parameter could score 3) wins.
    body = monitor_partial_body(
        ["pulse", "temperature"], max_possible=2, escalation_possible=False, **KNOWN
    )
    (alert,) = _evaluate(body)
    assert isinstance(alert, Alert) and alert.rule == "news2-incomplete"
    assert alert.detail.endswith("partial 2, could be up to 8")


@pytest.mark.parametrize(
    ("missing", "scores", "expected"),
    [
        (["consciousness"], {"respiration_rate": 2, "pulse": 2, "temperature": 1}, "urgent"),
        (["pulse"], {"spo2": 3}, "urgent"),  # a red parameter: urgent at partial 3
        (["pulse"], {"respiration_rate": 3, "spo2": 2, "air_or_oxygen": 2}, "emergency"),
    ],
)
def test_the_news2_rules_win_over_the_incomplete_notice(
    missing: list[str], scores: dict[str, int], expected: str
) -> None:
    top = sum(scores.values()) + 3 * len(missing)
    body = monitor_partial_body(missing, max_possible=top, escalation_possible=True, **scores)
    assert _alerts(body) == [f"news2-{expected}/{expected}"]


@pytest.mark.parametrize(
    ("missing", "scores", "bounds", "detail"),
    [
        # pulse unknown: it alone could score 3
        (
            ["pulse"],
            {**KNOWN, "temperature": 0},
            (5, True),
            "pulse not read; partial 2, could be up to 5",
        ),
        # air/oxygen unknown on SpO2 scale 2: SpO2 has no score either (1 + 2 + 3)
        (
            ["air_or_oxygen"],
            {
                "respiration_rate": 1,
                "systolic_bp": 0,
                "pulse": 0,
                "consciousness": 0,
                "temperature": 0,
            },
            (6, True),
            "air_or_oxygen not read; partial 1, could be up to 6",
        ),
        # air/oxygen unknown, SpO2 scored: 2 + 2 = 4 at most, no red parameter possible
        (
            ["air_or_oxygen"],
            {**KNOWN, "pulse": 0, "temperature": 0, "air_or_oxygen": 0},
            (4, False),
            None,
        ),
    ],
)
def test_older_partial_bodies_without_the_bounds_are_computed_the_same(
    missing: list[str], scores: dict[str, int], bounds: tuple[int, bool], detail: str | None
) -> None:
    scores = {k: v for k, v in scores.items() if k not in missing}
    old = monitor_partial_body(missing, **scores)
    assert "max_possible_score" not in old["news2_partial"]  # an older device's body
    assert news2_partial_bounds(old["news2_partial"]) == bounds
    out = _evaluate(old)
    if detail is None:
        assert [type(x).__name__ for x in out] == ["EpisodeClear"]
    else:
        (alert,) = out
        assert isinstance(alert, Alert) and alert.detail == f"NEWS2 incomplete: {detail}"
    # What a new device sends wins over the fallback.
    new = monitor_partial_body(missing, max_possible=9, escalation_possible=True, **scores)
    assert news2_partial_bounds(new["news2_partial"]) == (9, True)


@pytest.mark.parametrize(
    "body",
    [news2_body(pulse=1), news2_body(spo2=3), {"kind": "monitor-reading", "news2": news2_body()}],
)
def test_a_complete_news2_ends_an_incomplete_episode(body: dict[str, object]) -> None:
    ended = {x.episode for x in _evaluate(body) if isinstance(x, EpisodeClear)}
    assert "news2-incomplete" in ended


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
            incomplete = False
            if reading.news2 is not None:
                seen_full += 1
                score = reading.news2["score"]
                threes = 3 in reading.news2["parameter_scores"].values()
            else:
                assert reading.news2_partial is not None
                score = reading.news2_partial.score
                threes = 3 in reading.news2_partial.parameter_scores.values()
                partial = dict(msg.body["result"]["news2_partial"])
                incomplete = news2_partial_bounds(partial)[1]
                # The fleet's fallback for older devices agrees with what the device sent.
                sent = (
                    partial.pop("max_possible_score", None),
                    partial.pop("escalation_possible", None),
                )
                if sent != (None, None):
                    assert news2_partial_bounds(partial) == sent, png.name
            expected = (
                ["news2-emergency"]
                if score >= 7
                else ["news2-urgent"]
                if score >= 5 or threes
                else ["news2-incomplete"]
                if incomplete
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
