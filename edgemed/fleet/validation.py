"""The fleet's contract check of every payload it ingests (schema, then ranges).

Each result, status and ack is checked against the JSON Schema published in
``edgemed/schemas/`` (with the ``jsonschema-rs`` library, validators compiled once per process),
then against the semantic ranges of ``edgemed/contracts.py`` (through ``wire.decode_result``).
What fails raises :class:`PayloadError` with a reason, for the dead-letter table; nothing else
escapes. The validator lives here, not in ``wire``, because only the fleet needs it: the device
package does not depend on it (its tests validate its payloads with it and with the reference
``jsonschema`` implementation).

A result whose ``created_at`` is implausible against the server clock is still stored (the
result itself may be sound), marked ``clock_suspect``: the dashboard shows its receive time.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Literal

import jsonschema_rs

from ..errors import PayloadError
from ..wire import ResultMessage, Validate, decode_ack, decode_result, decode_status

__all__ = [
    "EARLIEST_CREATED_AT",
    "LEFT_TO_CONTRACTS",
    "SCHEMAS",
    "PayloadValidator",
    "load_schema",
    "schema_validator",
]

# command-1: what the fleet sends on a device's cmd topic (edgemed/delivery/messages.py); the
# fleet writes it and the device decodes it strictly, so no validator here uses it.
Schema = Literal["result-1", "status-1", "ack-1", "command-1"]
SCHEMAS: tuple[Schema, ...] = ("result-1", "status-1", "ack-1", "command-1")
# 2000-01-01T00:00:00Z. A device clock earlier than this never synchronised (an RTC that lost
# its battery restarts at 1970 or at its firmware's build date), and edgemed did not exist.
EARLIEST_CREATED_AT = 946_684_800.0


def load_schema(name: Schema) -> dict[str, Any]:
    """A published schema, read from the installed package (package data)."""
    text = resources.files("edgemed").joinpath(f"schemas/{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# Bounds of the published schemas that the fleet's compiled validator leaves to the contract
# check (edgemed/contracts), which enforces the same bounds on every result the fleet decodes,
# right after the schema. jsonschema-rs (>= 0.35) compares a number with a fractional bound in
# arbitrary precision, ~1 us a comparison against ~0.02 us for an integer bound: a text result's
# ten scores made its schema check 35-44 us instead of 10-11 (2-vCPU AMD EPYC, Zen 4). The
# published schema keeps them (the wire contract; the tests check that the fleet refuses what
# breaks them, and that no other fractional bound exists).
LEFT_TO_CONTRACTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "result-1": (
        ("$defs", "text-embedding", "properties", "nearest", "items", "properties", "score"),
        ("$defs", "text-embedding", "properties", "suggestion", "properties", "score"),
    ),
}


@functools.cache
def schema_validator(name: Schema) -> Any:
    """The compiled validator of a published schema, built once per process.

    jsonschema-rs (Rust; Draft 2020-12): the whole published schema checks a result in
    ~10-20 us, where the pure-Python ``jsonschema`` took ~1.3-1.5 ms even with its ``$ref``s
    inlined and one branch per kind (measured on this 2-core machine, news2 and seizure
    results): that would have cut the fleet's ingest rate several-fold. The tests check every
    verdict against the reference ``jsonschema`` implementation. The bounds named in
    ``LEFT_TO_CONTRACTS`` are not compiled: the contract check enforces them."""
    schema = load_schema(name)
    for path in LEFT_TO_CONTRACTS.get(name, ()):
        node = functools.reduce(lambda n, key: n[key], path, schema)
        del node["minimum"], node["maximum"]
    return jsonschema_rs.validator_for(schema, validate_formats=False)


@dataclass(frozen=True)
class PayloadValidator:
    """Schema + semantic checks for the ingest; ``max_clock_skew_s``: how far ahead of the
    server clock a created_at may be before it is marked suspect (a day by default: device and
    server clocks synchronised by NTP agree to well under a second, so only a broken clock is
    that far off, while an outbox replay after a long outage is in the past, not the future).
    ``earliest_created_at``: before this, a created_at is suspect too."""

    max_clock_skew_s: float = 86_400.0
    earliest_created_at: float = EARLIEST_CREATED_AT

    def __post_init__(self) -> None:
        if not self.max_clock_skew_s >= 0:
            raise ValueError("max_clock_skew_s must be >= 0")

    def result(
        self, raw: bytes, *, topic_device_id: str, now: float | None = None
    ) -> ResultMessage:
        """One result line -> its message; PayloadError (with the reason) if it fails."""
        msg = decode_result(raw, topic_device_id=topic_device_id, validate=_check("result-1"))
        if self.clock_suspect(msg.created_at, time.time() if now is None else now):
            return replace(msg, clock_suspect=True)
        return msg

    def clock_suspect(self, created_at: float, now: float) -> bool:
        return not self.earliest_created_at <= created_at <= now + self.max_clock_skew_s

    def status(self, raw: bytes, *, topic_device_id: str) -> dict[str, Any]:
        status = decode_status(raw, validate=_check("status-1"))
        if status["device_id"] != topic_device_id:
            raise PayloadError(
                f"status: device_id {status['device_id']!r} does not match its topic"
            )
        return status

    def ack(self, raw: bytes) -> int:
        ack_seq = decode_ack(raw)  # JSON, version and ack_seq first: a readable reason
        _check("ack-1")(json.loads(raw))
        return ack_seq


@functools.cache
def _check(name: Schema) -> Validate:
    what = name.rsplit("-", 1)[0]
    validator = schema_validator(name)

    def check(data: dict[str, Any]) -> None:
        try:
            # The first error only: reasons name one broken rule, and it stops the walk early.
            error = next(iter(validator.iter_errors(data)), None)
        except (ValueError, RecursionError):  # nesting beyond what the validator walks
            raise PayloadError(f"{what}: nested too deeply") from None
        if error is not None:
            raise PayloadError(_reason(what, error, schema))

    schema = load_schema(name)
    return check


def _reason(what: str, error: Any, schema: dict[str, Any]) -> str:
    """Where and which rule (with the schema's bound), never the offending value: it may be
    anything a device sent (OCR text off a screen), and reasons are logged and shown."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
    where = what + (path if len(path) <= 120 else path[:117] + "...")
    keys = list(error.schema_path)
    rule = str(keys[-1]) if keys else "schema"
    if rule == "required":
        return f"{where}: {error.message}"  # names the missing field (from the schema)
    node: Any = schema
    try:  # the rule's value in the schema (e.g. "minimum 0"); absent across a $ref
        for key in keys:
            node = node[key]
        bound = json.dumps(node)
    except (KeyError, IndexError, TypeError):
        return f"{where}: fails {rule}"
    return f"{where}: fails {rule} {bound if len(bound) <= 80 else bound[:77] + '...'}"
