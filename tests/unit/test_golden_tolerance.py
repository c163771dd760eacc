"""Golden checks that can catch drift: per-platform limits from measured drift, a model
perturbed just past the limit that applies here is refused, one just inside it loads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import edgemed
from edgemed.errors import ManifestError, ModelError
from edgemed.hardware import cpu_family, cpu_family_of
from edgemed.manifest import GoldenTolerance, load_manifest
from edgemed.registry import find_model_dir
from edgemed.tasks import task_spec
from edgemed.tasks.golden import golden_limits


def _shifted(run: Callable[..., dict[str, np.ndarray]], delta: float) -> Callable[..., object]:
    def shifted(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v + np.asarray(delta, v.dtype) for k, v in run(inputs).items()}

    return shifted


@pytest.mark.parametrize("model_id", ["eeg-seizure-watch", "wdbc-malignancy-mlp"])
def test_a_model_perturbed_just_past_the_limit_is_refused(
    model_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with edgemed.load(model_id, threads=1, golden=False) as pipe:
        task = task_spec(pipe.manifest)
        results = pipe.batch(task.golden_inputs(pipe.manifest))
        limit = golden_limits(pipe.manifest, results, cpu_family()).max_abs_diff
        assert pipe.check_golden() == []
        real = pipe.backend.run
        monkeypatch.setattr(pipe.backend, "run", _shifted(real, 1.5 * limit))
        try:
            problems = pipe.check_golden()
        except ModelError as exc:  # a shift past a loose default limit can also leave [0, 1]
            problems = [f"refused by the output contract: {exc}"]
        assert problems and ("diff" in problems[0] or "contract" in problems[0]), problems
        monkeypatch.setattr(pipe.backend, "run", _shifted(real, 0.3 * limit))
        assert pipe.check_golden() == []


def test_measured_platforms_are_tighter_than_the_default() -> None:
    """Where the drift was measured (models/recipes/golden_drift.py), the limit is at most the
    default and, for every model whose golden outputs were made on this family's numerics,
    orders of magnitude below it (the loose default let a drifted model load)."""
    manifest = load_manifest(find_model_dir("eeg-seizure-watch"))
    measured = {k: v for k, v in manifest.golden.platforms.items()}
    assert "onnxruntime/x86_64-avx2" in measured
    for limits in measured.values():
        assert limits.max_abs_diff <= manifest.golden.max_abs_diff / 100
    unknown, key = manifest.golden.for_platform("onnxruntime", "riscv64")
    assert key is None and unknown is manifest.golden


def test_cpu_families() -> None:
    assert cpu_family_of("x86_64", ("avx2", "avx512f", "avx512_vnni")) == "x86_64-avx512vnni"
    assert cpu_family_of("x86_64", ("avx2", "amx_tile", "amx_int8")) == "x86_64-amx"
    assert cpu_family_of("x86_64", ("avx2",)) == "x86_64-avx2"
    assert cpu_family_of("aarch64", ("asimd", "asimddp")) == "aarch64-dotprod"
    assert cpu_family() == cpu_family()  # cached, and something


def test_platform_limits_are_parsed_strictly(tmp_path: object) -> None:
    from edgemed.manifest import _golden

    parsed = _golden({"max_abs_diff": 0.1, "platforms": {"onnxruntime/x86_64-avx2": {
        "max_abs_diff": 1e-5}}})  # fmt: skip
    assert parsed.platforms["onnxruntime/x86_64-avx2"] == GoldenTolerance(max_abs_diff=1e-5)
    for bad in ({"onnxruntime": {"max_abs_diff": 1}},
                {"a/b": {"max_abs_diff": 1, "typo": 2}},
                {"a/b": {"max_abs_diff": 1, "platforms": {}}}):  # fmt: skip
        with pytest.raises(ManifestError):
            _golden({"max_abs_diff": 0.1, "platforms": bad})
