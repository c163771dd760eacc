"""Alert rules: which results and device states need a clinician's or an engineer's attention.

Rules are pure functions of what arrived; the store commits the alerts they return in the same
transaction as the result that raised them, so an alert is never lost or raised twice.

Clinical rules (on result bodies, validated by ``wire.decode_result``):
- ``news2-emergency``: NEWS2 aggregate >= 7 (RCP 2017: emergency response).
- ``news2-urgent``: aggregate 5-6, or any single parameter scoring 3 (urgent review).
  Also from ``monitor-reading`` results: their full NEWS2, or their partial score (a lower
  bound of the real one, so it can only under-alert, never over-alert).
- ``news2-incomplete`` (warning: a notice, not a clinical escalation): a ``monitor-reading``
  whose partial NEWS2 raises neither rule above while its unknown parameters could still reach
  one (``escalation_possible``: at their chart maxima the aggregate could be >= 5, or one of
  them could score 3). The detail names the parameters not read and the partial and highest
  possible score, so a low partial score is never read as reassurance.
- ``seizure``: seizure probability at or above the model's own threshold.

Operational rules:
- ``outbox-backlog``: a device holds ``backlog_threshold`` or more unacknowledged results
  (seen from a result's ``seq - lowest_unacked_seq + 1`` or a birth message's outbox depth).
- ``device-offline``: a device's last status is offline for longer than ``offline_after_s``.
- ``seq-conflict`` (raised by the store): a seq reused with a different payload.

Clinical alerts belong to an *episode* (``Alert.episode``: ``news2``, ``news2-incomplete``,
``seizure``): the store folds consecutive alerts of one kind on one device into one row (count,
first/last time, peak value) and notifies again only when the episode escalates
(``fleet/episodes.py``). A result of that kind that raises nothing (NEWS2 below 5 with no red
parameter, a seizure probability below threshold) ends the episode (``EpisodeClear``); so does a
pause longer than ``episode_gap_s``. A ``news2-incomplete`` episode ends with a complete NEWS2
(whatever it raises) or a partial one whose unknown parameters could reach no threshold.
An urgent episode nobody acknowledges within ``ack_timeout_s`` escalates to emergency.

Details carry scores and counts only: never patient data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from ..contracts import news2_partial_bound
from ..wire import ResultMessage

__all__ = [
    "SEVERITY_RANK",
    "Alert",
    "AlertRules",
    "EpisodeClear",
    "Severity",
    "news2_partial_bounds",
]

Severity = Literal["emergency", "urgent", "warning", "integrity"]
# Higher is more severe: the order of open alerts, and what counts as an escalation.
SEVERITY_RANK: dict[str, int] = {"integrity": 0, "warning": 1, "urgent": 2, "emergency": 3}


@dataclass(frozen=True, kw_only=True)
class Alert:
    device_id: str
    seq: int | None
    rule: str
    severity: Severity
    detail: str
    dedupe_key: str | None = None  # at most one alert is ever raised per key
    # Clinical alerts: the episode kind they fold into (None: an alert of its own), the value
    # that raised it (NEWS2 score, seizure probability: the episode keeps its peak), when
    # (the result's created_at; the receive time if its clock is suspect) and the longest pause
    # between two alerts of one episode.
    episode: str | None = None
    value: float | None = None
    at: float | None = None
    gap_s: float = 900.0


@dataclass(frozen=True, kw_only=True)
class EpisodeClear:
    """A result of an episode's kind that raised nothing: the open episode (if any) ends."""

    device_id: str
    episode: str
    at: float


