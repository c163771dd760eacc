"""The fleet's contract check of every payload it ingests (DESIGN.md §5).

Each result, status and ack is checked against the JSON Schema published in
``edgemed/schemas/`` (with the ``jsonschema`` library, validators compiled once per process),
then against the semantic ranges of ``edgemed/contracts.py`` (through ``wire.decode_result``).
What fails raises :class:`PayloadError` with a reason, for the dead-letter table; nothing else
escapes. The validator lives here, not in ``wire``, because only the fleet needs it: the device
package does not depend on ``jsonschema`` (its tests validate its payloads with it).

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

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..errors import PayloadError
from ..wire import ResultMessage, Validate, decode_ack, decode_result, decode_status

__all__ = ["EARLIEST_CREATED_AT", "SCHEMAS", "PayloadValidator", "load_schema", "schema_validator"]

Schema = Literal["result-1", "status-1", "ack-1"]
SCHEMAS: tuple[Schema, ...] = ("result-1", "status-1", "ack-1")
# 2000-01-01T00:00:00Z. A device clock earlier than this never synchronised (an RTC that lost
# its battery restarts at 1970 or at its firmware's build date), and edgemed did not exist.
EARLIEST_CREATED_AT = 946_684_800.0


def load_schema(name: Schema) -> dict[str, Any]:
    """A published schema, read from the installed package (package data)."""
    text = resources.files("edgemed").joinpath(f"schemas/{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def schema_validator(name: Schema) -> Draft202012Validator:
    """The compiled validator of a schema, built once per process (the schema checked first).

    It checks an equivalent of the published schema with every local ``$ref`` inlined:
    jsonschema resolves a ``$ref`` at each use (~20 us), which made a result cost ~2 ms to
    check; inlined, ~1.2 ms (measured on this 2-core machine, news2 and seizure results)."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(_inline(schema, schema.get("$defs", {})))


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """``node`` with each ``{"$ref": "#/$defs/x", ...}`` replaced by the definition (siblings
    kept beside it under ``allOf``, as a ``$ref`` with siblings means). The published schemas
    are not recursive; the depth guard says so if one ever becomes so."""
    if depth > 32:
        raise ValueError("schema $refs nest too deeply to inline (a recursive definition?)")
    if isinstance(node, list):
        return [_inline(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = _inline(defs[ref.removeprefix("#/$defs/")], defs, depth + 1)
        rest = {k: _inline(v, defs, depth) for k, v in node.items() if k != "$ref"}
        return {"allOf": [target], **rest} if rest else target
    return {k: _inline(v, defs, depth) for k, v in node.items() if k != "$defs"}


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
    if name == "result-1":
        return _check_result(what)
    validator = schema_validator(name)

    def check(data: dict[str, Any]) -> None:
        _first_error(validator, data, what)

    return check


def _check_result(what: str) -> Validate:
    """result-1, checked in two steps that together mean exactly the published schema: the
    envelope (the schema without its per-kind ``if``/``then``), then the body against the one
    definition its ``kind`` selects. jsonschema would evaluate every kind's ``if``: measured
    ~1.3 ms a result that way, ~0.75 ms this way (news2, seizure; 2-core machine)."""
    schema = load_schema("result-1")
    Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    branches = defs["result"]["allOf"]
    envelope_schema = json.loads(json.dumps(schema))
    del envelope_schema["$defs"]["result"]["allOf"]
    envelope = Draft202012Validator(_inline(envelope_schema, defs))
    # allOf[0]: known kinds -> (nothing here), any other kind -> its "else"; then one
    # {"if": kind_<k>, "then": <k>} per known kind.
    known = branches[0]["if"]["properties"]["kind"]["enum"]
    bodies = {k: Draft202012Validator(_inline(defs[k], defs)) for k in known}
    other = Draft202012Validator(_inline(branches[0]["else"], defs))
    if len(branches) != len(known) + 1 or any(
        b["then"] != {"$ref": f"#/$defs/{k}"}
        or defs[b["if"]["$ref"].removeprefix("#/$defs/")]["properties"]["kind"]["const"] != k
        for b, k in zip(branches[1:], known, strict=False)
    ):
        raise ValueError("result-1: the per-kind branches are not in the order of the kinds")

    def check(data: dict[str, Any]) -> None:
        _first_error(envelope, data, what)
        body = data["result"]  # the envelope holds: an object with a string kind
        _first_error(bodies.get(body["kind"], other), body, f"{what}.result")

    return check


def _first_error(validator: Draft202012Validator, data: Any, what: str) -> None:
    try:
        # The first error, not the best of all: errors come lazily, and an array far over
        # its maxItems is refused before its items are walked (~20 us each).
        error = next(validator.iter_errors(data), None)
    except RecursionError:  # deep nesting inside an open object: refused, not a crash
        raise PayloadError(f"{what}: nested too deeply") from None
    if error is not None:
        raise PayloadError(_reason(what, error))


def _reason(what: str, error: ValidationError) -> str:
    """Where and which rule, never the offending value: it may be anything a device sent
    (OCR text off a screen), and reasons are logged and shown."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    where = what + (path if len(path) <= 120 else path[:117] + "...")
    if error.validator == "required":
        return f"{where}: {error.message}"  # names the missing field (from the schema)
    rule = json.dumps(error.validator_value)
    return f"{where}: fails {error.validator} {rule if len(rule) <= 80 else rule[:77] + '...'}"
