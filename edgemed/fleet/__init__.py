"""Fleet side: ingest (stage 8), store and REST API (stage 9). Install with ``edgemed[fleet]``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ingest import Ingest
    from .store import SQLiteStore, SqlStore, open_store

__all__ = ["Ingest", "SQLiteStore", "SqlStore", "open_store"]

# Imported on first use, so that ``edgemed.fleet.broker`` (its own process) needs only amqtt.
_LAZY = {"Ingest": "ingest", "SQLiteStore": "store", "SqlStore": "store", "open_store": "store"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
