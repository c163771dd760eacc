"""Message payloads of the firmware bridge (``firmware_bridge/PROTOCOL.md`` section 4).

Each message is a frozen dataclass with ``TYPE`` and ``payload()``; :func:`parse_message`
turns an intact frame back into one. Parsing follows the protocol's extension rule: fields
are read in order, trailing bytes are ignored, a payload shorter than its fields raises
:class:`~edgemed.errors.FrameError`. Types this version does not know become :class:`Unknown`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ..errors import FrameError
from .protocol import Frame, MsgType

__all__ = [
    "Ack",
    "Alert",
    "ChannelInfo",
    "Command",
    "CommandCode",
    "Hello",
    "Message",
    "Nack",
    "SampleFormat",
    "TimeReq",
    "TimeResp",
    "Unknown",
    "Vital",
    "Vitals",
    "Waveform",
    "parse_message",
]

MAX_STR = 32
MAX_CHANNELS = 64
VITAL_INVALID = -(2**31)


class SampleFormat(IntEnum):
    INT16 = 1
    INT24 = 2


class CommandCode(IntEnum):
    START = 1
    STOP = 2
    SET_RATE = 3
    SEND_HELLO = 4


class _Reader:
    """Bounds-checked little-endian cursor over one payload."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FrameError(f"{self.what}: payload of {len(self.data)} bytes is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        st = struct.Struct("<" + fmt)
        return st.unpack(self.take(st.size))

    def text(self) -> str:
        (n,) = self.unpack("B")
        if n > MAX_STR:
            raise FrameError(f"{self.what}: string of {n} bytes exceeds {MAX_STR}")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError(f"{self.what}: string is not UTF-8") from exc


def _text(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > MAX_STR:
        raise ValueError(f"string {s!r} exceeds {MAX_STR} bytes")
    return bytes([len(raw)]) + raw


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelInfo:
    id: int
    format: SampleFormat
    rate_mhz: int  # sampling rate in millihertz
    scale: float  # physical units per count (a float32 on the wire)
    unit: str
    label: str

    @property
    def fs(self) -> float:
        """Sampling rate in Hz."""
        return self.rate_mhz / 1000.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Hello:
    TYPE: ClassVar[int] = MsgType.HELLO
    device_id: str
    firmware: tuple[int, int, int]
    channels: tuple[ChannelInfo, ...]

    def payload(self) -> bytes:
        out = bytearray(_text(self.device_id))
        out += struct.pack("<4B", *self.firmware, len(self.channels))
        for c in self.channels:
            out += struct.pack("<BBIf", c.id, c.format, c.rate_mhz, c.scale)
            out += _text(c.unit) + _text(c.label)
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes) -> Hello:
        r = _Reader(data, "HELLO")
        device_id = r.text()
        major, minor, patch, n = r.unpack("4B")
        if not 1 <= n <= MAX_CHANNELS:
            raise FrameError(f"HELLO: {n} channels, expected 1..{MAX_CHANNELS}")
        channels = []
        for _ in range(n):
            cid, fmt, rate, scale = r.unpack("BBIf")
            if fmt not in SampleFormat.__members__.values():
                raise FrameError(f"HELLO: channel {cid} has unknown sample format {fmt}")
            unit, label = r.text(), r.text()
            channels.append(
                ChannelInfo(
                    id=cid,
                    format=SampleFormat(fmt),
                    rate_mhz=rate,
                    scale=scale,
                    unit=unit,
                    label=label,
                )
            )
        return cls(device_id=device_id, firmware=(major, minor, patch), channels=tuple(channels))


