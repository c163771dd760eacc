"""Frame layer and messages of edgemed.bridge against the shared C test vectors and the C
decoder itself (built here as a shared library and driven through ctypes)."""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess

import numpy as np
import pytest
from bridge_vectors import FIRMWARE, build, frames_hex, messages_json
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemed.bridge import (
    Ack,
    FrameDecoder,
    Hello,
    Unknown,
    Waveform,
    crc32,
    encode_frame,
    parse_message,
)
from edgemed.bridge.protocol import MAX_PAYLOAD, cobs_decode, cobs_encode

OUTCOME = {"crc": "CRC", "version": "VERSION", "length": "LENGTH", "short": "SHORT",
           "cobs": "COBS", "overflow": "OVERFLOW"}  # fmt: skip


def test_crc_is_crc32_iso_hdlc() -> None:
    assert crc32(b"123456789") == 0xCBF43926


def _equal(a: object, b: object) -> bool:
    if isinstance(a, Waveform) and isinstance(b, Waveform):
        return (a.first_sample, a.t_us, a.format, a.channel_ids) == (
            b.first_sample, b.t_us, b.format, b.channel_ids
        ) and np.array_equal(a.samples, b.samples)  # fmt: skip
    if isinstance(a, Hello) and isinstance(b, Hello):
        # scale is a float32 on the wire: compare at that precision
        f32 = [struct.unpack("<f", struct.pack("<f", c.scale))[0] for c in a.channels]
        return [c.scale for c in b.channels] == f32 and (a.device_id, a.firmware) == (
            b.device_id, b.firmware
        ) and [(c.id, c.format, c.rate_mhz, c.unit, c.label) for c in a.channels] == [
            (c.id, c.format, c.rate_mhz, c.unit, c.label) for c in b.channels
        ]  # fmt: skip
    return a == b


@pytest.mark.parametrize("name,expect,wire", frames_hex(), ids=[r[0] for r in frames_hex()])
def test_shared_vectors(name: str, expect: str, wire: bytes) -> None:
    dec = FrameDecoder()
    frames = dec.feed(wire)
    if expect != "ok":
        assert frames == []
        assert {e.name: n for e, n in dec.errors.items() if n} == {OUTCOME[expect]: 1}
        return
    assert len(frames) == 1 and not any(dec.errors.values())
    spec = messages_json()[name]
    frame = frames[0]
    assert (frame.type, frame.flags, frame.seq) == (spec["type"], spec["flags"], spec["seq"])
    if "payload_hex" in spec:
        assert frame.payload == bytes.fromhex(spec["payload_hex"])
        payload = frame.payload
    else:
        payload = build(spec["type"], spec["message"]).payload()
    # Python encodes the same fields to the same bytes as the C library.
    assert encode_frame(spec["type"], payload, seq=spec["seq"], flags=spec["flags"]) == wire
    msg = parse_message(frame)
    if "message" in spec:
        assert _equal(build(spec["type"], spec["message"]), msg), name
    else:
        assert isinstance(msg, Unknown) and msg.type == spec["type"]


def test_vectors_cover_every_message_type_and_outcome() -> None:
    rows = frames_hex()
    assert {e for _, e, _ in rows} == {"ok", *OUTCOME}
    assert {s["type"] for s in messages_json().values()} >= set(range(1, 10))
    assert isinstance(parse_message(FrameDecoder().feed(dict(
        (n, w) for n, _, w in rows)["ack_extended"])[0]), Ack)  # fmt: skip


@given(st.binary(max_size=1100))
def test_cobs_roundtrip(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc and len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == (data, True)


@given(st.binary(max_size=MAX_PAYLOAD), st.integers(0, 0xFFFF), st.data())
def test_frames_roundtrip_in_any_chunking(payload: bytes, seq: int, data: st.DataObject) -> None:
    wire = b"\x00garbage\x00" + encode_frame(0x02, payload, seq=seq) * 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    dec = FrameDecoder()
    frames = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        frames += dec.feed(wire[a:b])
    assert [(f.seq, f.payload) for f in frames] == [(seq, payload)] * 2
    # b"garbage" is one COBS block claiming 0x67 - 1 bytes: a structural error, then resync.
    assert {e.name: n for e, n in dec.errors.items() if n} == {"COBS": 1}


# --- differential test against the C decoder ------------------------------------------------


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint8), ("type", ctypes.c_uint8),
                ("flags", ctypes.c_uint8), ("seq", ctypes.c_uint16),
                ("length", ctypes.c_uint16)]  # fmt: skip


class _CFrame(ctypes.Structure):
    _fields_ = [("header", _Header), ("payload", ctypes.POINTER(ctypes.c_uint8))]


@pytest.fixture(scope="module")
def libfb(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the firmware_bridge library")
    src = FIRMWARE / "src"
    out = tmp_path_factory.mktemp("libfb") / "libfb.so"
    subprocess.run([cc, "-std=c99", "-O1", "-shared", "-fPIC", str(src / "fb_frame.c"),
                    str(src / "fb_msg.c"), "-o", str(out)], check=True)  # fmt: skip
    return ctypes.CDLL(str(out))


def _c_decode(lib: ctypes.CDLL, stream: bytes) -> list[tuple[str, bytes]]:
    names = {1: "ok", 2: "COBS", 3: "OVERFLOW", 4: "SHORT", 5: "CRC", 6: "VERSION", 7: "LENGTH"}
    dec = ctypes.create_string_buffer(4096)
    lib.fb_decoder_init(dec)
    frame = _CFrame()
    out = []
    for byte in stream:
        st_ = lib.fb_decoder_push(dec, ctypes.c_uint8(byte), ctypes.byref(frame))
        if st_:
            body = b""
            if st_ == 1:
                body = bytes(frame.payload[: frame.header.length])
            out.append((names[st_], body))
    return out


def _py_decode(stream: bytes) -> list[tuple[str, bytes]]:
    dec = FrameDecoder()
    out: list[tuple[str, bytes]] = []
    for i in range(len(stream)):  # byte at a time, like the C decoder
        before = dict(dec.errors)
        for f in dec.feed(stream[i : i + 1]):
            out.append(("ok", f.payload))
        out += [(e.name, b"") for e, n in dec.errors.items() if n != before[e]]
    return out


_wire_pieces = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda p, s: encode_frame(3, p, seq=s), st.binary(max_size=300), st.integers(0, 9)),
    st.just(b"\x00"),
    st.just(b"\x01" * 1100),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_wire_pieces, max_size=6), st.data())
def test_python_and_c_decoders_agree(
    libfb: ctypes.CDLL, pieces: list[bytes], data: st.DataObject
) -> None:
    stream = bytearray(b"".join(pieces))
    for _ in range(data.draw(st.integers(0, 3))):  # corrupt a few bytes
        if stream:
            i = data.draw(st.integers(0, len(stream) - 1))
            stream[i] ^= data.draw(st.integers(1, 255))
    assert _py_decode(bytes(stream)) == _c_decode(libfb, bytes(stream))
