"""Measure each bundled model's golden-vector drift on THIS machine, per backend, and (with
--write) set ``golden.platforms["<backend>/<cpu family>"]`` in its manifest from it.

    python models/recipes/golden_drift.py            # report only
    python models/recipes/golden_drift.py --write    # record the limits for this platform

The golden check compares what a device computes on the bundle's golden inputs with what the
build machine computed. The manifest's top-level limits are loose on purpose (the default for
platforms nobody measured: other ISAs round INT8 differently); where the drift was measured, a
limit of MARGIN x the drift (never below FLOOR) lets a model that drifts to the edge of the
loose gate be refused. Each task's golden check reports its figures when asked for zero drift,
so this script measures exactly what the check compares.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace

import edgemed
from edgemed.errors import BackendUnavailableError
from edgemed.hardware import cpu_family
from edgemed.manifest import GoldenTolerance
from edgemed.registry import find_model_dir, list_models
from edgemed.tasks import task_spec

MARGIN = 2.0  # limit = MARGIN x the drift measured here (at 1 and at 2 threads, the worse)
FLOOR_ABS = 1e-5  # bit-identical runs (drift 0) still get a limit that float formatting passes
FLOOR_COSINE_GAP = 1e-6
# Never looser than the manifest's default: where the bundle's golden outputs were computed on
# another CPU family and this one rounds INT8 differently, the drift is systematic and large
# (clinical-text-minilm on AVX2: cosine 0.986 to outputs made on AVX-512), and the fix is golden
# outputs of this family, not a looser limit.
BACKENDS = ("onnxruntime", "openvino")
_ABS = re.compile(r"max \|(?:\w+ )?diff\| ([0-9.eE+-]+|nan)")
_COS = re.compile(r"min cosine ([0-9.eE+-]+)")
_AGREE = re.compile(r"agreement ([0-9.eE+-]+)")
_BOX = re.compile(r"score ([0-9.]+), expected ([0-9.]+)")


def measure(model_id: str, backend: str, threads: int) -> dict[str, float] | None:
    """Drift figures of one model on one backend here; None if the backend is absent."""
    try:
        pipe = edgemed.load(model_id, backend=backend, golden=False, threads=threads)
    except BackendUnavailableError:
        return None
    with pipe:
        exact = GoldenTolerance(max_abs_diff=0.0, min_cosine=1.0, min_label_agreement=1.0)
        strict = replace(pipe.manifest, golden=exact)
        task = task_spec(strict)
        results = pipe.batch(task.golden_inputs(strict))
        problems = task.golden_check(strict, results, cpu_family())
    text = "\n".join(problems)
    figures = {"max_abs_diff": 0.0, "min_cosine": 1.0, "min_label_agreement": 1.0}
    for found in _ABS.findall(text):
        figures["max_abs_diff"] = max(figures["max_abs_diff"], float(found))
    for got, want in _BOX.findall(text):
        figures["max_abs_diff"] = max(figures["max_abs_diff"], abs(float(got) - float(want)))
    for found in _COS.findall(text):
        figures["min_cosine"] = min(figures["min_cosine"], float(found))
    for found in _AGREE.findall(text):
        figures["min_label_agreement"] = min(figures["min_label_agreement"], float(found))
    unexplained = [p for p in problems if not (_ABS.search(p) or _COS.search(p)
                                                or _AGREE.search(p) or _BOX.search(p))]  # fmt: skip
    if unexplained:
        raise SystemExit(f"{model_id}/{backend}: golden check failed outright: {unexplained}")
    return figures


def limits(figures: dict[str, float], default: GoldenTolerance) -> dict[str, float]:
    wide = max(FLOOR_ABS, MARGIN * figures["max_abs_diff"])
    out = {"max_abs_diff": min(default.max_abs_diff, float(f"{wide:.3g}"))}
    if default.min_cosine is not None:
        gap = max(FLOOR_COSINE_GAP, MARGIN * (1.0 - figures["min_cosine"]))
        out["min_cosine"] = max(default.min_cosine, float(f"{1.0 - gap:.9f}"))
    if default.min_label_agreement is not None:
        out["min_label_agreement"] = default.min_label_agreement
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record limits in the manifests")
    parser.add_argument("models", nargs="*", help="model ids (default: every bundled model)")
    args = parser.parse_args()
    family = cpu_family()
    print(f"cpu family {family}")
    for manifest in list_models():
        if args.models and manifest.id not in args.models:
            continue
        path = find_model_dir(manifest.id) / "manifest.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        for backend in BACKENDS:
            runs = [measure(manifest.id, backend, threads) for threads in (1, 2)]
            if runs[0] is None or runs[1] is None:
                print(f"{manifest.id:24s} {backend:12s} not available here")
                continue
            figures = {
                "max_abs_diff": max(r["max_abs_diff"] for r in runs if r),
                "min_cosine": min(r["min_cosine"] for r in runs if r),
                "min_label_agreement": min(r["min_label_agreement"] for r in runs if r),
            }
            new = limits(figures, manifest.golden)
            print(f"{manifest.id:24s} {backend:12s} drift {figures} -> limits {new}")
            data["golden"].setdefault("platforms", {})[f"{backend}/{family}"] = new
        if args.write:
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
