"""End to end over a real pty: the C simulator (fb_sim, linked with the firmware library)
streams real ECG recordings as a device would; edgemed.bridge receives them; the example's
heart-rate stage produces results. Every sample sent must arrive, bit for bit."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from edgemed.bridge import Alert, BridgeLink, CommandCode, SampleBlock, Waveform

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecg_bridge", ROOT / "examples" / "ecg_bridge.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ecg_bridge"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _receive(link: BridgeLink, total: int) -> tuple[list[SampleBlock], list[Alert]]:
    blocks: list[SampleBlock] = []
    alerts: list[Alert] = []
    got = 0
    for msg in link.messages(idle_timeout=10.0):
        if isinstance(msg, Alert):
            alerts.append(msg)
        elif isinstance(msg, Waveform):
            new = link.receiver.blocks(msg)
            blocks += new
            got += new[0].counts.size
            if got >= total:
                break
    return blocks, alerts


@pytest.mark.parametrize("source,lead", [("mitbih208", "MLII"), ("dicom12", "II")])
def test_simulator_to_heart_rate(
    example: ModuleType, tmp_path: Path, source: str, lead: str
) -> None:
    proc, pty, counts, meta = example.start_simulator(source, tmp_path)
    try:
        with BridgeLink(pty) as link:
            offset = link.time_sync()
            link.command(CommandCode.START)
            blocks, alerts = _receive(link, counts.shape[0])
            link.command(CommandCode.STOP)
            stats = link.stats
        out = proc.communicate(timeout=10)[0]
    finally:
        proc.kill()
    sent = int(out.split("samples=")[1])
    n_ch = counts.shape[1]
    # Every sample the device sent arrived, identical, in order, for every channel.
    assert sent == counts.shape[0]
    assert stats.samples_received == dict.fromkeys(range(n_ch), sent)
    assert (stats.frames_dropped, stats.frames_lost, stats.samples_lost) == (0, 0, {})
    for ch in range(n_ch):
        mine = [b for b in blocks if b.channel.id == ch]
        assert np.array_equal(np.concatenate([b.counts for b in mine]), counts[:, ch])
        assert mine[0].channel.label == meta["labels"][ch] and mine[0].channel.unit == meta["unit"]
        # Timestamps: contiguous sample indices; device time follows the sample clock.
        idx = np.array([b.first_index for b in mine])
        assert np.array_equal(idx, np.cumsum([0] + [b.counts.size for b in mine[:-1]]))
        t = np.array([b.device_time_us for b in mine])
        assert np.all(np.abs((t - t[0]) - idx * 1e6 / mine[0].fs) <= 1)
        assert mine[0].host_time == pytest.approx((t[0] - offset) / 1e6)
    assert [(a.code, a.active) for a in alerts] == [(3, True)]  # battery low, acknowledged
    # The pipeline's heart-rate stage on the received stream equals the same stage on the
    # original recording, and is physiological.
    rates = list(example.heart_rates(blocks, lead))
    fs = meta["rate_mhz"] / 1000
    window = round(10 * fs)
    assert len(rates) == counts.shape[0] // window
    col = meta["labels"].index(lead)
    for k, hr in enumerate(rates):
        ref = counts[k * window : (k + 1) * window, col].astype(np.float64) * np.float32(
            meta["scale"]
        )
        peaks = example.detect_r_peaks(ref, fs)
        assert hr.bpm == pytest.approx(60.0 / np.median(np.diff(peaks) / fs))
        assert 40 <= hr.bpm <= 200 and hr.start_s == k * 10.0


def test_example_runs() -> None:
    run = subprocess.run([sys.executable, "examples/ecg_bridge.py", "dicom12"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "received 10000 of 10000 samples per channel" in run.stdout
    assert "SENT frames=" in run.stdout and " bpm " in run.stdout


def test_cli_listen_prints_traffic_and_statistics(
    example: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgemed.cli import main

    proc, pty, counts, _meta = example.start_simulator("dicom12", tmp_path)
    try:
        args = ["bridge", "listen", pty, "--start", "--seconds", "3", "--no-waveforms", "--json"]
        assert main(args) == 0
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("HELLO     device=EM-SIM-0001 firmware=1.0.0 channels=[0:I 1000 Hz")
    assert "ALERT     t_us=" in lines[1] and "battery-low raised" in lines[1]
    assert not any(line.startswith("WAVEFORM") for line in lines)
    stats = json.loads(lines[-1])
    assert stats["samples_received"] == {str(ch): counts.shape[0] for ch in range(12)}
    assert stats["frames_dropped"] == stats["frames_lost"] == 0
