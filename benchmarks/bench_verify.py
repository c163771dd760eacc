"""Verifying the whole bundled zoo as a device with a trust policy does before serving it.

Every bundled model is copied into a temporary folder and signed there with a fresh Ed25519
key; a trust policy trusts that key (anti-rollback state in the same folder). One "run" is
``edgemed.trust.check_bundle`` on every model in turn: manifest read and parsed strictly,
signature checked (Ed25519), the folder listed for unlisted files, the sha256 of every
artifact, the anti-rollback state read. Reported: the whole zoo checked by a fresh Python
process (timed inside it, from before ``import edgemed.trust`` to the last check: a device's
boot, ``cryptography`` imported on the way), then the median and worst of N runs in this
process, per model and for the whole zoo, and the signature checks alone. The files were just written, so they are in the page cache: a
cold read from flash adds (zoo bytes / read speed), given as bytes so it can be estimated.
Issue 24's target: "well under a second" for the whole zoo.
Usage: python benchmarks/bench_verify.py [runs]
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine_info

from edgemed.bundle import generate_key, sign_bundle
from edgemed.manifest import load_manifest
from edgemed.registry import model_dirs
from edgemed.trust import TrustPolicy, check_bundle, check_signature, read_signature


def _bytes(folder: Path) -> int:
    manifest = load_manifest(folder, verify=False)
    return sum(manifest.path(role).stat().st_size for role in manifest.artifacts)


_FRESH = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from edgemed.trust import TrustPolicy, check_bundle
policy = TrustPolicy.from_file(sys.argv[1])
for folder in sys.argv[2:]:
    check_bundle(Path(folder), policy)
print((time.perf_counter() - t0) * 1e3)
"""


def _fresh_process_ms(policy: TrustPolicy, root: Path, bundles: list[Path]) -> float:
    policy_file = root / "trust.json"
    policy_file.write_text(json.dumps(policy.to_json()))
    args = [sys.executable, "-c", _FRESH, str(policy_file), *map(str, bundles)]
    return float(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def main(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgemed-bench-verify-") as tmp:
        root = Path(tmp)
        public = generate_key(root / "key.pem")
        raw = base64.b64decode(public["public_key"])
        policy = TrustPolicy(
            keys={public["key_id"]: raw}, rollback_state=root / "rollback-state.json"
        )
        bundles = {}
        for model_id, folder in sorted(model_dirs().items()):
            bundles[model_id] = Path(shutil.copytree(folder, root / "zoo" / model_id))
            sign_bundle(bundles[model_id], root / "key.pem")

        def one_run() -> dict[str, float]:
            times = {}
            for model_id, folder in bundles.items():
                t0 = time.perf_counter()
                check_bundle(folder, policy)
                times[model_id] = (time.perf_counter() - t0) * 1e3
            return times

        fresh = [_fresh_process_ms(policy, root, list(bundles.values())) for _ in range(3)]
        first = one_run()
        samples = [one_run() for _ in range(runs)]
        totals = [sum(s.values()) for s in samples]

        manifests = {m: load_manifest(f, verify=False) for m, f in bundles.items()}
        digests = {
            m: hashlib.sha256((f / "manifest.json").read_bytes()).hexdigest()
            for m, f in bundles.items()
        }
        sig_samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for model_id, folder in bundles.items():
                check_signature(
                    read_signature(folder), manifests[model_id], digests[model_id], policy
                )
            sig_samples.append((time.perf_counter() - t0) * 1e3)

        zoo_bytes = sum(_bytes(f) for f in bundles.values())
        median_total = statistics.median(totals)
        return {
            "machine": machine_info(),
            "models": len(bundles),
            "artifact_bytes": zoo_bytes,
            "runs": runs,
            "fresh_process_zoo_ms": [round(t, 1) for t in fresh],
            "zoo_median_ms": round(median_total, 1),
            "zoo_worst_ms": round(max(totals), 1),
            "sha256_throughput_mb_s": round(zoo_bytes / 1e6 / (median_total / 1e3), 0),
            "signatures_only_median_ms": round(statistics.median(sig_samples), 2),
            "per_model": [
                {
                    "id": model_id,
                    "artifact_bytes": _bytes(folder),
                    "first_ms": round(first[model_id], 2),
                    "median_ms": round(statistics.median(s[model_id] for s in samples), 2),
                }
                for model_id, folder in bundles.items()
            ],
            "target": "well under 1 s for the whole zoo (issue 24)",
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20), indent=2))
