"""The device's own subscriptions (its ack topic, fleet presence, its command topic), checked.

A broker may refuse a subscription in its SUBACK (an ACL, or NATS failing to create the
consumer behind it while a node recovers). Unchecked, the device would get no acks and its
outbox would grow with nothing said. Here a refusal is logged at WARNING and the subscriptions
are asked for again every ``RESUBSCRIBE_S`` until granted.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["RESUBSCRIBE_S", "Subscriptions"]

log = logging.getLogger(__name__)
RESUBSCRIBE_S = 5.0


class Subscriptions:
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.topics: list[tuple[str, int]] = []
        self.refused = 0  # SUBACK failures seen since start
        self._retry_at: float | None = None
        self._lock = threading.Lock()

    def subscribe(self, client: mqtt.Client, topics: list[tuple[str, int]]) -> None:
        with self._lock:
            self.topics, self._retry_at = topics, None
        client.subscribe(topics)

    def on_suback(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        """paho's ``on_subscribe``: note a refusal and when to ask again."""
        refused = [str(code) for code in codes if getattr(code, "is_failure", False)]
        if not refused:
            return
        log.warning(
            "device %s sync: the broker refused %d of %d subscriptions (%s): retrying in %.0f s",
            self.device_id, len(refused), len(codes), ", ".join(refused), RESUBSCRIBE_S,
        )  # fmt: skip
        with self._lock:
            self.refused += len(refused)
            self._retry_at = time.monotonic() + RESUBSCRIBE_S

    def retry_due(self, client: mqtt.Client) -> None:
        """From the sender's loop while connected: subscribe again once the retry is due."""
        with self._lock:
            if self._retry_at is None or time.monotonic() < self._retry_at:
                return
            self._retry_at = None
            topics = self.topics
        client.subscribe(topics)
