"""Host-side decode throughput of the firmware bridge vs the data rate of a 12-lead ECG at 1 kHz.

The stream is pydicom's real 12-lead ECG (1 kHz, int16) framed by the C firmware library
(``fb_sim -o``: 36 samples x 12 leads per WAVEFORM frame, ~0.9 KB on the wire), repeated to
~60 s of signal. Two figures, medians of 5 runs:
  * decode: ``Receiver.feed`` + per-channel ``SampleBlock`` s in physical units, 4 KiB reads
    from memory (the host's CPU cost alone);
  * pty: the same stream from the C simulator through a real pseudo-terminal into
    ``BridgeLink.stream`` (kernel tty path included; the simulator shares the CPU).
Both as multiples of the real-time rate (12 leads x 1,000 samples/s); the target is >= 20x.
Usage: python benchmarks/bench_bridge.py [--quick]   (needs make, a C compiler, pydicom, pyserial)
``--quick``: one run of each instead of five (testing, not figures).
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import machine_info

from edgemed.bridge import BridgeLink, CommandCode, Receiver, Waveform

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_bridge"
REALTIME = 12 * 1000  # samples/s of a 12-lead ECG at 1 kHz


def _exporter() -> Any:
    spec = importlib.util.spec_from_file_location(
        "export_ecg", FIRMWARE / "tools" / "export_ecg.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decode_rate(stream: bytes) -> float:
    """Samples (all channels) per second of CPU through the decoder and reassembly."""
    rx = Receiver()
    n = 0
    t0 = time.perf_counter()
    for i in range(0, len(stream), 4096):
        for _frame, msg in rx.feed(stream[i : i + 4096]):
            if isinstance(msg, Waveform):
                for block in rx.blocks(msg):
                    n += block.values.size
    return n / (time.perf_counter() - t0)


def pty_rate(args: list[str]) -> float:
    proc = subprocess.Popen(
        [str(FIRMWARE / "build" / "fb_sim"), *args, "--pty"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    pty = proc.stdout.readline().split()[1]
    n = 0
    try:
        with BridgeLink(pty) as link:
            t0 = time.perf_counter()
            link.command(CommandCode.START)
            for block in link.stream(idle_timeout=2.0):
                n += block.values.size
                if n >= 12 * 60_000:
                    break
            elapsed = time.perf_counter() - t0
            link.command(CommandCode.STOP)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    return n / elapsed


def main() -> None:
    runs = 1 if "--quick" in sys.argv[1:] else 5
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "sim"], check=True)
    exporter = _exporter()
    with tempfile.TemporaryDirectory() as tmp:
        counts, meta = exporter.dicom12()
        raw = Path(tmp) / "ecg12.i16"
        np.tile(counts, (6, 1)).astype("<i2").tofile(raw)  # 6 x 10 s = 60 s of real ECG
        args = exporter.sim_args(counts, meta, raw)
        wire = Path(tmp) / "stream.bin"
        subprocess.run([str(FIRMWARE / "build" / "fb_sim"), *args, "-o", str(wire)], check=True,
                       capture_output=True)  # fmt: skip
        stream = wire.read_bytes()
        decode = statistics.median(decode_rate(stream) for _ in range(runs))
        pty = statistics.median(pty_rate(args) for _ in range(runs))
    rows = [
        {"path": "decode (memory, 4 KiB reads)", "samples_per_s": round(decode),
         "x_realtime": round(decode / REALTIME, 1)},
        {"path": "C simulator -> pty -> BridgeLink.stream", "samples_per_s": round(pty),
         "x_realtime": round(pty / REALTIME, 1)},
    ]  # fmt: skip
    print(json.dumps({
        "benchmark": "bridge",
        "machine": machine_info(),
        "runs": runs,
        "signal": "pydicom waveform_ecg.dcm, 12 leads, 1 kHz, int16, 36 samples/frame",
        "stream_bytes_per_s_realtime": round(len(stream) / 60.0),
        "baseline": "real-time rate of a 12-lead ECG at 1 kHz = 12,000 samples/s (target >= 20x)",
        "results": rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
