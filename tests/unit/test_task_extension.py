"""A task from outside edgemed: a separately installed package adds it (entry point
``edgemed.tasks``), or ``register()`` does, and edgemed.load serves its bundles.

The example package (examples/task_package) is pip-installed into a folder that only the
child processes see, so this test process keeps the set of tasks edgemed ships.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import edgemed
from edgemed.errors import ManifestError
from edgemed.manifest import load_manifest
from edgemed.tasks import TaskSpec, register, task_names, task_spec

# The repository's examples (run_wheel_tests.py copies the tests elsewhere and says where).
EXAMPLES = Path(
    os.environ.get("EDGEMED_EXAMPLES", Path(__file__).resolve().parents[2] / "examples")
)
PACKAGE = EXAMPLES / "task_package"
BUNDLE = PACKAGE / "shock-index-bundle"

CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import edgemed
    from edgemed.fleet.validation import PayloadValidator
    from edgemed.tasks import task_names
    from edgemed.wire import encode_result

    with edgemed.load(Path(sys.argv[1])) as pipe:  # golden vectors checked on load
        result = pipe({"hr": 130, "sbp": 80})
        raw = encode_result(result, device_id="bed-3", seq=1, boot_id="b" * 32,
                            lowest_unacked_seq=1, clock_synced=True)
        msg = PayloadValidator().result(raw, topic_device_id="bed-3")
        try:
            pipe({"hr": 130, "sbp": 8})  # 8 mmHg: a unit error, never scored
            refused = None
        except edgemed.InputError as exc:
            refused = str(exc)
    print(json.dumps({"tasks": task_names(), "body": result.body(), "kind": msg.kind,
                      "fleet_body": msg.body["result"], "refused": refused,
                      "model": msg.body["model"]["id"]}))
""")


def _child(site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example task package, installed by pip as a user would (into a private folder)."""
    site = tmp_path_factory.mktemp("site")
    work = tmp_path_factory.mktemp("build")
    source = work / "task_package"  # pip builds in the source tree: never in the repository
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    proc = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--target", str(site), str(source),
        ],
        capture_output=True, text=True, timeout=300, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list(site.glob("edgemed_example_shock_index-*.dist-info/entry_points.txt"))
    return site


def test_an_installed_task_package_serves_its_bundles(installed: Path) -> None:
    proc = _child(installed, str(BUNDLE))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "shock-index" in out["tasks"] and "monitor-reader" in out["tasks"]
    assert out["body"] == {
        "kind": "shock-index",
        "value": 1.625,
        "elevated": True,
        "threshold": 0.9,
    }
    assert out["kind"] == "shock-index" and out["fleet_body"] == out["body"]  # the fleet takes it
    assert out["model"] == "shock-index-example"
    assert out["refused"] and "sbp=8" in out["refused"]


def test_without_the_package_its_bundle_is_refused_saying_why() -> None:
    proc = _child(None, str(BUNDLE))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "ManifestError" in last and "'shock-index' is not served" in last
    assert "edgemed.tasks" in last  # says where a task would come from


def test_a_broken_task_package_is_named_and_does_not_stop_other_tasks(tmp_path: Path) -> None:
    """An entry point whose module is missing: its bundles fail saying so; others still load."""
    dist = tmp_path / "broken_task-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-task\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[edgemed.tasks]\nshock-index = no_such_module:SPEC\n")
    proc = _child(tmp_path, str(BUNDLE))
    assert proc.returncode == 1
    assert "ModuleNotFoundError" in proc.stderr and "no_such_module" in proc.stderr
    script = "import edgemed; edgemed.load('wdbc-malignancy-mlp').close(); print('ok')"
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    ok = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert ok.stdout.strip() == "ok", ok.stderr


def _spec(name: str) -> TaskSpec:
    builtin = task_spec(load_manifest(Path(edgemed.registry.find_model_dir("wdbc-malignancy-mlp"))))
    return TaskSpec(
        name=name,
        processors=builtin.processors,
        golden_inputs=builtin.golden_inputs,
        golden_check=builtin.golden_check,
    )


def test_register_adds_a_task_and_refuses_to_replace_one() -> None:
    spec = _spec("tabular-classification-copy")
    assert register(spec) is spec and register(spec) is spec  # the same spec twice: no-op
    assert "tabular-classification-copy" in task_names()
    with pytest.raises(ValueError, match="already registered"):
        register(_spec("tabular-classification-copy"))
    with pytest.raises(ValueError, match="built-in"):
        register(_spec("monitor-reader"))  # a built-in clinical task is never swapped
    with pytest.raises(TypeError):
        register("monitor-reader")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task name"):
        _spec("Bad Name")


def test_a_task_missing_its_artifacts_is_refused(tmp_path: Path) -> None:
    """The task, not the manifest, says which artifacts its bundles need."""
    manifest = load_manifest(Path(edgemed.registry.find_model_dir("clinical-text-minilm")))
    arts = {k: v for k, v in manifest.artifacts.items() if k != "tokenizer"}
    from dataclasses import replace

    with pytest.raises(ManifestError, match=r"needs artifact\(s\) \['tokenizer'\]"):
        task_spec(replace(manifest, artifacts=arts))


def test_the_example_bundle_is_what_its_script_makes(tmp_path: Path) -> None:
    """The committed bundle is reproducible: make_bundle.py writes the same bytes."""
    pytest.importorskip("onnx")
    out = tmp_path / "bundle"
    script = PACKAGE / "make_bundle.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120)
    for name in ("manifest.json", "model.onnx", "golden_inputs.json", "golden_outputs.json"):
        assert (out / name).read_bytes() == (BUNDLE / name).read_bytes(), name
