"""Live events for the dashboard: what the ingest workers of this process just committed.

The ingest threads publish; each dashboard connection (server-sent events) holds a bounded
queue on its asyncio loop. A slow browser loses its oldest events, never slows the ingest: it
gets a ``gap`` event and reloads its lists from the REST API. Events carry no patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from ..wire import ResultMessage
from .alerts import Alert

__all__ = ["EventBus", "Subscription", "alert_event", "announce", "result_event"]

QUEUE_SIZE = 1000
log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)

    def _offer(self, event: dict[str, Any]) -> None:  # runs on the subscriber's loop
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            event = {"type": "gap"}
        self.queue.put_nowait(event)


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        sub = Subscription(loop)
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        """Thread-safe; never blocks."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                sub.loop.call_soon_threadsafe(sub._offer, event)


def result_event(msg: ResultMessage, received_at: float) -> dict[str, Any]:
    body: dict[str, Any] = msg.body["result"]
    return {
        "type": "result",
        "device_id": msg.device_id,
        "seq": msg.seq,
        "model": f"{msg.model_id}@{msg.model_version}",
        "kind": msg.kind,
        "value": headline(msg.kind, body),
        "created_at": msg.created_at,
        "received_at": received_at,
        "clock_suspect": msg.clock_suspect,
    }


def headline(kind: str, body: dict[str, Any]) -> str:
    """One short line for a result: the value a dashboard shows and charts."""
    if kind == "news2":
        return f"NEWS2 {body['score']}"
    if kind == "seizure-probability":
        return f"p(seizure) {body['probability']:.2f}"
    nearest = body.get("nearest")
    if isinstance(nearest, list) and nearest and isinstance(nearest[0], dict):
        return f"{nearest[0].get('code', '?')} ({float(nearest[0].get('score', 0.0)):.2f})"
    if kind == "monitor-reading" and isinstance(body.get("fields"), dict):
        read = [f"{name} {f.get('value')} {f.get('unit', '')}".strip()
                for key, name in _VITALS if isinstance(f := body["fields"].get(key), dict)]  # fmt: skip
        news2 = body.get("news2")
        score = [f"NEWS2 {news2.get('score')}"] if isinstance(news2, dict) else []
        return " · ".join(score + read) or "no value read"
    if kind == "tabular-classification" and isinstance(p := body.get("probability"), int | float):
        return f"p({body.get('positive_label', '?')}) {p:.2f} -> {body.get('label', '?')}"
    if kind == "tabular-regression" and "value" in body:
        return f"{body.get('name', 'value')} {body['value']} {body.get('unit', '')}".strip()
    if kind == "sleep-stages" and "n_epochs" in body:
        return f"sleep stages: {body['n_epochs']} epochs"
    return kind


_VITALS = (("hr", "HR"), ("spo2", "SpO2"), ("rr", "RR"), ("nibp_systolic", "SYS"),
           ("nibp_diastolic", "DIA"), ("temperature", "T"))  # fmt: skip


def alert_event(alert: Alert) -> dict[str, Any]:
    return {
        "type": "alert",
        "device_id": alert.device_id,
        "seq": alert.seq,
        "rule": alert.rule,
        "severity": alert.severity,
        "detail": alert.detail,
        "at": time.time(),
    }


def announce(alerts: list[Alert], events: EventBus | None) -> None:
    """Log newly raised alerts and show them live (after they were committed)."""
    for alert in alerts:
        log.warning("alert %s (%s) on device %s", alert.rule, alert.severity, alert.device_id)
        if events:
            events.publish(alert_event(alert))
