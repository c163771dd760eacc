"""From decoded frames to per-channel sample streams with timestamps and link statistics.

:class:`Receiver` is transport-free (bytes in, events out), so the same code runs behind a
serial port, a pty, a socket or a captured file. It tracks frame sequence gaps (seq, mod
2^16) and per-channel sample gaps (WAVEFORM ``first_sample``, unwrapped from 32 to 64 bits),
and turns every WAVEFORM into one :class:`SampleBlock` per channel in physical units.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..errors import FrameError
from .messages import ChannelInfo, Hello, Message, Unknown, Waveform, parse_message
from .protocol import DecodeError, Frame, FrameDecoder

__all__ = ["BridgeStats", "Receiver", "SampleBlock"]


@dataclass(frozen=True, kw_only=True, eq=False, slots=True)
class SampleBlock:
    """Consecutive samples of one channel.

    ``first_index`` counts samples of this channel since the stream started (64-bit, gaps
    included), so ``first_index / channel.fs`` is the block's offset in seconds on the
    device's sample clock; ``device_time_us`` is the device clock at the first sample and
    ``host_time`` the same instant on the host's ``time.time()`` clock when a time sync has
    been done (else None).
    """

    channel: ChannelInfo
    first_index: int
    device_time_us: int
    host_time: float | None
    counts: npt.NDArray[np.int32] = field(repr=False)

    @property
    def values(self) -> npt.NDArray[np.float64]:
        """Samples in ``channel.unit`` (counts x scale)."""
        return self.counts.astype(np.float64) * self.channel.scale

    @property
    def fs(self) -> float:
        return self.channel.fs


@dataclass(kw_only=True)
class BridgeStats:
    """Link counters. ``frames_lost`` is derived from sequence numbers, so it also counts
    frames whose corruption left nothing to detect (e.g. a dropped delimiter merges two)."""

    bytes_received: int = 0
    frames_ok: int = 0
    decode_errors: dict[str, int] = field(
        default_factory=lambda: {e.name.lower(): 0 for e in DecodeError}
    )
    malformed_payloads: int = 0
    unknown_types: int = 0
    frames_lost: int = 0
    gap_events: int = 0
    seq_resets: int = 0  # jumps backwards or too far ahead to be a gap (reboot, reorder)
    samples_received: dict[int, int] = field(default_factory=dict)  # per channel id
    samples_lost: dict[int, int] = field(default_factory=dict)

    @property
    def frames_dropped(self) -> int:
        """Frames the decoder saw and rejected (all reasons)."""
        return sum(self.decode_errors.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "bytes_received": self.bytes_received,
            "frames_ok": self.frames_ok,
            "frames_dropped": self.frames_dropped,
            "decode_errors": dict(self.decode_errors),
            "malformed_payloads": self.malformed_payloads,
            "unknown_types": self.unknown_types,
            "frames_lost": self.frames_lost,
            "gap_events": self.gap_events,
            "seq_resets": self.seq_resets,
            "samples_received": dict(self.samples_received),
            "samples_lost": dict(self.samples_lost),
        }


class Receiver:
    """Bytes in (:meth:`feed`), messages and sample blocks out, statistics kept.

    ``clock_offset_us`` (device minus host, from a TIME_REQ/TIME_RESP exchange) converts
    device timestamps to host time; the link sets it, tests may too.
    """

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.stats = BridgeStats()
        self.hello: Hello | None = None
        self.clock_offset_us: float | None = None
        self._channels: dict[int, ChannelInfo] = {}
        self._next_seq: int | None = None
        self._next_sample: dict[int, int] = {}  # unwrapped index expected next, per channel

    def feed(self, data: bytes) -> Iterator[tuple[Frame, Message]]:
        """Decode ``data``; yield each intact, well-formed frame with its message."""
        self.stats.bytes_received += len(data)
        frames = self.decoder.feed(data)
        for err, n in self.decoder.errors.items():
            self.stats.decode_errors[err.name.lower()] = n
        for frame in frames:
            self.stats.frames_ok += 1
            self._track_seq(frame.seq)
            try:
                msg = parse_message(frame)
            except FrameError:
                self.stats.malformed_payloads += 1
                continue
            if isinstance(msg, Unknown):
                self.stats.unknown_types += 1
            elif isinstance(msg, Hello):
                self._on_hello(msg)
            yield frame, msg

    def _track_seq(self, seq: int) -> None:
        if self._next_seq is not None:
            ahead = (seq - self._next_seq) & 0xFFFF
            if 0 < ahead < 0x8000:
                self.stats.frames_lost += ahead
                self.stats.gap_events += 1
            elif ahead != 0:
                self.stats.seq_resets += 1
        self._next_seq = (seq + 1) & 0xFFFF

    def _on_hello(self, hello: Hello) -> None:
        # A HELLO starts a new stream: new channel table, fresh sample accounting.
        self.hello = hello
        self._channels = {c.id: c for c in hello.channels}
        self._next_sample.clear()

    def knows_channels(self, wf: Waveform) -> bool:
        """Whether a HELLO has declared every channel of ``wf`` (else its units are unknown)."""
        return all(cid in self._channels for cid in wf.channel_ids)

    def blocks(self, wf: Waveform) -> list[SampleBlock]:
        """Split a WAVEFORM into per-channel blocks, updating the sample-gap accounting.
        Channels not declared by a HELLO yet are counted as lost (units are unknown)."""
        out = []
        n = wf.samples.shape[0]
        for pos, cid in enumerate(wf.channel_ids):
            info = self._channels.get(cid)
            if info is None:
                self.stats.samples_lost[cid] = self.stats.samples_lost.get(cid, 0) + n
                continue
            first = self._unwrap(cid, wf.first_sample, n)
            host = None
            if self.clock_offset_us is not None:
                host = (wf.t_us - self.clock_offset_us) / 1e6
            counts = np.ascontiguousarray(wf.samples[:, pos])
            out.append(
                SampleBlock(
                    channel=info,
                    first_index=first,
                    device_time_us=wf.t_us,
                    host_time=host,
                    counts=counts,
                )
            )
        return out

    def _unwrap(self, cid: int, first32: int, n: int) -> int:
        expected = self._next_sample.get(cid)
        if expected is None:
            first = first32
        else:
            delta = (first32 - expected) & 0xFFFFFFFF
            if delta >= 0x80000000:  # behind: a repeat or a device restart without HELLO
                delta -= 0x100000000
            first = expected + delta
            if delta > 0:
                self.stats.samples_lost[cid] = self.stats.samples_lost.get(cid, 0) + delta
        self._next_sample[cid] = first + n
        self.stats.samples_received[cid] = self.stats.samples_received.get(cid, 0) + n
        return first
