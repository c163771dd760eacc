"""The fleet's broker link over TLS, against real mosquitto TLS listeners (issue 25, item 1):
``edgemed fleet serve`` with TLS options or a configuration file, and a device driven by its
configuration file, round trip with mutual TLS; a broker certificate from the wrong CA, expired
or for another host stops ``fleet serve`` at once with the reason (exit 7), never a plain-MQTT
fallback; a plain link to a TLS listener and a client certificate the broker refuses stop it
with the likely cause; a running fleet keeps refusing a broker that returns with a bad
certificate. Every negative case has a positive control on a broker of the same setup.
(Device-side TLS: tests/integration/test_sync_tls.py, whose PKI helpers this file reuses.)
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import test_sync_tls as device_tls
from conftest import Mosquitto, until
from cryptography import x509
from pki import CertificateAuthority, Issued

import edgemed
import edgemed.sync
from edgemed.config import BrokerConfig, SyncConfig, TlsConfig
from edgemed.errors import SyncError
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.broker import free_port
from edgemed.fleet.server import FleetServer
from edgemed.sync import Outbox, Publisher

pytestmark = pytest.mark.broker
FLEET = "edgemed-fleet"  # the fleet's certificate CN: its user in the ACL
TOKEN = "fleet-tls-test-token-0123456789"
FAST = SyncConfig(resend_initial_s=0.3, resend_max_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.5)
ACL = """pattern write edgemed/v1/%u/results
pattern write edgemed/v1/%u/status
pattern read  edgemed/v1/%u/ack
pattern read  edgemed/v1/%u/cmd
topic read    edgemed/fleet/v1/+/+/status
user edgemed-fleet
topic read  edgemed/v1/+/results
topic read  edgemed/v1/+/status
topic write edgemed/v1/+/ack
topic write edgemed/v1/+/cmd
topic readwrite edgemed/fleet/v1/#
"""  # docs/deployment.md's, word for word


class Pki:
    def __init__(self, folder: Path) -> None:
        (folder / "other").mkdir()
        self.ca = CertificateAuthority(folder, "fleet-tls-ca")
        self.other_ca = CertificateAuthority(folder / "other", "unrelated-ca")
        self.server = self.ca.issue("broker", server=True)
        self.expired_server = self.ca.issue("broker", server=True, expired=True)
        self.misnamed_server = device_tls._server_cert_for(  # trusted CA, another host's name
            self.ca, "broker-elsewhere", [x509.DNSName("broker.example")]
        )
        self.fleet = self.ca.issue(FLEET)
        self.untrusted_fleet = self.other_ca.issue(FLEET)  # a CA the broker does not trust
        self.expired_fleet = self.ca.issue(FLEET, expired=True)
        self.device = self.ca.issue("bed-a")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("fleet-tls-pki"))


StartBroker = Callable[..., Mosquitto]


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[StartBroker]:
    """``start_broker(pki, server=..., port=...)``: a mutual-TLS mosquitto with the documented
    ACL, killed after the test."""
    started: list[Mosquitto] = []
    (tmp_path / "acl").write_text(ACL)

    def start(pki: Pki, *, server: Issued | None = None, port: int | None = None) -> Mosquitto:
        server = server or pki.server
        folder = tmp_path / f"broker-{len(started)}"
        folder.mkdir()
        broker = Mosquitto(
            folder,
            extra=f"cafile {pki.ca.path}\ncertfile {server.cert}\nkeyfile {server.key}\n"
            f"require_certificate true\nuse_identity_as_username true\n"
            f"acl_file {tmp_path / 'acl'}\n",
        )
        if port is not None:  # the same address again (a broker restarted)
            broker.conf.write_text(
                broker.conf.read_text().replace(f"listener {broker.port} ", f"listener {port} ")
            )
            broker.port = port
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        broker.kill()


def _serve(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "edgemed.cli", "fleet", "serve", "--db", str(tmp_path / "f.db")]
    cmd += ["--port", str(free_port()), "--token", TOKEN, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tls_table(ca: Path, client: Issued) -> str:
    return (
        f'[broker.tls]\nca_file = "{ca}"\ncert_file = "{client.cert}"\nkey_file = "{client.key}"\n'
    )


def test_fleet_serve_and_a_device_round_trip_over_mutual_tls_from_config_files(
    tmp_path: Path, pki: Pki, start_broker: StartBroker, encoder: edgemed.Pipeline
) -> None:
    broker = start_broker(pki)
    url = f"mqtts://127.0.0.1:{broker.port}"
    fleet_toml = _toml(
        tmp_path / "fleet.toml", f'[broker]\nurl = "{url}"\n' + _tls_table(pki.ca.path, pki.fleet)
    )
    proc = _serve(tmp_path, "--config", str(fleet_toml))
    try:
        assert proc.stdout is not None and proc.stderr is not None
        banner = proc.stdout.readline()
        assert banner.startswith(f"fleet: ingest from 127.0.0.1:{broker.port} (TLS)"), (
            banner + proc.stderr.read()[-3000:]
        )
        api = re.search(r"API (http://\S+)", banner)
        assert api is not None
        device_toml = _toml(
            tmp_path / "device.toml",
            f'[device]\nid = "bed-a"\n[outbox]\npath = "outbox.db"\n[broker]\nurl = "{url}"\n'
            + _tls_table(pki.ca.path, pki.device),
        )
        config = edgemed.sync.load_config(device_toml)
        assert config.outbox is not None and config.broker is not None
        with Publisher(Outbox(config.outbox), config.broker, FAST) as pub:
            pub.submit(encoder("mutual TLS from a configuration file"))
            assert pub.wait_drained(20), pub.outbox.stats()
        request = urllib.request.Request(
            f"{api.group(1)}results", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.loads(answer.read())
        rows = body["items"]
        assert [r["device_id"] for r in rows] == ["bed-a"]
    finally:
        proc.terminate()
        proc.wait(30)
    status = subprocess.run(
        [sys.executable, "-m", "edgemed.cli", "sync", "status", "--config", str(device_toml), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert (json.loads(status.stdout)["device_id"], json.loads(status.stdout)["outbox_depth"]) == (
        "bed-a", 0
    )  # fmt: skip


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("wrong-ca", 7, "certificate verify failed: "),  # wording varies with the chain sent
        ("expired-broker", 7, "certificate verify failed: certificate has expired"),
        ("wrong-host", 7, "certificate is not valid for '127.0.0.1'"),
        ("expired-client", 3, "the client certificate"),
    ],
)
def test_fleet_serve_refuses_a_certificate_that_does_not_verify_at_once(
    case: str, status: int, message: str, tmp_path: Path, pki: Pki, start_broker: StartBroker
) -> None:
    server = {"expired-broker": pki.expired_server, "wrong-host": pki.misnamed_server}
    broker = start_broker(pki, server=server.get(case, pki.server))
    ca = pki.other_ca.path if case == "wrong-ca" else pki.ca.path
    fleet = pki.expired_fleet if case == "expired-client" else pki.fleet
    started = time.monotonic()
    proc = _serve(
        tmp_path,
        "--broker", f"mqtts://127.0.0.1:{broker.port}",
        "--broker-ca", str(ca), "--broker-cert", str(fleet.cert), "--broker-key", str(fleet.key),
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == status, (out, err[-3000:])
    assert message in err and "Traceback" not in err, err[-3000:]
    if status == 7:
        assert "TLS refused the broker's certificate" in err
        assert "does not fall back to plain MQTT" in err
    assert elapsed < 15, f"refused after {elapsed:.1f} s: not at once"  # the ready timeout is 20 s
    assert "fleet: ingest" not in out
    # Control: the same broker takes the fleet's good certificate (only the case's part is bad).
    if case == "expired-client":
        store = SQLiteStore(tmp_path / "control.db")
        with Ingest(store, _fleet_broker(broker, pki), sync=FAST) as ok:
            assert ok.ready.wait(10)
        store.close()


def _fleet_broker(broker: Mosquitto, pki: Pki, **tls: object) -> BrokerConfig:
    config = {"ca_file": pki.ca.path, "cert_file": pki.fleet.cert, "key_file": pki.fleet.key, **tls}
    return BrokerConfig(port=broker.port, tls=TlsConfig(**config))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("plain", "if it is a TLS listener, give its CA (the fleet never guesses TLS)"),
        ("untrusted-client", "it may refuse the fleet's client certificate"),
    ],
)
def test_a_fleet_the_broker_will_not_talk_to_does_not_start(
    case: str, message: str, tmp_path: Path, pki: Pki, start_broker: StartBroker
) -> None:
    broker = start_broker(pki)
    if case == "plain":
        config = BrokerConfig(port=broker.port)
    else:
        config = _fleet_broker(
            broker, pki, cert_file=pki.untrusted_fleet.cert, key_file=pki.untrusted_fleet.key
        )
    store = SQLiteStore(tmp_path / "fleet.db")
    try:
        server = FleetServer(store, config, token=TOKEN, port=free_port())
        with pytest.raises(SyncError) as caught:
            server.start(ready_timeout=3)
        assert message in str(caught.value), caught.value
        assert not server.presence.connected and not any(w.connected for w in server.workers)
        # Control: the same broker, the fleet's good certificate.
        good = FleetServer(store, _fleet_broker(broker, pki), token=TOKEN, port=free_port())
        with good:
            assert good.health()[0], good.health()[1]
    finally:
        store.close()


def test_a_running_fleet_keeps_refusing_a_broker_back_with_a_bad_certificate(
    tmp_path: Path,
    pki: Pki,
    start_broker: StartBroker,
    store: SQLiteStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = start_broker(pki)
    with Ingest(store, _fleet_broker(first, pki), sync=FAST) as ingest:
        assert ingest.ready.wait(10) and until(lambda: ingest.connected, 5)
        first.kill()
        assert until(lambda: not ingest.connected, 10)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="edgemed.mqtt_connection"):
            impostor = start_broker(pki, server=pki.misnamed_server, port=first.port)
            assert not until(lambda: ingest.connected, device_tls.NEVER_S)
            refusals = [r for r in caplog.records if "TLS refused" in r.getMessage()]
            assert len(refusals) >= 2, [r.getMessage() for r in caplog.records]  # every retry
            impostor.kill()
        start_broker(pki, port=first.port)  # control: the genuine broker back
        assert until(lambda: ingest.connected, 15)
