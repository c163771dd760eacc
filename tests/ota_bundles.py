"""Small signed bundles for rollout tests, made in a temporary folder with keys made here.

Each version is a copy of the bundled ``diabetes-progression`` regression (a 502-byte ONNX
model) with its own version number, its OpenVINO IR left out (so every version runs on ONNX
Runtime alone), and optionally its weights perturbed: a *bad* version whose golden outputs
are recomputed from the perturbed model, so its golden vectors pass while its predictions
disagree with the good versions on live inputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edgemed
from edgemed.bundle import generate_key, sign_bundle
from edgemed.registry import find_model_dir
from edgemed.trust import TrustPolicy

MODEL = "diabetes-progression"


@dataclass(frozen=True)
class Key:
    file: Path
    kid: str
    raw: bytes


def make_key(folder: Path, name: str = "release") -> Key:
    public = generate_key(folder / f"{name}.pem")
    return Key(folder / f"{name}.pem", public["key_id"], base64.b64decode(public["public_key"]))


def policy_json(key: Key, rollback_state: str | None) -> dict[str, Any]:
    return TrustPolicy(keys={key.kid: key.raw}, rollback_state=None).to_json() | {
        "rollback_state": rollback_state
    }


def write_policy(path: Path, key: Key, rollback_state: str | None = "rollback-state.json") -> Path:
    path.write_text(json.dumps(policy_json(key, rollback_state)))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_version(folder: Path, version: str, key: Key, *, perturb: float = 0.0) -> Path:
    """A signed copy of the model at ``version``; ``perturb`` scales its weights by
    (1 + perturb) and re-derives its golden outputs from the perturbed model."""
    bundle = Path(shutil.copytree(find_model_dir(MODEL), folder / f"{MODEL}-{version}"))
    shutil.rmtree(bundle / "openvino")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = version
    manifest["backends"] = ["onnxruntime"]
    for role in ("openvino_model", "openvino_weights"):
        del manifest["artifacts"][role]
    manifest["golden"].pop("platforms", None)
    if perturb:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(bundle / "model.fp32.onnx"))
        for init in model.graph.initializer:
            if init.name == "W0":
                weights = numpy_helper.to_array(init) * (1.0 + perturb)
                init.CopyFrom(numpy_helper.from_array(weights.astype(np.float32), "W0"))
        onnx.save(model, str(bundle / "model.fp32.onnx"))
        manifest["artifacts"]["model"]["sha256"] = _sha(bundle / "model.fp32.onnx")
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _regolden(bundle, manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sign_bundle(bundle, key.file)
    return bundle


def _regolden(bundle: Path, manifest: dict[str, Any]) -> None:
    with edgemed.load(bundle, golden=False, threads=1) as pipe:
        rows = json.loads((bundle / "golden" / "inputs.json").read_text())
        values = np.array([r.value for r in pipe.batch(rows)], dtype=np.float32)
    np.save(bundle / "golden" / "expected.npy", values)
    manifest["artifacts"]["golden_outputs"]["sha256"] = _sha(bundle / "golden" / "expected.npy")


FEATURES = {  # (low, high) of each input, inside the model's declared ranges
    "age": (20.0, 79.0), "sex": (1.0, 2.0), "bmi": (18.0, 42.0), "bp": (62.0, 133.0),
    "s1_tc": (97.0, 301.0), "s2_ldl": (41.6, 242.4), "s3_hdl": (22.0, 99.0),
    "s4_tch": (2.0, 9.0), "s5_ltg": (3.26, 6.1), "s6_glu": (58.0, 124.0),
}  # fmt: skip


def live_row(rng: random.Random) -> dict[str, float]:
    """One plausible patient row (a live input)."""
    row = {name: round(rng.uniform(lo, hi), 2) for name, (lo, hi) in FEATURES.items()}
    row["sex"] = float(rng.choice((1, 2)))
    return row
