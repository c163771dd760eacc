"""Neither inference runtime phones home from a device running edgemed.

ONNX Runtime (1.29+) uploads telemetry to Microsoft from Linux and keeps a device id under
~/.cache/Microsoft; OpenVINO sends a Google Analytics event on import and keeps a client id
under ~/intel. edgemed turns both off (docs/security.md). Checked in a fresh process with an
empty HOME and without the CI variables either runtime uses to turn itself off, so that this
test fails if edgemed stops doing it: the ids on disk are the trace of the telemetry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# What ONNX Runtime and openvino-telemetry read to keep quiet in CI on their own.
CI_VARIABLES = {
    "CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
    "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER",
    "ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME",
}  # fmt: skip

RUN_BOTH = """
import os, sys
import edgemed
for backend in ("onnxruntime", "openvino"):
    with edgemed.load("clinical-text-minilm", backend=backend, threads=1) as pipe:
        assert pipe("chest pain").nearest
print(os.environ.get("ORT_DISABLE_TELEMETRY", "unset"), sys.modules.get("openvino_telemetry"))
"""


def test_no_runtime_telemetry_and_no_ids_left_on_disk(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    env["HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", RUN_BOTH], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (tmp_path / "intel").exists()  # OpenVINO's client id and usage counter
    assert not (tmp_path / ".cache" / "Microsoft").exists()  # ONNX Runtime's device id
    assert out.stdout.split() == ["1", "None"]


def test_a_process_that_chose_onnxruntime_telemetry_keeps_its_choice(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    env |= {"HOME": str(tmp_path), "ORT_DISABLE_TELEMETRY": "0"}
    code = "import os, edgemed.backends; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "0", out.stderr[-2000:]
