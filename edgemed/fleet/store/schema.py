"""The fleet store's tables: the full DDL a new store is made with, and the numbered upgrades
an older store is brought forward with (``MIGRATIONS``, run by ``SqlStore._create_or_migrate``).

Both dialects run this SQL; ``{serial}``, ``{blob}`` and ``{alerts}`` are the dialect's column
types (``SqlStore._format``). After the upgrade steps the full DDL runs too: it is idempotent and
only adds what is missing.
"""

from __future__ import annotations

from typing import Any

from ...wire import ResultMessage
from ..episodes import EPISODE_COLUMNS, EPISODE_MIGRATION
from ..exports.ledger import EXPORT_DDL
from ..wards.registry import WARD_DDL
from .dead_letters import DEAD_LETTER_MIGRATION

__all__ = [
    "ALERTS",
    "ALERTS_V2",
    "EPOCH_TABLES",
    "LIST_INDEXES",
    "MIGRATIONS",
    "REKEY_RESULTS",
    "RESULT_COLUMNS",
    "RESULT_VALUES",
    "SCHEMA_VERSION",
    "TABLES",
    "UPSERT_DEVICE",
    "result_row",
]

# The alerts table as schema version 2 made it (migration 2); later columns are added by later
# migrations, and a new store gets them all from ALERTS.
ALERTS_V2 = """
CREATE TABLE IF NOT EXISTS alerts (
    id {serial},
    device_id TEXT NOT NULL,
    seq BIGINT,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at DOUBLE PRECISION NOT NULL,
    acked_at DOUBLE PRECISION,
    acked_by TEXT,
    resolved_at DOUBLE PRECISION,
    dedupe_key TEXT UNIQUE
)
"""
ALERTS = ALERTS_V2.replace(
    "dedupe_key TEXT UNIQUE",
    "dedupe_key TEXT UNIQUE,\n    " + ",\n    ".join(f"{n} {t}" for n, t in EPISODE_COLUMNS),
)
# Schema 8: an index for every filter the API's lists offer (results newest first by
# (received_at, device_id, seq); alerts newest first by id), and for retention's cutoffs.
# Made last, after every table (``SqlStore._create_or_migrate``).
LIST_INDEXES = """
CREATE INDEX IF NOT EXISTS results_device ON results(device_id, received_at, seq);
CREATE INDEX IF NOT EXISTS results_model ON results(model_id, received_at, device_id, seq);
CREATE INDEX IF NOT EXISTS results_kind ON results(kind, received_at, device_id, seq);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts(device_id, id);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule, id);
CREATE INDEX IF NOT EXISTS alerts_raised ON alerts(raised_at);
CREATE INDEX IF NOT EXISTS export_log_at ON export_log(at)
"""