@dataclass(frozen=True, kw_only=True)
class AlertRules:
    backlog_threshold: int = 1000
    offline_after_s: float = 300.0
    backlog_repeat_s: float = 3600.0  # at most one backlog alert per device per this period
    episode_gap_s: float = 900.0  # a longer pause between two alerts starts a new episode
    ack_timeout_s: float = 600.0  # an urgent episode unacknowledged this long -> emergency

    def __post_init__(self) -> None:
        if (
            min(self.backlog_threshold, self.offline_after_s, self.backlog_repeat_s) <= 0
            or min(self.episode_gap_s, self.ack_timeout_s) <= 0
        ):
            raise ValueError("alert thresholds must be positive")

    def evaluate(self, msg: ResultMessage, now: float) -> list[Alert | EpisodeClear]:
        """What the store commits with a newly stored result: its alerts, and the end of an
        episode its kind speaks to without alerting. A partial NEWS2 below the thresholds
        does not end a ``news2`` episode (it is a lower bound of the real score); it ends a
        ``news2-incomplete`` one only when its unknown parameters could reach no threshold."""
        at = now if msg.clock_suspect else msg.created_at
        alerts = [replace(a, at=at, gap_s=self.episode_gap_s) for a in self.on_result(msg, now)]
        out: list[Alert | EpisodeClear] = list(alerts)
        raised = {a.episode for a in alerts}
        body: dict[str, Any] = msg.body["result"]
        spoke: tuple[str, ...] = ()
        if msg.kind == "news2" or (msg.kind == "monitor-reading" and body.get("news2")):
            spoke = ("news2", "news2-incomplete")  # a complete NEWS2
        elif msg.kind == "monitor-reading" and body.get("news2_partial"):
            spoke = () if news2_partial_bounds(body["news2_partial"])[1] else ("news2-incomplete",)
        elif msg.kind == "seizure-probability":
            spoke = ("seizure",)
        out += [
            EpisodeClear(device_id=msg.device_id, episode=kind, at=at)
            for kind in spoke
            if kind not in raised
        ]
        return out

    def on_result(self, msg: ResultMessage, now: float) -> list[Alert]:
        body: dict[str, Any] = msg.body["result"]
        alerts = []
        if msg.kind == "news2":
            alerts += _news2(msg, body)
        elif msg.kind == "monitor-reading" and body.get("news2") is not None:
            alerts += _news2(msg, body["news2"])
        elif msg.kind == "monitor-reading" and body.get("news2_partial") is not None:
            # A partial score is a lower bound of the real NEWS2: >= 5 or a parameter scoring
            # 3 already means at least an urgent review, whatever the missing parameters are.
            # Below them, the unknown parameters may still hide one: a notice, not silence.
            partial = body["news2_partial"]
            alerts += _news2(
                msg,
                {
                    "score": partial["partial_score"],
                    "parameter_scores": partial["parameter_scores"],
                },
                partial=True,
            ) or _news2_incomplete(msg, partial)
        elif msg.kind == "seizure-probability" and body["probability"] >= body["threshold"]:
            alerts.append(
                Alert(
                    device_id=msg.device_id,
                    seq=msg.seq,
                    rule="seizure",
                    severity="urgent",
                    detail=f"seizure probability {body['probability']:.2f} >= model threshold "
                    f"{body['threshold']:.2f} ({msg.model_id}@{msg.model_version})",
                    episode="seizure",
                    value=float(body["probability"]),
                )
            )
        backlog = msg.seq - msg.lowest_unacked_seq + 1
        if backlog >= self.backlog_threshold:
            alerts.append(self._backlog(msg.device_id, backlog, msg.seq, now))
        return alerts

    def on_status(self, device_id: str, status: dict[str, Any], now: float) -> list[Alert]:
        depth = status.get("outbox_depth")
        online = status.get("state") == "online"
        if online and isinstance(depth, int) and depth >= self.backlog_threshold:
            return [self._backlog(device_id, depth, None, now)]
        return []

    def offline(self, device_id: str, since: float, now: float) -> Alert:
        minutes = (now - since) / 60.0
        return Alert(
            device_id=device_id,
            seq=None,
            rule="device-offline",
            severity="warning",
            detail=f"offline for {minutes:.1f} min (limit {self.offline_after_s / 60:.1f} min)",
            dedupe_key=f"device-offline:{device_id}:{since!r}",  # once per offline episode
        )

    def _backlog(self, device_id: str, backlog: int, seq: int | None, now: float) -> Alert:
        period = int(now // self.backlog_repeat_s)
        return Alert(
            device_id=device_id,
            seq=seq,
            rule="outbox-backlog",
            severity="warning",
            detail=f"{backlog} results waiting in the device outbox "
            f"(threshold {self.backlog_threshold})",
            dedupe_key=f"outbox-backlog:{device_id}:{period}",
        )


def _news2(msg: ResultMessage, body: dict[str, Any], *, partial: bool = False) -> list[Alert]:
    score = int(body["score"])
    threes = sorted(name for name, value in body["parameter_scores"].items() if value == 3)
    severity: Severity
    if score >= 7:
        rule, severity = "news2-emergency", "emergency"
    elif score >= 5 or threes:
        rule, severity = "news2-urgent", "urgent"
    else:
        return []
    detail = (f"NEWS2 at least {score} (partial)" if partial else f"NEWS2 {score}") + (
        f"; scoring 3: {', '.join(threes)}" if threes else ""
    )
    return [
        Alert(
            device_id=msg.device_id,
            seq=msg.seq,
            rule=rule,
            severity=severity,
            detail=detail,
            episode="news2",
            value=float(score),
        )
    ]


def news2_partial_bounds(partial: dict[str, Any]) -> tuple[int, bool]:
    """(``max_possible_score``, ``escalation_possible``) of a ``news2_partial`` body: computed
    here from ``missing`` and ``parameter_scores``, each unscored parameter at its chart maximum
    (air/oxygen 2, the others 3; SpO2 is unscored when it has no score), and never lower than
    what the device sent (older devices send neither): a device understating the bound cannot
    silence the notice."""
    unscored = set(partial["missing"]) | ({"spo2"} - set(partial["parameter_scores"]))
    top, possible = news2_partial_bound(int(partial["partial_score"]), unscored)
    return (
        max(top, int(partial.get("max_possible_score", top))),
        possible or bool(partial.get("escalation_possible", False)),
    )


def _news2_incomplete(msg: ResultMessage, partial: dict[str, Any]) -> list[Alert]:
    top, possible = news2_partial_bounds(partial)
    if not possible:
        return []
    score = int(partial["partial_score"])
    return [
        Alert(
            device_id=msg.device_id,
            seq=msg.seq,
            rule="news2-incomplete",
            severity="warning",
            detail=f"NEWS2 incomplete: {', '.join(partial['missing'])} not read; "
            f"partial {score}, could be up to {top}",
            episode="news2-incomplete",
            value=float(score),
        )
    ]
