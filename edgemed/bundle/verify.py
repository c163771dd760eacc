"""``edgemed bundle verify DIR`` and ``edgemed bundle inspect DIR``: any bundle, built here or
shipped with edgemed, checked as a device would load it, or described without loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..manifest import load_manifest
from ..pipeline import load

__all__ = ["inspect_bundle", "verify_bundle"]


def inspect_bundle(path: Path) -> dict[str, Any]:
    """What the bundle says about itself (manifest, measured figures, artifacts); its files'
    sha256 are not checked: use :func:`verify_bundle` for that."""
    m = load_manifest(path, verify=False)
    return {
        "id": m.id,
        "version": m.version,
        "task": m.task,
        "summary": m.summary,
        "license": m.license,
        "medical_device": m.medical_device,
        "precision": m.precision,
        "backends": list(m.backends),
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in m.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in m.outputs],
        "metrics": dict(m.metrics),
        "artifacts": {role: a.path for role, a in sorted(m.artifacts.items())},
        "source": {"package": m.source.package, "upstream": m.source.upstream},
    }


def verify_bundle(path: Path, *, threads: int | None = None) -> dict[str, Any]:
    """Every artifact's sha256, then the golden vectors through the pipeline on this machine's
    chosen backend (IntegrityError, ManifestError or GoldenMismatchError when it fails)."""
    with load(path, threads=threads) as pipe:
        m = pipe.manifest
        return {
            "id": m.id,
            "version": m.version,
            "task": m.task,
            "artifacts_verified": len(m.artifacts),
            "golden": "passed",
            "backend": pipe.backend.name,
            "device": pipe.backend.device,
            "why": pipe.choice.reason,
        }
