"""One ward as its page shows it (``GET /api/wards/{ward_id}/view``).

Per bed: its devices and their state; the latest vital signs (value, unit, alarm limits, or
why a value was withheld) and their time; the latest NEWS2 with its colour band; the trend of
the last ``hours`` (NEWS2, each vital, seizure probability) as ``[time, value]`` points; the
latest result of every other kind, trimmed to what the page draws; the open alerts (episodes)
most severe first, then the longest waiting; the acknowledgements of the last ``hours``.

Times are Unix seconds: a result's own time (``created_at``) unless the fleet found the
device's clock implausible (``clock_suspect``: then its receive time, marked). The page shows
them in ``timezone``, the hospital's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import WardRegistry

if TYPE_CHECKING:
    from ..store import SqlStore

__all__ = ["MAX_HOURS", "VITALS", "news2_colour", "ward_view"]

MAX_HOURS = 72
TREND_ROWS = 3000  # results read per device for the trend, newest first
LATEST_ROWS = 30  # and the newest ones whatever their age (the latest of each kind)
BUCKETS = 240  # a trend has at most 2 points (lowest, highest) per 1/240 of the window
# Seizure windows stream (one per 4 s): their trend is read as each bucket's peak in SQL
# (``WardRegistry.peak_trend``), not by parsing every payload.
STREAMED = "seizure-probability"
# Monitor fields the ward shows, with the unit a reading is reported in.
VITALS = {
    "hr": "/min",
    "spo2": "%",
    "rr": "/min",
    "nibp_systolic": "mmHg",
    "nibp_diastolic": "mmHg",
    "temperature": "°C",
}
# What of each kind's body the page needs (the rest, embeddings and probability tensors,
# stays in the store).
_KEEP = {
    "seizure-probability": ("probability", "threshold", "seizure", "segment_start_s",
                            "segment_end_s", "trace_step_s", "trace", "evaluated_fraction"),
    "sleep-stages": ("epoch_seconds", "n_epochs", "classes", "hypnogram", "counts", "quality"),
    "tabular-classification": ("label", "probability", "positive_label", "threshold", "labels",
                               "out_of_range"),
    "tabular-regression": ("name", "value", "unit", "out_of_range"),
    "text-embedding": ("nearest", "suggestion", "confidence", "assertion", "abstained",
                       "abstain_reason", "truncated"),
}  # fmt: skip


def news2_colour(score: int, parameter_scores: dict[str, int]) -> str:
    """The colour band of a NEWS2 aggregate (RCP 2017): ``high`` at 7 or more, ``medium`` at
    5-6 or when any single parameter scores 3, else ``low`` (0-4)."""
    if score >= 7:
        return "high"
    if score >= 5 or 3 in parameter_scores.values():
        return "medium"
    return "low"


def _at(row: dict[str, Any]) -> float:
    return float(row["received_at"] if row["clock_suspect"] else row["created_at"])


def _stamp(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": _at(row),
        "received_at": row["received_at"],
        "clock_suspect": bool(row["clock_suspect"]),
        "device_id": row["device_id"],
        "seq": row["seq"],
        "model": f"{row['model_id']}@{row['model_version']}",
    }


def _news2(body: dict[str, Any]) -> dict[str, Any] | None:
    """The NEWS2 of a ``news2`` or ``monitor-reading`` body (complete, or a partial lower
    bound), with its colour band."""
    full = body if body.get("kind") == "news2" else body.get("news2")
    if isinstance(full, dict) and isinstance(full.get("score"), int):
        scores = dict(full.get("parameter_scores") or {})
        return {"complete": True, "score": full["score"], "band": full.get("band"),
                "colour": news2_colour(full["score"], scores), "parameter_scores": scores}  # fmt: skip
    partial = body.get("news2_partial")
    if isinstance(partial, dict):
        return {
            "complete": False,
            "score": partial.get("partial_score"),
            "max_possible_score": partial.get("max_possible_score"),
            "escalation_possible": partial.get("escalation_possible"),
            "missing": partial.get("missing", []),
            "parameter_scores": partial.get("parameter_scores", {}),
            "colour": "unknown",
        }
    return None


def _vitals(body: dict[str, Any]) -> dict[str, Any]:
    fields = body.get("fields") or {}
    withheld = body.get("withheld") or {}
    out: dict[str, Any] = {}
    for name, unit in VITALS.items():
        read = fields.get(name)
        if isinstance(read, dict):
            out[name] = {"value": read.get("value"), "unit": read.get("unit") or unit,
                         "alarm_limits": read.get("alarm_limits"),
                         "confidence": read.get("confidence")}  # fmt: skip
        elif name in fields or name in withheld:
            why = withheld.get(name) or {}
            out[name] = {"value": None, "unit": unit, "withheld": why.get("reason", "not read"),
                         "alarm_limits": why.get("alarm_limits")}  # fmt: skip
    return out


class _Bed:
    """What one bed's tile needs, gathered from its devices' results (oldest first)."""

    def __init__(self) -> None:
        self.vitals: dict[str, Any] | None = None
        self.news2: dict[str, Any] | None = None
        self.latest: dict[str, dict[str, Any]] = {}
        self.trend: dict[str, list[list[float]]] = {}

    def add(self, row: dict[str, Any], since: float) -> None:
        body = row["payload"].get("result") or {}
        kind, at = str(row["kind"]), _at(row)
        in_window = at >= since
        news2 = _news2(body) if kind in ("news2", "monitor-reading") else None
        if news2 is not None:  # the latest, even a partial one (its lower bound, marked)
            self.news2 = {**news2, **_stamp(row)}
            if news2["complete"] and in_window:
                self._point("news2", at, news2["score"])
        if kind == "monitor-reading":
            self.vitals = {"fields": _vitals(body), **_stamp(row)}
            for name, reading in self.vitals["fields"].items():
                if in_window and isinstance(reading["value"], int | float):
                    self._point(name, at, reading["value"])
        elif kind in _KEEP:
            keep = {k: body[k] for k in _KEEP[kind] if k in body}
            self.latest[kind] = {**keep, **_stamp(row)}
            if kind == "seizure-probability" and in_window:
                self._point("seizure", at, body.get("probability"))

    def _point(self, series: str, at: float, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.trend.setdefault(series, []).append([round(at, 3), value])


def _bed_results(
    registry: WardRegistry, store: SqlStore, device_ids: list[str], since: float
) -> list[dict[str, Any]]:
    """The devices' newest results and those of the window (but the streamed seizure windows:
    ``peak_trend``), each once, oldest first."""
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for device_id in device_ids:
        for row in store.results(device_id=device_id, limit=LATEST_ROWS):
            rows[(row["device_id"], row["epoch"], row["seq"])] = row
        window = registry.window_results(
            device_id, since - 3600, skip_kind=STREAMED, limit=TREND_ROWS
        )
        for row in window:
            rows[(row["device_id"], row["epoch"], row["seq"])] = row
    return sorted(rows.values(), key=lambda r: (_at(r), r["seq"]))


def thin(points: list[list[float]], since: float, now: float) -> list[list[float]]:
    """At most 2 x ``BUCKETS`` points: each time bucket's lowest and highest (in time order),
    so that no extreme disappears from the trend."""
    if len(points) <= 2 * BUCKETS:
        return points
    width = (now - since) / BUCKETS or 1.0
    buckets: dict[int, list[list[float]]] = {}
    for point in points:
        buckets.setdefault(int((point[0] - since) // width), []).append(point)
    out: list[list[float]] = []
    for group in buckets.values():
        low, high = min(group, key=lambda p: p[1]), max(group, key=lambda p: p[1])
        out += sorted({id(low): low, id(high): high}.values(), key=lambda p: p[0])
    return out


def ward_view(
    store: SqlStore, registry: WardRegistry, ward_id: str, *, hours: float, now: float
) -> dict[str, Any] | None:
    """The ward page's data, or None if there is no such ward."""
    ward = registry.ward(ward_id)
    if ward is None:
        return None
    since = now - hours * 3600.0
    all_devices = [d for bed in ward["beds"] for d in bed["devices"]]
    alerts = registry.open_alerts(all_devices)
    acked = registry.acknowledged_since(all_devices, since)
    beds = []
    for bed in ward["beds"]:
        tile = _Bed()
        for row in _bed_results(registry, store, bed["devices"], since):
            tile.add(row, since)
        peaks = sorted(
            point
            for device_id in bed["devices"]
            for point in registry.peak_trend(device_id, STREAMED, since, (now - since) / BUCKETS)
        )
        tile.trend.pop("seizure", None)  # the latest windows' points: the peaks replace them
        if peaks:
            tile.trend["seizure"] = [[round(t, 3), p] for t, p in peaks]
        tile.trend = {k: thin(v, since, now) for k, v in tile.trend.items()}
        mine = set(bed["devices"])
        beds.append({
            "bed_id": bed["bed_id"],
            "label": bed["label"],
            "devices": [_device(store, d) for d in bed["devices"]],
            "vitals": tile.vitals,
            "news2": tile.news2,
            "trend": tile.trend,
            "results": tile.latest,
            "alerts": [a for a in alerts if a["device_id"] in mine],
            "acknowledged": [a for a in acked if a["device_id"] in mine],
        })  # fmt: skip
    return {
        "ward_id": ward["ward_id"],
        "name": ward["name"],
        "timezone": registry.timezone(),
        "now": now,
        "since": since,
        "hours": hours,
        "units": dict(VITALS),
        "beds": beds,
    }


def _device(store: SqlStore, device_id: str) -> dict[str, Any]:
    found = store.device(device_id)
    if found is None:
        return {"device_id": device_id, "state": None, "known": False, "last_seen": None}
    return {"device_id": device_id, "state": found["state"], "known": True,
            "last_seen": found["last_seen"], "state_since": found["state_since"]}  # fmt: skip
