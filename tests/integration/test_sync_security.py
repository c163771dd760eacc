"""TLS, mutual TLS, per-device ACLs and passwords against real mosquitto processes.

Every failure mode must fail closed: the device never connects, and its result stays in the
outbox (never dropped) until a correctly configured broker takes it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Mosquitto, until
from paho.mqtt.enums import CallbackAPIVersion
from pki import CertificateAuthority, Issued

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig, TlsConfig
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.sync import Outbox, Publisher

pytestmark = pytest.mark.broker
FAST = SyncConfig(resend_initial_s=0.5, reconnect_min_s=0.1, reconnect_max_s=0.5)
FLEET_ID = "edgemed-fleet-ingest"
ACL = f"""pattern write edgemed/v1/%u/results
pattern write edgemed/v1/%u/status
pattern read edgemed/v1/%u/ack
user {FLEET_ID}
topic read edgemed/v1/+/results
topic read edgemed/v1/+/status
topic write edgemed/v1/+/ack
"""


class Pki:
    def __init__(self, folder: Path) -> None:
        self.ca = CertificateAuthority(folder, "edgemed-test-ca")
        self.other_ca = CertificateAuthority(folder, "unrelated-ca")
        self.server = self.ca.issue("broker", server=True)
        self.expired_server = self.ca.issue("broker", server=True, expired=True)
        self.devices = {cn: self.ca.issue(cn) for cn in ("bed-a", "bed-b", FLEET_ID)}

    def tls(self, cn: str | None = None, *, ca: Path | None = None) -> TlsConfig:
        issued = self.devices[cn] if cn else None
        return TlsConfig(
            ca_file=ca or self.ca.path,
            cert_file=issued.cert if issued else None,
            key_file=issued.key if issued else None,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _tls_broker(
    tmp_path: Path, pki: Pki, *, server: Issued | None = None, mutual: bool = True, extra: str = ""
) -> Mosquitto:
    server = server or pki.server
    (tmp_path / "acl").write_text(ACL)
    settings = f"cafile {pki.ca.path}\ncertfile {server.cert}\nkeyfile {server.key}\n"
    if mutual:
        settings += f"require_certificate true\nuse_identity_as_username true\nacl_file {tmp_path / 'acl'}\n"
    broker = Mosquitto(tmp_path, extra=settings + extra)
    broker.start()
    return broker


def _outbox(tmp_path: Path, device: str) -> Outbox:
    return Outbox(OutboxConfig(path=tmp_path / f"{device}.db", device_id=device))


def test_mutual_tls_round_trip(
    tmp_path: Path, pki: Pki, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = _tls_broker(tmp_path, pki)
    try:
        fleet_cfg = BrokerConfig(port=broker.port, tls=pki.tls(FLEET_ID))
        dev_cfg = BrokerConfig(port=broker.port, tls=pki.tls("bed-a"))
        with (
            Ingest(store, fleet_cfg, sync=FAST) as ingest,
            Publisher(_outbox(tmp_path, "bed-a"), dev_cfg, FAST) as pub,
        ):
            assert ingest.ready.wait(10) and until(lambda: pub.connected, 10)
            pub.submit(encoder("mutual TLS"))
            assert pub.wait_drained(10)
    finally:
        broker.kill()
    assert [r["device_id"] for r in store.results()] == ["bed-a"]


@pytest.mark.parametrize(
    "fault", ["wrong-ca", "expired-server-cert", "plain-tcp", "no-client-cert"]
)
def test_tls_faults_fail_closed_and_keep_the_result(
    fault: str, tmp_path: Path, pki: Pki, encoder: edgemed.Pipeline
) -> None:
    broker = _tls_broker(
        tmp_path, pki, server=pki.expired_server if fault == "expired-server-cert" else None
    )
    tls: TlsConfig | None = {
        "wrong-ca": pki.tls("bed-a", ca=pki.other_ca.path),
        "expired-server-cert": pki.tls("bed-a"),
        "plain-tcp": None,
        "no-client-cert": pki.tls(None),
    }[fault]
    outbox = _outbox(tmp_path, "bed-a")
    try:
        with Publisher(outbox, BrokerConfig(port=broker.port, tls=tls), FAST) as pub:
            pub.submit(encoder(f"tls fault {fault}"))
            assert not until(lambda: pub.connected, 3.0), f"{fault}: connected anyway"
    finally:
        broker.kill()
    assert outbox.depth == 1  # kept for a correctly configured broker


def test_acl_confines_each_device_to_its_own_topics(
    tmp_path: Path, pki: Pki, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    broker = _tls_broker(tmp_path, pki)
    stolen_acks: list[bytes] = []
    rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bed-a-rogue")
    a = pki.devices["bed-a"]
    rogue.tls_set(ca_certs=str(pki.ca.path), certfile=str(a.cert), keyfile=str(a.key))
    rogue.on_connect = lambda c, *_: c.subscribe("edgemed/v1/bed-b/ack", qos=1)
    rogue.on_message = lambda _c, _u, m: stolen_acks.append(m.payload)
    try:
        fleet_cfg = BrokerConfig(port=broker.port, tls=pki.tls(FLEET_ID))
        with Ingest(store, fleet_cfg, sync=FAST) as ingest:
            assert ingest.ready.wait(10)
            rogue.connect("127.0.0.1", broker.port)
            rogue.loop_start()
            assert until(lambda: rogue.is_connected(), 10)
            # bed-a (authenticated by its certificate) forges a result as bed-b.
            forged = edgemed.wire.encode_result(
                encoder("forged"),
                device_id="bed-b",
                seq=1,
                boot_id="x",
                lowest_unacked_seq=1,
                clock_synced=False,
            )
            rogue.publish("edgemed/v1/bed-b/results", forged, qos=1).wait_for_publish(5)
            b_cfg = BrokerConfig(port=broker.port, tls=pki.tls("bed-b"))
            with Publisher(_outbox(tmp_path, "bed-b"), b_cfg, FAST) as pub_b:
                pub_b.submit(encoder("genuine bed-b result"))
                assert pub_b.wait_drained(10)  # the fleet acks bed-b: an ack bed-a must not see
            time.sleep(0.5)
    finally:
        rogue.loop_stop()
        rogue.disconnect()
        broker.kill()
    rows = store.results(device_id="bed-b")
    assert len(rows) == 1 and rows[0]["payload"]["boot_id"] != "x", "the forged result got in"
    assert stolen_acks == []


def test_username_password(
    tmp_path: Path, pki: Pki, store: SQLiteStore, encoder: edgemed.Pipeline
) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "bed-pw", "correct horse"],
        check=True,
        capture_output=True,
    )
    broker = _tls_broker(
        tmp_path, pki, mutual=False, extra=f"allow_anonymous false\npassword_file {passwd}\n"
    )
    try:
        good = BrokerConfig(
            port=broker.port, tls=pki.tls(None), username="bed-pw", password="correct horse"
        )
        bad = BrokerConfig(port=broker.port, tls=pki.tls(None), username="bed-pw", password="wrong")
        with Publisher(_outbox(tmp_path, "bed-pw"), bad, FAST) as pub:
            pub.submit(encoder("wrong password"))
            assert not until(lambda: pub.connected, 3.0)
        with Publisher(_outbox(tmp_path, "bed-pw"), good, FAST) as pub:
            assert until(lambda: pub.connected, 10)
    finally:
        broker.kill()
