"""Prometheus metrics of one fleet process, served at ``GET /metrics`` (docs/fleet.md).

Two kinds: what this process counts as it goes (results committed, receive -> commit lag, dead
letters by reason, API requests by route and status), and what the shared store says at scrape
time (devices by state, reported outbox depths, open alerts by severity). Labels take values
from small fixed sets only: a route template, never a URL; a reason category, never a reason's
text; no device ids (one series per device is unbounded cardinality, and a device id is more
than a monitoring system needs to know).

Each ``FleetMetrics`` has its own registry (never prometheus_client's global one), so several
fleets in one process (tests, ``fleet/local.py``) do not mix their figures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .store import SqlStore

__all__ = ["CONTENT_TYPE", "DEAD_LETTER_REASONS", "FleetMetrics", "dead_letter_reason"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("stored", "duplicate", "conflict")
# Dead-letter reasons as categories (the full reason stays in the store and the log).
DEAD_LETTER_REASONS = (
    "too-large",
    "not-json",
    "schema-version",
    "topic",
    "device-mismatch",
    "seq-conflict",
    "quota",
    "invalid",
)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Reported outbox depths (results a device holds unacknowledged), as a distribution over devices
OUTBOX_BUCKETS = (0.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0)
DEVICE_STATES = ("online", "offline", "unknown")
SEVERITIES = ("emergency", "urgent", "warning", "integrity")
MAX_OPEN_ALERTS = 100_000  # open alerts read per scrape (far beyond any working ward)


def dead_letter_reason(reason: str) -> str:
    """The category of a dead letter's reason (wire.py and fleet/validation.py texts)."""
    text = reason.lower()
    if "conflict" in text:
        return "seq-conflict"
    checks = (
        ("quota", "quota"),
        ("exceeds", "too-large"),
        ("unsupported schema version", "schema-version"),
        ("does not match its topic", "device-mismatch"),
        ("not an edgemed topic", "topic"),
        ("unexpected channel", "topic"),
        ("not utf-8 json", "not-json"),
        ("expected a json object", "not-json"),
        ("nested too deeply", "not-json"),
    )
    for needle, category in checks:
        if needle in text:
            return category
    if "schema" in text and " is not " in text:
        return "schema-version"  # another schema altogether (edgemed.ack/1 on a results topic)
    return "invalid"  # structure, types or ranges


class FleetMetrics:
    """The metrics of one fleet process; ``store`` adds the scrape-time figures."""

    def __init__(self, store: SqlStore | None = None) -> None:
        self.registry = CollectorRegistry()
        self.results = Counter(
            "edgemed_fleet_results",
            "Results the ingest committed to the store, by outcome (stored; duplicate: a "
            "repeat absorbed; conflict: a seq reused with another payload, kept out)",
            ["outcome"],
            registry=self.registry,
        )
        self.lag = Histogram(
            "edgemed_fleet_ingest_lag_seconds",
            "Seconds from a result's arrival at this process to its commit (stored results)",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "edgemed_fleet_dead_letters",
            "Payloads refused into the dead-letter table, by reason category",
            ["reason"],
            registry=self.registry,
        )
        self.requests = Histogram(
            "edgemed_fleet_http_request_duration_seconds",
            "REST API and dashboard requests: seconds to the response's start, by method, "
            "route template and status",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        for outcome in OUTCOMES:  # every series exists from the start: rate() and absent() work
            self.results.labels(outcome)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        if store is not None:
            self.registry.register(StoreCollector(store))

    def committed(self, outcome: str, lag_s: float) -> None:
        """One result committed (``outcome`` as the store said), ``lag_s`` after arrival."""
        self.results.labels(outcome).inc()
        if outcome == "stored":
            self.lag.observe(max(lag_s, 0.0))
        elif outcome == "conflict":
            self.dead_letters.labels("seq-conflict").inc()

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(dead_letter_reason(reason)).inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """What the shared store says at scrape time: the same on every fleet process."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "edgemed_fleet_store_up", "1 when the store answered this scrape's queries, else 0"
        )
        try:
            devices = self.store.devices()
            open_alerts = self.store.alerts(open_only=True, limit=MAX_OPEN_ALERTS)
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: the store did not answer: %s", str(exc)[:300])
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield _devices_by_state(devices)
        yield from _outbox_depths(devices)
        severities = dict.fromkeys(SEVERITIES, 0)
        for alert in open_alerts:
            severity = str(alert.get("severity"))
            severities[severity] = severities.get(severity, 0) + 1
        open_gauge = GaugeMetricFamily(
            "edgemed_fleet_alerts_open",
            "Alerts (and alert episodes) not yet acknowledged, by severity",
            labels=["severity"],
        )
        for severity, n in severities.items():
            open_gauge.add_metric([severity], float(n))
        yield open_gauge


def _devices_by_state(devices: list[dict[str, Any]]) -> GaugeMetricFamily:
    states = dict.fromkeys(DEVICE_STATES, 0)
    for device in devices:
        state = str(device.get("state") or "unknown")
        states[state] = states.get(state, 0) + 1
    gauge = GaugeMetricFamily(
        "edgemed_fleet_devices",
        "Devices known to the store by state (online, offline, unknown: silent past its heartbeat)",
        labels=["state"],
    )
    for state, n in states.items():
        gauge.add_metric([state], float(n))
    return gauge


def _outbox_depths(devices: list[dict[str, Any]]) -> Iterator[Metric]:
    """Each device's last reported outbox depth, as a distribution over devices plus the
    largest: a series per device would grow with the fleet and churn with device ids."""
    depths = [float(d["outbox_depth"]) for d in devices if isinstance(d.get("outbox_depth"), int)]
    buckets = [(_bound(b), float(sum(1 for v in depths if v <= b))) for b in OUTBOX_BUCKETS] + [
        ("+Inf", float(len(depths)))
    ]
    yield HistogramMetricFamily(
        "edgemed_fleet_device_outbox_depth",
        "Devices by the outbox depth (results held unacknowledged) of their last status",
        buckets=buckets,
        sum_value=sum(depths),
    )
    largest = GaugeMetricFamily(
        "edgemed_fleet_device_outbox_depth_max",
        "The largest outbox depth any device last reported (0 with no reports)",
    )
    largest.add_metric([], max(depths, default=0.0))
    yield largest


def _bound(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)
