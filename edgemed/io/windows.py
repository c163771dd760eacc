"""Cut a continuous signal, arriving in blocks of any size, into overlapping model windows.

A window never spans a gap: when a block's ``first_index`` skips samples (frames lost on a
serial link), the partial window is dropped and windowing restarts at the new block, so a
model never sees two stretches of signal spliced together as if they were contiguous.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..manifest import StreamWindow
from ._arrays import signal_array
from .rates import RatePlan, plan_rate

__all__ = ["SignalBlock", "Window", "Windower", "stream_windower"]


class SignalBlock(Protocol):
    """A block with its position in the stream (``edgemed.bridge.SampleBlock`` is one)."""

    @property
    def values(self) -> npt.NDArray[Any]: ...  # (samples,) or (channels, samples)

    @property
    def first_index(self) -> int: ...

    @property
    def host_time(self) -> float | None: ...


@dataclass(frozen=True, kw_only=True, eq=False)
class Window:
    data: npt.NDArray[np.float32]  # (channels, samples), C-contiguous
    start_sample: int
    start_time: float


class Windower:
    def __init__(
        self,
        *,
        channels: int,
        samples: int,
        hop: int,
        sampling_rate_hz: float,
        start_time: float | None = None,
    ) -> None:
        if not (channels >= 1 and samples >= 2 and 1 <= hop <= samples and sampling_rate_hz > 0):
            raise InputError(
                "windowing needs channels >= 1, samples >= 2, 1 <= hop <= samples, rate > 0"
            )
        self.channels, self.samples, self.hop, self.rate = channels, samples, hop, sampling_rate_hz
        self._buffer = np.empty((channels, 0), dtype=np.float32)
        self._buffer_start = 0  # stream index of the buffer's first sample
        self._next_index = 0  # stream index the next block should start at
        self._clock: tuple[int, float] | None = (
            None if start_time is None else (0, start_time)
        )  # (sample index, time) anchor
        self.gaps = 0
        self.samples_lost = 0

    def push(self, block: Any) -> Iterator[Window]:
        """Add a block (array or :class:`SignalBlock`); yield every window it completes."""
        if isinstance(block, np.ndarray):
            values, first, host_time = block, self._next_index, None
        else:
            values, first, host_time = block.values, int(block.first_index), block.host_time
        data = signal_array(values, "signal block", channels=self.channels, allow_empty=True)
        if first < self._next_index:
            raise InputError(
                f"signal block starts at sample {first}, before the end of the previous one "
                f"({self._next_index}): blocks must arrive in order"
            )
        if first > self._next_index:  # samples lost: never splice across the gap
            self.gaps += 1
            self.samples_lost += first - self._next_index
            self._buffer = self._buffer[:, :0]
            self._buffer_start = first
        if host_time is not None:
            self._clock = (first, host_time)
        elif self._clock is None:
            self._clock = (first, time.time())
        self._next_index = first + data.shape[1]
        self._buffer = np.concatenate([self._buffer, data], axis=1)
        while self._buffer.shape[1] >= self.samples:
            anchor_index, anchor_time = self._clock
            yield Window(
                data=np.ascontiguousarray(self._buffer[:, : self.samples]),
                start_sample=self._buffer_start,
                start_time=anchor_time + (self._buffer_start - anchor_index) / self.rate,
            )
            self._buffer = self._buffer[:, self.hop :]
            self._buffer_start += self.hop


def stream_windower(
    spec: StreamWindow, fs: float, *, hop: int | None, start_time: float | None
) -> tuple[RatePlan, Windower]:
    """The rate plan and windower of a model's stream (``Pipeline.stream``) whose first block
    arrived at ``fs`` Hz."""
    plan = plan_rate(
        fs,
        model_hz=spec.sampling_rate_hz,
        model_samples=spec.samples,
        model_hop=hop or spec.hop,
        min_hz=spec.min_sampling_rate_hz or spec.sampling_rate_hz,
        max_hz=spec.max_sampling_rate_hz or spec.sampling_rate_hz,
    )
    windower = Windower(
        channels=spec.channels,
        samples=plan.samples,
        hop=plan.hop,
        sampling_rate_hz=fs,
        start_time=start_time,
    )
    return plan, windower
