"""Fuzzing the Python decoder with hypothesis (10,000 examples of arbitrary input in CI): it
never raises, never holds more than a bounded amount of pending input, never accepts a frame
that was not sent intact, and never spends more than the deadline on one input (no hang)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgemed.bridge import (
    ChannelInfo,
    Hello,
    Receiver,
    SampleFormat,
    Waveform,
    encode_frame,
)
from edgemed.bridge.protocol import _PENDING_LIMIT

FUZZ = settings(
    max_examples=10_000,
    deadline=2000,  # ms per input: a hang fails the test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.binary(max_size=4096), st.lists(st.integers(1, 4096), max_size=8))
def test_receiver_survives_any_bytes(data: bytes, chunk_sizes: list[int]) -> None:
    rx = Receiver()
    pos = 0
    for size in [*chunk_sizes, len(data)]:
        for _frame, _msg in rx.feed(data[pos : pos + size]):
            pass
        assert len(rx.decoder._pending) <= _PENDING_LIMIT  # bounded memory
        pos += size
    s = rx.stats
    assert s.bytes_received == len(data)
    assert s.frames_ok + s.frames_dropped <= data.count(0)  # every frame ends at a delimiter


HELLO = Hello(
    device_id="FUZZ",
    firmware=(0, 0, 1),
    channels=(
        ChannelInfo(
            id=0, format=SampleFormat.INT24, rate_mhz=1000, scale=1.0, unit="uV", label="A"
        ),
    ),
)


def _valid_frames(values: list[list[int]]) -> list[bytes]:
    frames = [encode_frame(HELLO.TYPE, HELLO.payload(), seq=0)]
    first = 0
    for i, block in enumerate(values, start=1):
        samples = np.array(block, dtype=np.int32).reshape(-1, 1)
        wf = Waveform(first_sample=first, t_us=0, format=SampleFormat.INT24, channel_ids=(0,),
                      samples=samples)  # fmt: skip
        frames.append(encode_frame(wf.TYPE, wf.payload(), seq=i))
        first += len(block)
    return frames


@settings(max_examples=1_000, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=60), max_size=12),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=10),
)
def test_corruption_is_never_accepted(
    blocks: list[list[int]], edits: list[tuple[float, int]]
) -> None:
    frames = _valid_frames(blocks)
    wire = bytearray(b"".join(frames))
    for where, value in edits:  # overwrite, or delete when value is 0
        i = int(where * len(wire))
        if value:
            wire[i] ^= value
        else:
            del wire[i]
    rx = Receiver()
    sent = {f[:-1] for f in frames}
    for frame, _msg in rx.feed(bytes(wire)):
        again = encode_frame(frame.type, frame.payload, seq=frame.seq, flags=frame.flags)
        assert again[:-1] in sent  # only intact frames get through
    assert rx.stats.frames_ok + rx.stats.frames_lost <= len(frames)