TABLES = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    acked_seq BIGINT NOT NULL DEFAULT 0,
    boot_id TEXT,
    state TEXT,
    connection BIGINT,
    edgemed_version TEXT,
    models TEXT,
    outbox_depth BIGINT,
    state_since DOUBLE PRECISION,
    heartbeat_s DOUBLE PRECISION,
    last_seen DOUBLE PRECISION NOT NULL,
    epoch TEXT
);
CREATE TABLE IF NOT EXISTS results (
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    result_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload TEXT NOT NULL,
    clock_suspect INTEGER NOT NULL DEFAULT 0,
    epoch TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (device_id, epoch, seq)
);
{alerts};
CREATE TABLE IF NOT EXISTS dead_letters (
    id {serial},
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload {blob} NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    device_id TEXT,
    reason_class TEXT,
    size BIGINT,
    sha256 TEXT
);
CREATE TABLE IF NOT EXISTS fleet_identity (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    store_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts(acked_at, id);
CREATE INDEX IF NOT EXISTS results_received ON results(received_at);
"""

# Per (device, epoch): the ack, and where the epoch's seqs began (the lowest_unacked_seq it was
# first seen with). Events: what happened to a device's outbox (seq-restart, outbox-moved-aside).
EPOCH_TABLES = """
CREATE TABLE IF NOT EXISTS device_epochs (
    device_id TEXT NOT NULL,
    epoch TEXT NOT NULL,
    acked_seq BIGINT NOT NULL DEFAULT 0,
    first_seq BIGINT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, epoch)
);
CREATE TABLE IF NOT EXISTS device_events (
    id {serial},
    device_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    epoch TEXT,
    previous_epoch TEXT,
    previous_acked_seq BIGINT,
    start_seq BIGINT,
    detail TEXT NOT NULL,
    dedupe_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS device_events_device ON device_events(device_id, id)
"""
# A migration step the dialect runs itself (_rekey_results): SQLite cannot alter a primary key.
REKEY_RESULTS = "-- rekey results on (device_id, epoch, seq)"

# Upgrades from version n-1 to n, run by the server itself (one transaction, under a lock).
# Numbers are claimed by features landing in parallel: a missing number is an empty step.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE devices ADD COLUMN state_since DOUBLE PRECISION",
        ALERTS_V2,
        "INSERT INTO alerts(device_id, seq, rule, severity, detail, raised_at) "
        "SELECT device_id, seq, kind, 'integrity', detail, raised_at FROM alarms",
        "DROP TABLE alarms",
    ),
    # clock_suspect: created_at implausible against the server clock (fleet/validation.py).
    # Rows stored before are marked by the default rule (before 2000, or a day ahead of receipt).
    3: (
        "ALTER TABLE results ADD COLUMN clock_suspect INTEGER NOT NULL DEFAULT 0",
        "UPDATE results SET clock_suspect=1 "
        "WHERE created_at < 946684800 OR created_at > received_at + 86400",
    ),
    # Results keyed on (device_id, epoch, seq); acks per epoch; device events.
    4: (
        REKEY_RESULTS,
        "ALTER TABLE devices ADD COLUMN epoch TEXT",
        *EPOCH_TABLES.split(";"),
        # Results stored so far are epoch "": their acks carry over.
        "INSERT INTO device_epochs(device_id, epoch, acked_seq, first_seq, first_seen) "
        "SELECT device_id, '', acked_seq, 1, last_seen FROM devices",
        "UPDATE devices SET epoch=''",
    ),
    # heartbeat_s: how often the device promised a status; silent for 1.5x that -> "unknown".
    5: ("ALTER TABLE devices ADD COLUMN heartbeat_s DOUBLE PRECISION",),
    # Alert episodes (fleet/episodes.py): episode columns, acknowledgement history.
    6: EPISODE_MIGRATION,
    # Exports (fleet/exports): encounter mapping, each result's encounter, what targets acked.
    7: tuple(EXPORT_DDL.split(";")),
    # Bounded dead letters (size, sha256, a prefix; quota; store/dead_letters.py), the list
    # filters' indexes (LIST_INDEXES, DEAD_LETTER_DDL: the full DDL, run after, makes them).
    8: DEAD_LETTER_MIGRATION,
    # Named users, sessions, API tokens and the append-only audit trail (fleet/auth/): the
    # full DDL, run after every upgrade, makes them.
    9: (),
    # Wards, beds, the devices serving each bed, the ward page's settings (fleet/wards/).
    10: tuple(WARD_DDL.split(";")),
    # Bundles, rollouts, their devices and device groups (fleet/rollouts/store.py): the full
    # DDL, run after every upgrade, makes them.
    11: (),
    # A new PostgreSQL store partitions results by month of receipt, uniqueness in
    # result_keys (store/partitions.py); existing stores keep their table.
    12: (),
}
SCHEMA_VERSION = max(MIGRATIONS)

UPSERT_DEVICE = (
    "INSERT INTO devices(device_id, last_seen) VALUES (?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen"
)
RESULT_COLUMNS = (
    "device_id, seq, result_id, boot_id, model_id, model_version, kind, created_at, "
    "received_at, payload_sha256, payload, clock_suspect, epoch"
)
RESULT_VALUES = "(" + ",".join("?" * (RESULT_COLUMNS.count(",") + 1)) + ")"


def result_row(msg: ResultMessage, now: float) -> tuple[Any, ...]:
    return (
        msg.device_id, msg.seq, msg.result_id, msg.boot_id, msg.model_id, msg.model_version,
        msg.kind, msg.created_at, now, msg.payload_sha256, msg.raw, int(msg.clock_suspect),
        msg.epoch,
    )  # fmt: skip
