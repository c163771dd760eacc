"""Small frozen configuration objects (keyword-only) shared by the device and fleet sides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["BrokerConfig", "OutboxConfig", "SyncConfig", "TlsConfig", "cache_dir"]


def cache_dir() -> Path:
    """Where compiled engines live: ``$EDGEMED_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgemed``.

    The root only: each runtime module (edgemed/backends) keeps its own folder below it and
    keys it as its engines need (``tensorrt/<model sha256>-<gpu>-trt<version>``, ``openvino``)."""
    if os.environ.get("EDGEMED_CACHE_DIR"):
        return Path(os.environ["EDGEMED_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgemed"


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    ca_file: Path  # the CA that signed the broker certificate (verification is never disabled)
    cert_file: Path | None = None  # client certificate for mutual TLS
    key_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: TlsConfig | None = None
    # "auto": MQTT 5 where the broker supports it, else 3.1.1 (asked once per process start).
    protocol: Literal["auto", "3.1.1", "5"] = "auto"
    # paho pings after keepalive_s without traffic and drops the link keepalive_s later
    # without an answer: a half-open link (broker frozen, cable pulled) is noticed within
    # ~2 x 4 s + 1 s. The broker likewise fires a dead device's will after 1.5 x 4 s. A ping
    # every 4 s is ~2 bytes/s per device.
    keepalive_s: int = 4

    @classmethod
    def from_url(cls, url: str) -> BrokerConfig:
        """``mqtt://host:port`` (user:password@ allowed). TLS is configured with ``tls=``."""
        from urllib.parse import urlsplit

        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme != "mqtt" or not parts.hostname:
            from .errors import InputError

            raise InputError(f"broker URL must look like mqtt://host:port, got {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 1883,
            username=parts.username,
            password=parts.password,
        )


@dataclass(frozen=True, kw_only=True)
class OutboxConfig:
    path: Path
    device_id: str
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600.0  # oldest unacknowledged result; then refuse new ones


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    inflight_window: int = 64  # results published and not yet acknowledged
    # Results already waiting when the sender wakes share one publish (JSON Lines, wire.py);
    # it never waits to fill a batch, so a quiet device still sends each result at once.
    max_batch_results: int = 32
    resend_initial_s: float = 5.0  # first resend of an unacknowledged result
    resend_max_s: float = 120.0  # resend back-off cap
    reconnect_min_s: float = 0.5  # full-jitter reconnect back-off: uniform(0, min(max, min*2^n))
    reconnect_max_s: float = 60.0
    # The device re-announces its status this often; the fleet shows a device "unknown" once
    # it has been silent for 1.5 x this (its last will may have been lost with the broker).
    heartbeat_s: float = 30.0
    # A fleet process coming online makes devices replay their backlog after uniform(0, this)
    # seconds: at once, but a ward of devices does not arrive in one burst.
    fleet_replay_jitter_s: float = 2.0
