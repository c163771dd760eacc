"""Frame layer of the firmware bridge (``firmware_bridge/PROTOCOL.md`` sections 1-3).

COBS framing with a ``0x00`` terminator, an 8-byte little-endian header and CRC-32/ISO-HDLC
(``zlib.crc32``; check value ``0xCBF43926`` for ``b"123456789"``). :class:`FrameDecoder` is
the incremental receiver: it accepts any chunking of the byte stream, keeps at most one
maximum-size frame of pending input (bounded memory under garbage), and reports every frame
it drops by reason, exactly as the C decoder ``fb_decoder_push`` does.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "FLAG_ACK_REQUEST",
    "HEADER_SIZE",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "VERSION",
    "DecodeError",
    "Frame",
    "FrameDecoder",
    "MsgType",
    "cobs_decode",
    "cobs_encode",
    "crc32",
    "encode_frame",
]

VERSION = 1
HEADER_SIZE = 8
CRC_SIZE = 4
MAX_PAYLOAD = 1024
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
# Pending input bound. COBS decodes L encoded bytes to at least L - L/255 - 1 bytes, so a
# frame whose encoding is this long is an overflow whatever it holds: it need not be kept.
# Overflow itself is judged on the decoded length, as in the C decoder.
_PENDING_LIMIT = 2 * MAX_FRAME
FLAG_ACK_REQUEST = 0x01
_HEADER = struct.Struct("<BBBBHH")


class MsgType(IntEnum):
    HELLO = 0x01
    WAVEFORM = 0x02
    VITALS = 0x03
    ALERT = 0x04
    TIME_REQ = 0x05
    TIME_RESP = 0x06
    ACK = 0x07
    NACK = 0x08
    COMMAND = 0x09


class DecodeError(IntEnum):
    """Why a frame was dropped; the names match the C decoder's ``fb_status`` values."""

    COBS = 2
    OVERFLOW = 3
    SHORT = 4
    CRC = 5
    VERSION = 6
    LENGTH = 7


@dataclass(frozen=True, slots=True)
class Frame:
    """One intact frame: header fields and the payload bytes."""

    type: int
    flags: int
    seq: int
    payload: bytes
    version: int = VERSION


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (zlib's CRC)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` exactly like the C encoder (a full 254-byte run closes its block
    at once, so a trailing run is followed by a ``0x01`` block), without the delimiter."""
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        zero = data.find(0, start, start + 254)
        if zero >= 0:
            out.append(zero - start + 1)
            out += data[start:zero]
            start = zero + 1
        elif n - start >= 254:
            out.append(0xFF)
            out += data[start : start + 254]
            start += 254
        else:
            out.append(n - start + 1)
            out += data[start:]
            return bytes(out)


def cobs_decode(enc: bytes) -> tuple[bytes, bool]:
    """Decode one COBS frame (no delimiter). Returns the bytes decoded and whether the
    structure was valid; on a truncated last block the partial bytes are still returned so
    the caller can tell an overflow from a COBS error as the C decoder does."""
    out = bytearray()
    i = 0
    n = len(enc)
    while i < n:
        code = enc[i]
        end = i + code
        out += enc[i + 1 : end]
        if end > n:
            return bytes(out), False
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out), True


def encode_frame(msg_type: int, payload: bytes, *, seq: int, flags: int = 0) -> bytes:
    """The wire bytes of one frame, delimiter included (byte-identical to ``fb_encode``)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = _HEADER.pack(VERSION, msg_type, flags, 0, seq & 0xFFFF, len(payload)) + payload
    return cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"


def check_frame(raw: bytes) -> Frame | DecodeError:
    """Validate a COBS-decoded frame in the protocol's order: size, CRC, version, length."""
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        return DecodeError.SHORT
    body = raw[:-CRC_SIZE]
    if crc32(body) != int.from_bytes(raw[-CRC_SIZE:], "little"):
        return DecodeError.CRC
    version, msg_type, flags, _reserved, seq, length = _HEADER.unpack_from(body)
    if version != VERSION:
        return DecodeError.VERSION
    if length != len(body) - HEADER_SIZE:
        return DecodeError.LENGTH
    return Frame(msg_type, flags, seq, body[HEADER_SIZE:], version)


class FrameDecoder:
    """Incremental receiver: ``feed()`` any chunk, get the frames it completed.

    Dropped frames are tallied in :attr:`errors` (by :class:`DecodeError`); the decoder is
    always ready for the next delimiter, which is how it resynchronizes after garbage.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._overflow = False  # pending input already exceeded any valid frame
        self.errors: dict[DecodeError, int] = {e: 0 for e in DecodeError}

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                self._buffer(data[start:])
                return frames
            result = self._finish(data[start:end])
            if isinstance(result, Frame):
                frames.append(result)
            elif result is not None:
                self.errors[result] += 1
            start = end + 1

    def _buffer(self, chunk: bytes) -> None:
        if self._overflow:
            return
        self._pending += chunk
        if len(self._pending) > _PENDING_LIMIT:
            self._pending.clear()
            self._overflow = True

    def _finish(self, tail: bytes) -> Frame | DecodeError | None:
        if self._overflow:
            self._overflow = False
            return DecodeError.OVERFLOW
        if self._pending:
            enc = bytes(self._pending) + tail
            self._pending.clear()
        else:
            enc = tail
        if not enc:
            return None  # empty frame: extra delimiters are allowed
        if len(enc) > _PENDING_LIMIT:
            return DecodeError.OVERFLOW
        raw, ok = cobs_decode(enc)
        if len(raw) > MAX_FRAME:
            return DecodeError.OVERFLOW
        if not ok:
            return DecodeError.COBS
        return check_frame(raw)
