"""Every runnable example in examples/ runs as a user would start it (a subprocess of this
Python) with short settings, exits 0 and prints its key lines, including its own end-to-end
check of the fleet through the REST API where it has one. The brokers are the examples' own
embedded amqtt, except the ``broker`` variant against a real mosquitto."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
DEVICE_KINDS = {
    "ed-triage-01": "text-embedding",
    "onc-lab-02": "tabular-classification",
    "endo-clinic-03": "tabular-regression",
    "icu-eeg-04": "seizure-probability",
    "sleep-lab-05": "sleep-stages",
}
needs_cc = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)


def run_example(name: str, *args: str, cwd: Path, timeout: float = 90) -> str:
    """Run examples/``name`` from an unrelated folder; return its stdout after asserting rc 0."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@needs_cc
def test_ecg_stream(tmp_path: Path) -> None:
    out = run_example("ecg_stream.py", cwd=tmp_path)
    # 30 heart rates (one per 10 s of the 5-minute record), physiological.
    rates = [float(m) for m in re.findall(r"HR .* s +([\d.]+) bpm", out)]
    assert len(rates) == 30 and all(40 <= bpm <= 200 for bpm in rates), out
    # Sleep staging every 60 s of accumulated ECG: 2, 4, ... 10 epochs, each published once.
    assert re.findall(r"stages +0- *(\d+)\.0 s", out) == ["60", "120", "180", "240", "300"]
    assert "received 108000 of 108000 samples; lost frames 0, CRC errors 0" in out
    assert "fleet    5 result(s) from sim-ecg-bed-04" in out and "device outbox holds 0" in out
    assert re.search(r"seq 5  sleep-stages  10 epochs  [UWRN]{10} ", out), out
    assert "fleet check OK: 5 submitted, 5 stored, each exactly once" in out


@needs_cc
@pytest.mark.broker
def test_ecg_stream_through_mosquitto(mosquitto: Mosquitto, tmp_path: Path) -> None:
    args = ["--stage-every", "150", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}"]
    out = run_example("ecg_stream.py", *args, cwd=tmp_path)
    assert f"broker   127.0.0.1:{mosquitto.port}" in out
    assert "fleet check OK: 2 submitted, 2 stored, each exactly once" in out


def test_eeg_seizure_watch(tmp_path: Path) -> None:
    out = run_example("eeg_seizure_watch.py", "--minutes", "10", cwd=tmp_path)
    assert "SYNTHETIC iEEG" in out
    # 10 min = 600 s: 300 s windows every 20 s give 16 results.
    probs = re.findall(r"window .* p=([\d.]+)(  SEIZURE)?", out)
    assert len(probs) == 16
    above = sum(1 for _p, flag in probs if flag)
    assert above >= 1 and all((float(p) >= 0.5) == bool(flag) for p, flag in probs)
    assert f"{above} seizure alert(s)" in out
    assert out.count("ALERT urgent seq") == above
    assert "episode " in out
    assert f"alert check OK: 16 results stored once each; the {above} above threshold" in out


def test_dicom_windowing(tmp_path: Path) -> None:
    out = run_example("dicom_windowing.py", "-n", "10", cwd=tmp_path)
    assert "CT_small.dcm: CT 128x128 int16, slope 1, intercept -1024" in out
    assert "MR_small.dcm: MR 64x64 int16" in out and "window header c=600 w=1600" in out
    timings = re.findall(r"native ([\d.]+) ms  numpy ([\d.]+) ms", out)
    assert len(timings) == 3  # CT soft tissue and bone, MR header window
    assert out.count("max abs diff: uint8 0, tensor") == 3
    assert "native and NumPy paths agree" in out


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.status, r.read()


def test_fleet_dashboard(tmp_path: Path) -> None:
    """While the example runs, this test reads its API and dashboard as an operator would."""
    cmd = [sys.executable, "-u", str(ROOT / "examples" / "fleet_dashboard.py")]
    proc = subprocess.Popen(
        [*cmd, "--seconds", "8", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("running until"):
                break
        head = "".join(lines)
        url = re.search(r"dashboard  (http://127\.0\.0\.1:\d+)/", head)
        token = re.search(r"token      (\S{16,})", head)
        assert url and token, head
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while len(seen) < 5 and time.monotonic() < deadline:
            _status, body = _get(f"{url[1]}/api/results?limit=1000", token[1])
            seen = {row["device_id"] for row in json.loads(body)["items"]}
            time.sleep(0.3)
        assert seen == set(DEVICE_KINDS)
        status, page = _get(f"{url[1]}/")
        assert status == 200 and b"<html" in page.lower()
        with pytest.raises(urllib.error.HTTPError) as denied:
            _get(f"{url[1]}/api/devices", "not-the-token-0123456789")
        assert denied.value.code == 401
        out = head + proc.stdout.read()
        assert proc.wait(timeout=60) == 0, out
    finally:
        proc.kill()
        proc.wait()
    for device, kind in DEVICE_KINDS.items():
        row = re.search(rf"{device} +submitted +(\d+), fleet stored +(\d+) {kind}, state", out)
        assert row and row[1] == row[2] and int(row[1]) >= 1, out
    assert "from 5 device(s)" in out
    assert "fleet check OK: every device's results arrived" in out


def test_note_coder(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Type 2 diabetes with peripheral neuropathy. Productive cough and fever.")
    out = run_example("note_coder.py", "--file", str(note), "--top", "3", cwd=tmp_path)
    assert "clinical-text-minilm@" in out and "«Type 2 diabetes with peripheral neuropathy.»" in out
    lines = [line.split() for line in out.splitlines() if re.match(r"\s{4}[A-Z]\d", line)]
    assert len(lines) == 6  # 3 suggestions for each of the 2 sentences
    assert lines[0][0].startswith("E11.4")  # type 2 diabetes with neuropathy, first
    scores = [float(parts[1]) for parts in lines[:3]]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
