"""Device-side result sync: durable outbox (stage 6) and MQTT publisher (stage 7)."""

from __future__ import annotations

from ..config import BrokerConfig, ConfigFile, OutboxConfig, SyncConfig, TlsConfig, load_config
from .aio import AsyncPublisher
from .mqtt import Publisher
from .outbox import Outbox, OutboxStats

__all__ = [
    "AsyncPublisher",
    "BrokerConfig",
    "ConfigFile",
    "Outbox",
    "OutboxConfig",
    "OutboxStats",
    "Publisher",
    "SyncConfig",
    "TlsConfig",
    "load_config",
]
