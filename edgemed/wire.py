"""Wire protocol between devices and the fleet: topics and versioned JSON payloads.

Shared by both sides; the fleet imports nothing else from the device side except results/errors.
Topics carry only the opaque fleet ``device_id``: never patient data.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .contracts import NEWS2_PARAMETERS, ContractError, check_result_body
from .errors import InputError, PayloadError
from .results import Result
from .results.base import check_contract

__all__ = [
    "ACK_SCHEMA",
    "FLEET_PREFIX",
    "FLEET_STATUS_TOPICS",
    "NEWS2_PARAMETERS",
    "PREFIX",
    "RESULT_SCHEMA",
    "STATUS_SCHEMA",
    "FleetStatus",
    "ResultMessage",
    "check_device_id",
    "count_results",
    "decode_ack",
    "decode_ack_epoch",
    "decode_fleet_status",
    "decode_result",
    "decode_status",
    "encode_ack",
    "encode_fleet_status",
    "encode_result",
    "encode_status",
    "fleet_topic",
    "join_results",
    "parse_topic",
    "prepare_result",
    "split_results",
    "stamp_result",
    "topic",
]

RESULT_SCHEMA = "edgemed.result/1"
ACK_SCHEMA = "edgemed.ack/1"
STATUS_SCHEMA = "edgemed.status/1"
PREFIX = "edgemed/v1"
Channel = Literal["results", "status", "ack", "cmd"]
_CHANNELS = ("results", "status", "ack", "cmd")
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# An outbox epoch (sync/outbox.py): the fleet keys results on (device_id, epoch, seq); payloads
# from devices older than epochs carry none and are filed under "".
_EPOCH_RE = re.compile(r"^[A-Za-z0-9_-]{0,64}$")
MAX_PAYLOAD_BYTES = 256 * 1024  # one result
SELECTION_MAX = 256  # model.selection (result-1.json)
# One message on a results topic carries one or more results, one JSON object per line (JSON
# Lines: compact JSON never contains a raw newline). Batching amortises the per-message cost of
# MQTT (publish, PUBACK, broker routing); each line is validated, stored and acked on its own.
MAX_MESSAGE_BYTES = 1024 * 1024
BATCH_TARGET_BYTES = 128 * 1024  # the device starts a new message beyond this
# What orjson cannot write (a NumPy float64, an int beyond 64 bits) is encoded by the stdlib,
# as every payload was before (_encode). One shared encoder: JSONEncoder keeps no state.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def check_device_id(device_id: str) -> str:
    """Device ids are opaque fleet ids usable as MQTT client id and topic level."""
    if not isinstance(device_id, str) or not _DEVICE_ID_RE.match(device_id):
        raise InputError(
            f"device_id {device_id!r} must be 1-64 characters of letters, digits, '.', '_', '-'"
        )
    return device_id


def topic(device_id: str, channel: Channel) -> str:
    return f"{PREFIX}/{check_device_id(device_id)}/{channel}"


def parse_topic(name: str) -> tuple[str, str]:
    """``edgemed/v1/{device_id}/{channel}`` -> (device_id, channel); PayloadError otherwise."""
    parts = name.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != PREFIX or parts[3] not in _CHANNELS:
        raise PayloadError(f"not an edgemed topic: {name!r}")
    try:
        return check_device_id(parts[2]), parts[3]
    except InputError as exc:
        raise PayloadError(str(exc)) from exc


def encode_result(
    result: Result,
    *,
    device_id: str,
    seq: int,
    boot_id: str,
    lowest_unacked_seq: int,
    clock_synced: bool,
    encounter: str | None = None,
    epoch: str | None = None,
) -> bytes:
    """The JSON payload of one result; ``encounter`` is an opaque reference, never a name."""
    unstamped = prepare_result(
        result, device_id=device_id, clock_synced=clock_synced, encounter=encounter
    )
    return stamp_result(
        unstamped, seq=seq, boot_id=boot_id, lowest_unacked_seq=lowest_unacked_seq, epoch=epoch
    )


def prepare_result(
    result: Result, *, device_id: str, clock_synced: bool, encounter: str | None = None
) -> bytes:
    """The payload without its sequence fields (seq, boot_id, lowest_unacked_seq).

    The device encodes this before it enters the outbox's group commit, where only
    :func:`stamp_result` runs: the commit's critical section stays short.
    """
    p = result.provenance
    model: dict[str, Any] = {
        "id": p.model_id,
        "version": p.model_version,
        "sha256": p.model_sha256,
        "backend": p.backend,
        "device": p.device,
        "precision": p.precision,
    }
    if p.components:  # further models (a recogniser); absent for single-model results
        model["components"] = [c.body() for c in p.components]
    if p.selection:  # the backend was measured fastest here (autotune); absent otherwise
        model["selection"] = p.selection[:SELECTION_MAX]
    message = {
        "schema": RESULT_SCHEMA,
        "result_id": str(uuid.uuid4()),
        "device_id": check_device_id(device_id),
        "created_at": p.created_at,
        "clock_synced": clock_synced,
        "model": model,
        "input": {
            "sha256": p.input_sha256,
            "kind": p.input_kind,
            "window": p.window.body() if p.window else None,
        },
        "timings_ms": {
            "preprocess": p.timings.preprocess_ms,
            "inference": p.timings.inference_ms,
            "postprocess": p.timings.postprocess_ms,
        },
        "edgemed_version": p.edgemed_version,
        "encounter": encounter,
        "result": check_contract(result),  # ModelError: never synced
    }
    return _encode(message)


def _encode(message: dict[str, Any]) -> bytes:
    """Compact JSON, with orjson: 1.5 us for a text result here against the stdlib's 19, which
    weighs on every producer thread that waits for the outbox's commit. orjson writes NaN and
    infinities as null, where the stdlib refused them: refused first, with the same error."""
    from .kernels.values import (
        all_finite,
    )  # compiled: imported where devices encode, never by the fleet

    if not all_finite(message):
        raise ValueError("Out of range float values are not JSON compliant")
    try:  # only what the stdlib writes too: anything else (a dataclass, a datetime, a key
        # that is not a str, a str or int subclass) goes to it, to be written or refused
        return orjson.dumps(message, default=_refuse, option=_ORJSON_AS_STDLIB)
    except TypeError:
        return _COMPACT_JSON.encode(message).encode("utf-8")


_ORJSON_AS_STDLIB = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is left to the stdlib encoder")


def stamp_result(
    unstamped: bytes,
    *,
    seq: int,
    boot_id: str,
    lowest_unacked_seq: int,
    epoch: str | None = None,
) -> bytes:
    """A prepared payload with its sequence fields added (a JSON object's keys are unordered).

    ``epoch``: the outbox epoch the seq belongs to (None: omitted, as older devices do)."""
    if not unstamped.startswith(b"{") or unstamped == b"{}":
        raise InputError("stamp_result takes the non-empty JSON object prepare_result makes")
    head = f'{{"seq":{int(seq)},"boot_id":{json.dumps(boot_id)},'
    if epoch is not None:
        head += f'"epoch":{json.dumps(_check_epoch(epoch, InputError))},'
    return f'{head}"lowest_unacked_seq":{int(lowest_unacked_seq)},'.encode() + unstamped[1:]


@dataclass(frozen=True, kw_only=True)
class ResultMessage:
    """A validated result payload as the fleet sees it."""

    device_id: str
    seq: int
    boot_id: str
    result_id: str
    lowest_unacked_seq: int
    created_at: float
    model_id: str
    model_version: str
    kind: str
    payload_sha256: str
    body: dict[str, Any]
    raw: str  # the payload exactly as received (stored verbatim: no re-serialisation)
    # created_at is implausible against the receiver's clock (set by the fleet's validator):
    # stored, but never shown or used as a time.
    clock_suspect: bool = False
    epoch: str = ""  # the device outbox's epoch; "" for devices older than epochs


def _non_finite(token: str) -> float:
    raise ValueError(f"{token} is not JSON: numbers must be finite")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise ValueError(f"{token[:40]} is beyond a double: numbers must be finite")
    return value


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{what}: {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        # orjson reads strict JSON (no NaN, Infinity or numbers beyond a double) in a quarter
        # of the time of the stdlib with the finite-number hooks below (4 vs 16 us a result
        # here). What it refuses is read again by those, for the reason a person can act on.
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = _load_json_slowly(raw, what)
    if not isinstance(data, dict):
        raise PayloadError(f"{what}: expected a JSON object")
    return data


def _load_json_slowly(raw: bytes, what: str) -> Any:
    try:
        # Python's json accepts NaN and Infinity, which JSON has not: refused here, so that no
        # stored payload breaks a strict JSON reader (the dashboard, the API's encoder).
        return json.loads(
            raw.decode("utf-8"), parse_constant=_non_finite, parse_float=_finite_float
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"{what}: not UTF-8 JSON ({exc})") from exc
    except ValueError as exc:  # a non-finite number; an integer of more than 4300 digits
        raise PayloadError(f"{what}: {str(exc)[:120]}") from exc
    except RecursionError:
        raise PayloadError(f"{what}: not UTF-8 JSON (nested too deeply)") from None


def _schema_major(data: dict[str, Any], expected: str, what: str) -> None:
    schema = data.get("schema")
    if not isinstance(schema, str) or schema.rsplit("/", 1)[0] != expected.rsplit("/", 1)[0]:
        raise PayloadError(f"{what}: schema {schema!r} is not {expected}")
    if schema != expected:
        raise PayloadError(
            f"{what}: unsupported schema version {schema!r} (this fleet reads {expected})"
        )


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (
        isinstance(value, bool) and kind in (int, float, (int, float))
    ):
        raise PayloadError(f"{what}: field {key!r} missing or of the wrong type")
    return value


Validate = Callable[[dict[str, Any]], None]  # raises PayloadError (the fleet's JSON Schemas)


def decode_result(
    raw: bytes, *, topic_device_id: str, validate: Validate | None = None
) -> ResultMessage:
    """Validate a result payload; its device_id must match the topic it arrived on.

    ``validate`` runs on the parsed payload once its schema version is known: the fleet passes
    its JSON Schema check (fleet/validation.py). The checks below and the kind's ranges
    (contracts.py) run on every decode."""
    data = _load_json(raw, "result")
    _schema_major(data, RESULT_SCHEMA, "result")
    if validate is not None:
        validate(data)
    device_id = _field(data, "device_id", str, "result")
    if device_id != topic_device_id:
        raise PayloadError(f"result: device_id {device_id!r} does not match its topic")
    seq = _field(data, "seq", int, "result")
    low = _field(data, "lowest_unacked_seq", int, "result")
    if not 1 <= low <= seq < 2**63:
        raise PayloadError("result: need 1 <= lowest_unacked_seq <= seq < 2**63")
    model = _field(data, "model", dict, "result")
    body = _field(data, "result", dict, "result")
    kind = _field(body, "kind", str, "result.result")
    try:
        check_result_body(kind, body)
    except ContractError as exc:
        raise PayloadError(f"result.result: {exc}") from exc
    return ResultMessage(
        device_id=device_id,
        seq=seq,
        boot_id=_field(data, "boot_id", str, "result"),
        result_id=_field(data, "result_id", str, "result"),
        lowest_unacked_seq=low,
        created_at=float(_field(data, "created_at", (int, float), "result")),
        model_id=_field(model, "id", str, "result.model"),
        model_version=_field(model, "version", str, "result.model"),
        kind=kind,
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        body=data,
        raw=raw.decode("utf-8"),
        epoch=_check_epoch(data.get("epoch", ""), PayloadError),
    )


def _check_epoch(epoch: object, error: type[InputError]) -> str:
    if not isinstance(epoch, str) or not _EPOCH_RE.match(epoch):
        raise error(f"epoch {epoch!r} must be 0-64 letters, digits, '_' or '-'")
    return epoch


def join_results(payloads: list[bytes]) -> bytes:
    """Several result payloads as one results-topic message (see MAX_MESSAGE_BYTES)."""
    return b"\n".join(payloads)


def count_results(message: bytes) -> int:
    """How many results a results-topic message carries (without splitting it)."""
    return message.count(b"\n") + 1


def split_results(message: bytes) -> list[bytes]:
    """A results-topic message -> its result payloads, one per line (PayloadError if the whole
    message is too large; each line is then decoded, and dead-lettered, on its own)."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise PayloadError(f"results message: {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return message.split(b"\n")


def encode_ack(ack_seq: int, *, epoch: str | None = None) -> bytes:
    """Fleet -> device: every seq <= ack_seq (of ``epoch``, when given) is committed."""
    body: dict[str, Any] = {"schema": ACK_SCHEMA, "ack_seq": ack_seq}
    if epoch is not None:
        body["epoch"] = epoch
    return json.dumps(body).encode()


def decode_ack(raw: bytes) -> int:
    return decode_ack_epoch(raw)[0]


def decode_ack_epoch(raw: bytes) -> tuple[int, str | None]:
    """(ack_seq, epoch); epoch None: an ack from a fleet older than epochs (whole device)."""
    data = _load_json(raw, "ack")
    _schema_major(data, ACK_SCHEMA, "ack")
    ack_seq = _field(data, "ack_seq", int, "ack")
    if ack_seq < 0:
        raise PayloadError("ack: ack_seq must be >= 0")
    epoch = data.get("epoch")
    return int(ack_seq), None if epoch is None else _check_epoch(epoch, PayloadError)


def encode_status(state: Literal["online", "offline"], **fields: Any) -> bytes:
    """Retained birth (online) / LWT death (offline) on the status topic."""
    return json.dumps({"schema": STATUS_SCHEMA, "state": state, **fields}).encode()


def decode_status(raw: bytes, *, validate: Validate | None = None) -> dict[str, Any]:
    data = _load_json(raw, "status")
    _schema_major(data, STATUS_SCHEMA, "status")
    if validate is not None:
        validate(data)
    if data.get("state") not in ("online", "offline"):
        raise PayloadError("status: state must be 'online' or 'offline'")
    return data


# -- fleet presence (fleet -> devices and other fleets) -------------------------------------
# Each fleet process keeps a retained status on its own topic (its LWT turns it "offline").
# Devices replay their unacknowledged results at once when a fleet process comes online; a
# fleet refuses to start beside an online fleet process that writes to another store (two
# stores on one broker would each keep part of every device's results). Outside PREFIX so that
# no device-topic wildcard matches it.
FLEET_SCHEMA = "edgemed.fleet/1"
FLEET_PREFIX = "edgemed/fleet/v1"
FLEET_STATUS_TOPICS = f"{FLEET_PREFIX}/+/+/status"  # {store_id}/{process_id}/status
_FLEET_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, kw_only=True)
class FleetStatus:
    """One fleet process as it announces itself on the broker."""

    # "starting": claims the broker before ingest subscribes (two fleets starting at once see
    # each other's claim and the later one refuses); "online": ingesting, devices replay now.
    state: Literal["starting", "online", "offline"]
    store_id: str  # the store it writes to (shared by every process of one fleet)
    process_id: str  # this process (a new one at every start)
    group: str | None  # its ingest $share group, None for a plain subscription
    since: float  # Unix time it came online
    at: float  # Unix time of this announcement (re-announced every heartbeat_s)
    heartbeat_s: float


def fleet_topic(store_id: str, process_id: str) -> str:
    for name in (store_id, process_id):
        if not _FLEET_ID_RE.match(name):
            raise InputError(f"fleet id {name!r} must be 1-64 letters, digits, '.', '_', '-'")
    return f"{FLEET_PREFIX}/{store_id}/{process_id}/status"


def encode_fleet_status(status: FleetStatus) -> bytes:
    body = {"schema": FLEET_SCHEMA, **status.__dict__}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_fleet_status(raw: bytes) -> FleetStatus:
    data = _load_json(raw, "fleet status")
    _schema_major(data, FLEET_SCHEMA, "fleet status")
    state = data.get("state")
    if state not in ("starting", "online", "offline"):
        raise PayloadError("fleet status: state must be 'starting', 'online' or 'offline'")
    group = data.get("group")
    if group is not None and not isinstance(group, str):
        raise PayloadError("fleet status: group must be a string or null")
    numbers = [
        _field(data, k, (int, float), "fleet status") for k in ("since", "at", "heartbeat_s")
    ]
    return FleetStatus(
        state=state,
        store_id=_field(data, "store_id", str, "fleet status"),
        process_id=_field(data, "process_id", str, "fleet status"),
        group=group,
        since=float(numbers[0]),
        at=float(numbers[1]),
        heartbeat_s=float(numbers[2]),
    )