@dataclass(frozen=True, kw_only=True, eq=False, slots=True)
class Waveform:
    """One sample block; ``samples`` is int32 (n_samples, n_channels), sample-major."""

    TYPE: ClassVar[int] = MsgType.WAVEFORM
    first_sample: int
    t_us: int
    format: SampleFormat
    channel_ids: tuple[int, ...]
    samples: npt.NDArray[np.int32] = field(repr=False)

    def payload(self) -> bytes:
        s = np.asarray(self.samples)
        if s.ndim != 2 or s.shape[1] != len(self.channel_ids) or s.shape[0] < 1:
            raise ValueError(
                f"samples: expected (n_samples, {len(self.channel_ids)}), got {s.shape}"
            )
        bits = 16 if self.format == SampleFormat.INT16 else 24
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if s.size and (s.min() < lo or s.max() > hi):
            raise ValueError(f"samples do not fit int{bits}: never clipped silently")
        head = struct.pack(
            "<IQBBH", self.first_sample, self.t_us, self.format, s.shape[1], s.shape[0]
        )
        if self.format == SampleFormat.INT16:
            body = s.astype("<i2").tobytes()
        else:
            body = s.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        return head + bytes(self.channel_ids) + body

    @classmethod
    def parse(cls, data: bytes) -> Waveform:
        r = _Reader(data, "WAVEFORM")
        first, t_us, fmt, n_ch, n_s = r.unpack("IQBBH")
        if fmt not in (1, 2) or not 1 <= n_ch <= MAX_CHANNELS or n_s < 1:
            raise FrameError(f"WAVEFORM: format {fmt}, {n_ch} channels, {n_s} samples")
        ids = tuple(r.take(n_ch))
        width = 2 if fmt == SampleFormat.INT16 else 3
        raw = r.take(width * n_ch * n_s)
        if fmt == SampleFormat.INT16:
            samples = np.frombuffer(raw, "<i2").astype(np.int32)
        else:
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            u = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            samples = (u ^ 0x800000) - 0x800000  # sign-extend 24 -> 32 bits
        return cls(
            first_sample=first,
            t_us=t_us,
            format=SampleFormat(fmt),
            channel_ids=ids,
            samples=samples.reshape(n_s, n_ch),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Vital:
    code: int  # 1 HR, 2 SpO2, 3 RR, 4 temperature, 5-7 BP sys/dia/mean, 8 pulse, 9 PI
    exponent: int
    value: int

    @property
    def number(self) -> float | None:
        """value x 10^exponent, or None when the device marks it invalid."""
        return None if self.value == VITAL_INVALID else self.value * 10.0**self.exponent


@dataclass(frozen=True, kw_only=True, slots=True)
class Vitals:
    TYPE: ClassVar[int] = MsgType.VITALS
    t_us: int
    vitals: tuple[Vital, ...]

    def payload(self) -> bytes:
        out = struct.pack("<QB", self.t_us, len(self.vitals))
        return out + b"".join(struct.pack("<Bbi", v.code, v.exponent, v.value) for v in self.vitals)

    @classmethod
    def parse(cls, data: bytes) -> Vitals:
        r = _Reader(data, "VITALS")
        t_us, n = r.unpack("QB")
        items = (r.unpack("Bbi") for _ in range(n))
        return cls(t_us=t_us, vitals=tuple(Vital(code=c, exponent=e, value=v) for c, e, v in items))


@dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    TYPE: ClassVar[int] = MsgType.ALERT
    t_us: int
    code: (
        int  # 1 lead off, 2 sensor detached, 3/4 battery low/critical, 5 quality, 6 range, 7 fault
    )
    severity: int  # 0 info .. 3 high
    channel: int  # 0xFF: the whole device
    active: bool
    value: int

    def payload(self) -> bytes:
        return struct.pack(
            "<QBBBBh", self.t_us, self.code, self.severity, self.channel, self.active, self.value
        )

    @classmethod
    def parse(cls, data: bytes) -> Alert:
        t, code, sev, ch, active, value = _Reader(data, "ALERT").unpack("QBBBBh")
        return cls(t_us=t, code=code, severity=sev, channel=ch, active=bool(active), value=value)


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeReq:
    TYPE: ClassVar[int] = MsgType.TIME_REQ
    t1: int

    def payload(self) -> bytes:
        return struct.pack("<Q", self.t1)

    @classmethod
    def parse(cls, data: bytes) -> TimeReq:
        return cls(t1=_Reader(data, "TIME_REQ").unpack("Q")[0])


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeResp:
    TYPE: ClassVar[int] = MsgType.TIME_RESP
    t1: int
    t2: int
    t3: int

    def payload(self) -> bytes:
        return struct.pack("<QQQ", self.t1, self.t2, self.t3)

    @classmethod
    def parse(cls, data: bytes) -> TimeResp:
        t1, t2, t3 = _Reader(data, "TIME_RESP").unpack("QQQ")
        return cls(t1=t1, t2=t2, t3=t3)


@dataclass(frozen=True, kw_only=True, slots=True)
class Ack:
    TYPE: ClassVar[int] = MsgType.ACK
    seq: int
    type: int
    status: int = 0

    def payload(self) -> bytes:
        return struct.pack("<HBB", self.seq, self.type, self.status)

    @classmethod
    def parse(cls, data: bytes) -> Ack:
        seq, typ, status = _Reader(data, cls.__name__.upper()).unpack("HBB")
        return cls(seq=seq, type=typ, status=status)


@dataclass(frozen=True, kw_only=True, slots=True)
class Nack(Ack):
    """Refusal of an intact frame: status 1 unknown type, 2 bad argument, 3 unsupported,
    4 busy, 5 malformed."""

    TYPE: ClassVar[int] = MsgType.NACK


@dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    TYPE: ClassVar[int] = MsgType.COMMAND
    command: CommandCode
    channel: int = 0xFF
    arg: int = 0

    def payload(self) -> bytes:
        return struct.pack("<BBI", self.command, self.channel, self.arg)

    @classmethod
    def parse(cls, data: bytes) -> Command:
        cmd, ch, arg = _Reader(data, "COMMAND").unpack("BBI")
        if cmd not in CommandCode.__members__.values():
            raise FrameError(f"COMMAND: unknown command {cmd}")
        return cls(command=CommandCode(cmd), channel=ch, arg=arg)


@dataclass(frozen=True, kw_only=True, slots=True)
class Unknown:
    """A CRC-valid frame of a type this version does not know: skipped, never misparsed."""

    type: int
    payload_bytes: bytes

    def payload(self) -> bytes:
        return self.payload_bytes


Message = Hello | Waveform | Vitals | Alert | TimeReq | TimeResp | Ack | Nack | Command | Unknown
_PARSERS = {
    cls.TYPE: cls.parse
    for cls in (Hello, Waveform, Vitals, Alert, TimeReq, TimeResp, Ack, Nack, Command)
}


def parse_message(frame: Frame) -> Message:
    """The message an intact frame carries; raises FrameError when its payload is malformed."""
    parser = _PARSERS.get(frame.type)
    if parser is None:
        return Unknown(type=frame.type, payload_bytes=frame.payload)
    return parser(frame.payload)
