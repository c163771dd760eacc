"""Fleet side: ingest (stage 8), store and REST API (stage 9). Install with ``edgemed[fleet]``."""

from __future__ import annotations

from .ingest import Ingest
from .store import SQLiteStore, SqlStore, open_store

__all__ = ["Ingest", "SQLiteStore", "SqlStore", "open_store"]
