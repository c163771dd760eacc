"""Pipeline.stream fed by firmware-bridge SampleBlocks: device sample indices and host times
become window provenance, and a window never spans frames lost on the link."""

from __future__ import annotations

import numpy as np
import pytest

import edgemed
from edgemed.bridge.messages import ChannelInfo, SampleFormat
from edgemed.bridge.stream import SampleBlock
from edgemed.tasks import task_spec

MODEL = "eeg-seizure-watch"


@pytest.fixture(scope="module")
def seizure_watch() -> edgemed.Pipeline:
    return edgemed.load(MODEL)


def blocks(signal: np.ndarray, first: int, t0: float, size: int, scale: float) -> list[SampleBlock]:
    """The signal as an EEG amplifier would send it: int32 counts x scale, in blocks."""
    channel = ChannelInfo(
        id=0, format=SampleFormat.INT24, rate_mhz=500_000, scale=scale, unit="uV", label="Fp1-F7"
    )
    counts = np.round(signal / scale).astype(np.int32)
    return [
        SampleBlock(
            channel=channel,
            first_index=first + i,
            device_time_us=int((first + i) / 500 * 1e6),
            host_time=t0 + i / 500,
            counts=counts[i : i + size],
        )
        for i in range(0, counts.size, size)
    ]


def test_bridge_blocks_stream_like_arrays_and_gaps_restart_windows(
    seizure_watch: edgemed.Pipeline,
) -> None:
    spec = seizure_watch.manifest.stream
    assert spec is not None and spec.channels == 1
    windows = task_spec(seizure_watch.manifest).golden_inputs(seizure_watch.manifest)
    golden = np.concatenate([np.asarray(w)[0] for w in windows])  # real-length EEG windows
    scale = 0.01
    quantised = np.round(golden / scale) * scale  # what arrives after int24 counts
    cut = spec.samples + spec.hop  # two windows before the gap, two after it
    first_part, second_part = quantised[:cut], quantised[cut : 2 * cut]
    stream = blocks(first_part, 0, 1_700_000_000.0, 1000, scale)
    gap = 7_000  # samples lost on the link
    restart = first_part.size + gap
    stream += blocks(second_part, restart, 1_700_000_000.0 + restart / 500, 777, scale)
    results = list(seizure_watch.stream(stream))

    starts = [r.provenance.window.start_sample for r in results if r.provenance.window]
    # No window spans the gap: the first after it starts at the first sample received again.
    assert starts == [0, spec.hop, restart, restart + spec.hop]
    for r in results:
        w = r.provenance.window
        assert w is not None and w.samples == spec.samples and w.sampling_rate_hz == 500.0
        assert w.start_time == pytest.approx(1_700_000_000.0 + w.start_sample / 500, abs=1e-6)
        direct = seizure_watch(
            np.ascontiguousarray(
                np.concatenate([first_part, np.zeros(gap), second_part])[
                    w.start_sample : w.start_sample + spec.samples
                ],
                dtype=np.float32,
            )
        )
        assert isinstance(r, edgemed.SeizureProbability)
        assert isinstance(direct, edgemed.SeizureProbability)
        assert r.probability == pytest.approx(direct.probability, abs=1e-6)
