"""``edgemed fleet serve --api-cert --api-key`` as a user runs it: HTTPS round trips with a named
user made by ``edgemed fleet users add``, secure cookies and HSTS, and the failing-closed cases
(a client with another CA, plain HTTP to the HTTPS port, a key that is not the certificate's).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from api_client import Session, call
from conftest import Mosquitto, free_port, start_fleet_server
from pki import CertificateAuthority

pytestmark = pytest.mark.broker
PASSWORD = "a long enough password"


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgemed.cli", *args], input=stdin, capture_output=True,
        text=True, timeout=60, env=os.environ.copy(),
    )  # fmt: skip


def test_https_with_named_users_fails_closed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ca, rogue = (
        CertificateAuthority(tmp_path, "hospital-ca"),
        CertificateAuthority(tmp_path, "rogue"),
    )
    server = ca.issue("fleet.ward.example", server=True)
    db = tmp_path / "fleet.db"
    made = _cli("fleet", "users", "add", "nurse.kim", "--role", "clinician", "--db", str(db),
                "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0 and "nurse.kim added" in made.stdout, made.stderr
    weak = _cli("fleet", "users", "add", "nurse.b", "--role", "clinician", "--db", str(db),
                "--password-stdin", stdin="short\n")  # fmt: skip
    assert weak.returncode != 0 and "AccountError" in weak.stderr and "Traceback" not in weak.stderr
    port = free_port()
    proc, banner = start_fleet_server(db, mosquitto.port, api_port=port, extra=[
        "--api-cert", str(server.cert), "--api-key", str(server.key)])  # fmt: skip
    try:
        assert f"https://127.0.0.1:{port}/" in banner
        base = f"https://127.0.0.1:{port}"
        trusted = ssl.create_default_context(cafile=str(ca.path))
        nurse = Session(base, trusted)
        status, body = nurse.login("nurse.kim", PASSWORD)
        assert status == 200 and body["role"] == "clinician"
        cookies = {c.name: c for c in nurse.jar}
        assert cookies["edgemed_session"].secure and cookies["edgemed_csrf"].secure
        assert nurse.call("/api/results")[0] == 200
        assert nurse.call("/api/users")[0] == 403
        with urllib.request.urlopen(base + "/api/health", context=trusted, timeout=5) as reply:
            assert "max-age=" in reply.headers["Strict-Transport-Security"]
        # Failing closed: a client trusting another CA, and plain HTTP on the HTTPS port.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(base + "/api/health",
                                   context=ssl.create_default_context(cafile=str(rogue.path)))  # fmt: skip
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            call(f"http://127.0.0.1:{port}", "/api/health")
        # The CLI's changes are audited as the OS user who made them.
        audit = _cli("fleet", "users", "list", "--db", str(db))
        assert [u["username"] for u in json.loads(audit.stdout)] == ["nurse.kim"]
    finally:
        proc.terminate()
        proc.wait(10)
    wrong_key = ca.issue("other", server=True).key
    refused = _cli("fleet", "serve", "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--db",
                   str(db), "--api-cert", str(server.cert), "--api-key", str(wrong_key))  # fmt: skip
    assert refused.returncode != 0 and "cannot serve HTTPS" in refused.stderr
    assert "Traceback" not in refused.stderr
