"""1% random byte corruption plus random byte drops on a stream the C library encoded from
MIT-BIH record 208: the host never crashes, accepts exactly the frames that arrived intact
(so every corrupted frame is detected and the decoder resynchronizes at the next intact
frame), and its gap statistics equal the truth computed from the injected faults."""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgemed.bridge import Receiver, Waveform

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_bridge"
pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)


@pytest.fixture(scope="module")
def clean_stream(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The whole 5-minute recording as the simulator's firmware code writes it to a UART."""
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "sim"], check=True)
    spec = importlib.util.spec_from_file_location(
        "export_ecg", FIRMWARE / "tools" / "export_ecg.py"
    )
    assert spec is not None and spec.loader is not None
    exporter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exporter)
    work = tmp_path_factory.mktemp("corrupt")
    counts, meta = exporter.export("mitbih208", work / "ecg.i16")
    out = work / "stream.bin"
    args = exporter.sim_args(counts, meta, work / "ecg.i16")
    subprocess.run([str(FIRMWARE / "build" / "fb_sim"), *args, "-o", str(out)], check=True)
    return out.read_bytes()


def _inject(stream: bytes, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """Corrupt 1% of bytes (XOR with 1..255: always a different value) and drop 0.2%."""
    data = np.frombuffer(stream, np.uint8).copy()
    corrupt = rng.random(data.size) < 0.01
    drop = (rng.random(data.size) < 0.002) & ~corrupt
    data[corrupt] ^= rng.integers(1, 256, int(corrupt.sum()), dtype=np.uint8)
    return data[~drop].tobytes(), corrupt | drop


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_corruption_and_drops(clean_stream: bytes, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ends = np.flatnonzero(np.frombuffer(clean_stream, np.uint8) == 0)  # delimiters
    frames = [clean_stream[a + 1 : b] for a, b in itertools.pairwise(ends)]
    bad_stream, touched = _inject(clean_stream, rng)
    # Truth: frame k survives iff nothing from the delimiter before it through its own
    # delimiter was touched (a damaged delimiter merges it with its neighbour).
    hit = np.cumsum(np.concatenate([[0], touched.astype(np.int64)]))
    intact = [bool(hit[b + 1] - hit[a] == 0) for a, b in itertools.pairwise(ends)]

    rx = Receiver()
    got: list[tuple[int, bytes]] = []
    wave_samples: dict[int, int] = {}
    pos = 0
    while pos < len(bad_stream):  # arbitrary read sizes, as from a UART
        step = int(rng.integers(1, 4096))
        for frame, msg in rx.feed(bad_stream[pos : pos + step]):
            got.append((frame.seq, frame.payload))
            if isinstance(msg, Waveform):
                rx.blocks(msg)
        pos += step
    for k, raw in enumerate(frames):
        if msg_is_wave(raw):
            wave_samples[k] = 36
    expected = [k for k, ok in enumerate(intact) if ok]
    assert [seq for seq, _ in got] == expected  # seq == frame index here (< 65536 frames)
    assert all(payload == _payload(frames[k]) for (k, payload) in got)

    s = rx.stats
    first, last = expected[0], expected[-1]
    lost = [k for k in range(first, last + 1) if not intact[k]]
    groups = sum(1 for k in lost if k - 1 not in lost)
    assert s.frames_lost == len(lost) and s.gap_events == groups
    assert s.frames_dropped >= groups and s.seq_resets == 0
    received_waves = sum(1 for k in expected if k in wave_samples)
    if intact[0]:
        first_wave = next(k for k in expected if k in wave_samples)
        lost_samples = sum(wave_samples[k] for k in lost if k > first_wave and k in wave_samples)
        assert s.samples_lost == ({0: lost_samples} if lost_samples else {})
        assert s.samples_received == {0: 36 * received_waves}
    else:  # HELLO lost: units unknown, so no sample is passed on and all count as lost
        assert s.samples_received == {} and s.samples_lost == {0: 36 * received_waves}
    report = {"seed": seed, "frames_sent": len(frames), "bytes_touched": int(touched.sum()),
              "frames_damaged": len(frames) - len(expected), **s.as_dict()}  # fmt: skip
    print(json.dumps(report))


def _payload(frame_cobs: bytes) -> bytes:
    from edgemed.bridge.protocol import cobs_decode

    raw, ok = cobs_decode(frame_cobs)
    assert ok
    return raw[8:-4]


def msg_is_wave(frame_cobs: bytes) -> bool:
    from edgemed.bridge.protocol import cobs_decode

    return cobs_decode(frame_cobs)[0][1] == 2


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-s", "-q"]))
