"""``edgemed bundle keygen | sign | verify --trust`` and ``$EDGEMED_TRUST``, run as a release
engineer and a device would: a signed bundle passes, a tampered one exits 5 naming why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from edgemed.registry import find_model_dir


def _edgemed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={**os.environ, **(env or {})},
    )


def test_keygen_sign_verify_and_a_device_with_a_policy(tmp_path: Path) -> None:
    key = tmp_path / "release.pem"
    made = _edgemed("bundle", "keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    public = json.loads(made.stdout)
    assert key.stat().st_mode & 0o777 == 0o600
    assert json.loads(Path(f"{key}.pub.json").read_text()) == public
    bundle = Path(shutil.copytree(find_model_dir("wdbc-malignancy-mlp"), tmp_path / "wdbc"))
    signed = _edgemed("bundle", "sign", str(bundle), "--key", str(key))
    assert signed.returncode == 0 and public["key_id"] in signed.stdout, signed.stderr
    policy = tmp_path / "trust.json"
    policy.write_text(
        json.dumps(
            {
                "schema": "edgemed.trust/1",
                "keys": {public["key_id"]: {"public_key": public["public_key"]}},
                "revoked": [],
                "allow_unsigned": False,
                "rollback_state": "rollback-state.json",
            }
        )
    )
    ok = _edgemed("bundle", "verify", str(bundle), "--trust", str(policy), "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["signature"]["key_id"] == public["key_id"] and report["golden"] == "passed"
    assert not (tmp_path / "rollback-state.json").exists()  # verifying is not serving

    # A device: `edgemed run` under $EDGEMED_TRUST serves it and records its version...
    device = {"EDGEMED_TRUST": str(policy), "EDGEMED_MODELS_PATH": str(tmp_path)}
    shutil.move(bundle, tmp_path / "wdbc-malignancy-mlp")
    bundle = tmp_path / "wdbc-malignancy-mlp"
    row = json.dumps([15.0] * 30)
    ran = _edgemed("run", "wdbc-malignancy-mlp", row, env=device)
    assert ran.returncode == 0, ran.stderr
    assert "wdbc-malignancy-mlp" in (tmp_path / "rollback-state.json").read_text()
    # ... and refuses the same bundle once its manifest is edited (exit 5, the reason named).
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"BSD-3-Clause"', '"proprietary"'))
    for args in (("run", "wdbc-malignancy-mlp", row), ("bundle", "verify", str(bundle))):
        refused = _edgemed(*args, env=device)
        assert refused.returncode == 5, refused.stderr
        assert "SignatureError: " in refused.stderr and "changed after signing" in refused.stderr
        assert "Traceback" not in refused.stderr
    # An unsigned bundled model under the same policy: refused, exit 5.
    unsigned = _edgemed("run", "diabetes-progression", json.dumps([0.0] * 10), env=device)
    assert unsigned.returncode == 5 and "unsigned" in unsigned.stderr, unsigned.stderr
