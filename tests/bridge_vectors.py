"""Shared test vectors of the firmware bridge (firmware_bridge/test_vectors/), loaded for tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.bridge import (
    Ack,
    Alert,
    ChannelInfo,
    Command,
    CommandCode,
    Hello,
    Message,
    Nack,
    SampleFormat,
    TimeReq,
    TimeResp,
    Vital,
    Vitals,
    Waveform,
)

# The wheel test runs the unit tests outside the source tree and points here with the variable.
FIRMWARE = Path(
    os.environ.get(
        "EDGEMED_FIRMWARE_BRIDGE", Path(__file__).resolve().parents[1] / "firmware_bridge"
    )
)
VECTORS = FIRMWARE / "test_vectors"


def frames_hex() -> list[tuple[str, str, bytes]]:
    """(name, expected decoder outcome, wire bytes) per line of frames.hex."""
    rows = []
    for line in (VECTORS / "frames.hex").read_text().splitlines():
        name, expect, hexbytes = line.split(" ")
        rows.append((name, expect, bytes.fromhex(hexbytes)))
    return rows


def messages_json() -> dict[str, Any]:
    frames: dict[str, Any] = json.loads((VECTORS / "messages.json").read_text())["frames"]
    return frames


def _samples(spec: Any) -> np.ndarray:
    if isinstance(spec, dict):
        return np.full(spec["shape"], spec["fill"], dtype=np.int32)
    return np.array(spec, dtype=np.int32)


def build(msg_type: int, fields: dict[str, Any]) -> Message:
    """The message object the JSON fields describe (the Python side's own construction)."""
    f = dict(fields)
    if msg_type == 1:
        chans = tuple(
            ChannelInfo(**{**c, "format": SampleFormat(c["format"])}) for c in f["channels"]
        )
        return Hello(device_id=f["device_id"], firmware=tuple(f["firmware"]), channels=chans)
    if msg_type == 2:
        return Waveform(
            first_sample=f["first_sample"],
            t_us=f["t_us"],
            format=SampleFormat(f["format"]),
            channel_ids=tuple(f["channel_ids"]),
            samples=_samples(f["samples"]),
        )
    if msg_type == 3:
        return Vitals(t_us=f["t_us"], vitals=tuple(Vital(**v) for v in f["vitals"]))
    if msg_type == 9:
        return Command(command=CommandCode(f["command"]), channel=f["channel"], arg=f["arg"])
    simple: dict[int, Any] = {4: Alert, 5: TimeReq, 6: TimeResp, 7: Ack, 8: Nack}
    result: Message = simple[msg_type](**f)
    return result
