"""Alert episodes through the real rules and store: consecutive clinical alerts fold into one
row, notify again only on escalation, and unacknowledged urgent episodes escalate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from payloads import monitor_partial_body, news2_body, result_payload, seizure_body
from stores import test_store

from edgemed.fleet import SqlStore
from edgemed.fleet.alerts import AlertRules
from edgemed.wire import decode_result

RULES = AlertRules(episode_gap_s=60.0, ack_timeout_s=300.0)
T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from test_store(request.param, tmp_path)


class Device:
    """Sends results one per 4 s window, as a device streaming iEEG or vitals would."""

    def __init__(self, store: SqlStore, device_id: str = "icu-1") -> None:
        self.store, self.device_id, self.seq = store, device_id, 0

    def send(self, body: dict[str, Any], *, at: float | None = None, model: str = "m@1") -> int:
        """Stores one result; returns how many alerts were announced (new or escalated)."""
        self.seq += 1
        created = T0 + 4.0 * self.seq if at is None else at
        raw = result_payload(self.device_id, self.seq, body, model=model, created_at=created)
        msg = decode_result(raw, topic_device_id=self.device_id)
        done = self.store.insert_results([msg], lambda m: RULES.evaluate(m, created))
        return len(done.alerts)


def test_fifteen_seizure_windows_are_one_alert(store: SqlStore) -> None:
    device = Device(store)
    probabilities = [0.6 + 0.02 * i for i in range(15)]
    announced = [device.send(seizure_body(p, 0.5)) for p in probabilities]
    assert announced == [1] + [0] * 14  # notified once
    (alert,) = store.alerts()
    assert (alert["rule"], alert["severity"], alert["episode"]) == ("seizure", "urgent", "seizure")
    assert alert["episode_count"] == 15 and alert["peak"] == pytest.approx(max(probabilities))
    assert (alert["first_at"], alert["last_at"]) == (T0 + 4.0, T0 + 60.0)
    assert alert["seq"] == 1 and alert["last_seq"] == 15
    assert alert["closed_at"] is None  # still seizing


def test_three_seizures_of_five_windows_are_three_episodes_not_fifteen_alerts(
    store: SqlStore,
) -> None:
    device = Device(store)
    announced = 0
    for _ in range(3):
        announced += sum(device.send(seizure_body(0.9, 0.5)) for _ in range(5))
        announced += sum(device.send(seizure_body(0.1, 0.5)) for _ in range(3))  # ends it
    assert announced == 3
    alerts = store.alerts()
    assert [a["episode_count"] for a in alerts] == [5, 5, 5]
    assert all(a["closed_at"] is not None for a in alerts)
    assert len(store.alerts(open_only=True)) == 3  # ended, but nobody acknowledged them yet


def test_a_news2_episode_renotifies_only_when_it_escalates(store: SqlStore) -> None:
    device = Device(store)
    assert device.send(news2_body(spo2=3)) == 1  # urgent (a red parameter)
    assert device.send(news2_body(spo2=3, pulse=1)) == 0  # still urgent: no new notification
    (alert,) = store.alerts()
    acked = store.acknowledge_alert(alert["id"], by="nurse A", comment="O2 started")
    assert acked is not None and acked["ack_comment"] == "O2 started"
    assert device.send(news2_body(spo2=3)) == 0  # acknowledged, not worse: silent
    # Emergency: the same episode escalates, notifies and needs a new acknowledgement.
    assert device.send(news2_body(respiration_rate=3, spo2=3, pulse=2)) == 1
    (alert,) = store.alerts(open_only=True)
    assert (alert["rule"], alert["severity"], alert["episode_count"]) == (
        "news2-emergency",
        "emergency",
        4,
    )
    assert alert["peak"] == 8 and alert["acked_at"] is None
    again = store.acknowledge_alert(alert["id"], by="doctor B")
    assert again is not None
    assert [(a["acked_by"], a["comment"], a["severity"]) for a in again["acks"]] == [
        ("nurse A", "O2 started", "urgent"),
        ("doctor B", None, "emergency"),
    ]
    # A low score ends the episode; the next red score opens a new one.
    assert device.send(news2_body(pulse=1)) == 0
    assert device.send(news2_body(spo2=3)) == 1
    assert len(store.alerts()) == 2


def test_a_long_pause_starts_a_new_episode_and_a_late_clear_ends_nothing(
    store: SqlStore,
) -> None:
    device = Device(store)
    assert device.send(seizure_body(0.9), at=T0) == 1
    assert device.send(seizure_body(0.9), at=T0 + 30) == 0
    # A below-threshold window older than the episode's last alert (a replayed backlog).
    assert device.send(seizure_body(0.1), at=T0 + 10) == 0
    assert store.alerts()[0]["closed_at"] is None
    assert device.send(seizure_body(0.9), at=T0 + 30 + 61) == 1  # gap 61 s > 60 s
    first, second = sorted(store.alerts(), key=lambda a: a["id"])
    assert first["closed_at"] is not None and first["episode_count"] == 2
    assert second["closed_at"] is None and second["episode_count"] == 1


def test_episodes_are_per_device_and_per_kind(store: SqlStore) -> None:
    a, b = Device(store, "bed-a"), Device(store, "bed-b")
    assert a.send(seizure_body(0.9)) == 1
    assert b.send(seizure_body(0.9)) == 1
    assert a.send(news2_body(spo2=3)) == 1  # another kind on the same device
    assert a.send(seizure_body(0.8)) == 0
    assert sorted((x["device_id"], x["episode"], x["episode_count"]) for x in store.alerts()) == [
        ("bed-a", "news2", 1),
        ("bed-a", "seizure", 2),
        ("bed-b", "seizure", 1),
    ]


def test_unacknowledged_urgent_episodes_escalate_once_and_open_alerts_sort(
    store: SqlStore,
) -> None:
    device = Device(store, "bed-1")
    device.send(seizure_body(0.9))
    other = Device(store, "bed-2")
    other.send(news2_body(spo2=3))
    (late,) = [a for a in store.alerts() if a["device_id"] == "bed-2"]
    store.acknowledge_alert(late["id"], by="nurse")
    now = store.alerts()[0]["raised_at"]
    assert store.escalate_unacknowledged(now + 299, 300.0) == []  # not yet
    (escalated,) = store.escalate_unacknowledged(now + 301, 300.0)
    assert (escalated.device_id, escalated.severity, escalated.rule) == (
        "bed-1",
        "emergency",
        "seizure",
    )
    assert store.escalate_unacknowledged(now + 900, 300.0) == []  # once
    Device(store, "bed-3").send(news2_body(spo2=3))
    Device(store, "bed-4").send(news2_body(spo2=3, pulse=3, respiration_rate=1))
    opened = store.alerts(open_only=True)
    assert [(a["device_id"], a["severity"]) for a in opened] == [
        ("bed-1", "emergency"),  # escalated: emergency, and older than bed-4's
        ("bed-4", "emergency"),
        ("bed-3", "urgent"),
    ]
    assert "not acknowledged within 5 min" in opened[0]["detail"]
    assert opened[0]["escalated_at"] is not None


def test_a_partial_news2_below_threshold_does_not_end_an_episode(store: SqlStore) -> None:
    device = Device(store)
    assert device.send(news2_body(spo2=3)) == 1
    partial = {
        "kind": "monitor-reading",
        "news2": None,
        "news2_partial": {"complete": False, "parameter_scores": {"pulse": 0}, "partial_score": 0,
                          "missing": ["spo2"], "assumed": []},
    }  # fmt: skip
    assert device.send(partial) == 1  # a news2-incomplete notice: SpO2 could still score 3
    (news2,) = [a for a in store.alerts() if a["episode"] == "news2"]
    assert news2["closed_at"] is None  # a lower bound says nothing about the end


# A monitor reading with pulse and temperature unread: partial 2, up to 8 (escalation possible).
INCOMPLETE = monitor_partial_body(
    ["pulse", "temperature"], max_possible=8, escalation_possible=True,
    respiration_rate=2, spo2=0, air_or_oxygen=0, systolic_bp=0, consciousness=0,
)  # fmt: skip


def _incomplete(store: SqlStore) -> list[dict[str, Any]]:
    return [a for a in store.alerts() if a["episode"] == "news2-incomplete"]


def test_incomplete_news2_readings_fold_into_one_notice_until_a_complete_one(
    store: SqlStore,
) -> None:
    device = Device(store)
    assert [device.send(INCOMPLETE) for _ in range(4)] == [1, 0, 0, 0]  # notified once
    (notice,) = store.alerts()
    assert (notice["rule"], notice["severity"], notice["episode_count"], notice["peak"]) == (
        "news2-incomplete",
        "warning",
        4,
        2,
    )
    assert notice["detail"] == (
        "NEWS2 incomplete: pulse, temperature not read; partial 2, could be up to 8"
    )
    assert notice["closed_at"] is None
    # A warning, not an urgent episode: the sweeper never escalates it.
    assert store.escalate_unacknowledged(notice["raised_at"] + 3600, 300.0) == []
    complete = {"kind": "monitor-reading", "news2": news2_body(pulse=1), "news2_partial": None}
    assert device.send(complete) == 0  # low: no alert, and the notice ends
    (notice,) = store.alerts()
    assert notice["closed_at"] is not None
    assert device.send(INCOMPLETE) == 1  # the next incomplete run is a new notice
    assert len(_incomplete(store)) == 2


def test_an_incomplete_notice_ends_when_the_unknown_parameters_cannot_escalate(
    store: SqlStore,
) -> None:
    device = Device(store)
    assert device.send(INCOMPLETE) == 1
    reassuring = monitor_partial_body(
        ["air_or_oxygen"], max_possible=4, escalation_possible=False,
        respiration_rate=2, spo2=0, systolic_bp=0, pulse=0, consciousness=0, temperature=0,
    )  # fmt: skip
    assert device.send(reassuring) == 0
    (notice,) = store.alerts()
    assert notice["closed_at"] is not None


def test_an_urgent_partial_news2_is_its_own_episode_beside_the_notice(store: SqlStore) -> None:
    device = Device(store)
    assert device.send(INCOMPLETE) == 1
    red = monitor_partial_body(
        ["pulse"], max_possible=9, escalation_possible=True,
        respiration_rate=3, spo2=0, air_or_oxygen=0, systolic_bp=0, consciousness=0,
        temperature=0,
    )  # fmt: skip
    assert device.send(red) == 1  # urgent, notified as ever; no second notice
    (urgent,) = [a for a in store.alerts() if a["episode"] == "news2"]
    assert (urgent["rule"], urgent["severity"]) == ("news2-urgent", "urgent")
    (notice,) = _incomplete(store)
    assert notice["episode_count"] == 1 and notice["closed_at"] is None
    # A complete NEWS2 that is still urgent ends the notice, not the urgent episode.
    complete = {"kind": "monitor-reading", "news2": news2_body(respiration_rate=3)}
    assert device.send(complete) == 0
    (notice,) = _incomplete(store)
    (urgent,) = [a for a in store.alerts() if a["episode"] == "news2"]
    assert notice["closed_at"] is not None and urgent["closed_at"] is None
    assert urgent["episode_count"] == 2
