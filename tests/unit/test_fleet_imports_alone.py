"""The fleet is a package that imports alone: the wire format, every fleet module
and a running ``edgemed fleet serve`` load no OpenCV, ONNX Runtime, OpenVINO or compiled
kernels, so a fleet host needs none of them (and never pays their import time or memory)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import edgemed.fleet
from edgemed.fleet.broker import EmbeddedBroker, free_port

DEVICE_ONLY = ("cv2", "onnxruntime", "openvino", "edgemed._kernels")

# Run first in each child: importing any device-only module (or a submodule) fails loudly.
REFUSE = textwrap.dedent(f"""
    import sys

    DEVICE_ONLY = {DEVICE_ONLY!r}

    class RefuseDeviceOnly:
        def find_spec(self, name, path=None, target=None):
            if any(name == m or name.startswith(m + ".") for m in DEVICE_ONLY):
                raise ImportError(f"the fleet imported device-only module {{name}}")
            return None

    sys.meta_path.insert(0, RefuseDeviceOnly())
""")


def _child(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", REFUSE + textwrap.dedent(code), *args]


def test_the_wire_format_and_every_fleet_module_import_alone() -> None:
    fleet = sorted(m.name for m in pkgutil.walk_packages(edgemed.fleet.__path__, "edgemed.fleet."))
    assert "edgemed.fleet.store.postgres" in fleet and "edgemed.fleet.server" in fleet
    code = """
        import importlib, json, sys
        for name in ["edgemed.wire", "edgemed.cli", *sys.argv[1:]]:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in DEVICE_ONLY if m in sys.modules)))
    """
    proc = subprocess.run(_child(code, *fleet), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def _health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            body: dict[str, object] = json.loads(r.read())
            return body
    except OSError:
        return None


def test_fleet_serve_runs_without_the_device_runtimes(tmp_path: Path) -> None:
    """`edgemed fleet serve` starts, ingests and answers /api/health in a process where
    importing cv2, onnxruntime, openvino or the compiled kernels raises ImportError."""
    serve = """
        from edgemed.cli import main
        sys.exit(main(sys.argv[1:]))
    """
    port = free_port()
    with EmbeddedBroker() as broker:
        args = ["fleet", "serve", "--broker", f"mqtt://127.0.0.1:{broker.port}"]
        args += ["--db", str(tmp_path / "fleet.db"), "--port", str(port)]
        args += ["--token", "fleet-test-token-0123456789"]
        proc = subprocess.Popen(
            _child(serve, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            health = None
            while health is None and proc.poll() is None and time.monotonic() < deadline:
                health = _health(port)
                time.sleep(0.1)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=30)
    assert health is not None, f"fleet serve did not answer /api/health: {out}{err[-3000:]}"
    assert health["status"] == "ok", health
    assert proc.returncode == 0, err[-3000:]  # SIGTERM: a clean stop
    assert "device-only" not in err, err[-3000:]
