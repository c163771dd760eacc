"""The installed ``edgemed`` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_fleet_server

from edgemed.manifest import load_manifest
from edgemed.registry import find_model_dir


def _edgemed(
    *args: str, stdin: bytes | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env={**os.environ, **(env or {})},
    )
    return proc


def test_run_prints_a_result() -> None:
    proc = _edgemed("run", "clinical-text-minilm", "chest pain radiating to the left arm")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "clinical-text-minilm@1.2.1" and out["dim"] == 384
    first = load_manifest(find_model_dir("clinical-text-minilm"), verify=False).backends[0]
    assert out["backend"] == f"{first}/cpu/int8" and len(out["nearest"]) == 10
    assert out["nearest"][0]["code"].startswith("R07")  # chest pain codes


def _fails(proc: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    """Exit status ``code`` and a one-line error naming ``message``, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_exit_status_of_usage_input_model_and_backend_errors(tmp_path: Path) -> None:
    _fails(_edgemed("run"), 2, "the following arguments are required")
    _fails(_edgemed("bench", "wdbc-malignancy-mlp", "-n", "0"), 2, "must be at least 1")
    _fails(_edgemed("models", "info"), 2, "usage: edgemed models info MODEL_ID")
    _fails(_edgemed("run", "clinical-text-minilm", "   "), 3, "InputError: text is empty")
    _fails(_edgemed("run", "clinical-text-minilm", f"@{tmp_path}/none.txt"), 3, "no such file")
    (tmp_path / "row.json").write_text("{not json")
    _fails(_edgemed("run", "wdbc-malignancy-mlp", f"@{tmp_path}/row.json"), 3, "not a readable")
    _fails(_edgemed("run", "no-such-model", "x"), 4, "ModelError: unknown model")
    row = json.dumps([1.0] * 30)
    _fails(
        _edgemed("run", "wdbc-malignancy-mlp", row, "--device", "npu"), 6, "install the Intel NPU"
    )
    _fails(
        _edgemed("run", "wdbc-malignancy-mlp", row, "--backend", "openvino", "--device", "GPU"),
        6,
        "BackendUnavailableError",
    )


def test_exit_status_of_a_tampered_model(tmp_path: Path) -> None:
    """A bundle copy with one flipped bit: `run` refuses it, `models verify` reports it and
    still checks the next model; both exit 5, never 3 (bad input) or 0."""
    bundle = shutil.copytree(
        find_model_dir("wdbc-malignancy-mlp"), tmp_path / "wdbc-malignancy-mlp"
    )
    artifact = bundle / load_manifest(bundle, verify=False).artifacts["model"].path
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    env = {"EDGEMED_MODELS_PATH": str(tmp_path)}  # searched before the bundled models
    row = json.dumps([1.0] * 30)
    _fails(_edgemed("run", "wdbc-malignancy-mlp", row, env=env), 5, "IntegrityError: ")
    verify = _edgemed("models", "verify", "wdbc-malignancy-mlp", "diabetes-progression", env=env)
    assert verify.returncode == 5, verify.stdout + verify.stderr
    assert "wdbc-malignancy-mlp: sha256 FAIL" in verify.stdout
    assert "diabetes-progression: golden vectors ok" in verify.stdout
    (bundle / "manifest.json").write_text('{"schema": "edgemed.manifest/1"}')
    _fails(_edgemed("models", "info", "wdbc-malignancy-mlp", env=env), 5, "ManifestError: ")


