"""Stage 9: the fleet's result store. SQLite by default; PostgreSQL at scale.

Both dialects run the same SQL (``ON CONFLICT`` works in SQLite >= 3.24 and PostgreSQL); a
dialect only supplies the connection, its placeholder style and a few column types. The server
creates and migrates its own schema (``schema_version``; upgrades in ``schema.MIGRATIONS``).

One module per concern, one per database:

- ``schema.py``   the tables, the schema version and the migrations to it
- ``sql.py``      ``SqlStore``: the logic both dialects share (schema, status, alerts)
- ``results.py``  result inserts, idempotence, per-epoch acks, epochs (what ingest writes)
- ``queries.py``  what the API and the dashboard read
- ``dead_letters.py`` bounded dead letters, their quota and the refused counts
- ``retention.py`` batched deletes of what is older than the retention policy keeps
- ``sqlite.py``   ``SQLiteStore``: SQLite in WAL mode, zero setup
- ``postgres.py`` ``PostgresStore``: PostgreSQL (psycopg, imported when one is opened)

Alert episodes (``fleet/episodes.py``) and exports (``fleet/exports/ledger.py``) are the other
halves mixed into ``SqlStore``.
"""

from __future__ import annotations

from pathlib import Path

from .postgres import PostgresStore
from .queries import MAX_PAGE
from .results import Committed, InsertOutcome
from .schema import SCHEMA_VERSION
from .sql import SqlStore
from .sqlite import SQLiteStore

__all__ = [
    "MAX_PAGE",
    "SCHEMA_VERSION",
    "Committed",
    "InsertOutcome",
    "PostgresStore",
    "SQLiteStore",
    "SqlStore",
    "open_store",
]


def open_store(db: str | Path, *, schema: str = "edgemed") -> SqlStore:
    """``postgresql://…`` -> PostgresStore in ``schema`` (needs psycopg); anything else is a
    SQLite path."""
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text, schema=schema)
    return SQLiteStore(Path(text))
