"""Receiver statistics, sample reassembly and the pyserial link (real pyserial, loop://)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from edgemed.bridge import (
    Ack,
    Alert,
    BridgeLink,
    ChannelInfo,
    Command,
    CommandCode,
    Hello,
    Receiver,
    SampleFormat,
    Unknown,
    Vitals,
    Waveform,
    encode_frame,
)
from edgemed.errors import BridgeError

CHANNELS = (
    ChannelInfo(id=0, format=SampleFormat.INT16, rate_mhz=360000, scale=0.005, unit="mV",
                label="MLII"),
    ChannelInfo(id=3, format=SampleFormat.INT16, rate_mhz=360000, scale=0.005, unit="mV",
                label="V1"),
)  # fmt: skip
HELLO = Hello(device_id="EM-TEST", firmware=(1, 0, 0), channels=CHANNELS)


def _wave(first: int, n: int = 10, t_us: int = 0) -> Waveform:
    samples = (np.arange(n * 2, dtype=np.int32) + first % 1000).reshape(n, 2)
    return Waveform(first_sample=first & 0xFFFFFFFF, t_us=t_us, format=SampleFormat.INT16,
                    channel_ids=(0, 3), samples=samples)  # fmt: skip


def _frame(msg: Hello | Waveform | Alert | Vitals, seq: int) -> bytes:
    return encode_frame(msg.TYPE, msg.payload(), seq=seq)


def _run(rx: Receiver, wire: bytes) -> list[object]:
    out: list[object] = []
    for _, msg in rx.feed(wire):
        out += rx.blocks(msg) if isinstance(msg, Waveform) else [msg]
    return out


def test_blocks_per_channel_with_units_and_timestamps() -> None:
    rx = Receiver()
    rx.clock_offset_us = 1_000_000.0  # device clock is 1 s ahead of the host
    out = _run(rx, _frame(HELLO, 0) + _frame(_wave(0, t_us=5_000_000), 1))
    assert isinstance(out[0], Hello)
    a, b = out[1:]
    assert [a.channel.label, b.channel.label] == ["MLII", "V1"]  # type: ignore[attr-defined]
    assert np.array_equal(b.counts, np.arange(1, 20, 2))  # type: ignore[attr-defined]
    assert np.allclose(a.values, np.arange(0, 20, 2) * 0.005, rtol=1e-6)  # type: ignore[attr-defined]
    assert a.host_time == pytest.approx(4.0) and a.fs == 360.0  # type: ignore[attr-defined]


def test_sequence_and_sample_gaps_are_counted_exactly() -> None:
    rx = Receiver()
    wire = _frame(HELLO, 65530) + _frame(_wave(0), 65531)
    wire += _frame(_wave(30), 2)  # seq 65532..1 lost (6 frames), samples 10..29 lost (20)
    wire += _frame(_wave(40), 3)
    blocks = [b for b in _run(rx, wire) if not isinstance(b, Hello)]
    s = rx.stats
    assert (s.frames_ok, s.frames_lost, s.gap_events, s.seq_resets) == (4, 6, 1, 0)
    assert s.samples_received == {0: 30, 3: 30} and s.samples_lost == {0: 20, 3: 20}
    assert [b.first_index for b in blocks] == [0, 0, 30, 30, 40, 40]  # type: ignore[attr-defined]


def test_sample_counter_unwraps_past_32_bits() -> None:
    rx = Receiver()
    first = 2**32 - 5
    blocks = _run(rx, _frame(HELLO, 0) + _frame(_wave(first), 1) + _frame(_wave(first + 10), 2))
    assert [b.first_index for b in blocks[1:]] == [first, first, first + 10, first + 10]  # type: ignore[attr-defined]
    assert rx.stats.samples_lost == {}


def test_hello_restarts_accounting_and_unknown_channels_are_not_guessed() -> None:
    rx = Receiver()
    assert _run(rx, _frame(_wave(0), 0)) == []  # no HELLO yet: units unknown, counted lost
    assert rx.stats.samples_lost == {0: 10, 3: 10}
    _run(rx, _frame(HELLO, 1) + _frame(_wave(500), 2) + _frame(HELLO, 0) + _frame(_wave(0), 1))
    assert rx.stats.samples_lost == {0: 10, 3: 10}  # the reboot did not count as a gap
    assert rx.stats.seq_resets == 1


def test_unknown_types_and_malformed_payloads_are_skipped() -> None:
    rx = Receiver()
    wire = encode_frame(0x42, b"future", seq=0) + encode_frame(0x02, b"\x01\x02", seq=1)
    wire += _frame(Vitals(t_us=1, vitals=()), 2)
    out = _run(rx, wire)
    assert isinstance(out[0], Unknown) and isinstance(out[1], Vitals)
    assert (rx.stats.unknown_types, rx.stats.malformed_payloads, rx.stats.frames_ok) == (1, 1, 3)


def test_waveform_never_clips() -> None:
    bad = Waveform(first_sample=0, t_us=0, format=SampleFormat.INT16, channel_ids=(0,),
                   samples=np.array([[40000]], dtype=np.int32))  # fmt: skip
    with pytest.raises(ValueError, match="never clipped"):
        bad.payload()


def test_link_over_pyserial_loop_streams_and_acknowledges_alerts() -> None:
    with BridgeLink("loop://") as link:
        link.send(HELLO)
        link.send(_wave(0))
        alert_seq = link.send(
            Alert(t_us=9, code=1, severity=2, channel=0, active=True, value=0), ack_request=True
        )
        msgs = list(link.messages(idle_timeout=0.3))
    kinds = [type(m).__name__ for m in msgs]
    assert kinds == ["Hello", "Waveform", "Alert", "Ack"]
    assert msgs[-1] == Ack(seq=alert_seq, type=Alert.TYPE, status=0)
    assert link.stats.frames_ok == 4 and link.stats.frames_dropped == 0


def test_link_asks_for_hello_when_channels_are_unknown() -> None:
    with BridgeLink("loop://") as link:
        link.send(_wave(0))  # a waveform before any HELLO (the HELLO was lost)
        msgs = list(link.messages(idle_timeout=0.3))
    # loop:// returns the SEND_HELLO request itself: proof it went out on the line.
    assert [type(m).__name__ for m in msgs] == ["Waveform", "Command"]
    assert msgs[1] == Command(command=CommandCode.SEND_HELLO)


def test_link_stream_yields_blocks() -> None:
    with BridgeLink("loop://") as link:
        for msg in (HELLO, _wave(0), _wave(10)):
            link.send(msg)
        blocks = list(link.stream(idle_timeout=0.3))
    assert [(b.channel.id, b.first_index) for b in blocks] == [(0, 0), (3, 0), (0, 10), (3, 10)]


def test_link_errors_are_bridge_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BridgeError, match="cannot open"):
        BridgeLink("/nonexistent/tty")
    # loop:// sends the COMMAND back: the host refuses commands (NACK 3 unsupported), so the
    # command fails loudly instead of being acknowledged by the host itself.
    with (
        BridgeLink("loop://") as link,
        pytest.raises(BridgeError, match=r"refused START \(NACK 3\)"),
    ):
        link.command(CommandCode.START, timeout=0.5)
    master, slave = os.openpty()  # a real pty whose device end never answers
    try:
        with BridgeLink(os.ttyname(slave)) as link, pytest.raises(BridgeError, match="no answer"):
            link.command(CommandCode.STOP, timeout=0.3)
        assert os.read(master, 64).endswith(b"\x00")  # the command did go out on the line
    finally:
        os.close(master)
        os.close(slave)
    monkeypatch.setitem(sys.modules, "serial", None)  # pyserial not installed
    with pytest.raises(BridgeError, match=r"pip install 'edgemed\[bridge\]'"):
        BridgeLink("loop://")
