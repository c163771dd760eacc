"""Optional parts are extras, and a missing one is named: a device installed without OpenCV or
OpenVINO serves every model that does not need them, and refuses the others with the
``pip install 'edgemed[...]'`` that adds what is missing (never a bare ModuleNotFoundError from
deep inside a task). Each case runs in a child whose imports of the left-out modules fail, as
they fail in a venv without them (scripts/test_wheel.sh also checks a real plain install)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from edgemed import extras
from edgemed.cli.exit import report
from edgemed.errors import MissingDependencyError
from edgemed.tasks import TaskSpec, task_names

# Run first in each child: the named top-level modules cannot be imported, as if not installed.
LEAVE_OUT = textwrap.dedent("""
    import sys

    LEFT_OUT = set(sys.argv[1].split(","))

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in LEFT_OUT:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    import importlib.util
    _find_spec = importlib.util.find_spec
    def find_spec(name, package=None):  # what an installed-or-not check sees
        return None if name.split(".")[0] in LEFT_OUT else _find_spec(name, package)
    importlib.util.find_spec = find_spec
""")


def _child(left_out: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LEAVE_OUT + textwrap.dedent(code), left_out],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_device_without_opencv_and_openvino_serves_every_model_that_needs_neither() -> None:
    code = """
        import json, sys
        import edgemed
        from edgemed.errors import BackendUnavailableError, MissingDependencyError
        served = {}
        for model in ("clinical-text-minilm", "wdbc-malignancy-mlp", "diabetes-progression",
                      "ecg-sleep-staging", "eeg-seizure-watch"):
            with edgemed.load(model) as p:  # the golden check runs here, on ONNX Runtime
                served[model] = p.choice.backend
        refused = {}
        try:
            edgemed.load("monitor-reader")
        except MissingDependencyError as exc:
            refused["monitor-reader"] = [exc.extra, str(exc)]
        try:
            edgemed.io.read_image("any.png")
        except MissingDependencyError as exc:
            refused["read_image"] = [exc.extra, str(exc)]
        try:
            edgemed.load("clinical-text-minilm", backend="openvino")
        except BackendUnavailableError as exc:
            refused["openvino"] = ["", str(exc)]
        leaked = sorted(m for m in ("cv2", "openvino") if m in sys.modules)
        print(json.dumps({"served": served, "refused": refused, "leaked": leaked}))
    """
    proc = _child("cv2,openvino", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert set(out["served"].values()) == {"onnxruntime"} and len(out["served"]) == 5
    assert out["leaked"] == []
    extra, message = out["refused"]["monitor-reader"]
    assert extra == "vision" and "pip install 'edgemed[vision]'" in message
    assert "monitor-reader" in message and "cv2" in message
    assert out["refused"]["read_image"][0] == "vision"
    assert "pip install 'edgemed[openvino]'" in out["refused"]["openvino"][1]


def test_doctor_lists_missing_extras_and_the_models_that_need_them() -> None:
    code = """
        import contextlib, io, json
        from edgemed.cli import main
        text, js = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(text):
            assert main(["doctor"]) == 0
        with contextlib.redirect_stdout(js):
            assert main(["doctor", "--json"]) == 0
        print(json.dumps({"text": text.getvalue(), "json": json.loads(js.getvalue())}))
    """
    proc = _child("cv2,amqtt", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    report_json = out["json"]
    assert report_json["extras"]["vision"]["missing"] == ["cv2"]
    assert report_json["extras"]["demo"]["missing"] == ["amqtt"]
    assert report_json["extras"]["onnxruntime"]["missing"] == []
    needs = {m["id"]: m["needs"] for m in report_json["models"]}
    assert needs["monitor-reader"] == ["vision"] and needs["clinical-text-minilm"] == []
    assert "not installed: vision, demo" in out["text"]
    assert "needs  pip install 'edgemed[vision]'" in out["text"]


def test_the_command_names_the_extra_it_lacks() -> None:
    code = """
        import contextlib, io, json, sys
        from edgemed.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main(["fleet", "serve", "--db", "/nonexistent/x.db"])
        print(json.dumps({"status": status, "stderr": err.getvalue()}))
    """
    proc = _child("fastapi", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["status"] == 1  # installation, as for any ImportError
    assert "MissingDependencyError" in out["stderr"]
    assert "pip install 'edgemed[fleet]'" in out["stderr"]


def test_an_optional_import_failing_deep_in_a_command_is_given_its_extra(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        report(ModuleNotFoundError("No module named 'hl7apy'", name="hl7apy.core"), verbose=False)
        == 1
    )
    assert "pip install 'edgemed[fleet]'" in capsys.readouterr().err
    assert report(ModuleNotFoundError("No module named 'zzz'", name="zzz"), verbose=False) == 1
    assert "pip install" not in capsys.readouterr().err  # not ours to name


def test_require_and_the_extras_table() -> None:
    assert extras.extra_providing("cv2") == "vision"
    assert extras.extra_providing("prometheus_client.core") == "fleet"
    assert extras.extra_providing("numpy") is None  # a dependency, not an extra
    extras.require("onnxruntime", "this test")  # installed here: no error
    assert extras.is_installed("vision")
    with pytest.raises(KeyError):
        extras.require("no-such-extra", "this test")
    err = MissingDependencyError("x", extra="vision")
    assert isinstance(err, ImportError) and err.extra == "vision"


def test_a_task_names_only_known_extras() -> None:
    assert "monitor-reader" in task_names()

    def never(*_: object) -> list[object]:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="unknown extra"):
        TaskSpec(
            name="wound-photo",
            processors=never,  # type: ignore[arg-type]
            golden_inputs=never,
            golden_check=never,  # type: ignore[arg-type]
            extras=("opencv",),
        )