def test_exit_status_of_sync_bridge_os_and_internal_errors(tmp_path: Path) -> None:
    _fails(_edgemed("sync", "status", "--outbox", str(tmp_path / "none.db")), 7, "SyncError")
    _fails(
        _edgemed("bridge", "listen", str(tmp_path / "no-tty"), "--seconds", "1"), 8, "BridgeError"
    )
    db = str(tmp_path / "no-dir" / "fleet.db")
    _fails(_edgemed("fleet", "serve", "--db", db), 7, "SyncError: cannot open fleet store")
    out = str(tmp_path / "no-dir" / "bench.json")
    args = ["-n", "1", "--batch", "1", "--no-cold-start", "-o", out]
    _fails(_edgemed("bench", "wdbc-malignancy-mlp", *args), 9, "No such file or directory")
    # A bug (any unexpected exception): one line, a hint to use -v, status 70.
    boom = "import sys, edgemed.cli.commands as c\ndef boom(_a): raise KeyError('x')\nc._cmd_doctor = boom\n"
    for verbose in ([], ["-v"]):
        proc = subprocess.run(
            [sys.executable, "-c", boom + f"sys.exit(c.main({[*verbose, 'doctor']!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 70, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("edgemed: internal error: KeyError: 'x'")
        assert ("Traceback" in proc.stderr) == bool(verbose) and ("-v" in last) != bool(verbose)


def test_help_documents_exit_status() -> None:
    out = _edgemed("--help").stdout
    for code in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 70):
        assert re.search(rf"^  {code} +\S", out, re.M), out


def test_models_list_info_verify() -> None:
    listed = json.loads(_edgemed("models", "list", "--json").stdout)
    assert {m["id"] for m in listed} >= {"clinical-text-minilm", "eeg-seizure-watch"}
    for row in listed:
        assert set(row) == {"id", "version", "task", "precision", "backends", "summary"}
    assert "clinical-text-minilm" in _edgemed("models", "list").stdout
    info = json.loads(_edgemed("models", "info", "clinical-text-minilm", "--json").stdout)
    assert info["medical_device"] is False and info["metrics"]["eval_sentences"] >= 50
    assert info["input"] == {
        "kind": "text",
        "encoding": "utf-8",
        "max_chars": 1_000_000,
        "max_tokens": 256,
        "language": info["input"]["language"],
    }
    verify = _edgemed("models", "verify")
    assert verify.returncode == 0 and "sha256 ok" in verify.stdout


def test_models_info_shows_each_input_contract() -> None:
    eeg = json.loads(_edgemed("models", "info", "eeg-seizure-watch", "--json").stdout)["input"]
    assert eeg["kind"] == "signal" and eeg["channels"] == 1 and eeg["sampling_rate_hz"] == 500
    assert eeg["sampling_rate_range_hz"] == [200, 4096] and eeg["window_s"] == 300
    assert eeg["hop_s"] == 20 and "z-scored" in eeg["units"]
    ecg = json.loads(_edgemed("models", "info", "ecg-sleep-staging", "--json").stdout)["input"]
    assert ecg["channels"] == 1 and ecg["sampling_rate_range_hz"] == [100, 10000]
    wdbc = json.loads(_edgemed("models", "info", "wdbc-malignancy-mlp", "--json").stdout)
    features = wdbc["input"]["features"]
    assert len(features) == 30 and features[0] == {
        "name": "radius_mean",
        "unit": "image length unit",
        "min": features[0]["min"],
        "max": features[0]["max"],
    }
    assert wdbc["model_inputs"] == [
        {"name": "features", "dtype": "float32", "shape": ["batch", 30], "layout": None}
    ]
    image = json.loads(_edgemed("models", "info", "monitor-reader", "--json").stdout)["input"]
    assert image["colour_order"] == "BGR" and image["max_side_px"] == 960
    text = _edgemed("models", "info", "diabetes-progression").stdout  # human-readable
    assert "input (tabular)" in text and re.search(r"^    bmi +kg/m\^2 +\[", text, re.M), text
    text = _edgemed("models", "info", "eeg-seizure-watch").stdout
    assert re.search(r"^  sampling_rate_hz +500$", text, re.M), text


def test_doctor_reads_a_jetson_fixture(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 3.0, GCID: 1\n")
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    proc = _edgemed("doctor", "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "NVIDIA Jetson AGX Orin" in proc.stdout and "R36 (release)" in proc.stdout
    assert "asimd" in proc.stdout and "clinical-text-minilm" in proc.stdout
    report = json.loads(_edgemed("doctor", "--root", str(tmp_path), "--json").stdout)
    assert set(report) == {
        "edgemed", "python", "machine", "cpu", "jetson", "intel_npu", "intel_igpu", "gpu",
        "onnxruntime_providers", "openvino_devices", "extras", "models",
    }  # fmt: skip
    assert report["jetson"]["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert "asimd" in report["cpu"]["features"]
    model = next(m for m in report["models"] if m["id"] == "clinical-text-minilm")
    assert set(model) == {
        "id", "version", "task", "precision", "uses", "fallbacks", "skipped", "needs",
    }  # fmt: skip
    assert model["needs"] == [] and report["extras"]["onnxruntime"]["missing"] == []
    assert set(model["uses"]) == {"backend", "device", "reason"}


def test_bench_reports_each_backend(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = _edgemed("bench", "wdbc-malignancy-mlp", "-n", "40", "--batch", "8", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    manifest = load_manifest(find_model_dir("wdbc-malignancy-mlp"), verify=False)
    assert report["model"] == f"wdbc-malignancy-mlp@{manifest.version}"
    assert sorted(r["backend"] for r in report["runs"]) == sorted(manifest.backends)
    for run in report["runs"]:
        single, batch = run["single"], run["batch"]
        assert single["calls"] == 40
        assert 0 < single["p50_ms"] <= single["p90_ms"] <= single["p99_ms"]
        assert set(single["stages_p50_ms"]) == {"preprocess", "inference", "postprocess"}
        assert single["backend_run_p50_ms"] > 0 and single["by_hand_p50_ms"] > 0
        # Figures are rounded to 0.1 us, a tabular call takes ~40 us: compare within that.
        overhead_ms = single["p50_ms"] - single["by_hand_p50_ms"]
        assert single["sdk_overhead_ms"] == pytest.approx(overhead_ms, abs=2e-4)
        fraction = single["sdk_overhead_ms"] / single["p50_ms"]
        assert single["sdk_overhead_fraction"] == pytest.approx(fraction, abs=0.02)
        assert batch["batch"] == 8 and batch["stacked_into_one_call"] is True
        assert batch["items_per_s"] == pytest.approx(8 / batch["p50_ms"] * 1e3, rel=5e-3)
        assert 0 < run["cold_start_ms"] < 60_000 and run["rss_mb"] > 20  # a real child process

    one = _edgemed(
        "bench", "wdbc-malignancy-mlp", "-n", "20", "--backend", "openvino", "--no-cold-start",
        "--json",
    )  # fmt: skip
    runs = json.loads(one.stdout)["runs"]
    assert [r["backend"] for r in runs] == ["openvino"] and "cold_start_ms" not in runs[0]
    bad = _edgemed("bench", "no-such-model")
    assert bad.returncode == 4 and "unknown model" in bad.stderr


def test_demo_with_embedded_broker() -> None:
    proc = _edgemed("demo", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fleet received 5 result(s)" in proc.stdout and "demo OK" in proc.stdout


@pytest.mark.broker
def test_demo_against_mosquitto(mosquitto: object) -> None:
    proc = _edgemed("demo", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}")  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo OK" in proc.stdout


@pytest.mark.broker
def test_fleet_serve_ingests_and_serves_with_token(mosquitto: object, tmp_path: Path) -> None:
    import time
    import urllib.error
    import urllib.request

    import edgemed
    from edgemed.config import BrokerConfig, OutboxConfig
    from edgemed.fleet.broker import free_port, wait_for_port
    from edgemed.sync import Outbox, Publisher

    port, broker_port = free_port(), mosquitto.port  # type: ignore[attr-defined]
    server, banner = start_fleet_server(
        tmp_path / "fleet.db", broker_port, api_port=port, token="s3cret-token-0123456789"
    )
    try:
        assert wait_for_port(port, timeout=30)
        time.sleep(1.0)  # let the ingest subscribe
        outbox = Outbox(OutboxConfig(path=tmp_path / "dev.db", device_id="ward3-bed2"))
        with (
            edgemed.load("clinical-text-minilm") as model,
            Publisher(outbox, BrokerConfig(port=broker_port)) as pub,
        ):
            pub.submit(model("wheeze and chest tightness"))
            assert pub.wait_drained(20)

        def get(path: str, token: str | None) -> tuple[int, object]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, None

        assert get("/api/health", None)[0] == 200
        assert get("/api/results", None)[0] == 401
        assert get("/api/results", "wrong")[0] == 401
        status, results = get("/api/results", "s3cret-token-0123456789")
        assert status == 200 and [r["device_id"] for r in results["items"]] == ["ward3-bed2"]  # type: ignore[index]
        status, devices = get("/api/devices", "s3cret-token-0123456789")
        assert devices[0]["acked_seq"] == 1  # type: ignore[index]
    finally:
        server.terminate()
        out, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    assert (
        "s3cret-token-0123456789" not in banner + out + err
    )  # a token given on the command line is never echoed
