"""The installed ``edgemed`` command, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_fleet_server

from edgemed.manifest import load_manifest
from edgemed.registry import find_model_dir


def _edgemed(
    *args: str, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )
    return proc


def test_run_prints_a_result() -> None:
    proc = _edgemed("run", "clinical-text-minilm", "chest pain radiating to the left arm")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"] == "clinical-text-minilm@1.1.0" and out["dim"] == 384
    first = load_manifest(find_model_dir("clinical-text-minilm"), verify=False).backends[0]
    assert out["backend"] == f"{first}/cpu/int8" and len(out["nearest"]) == 10
    assert out["nearest"][0]["code"].startswith("R07")  # chest pain codes


def test_run_bad_input_is_a_clear_error() -> None:
    proc = _edgemed("run", "clinical-text-minilm", "   ")
    assert proc.returncode == 2 and "InputError: text is empty" in proc.stderr
    proc = _edgemed("run", "no-such-model", "x")
    assert proc.returncode == 2 and "unknown model" in proc.stderr


def test_models_list_info_verify() -> None:
    assert "clinical-text-minilm" in _edgemed("models", "list").stdout
    info = json.loads(_edgemed("models", "info", "clinical-text-minilm").stdout)
    assert info["medical_device"] is False and info["metrics"]["eval_sentences"] >= 50
    verify = _edgemed("models", "verify")
    assert verify.returncode == 0 and "sha256 ok" in verify.stdout


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
        assert single["raw_runtime_p50_ms"] > 0 and single["by_hand_p50_ms"] > 0
        # Figures are rounded to 0.1 us, a tabular call takes ~40 us: compare within that.
        overhead_ms = single["p50_ms"] - single["by_hand_p50_ms"]
        assert single["sdk_overhead_ms"] == pytest.approx(overhead_ms, abs=2e-4)
        fraction = single["sdk_overhead_ms"] / single["p50_ms"]
        assert single["sdk_overhead_fraction"] == pytest.approx(fraction, abs=0.02)
        assert batch["batch"] == 8 and batch["stacked_into_one_call"] is True
        assert batch["items_per_s"] == pytest.approx(8 / batch["p50_ms"] * 1e3, rel=5e-3)
        assert 0 < run["cold_start_ms"] < 60_000 and run["rss_mb"] > 20  # a real child process

    one = _edgemed(
        "bench", "wdbc-malignancy-mlp", "-n", "20", "--backend", "openvino", "--no-cold-start"
    )
    runs = json.loads(one.stdout)["runs"]
    assert [r["backend"] for r in runs] == ["openvino"] and "cold_start_ms" not in runs[0]
    bad = _edgemed("bench", "no-such-model")
    assert bad.returncode == 2 and "unknown model" in bad.stderr


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
