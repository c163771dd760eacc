"""``edgemed bridge listen PORT``: print decoded traffic and link statistics."""

from __future__ import annotations

import json
import time
from typing import TextIO

from .link import BridgeLink
from .messages import (
    Ack,
    Alert,
    Command,
    CommandCode,
    Hello,
    Message,
    Nack,
    TimeReq,
    TimeResp,
    Unknown,
    Vitals,
    Waveform,
)
from .stream import BridgeStats

__all__ = ["format_message", "listen"]

_ALERTS = {1: "lead-off", 2: "sensor-detached", 3: "battery-low", 4: "battery-critical",
           5: "signal-quality", 6: "over-range", 7: "device-fault"}  # fmt: skip
_VITALS = {1: "HR", 2: "SpO2", 3: "RR", 4: "Temp", 5: "SBP", 6: "DBP", 7: "MAP", 8: "PR", 9: "PI"}


def format_message(msg: Message) -> str:
    """One line per message, for people reading a live link."""
    if isinstance(msg, Hello):
        chans = ", ".join(
            f"{c.id}:{c.label} {c.fs:g} Hz {c.scale:g} {c.unit}/count" for c in msg.channels
        )
        fw = ".".join(map(str, msg.firmware))
        return f"HELLO     device={msg.device_id} firmware={fw} channels=[{chans}]"
    if isinstance(msg, Waveform):
        n, c = msg.samples.shape
        return f"WAVEFORM  first_sample={msg.first_sample} t_us={msg.t_us} channels={list(msg.channel_ids)} samples={n}x{c}"
    if isinstance(msg, Vitals):
        vals = " ".join(f"{_VITALS.get(v.code, v.code)}={v.number}" for v in msg.vitals)
        return f"VITALS    t_us={msg.t_us} {vals}"
    if isinstance(msg, Alert):
        state = "raised" if msg.active else "cleared"
        return f"ALERT     t_us={msg.t_us} {_ALERTS.get(msg.code, msg.code)} {state} severity={msg.severity} channel={msg.channel} value={msg.value}"
    if isinstance(msg, Ack):  # Nack is an Ack subclass
        kind = "NACK" if isinstance(msg, Nack) else "ACK"
        return f"{kind:<9} seq={msg.seq} type={msg.type} status={msg.status}"
    if isinstance(msg, Command):
        return f"COMMAND   {msg.command.name} channel={msg.channel} arg={msg.arg}"
    if isinstance(msg, TimeReq | TimeResp):
        return f"{type(msg).__name__.upper():<9} {msg}"
    assert isinstance(msg, Unknown)
    return f"UNKNOWN   type=0x{msg.type:02x} {len(msg.payload_bytes)} bytes (skipped)"


def listen(
    url: str,
    *,
    out: TextIO,
    baudrate: int = 921600,
    seconds: float | None = None,
    start: bool = False,
    waveforms: bool = True,
    as_json: bool = False,
) -> BridgeStats:
    """Print every message until ``seconds`` have passed (None: until interrupted), then the
    statistics. ``start`` sends COMMAND START first (and STOP at the end)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    with BridgeLink(url, baudrate=baudrate) as link:
        if start:
            link.command(CommandCode.START)
        try:
            for msg in link.messages(idle_timeout=seconds):
                if waveforms or not isinstance(msg, Waveform):
                    print(format_message(msg), file=out, flush=True)
                if isinstance(msg, Waveform):
                    link.receiver.blocks(msg)  # sample-gap accounting
                if deadline is not None and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            pass
        if start:
            link.command(CommandCode.STOP)
        stats = link.stats
    if as_json:
        print(json.dumps(stats.as_dict()), file=out)
    else:
        for key, value in stats.as_dict().items():
            print(f"{key:20} {value}", file=out)
    return stats
