"""``edgemed bundle verify DIR`` and ``edgemed bundle inspect DIR``: any bundle, built here or
shipped with edgemed, checked as a device would load it, or described without loading it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SignatureError
from ..manifest import load_manifest
from ..pipeline import load
from ..trust import TrustPolicy, check_bundle, read_signature, read_state, resolve_policy

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
        "signed_by": _signed_by(path),
    }


def _signed_by(path: Path) -> str | None:
    """The key id its signature.json names (not checked: that needs a trust policy)."""
    try:
        signature = read_signature(path)
    except SignatureError as exc:
        return f"unreadable signature.json: {exc}"
    return None if signature is None else signature.key_id


def verify_bundle(
    path: Path,
    *,
    threads: int | None = None,
    trust: TrustPolicy | str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Every artifact's sha256, then the golden vectors through the pipeline on this machine's
    chosen backend (IntegrityError, ManifestError or GoldenMismatchError when it fails).

    Under a trust policy (``trust``, else ``$EDGEMED_TRUST``) the bundle is first checked as a
    device with that policy would check it (signature, files, anti-rollback:
    SignatureError, IntegrityError, RollbackError), without recording it as served."""
    policy = resolve_policy(trust)
    signature: dict[str, Any] | None = None
    if policy is not None:
        verified = check_bundle(path, policy)
        sig = verified.signature
        signature = {
            "key_id": None if sig is None else sig.key_id,
            "key_name": None if sig is None else policy.names.get(sig.key_id),
            "trusted": sig is not None,
            "rollback_from": None if sig is None else sig.rollback_from,
            "highest_served": _highest_served(policy, verified.manifest.id),
        }
        policy = replace(policy, rollback_state=None)  # checked above; verifying is not serving
    with load(path, threads=threads, trust=policy) as pipe:
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
            "signature": signature,
        }


def _highest_served(policy: TrustPolicy, model_id: str) -> str | None:
    if policy.rollback_state is None:
        return None
    entry = read_state(policy.rollback_state).get(model_id)
    return None if entry is None else str(entry["highest"])
