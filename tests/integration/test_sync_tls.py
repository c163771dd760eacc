"""TLS edge cases against real mosquitto processes, beyond test_sync_security.py.

test_sync_security.py covers the basic matrix (mTLS round trip; wrong CA, expired server
certificate, plain TCP, no client certificate; one forged publish and one exact-topic
subscription across devices; passwords). This file checks what that matrix leaves open:
the broker's name is verified (not only its CA), the broker refuses client certificates from an
unrelated CA or past their validity, the ACL identity is the certificate's CN whatever client id
or username a device claims, wildcard subscriptions and retained status cannot cross devices,
passwords keep an outbox intact until the right one is used, and the fleet ingest fails closed.
Every negative case has a positive control on the same broker, so a silent broker cannot pass.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt
import pytest
from conftest import Mosquitto, until
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion
from pki import CertificateAuthority, Issued

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig, TlsConfig
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.sync import Outbox, Publisher
from edgemed.wire import encode_result, encode_status

pytestmark = pytest.mark.broker
FAST = SyncConfig(resend_initial_s=0.3, resend_max_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.5)
FLEET_ID = "edgemed-fleet-ingest"
NEVER_S = 3.0  # how long a refused client is watched for a connection that must not happen
ACL = f"""pattern write edgemed/v1/%u/results
pattern write edgemed/v1/%u/status
pattern read edgemed/v1/%u/ack
user {FLEET_ID}
topic read edgemed/v1/+/results
topic read edgemed/v1/+/status
topic write edgemed/v1/+/ack
"""


def _server_cert_for(ca: CertificateAuthority, stem: str, names: list[x509.GeneralName]) -> Issued:
    """A valid broker certificate from the trusted CA, but for other names than 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    issued = Issued(ca.folder / f"{stem}.crt", ca.folder / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    issued.key.chmod(0o600)
    return issued


class Pki:
    def __init__(self, folder: Path) -> None:
        (folder / "other").mkdir()  # CertificateAuthority names files by CN: keep CAs apart
        self.ca = CertificateAuthority(folder, "edgemed-tls-ca")
        self.other_ca = CertificateAuthority(folder / "other", "unrelated-ca")
        self.server = self.ca.issue("broker", server=True)
        self.misnamed_server = _server_cert_for(
            self.ca,
            "broker-elsewhere",
            [x509.DNSName("broker.example"), x509.IPAddress(ipaddress.ip_address("10.9.9.9"))],
        )
        self.clients = {cn: self.ca.issue(cn) for cn in ("bed-a", "bed-b", FLEET_ID)}
        self.untrusted_a = self.other_ca.issue("bed-a")  # right CN, CA the broker does not trust
        self.expired_a = self.ca.issue("bed-a", expired=True)

    def tls(self, client: Issued | None = None, *, ca: Path | None = None) -> TlsConfig:
        return TlsConfig(
            ca_file=ca or self.ca.path,
            cert_file=client.cert if client else None,
            key_file=client.key if client else None,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("tls-pki"))


StartBroker = Callable[..., Mosquitto]


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[StartBroker]:
    """``start_broker(pki, server=..., mutual=..., extra=...)``: a TLS mosquitto, killed after."""
    started: list[Mosquitto] = []

    def start(
        pki: Pki, *, server: Issued | None = None, mutual: bool = True, extra: str = ""
    ) -> Mosquitto:
        server = server or pki.server
        settings = f"cafile {pki.ca.path}\ncertfile {server.cert}\nkeyfile {server.key}\n"
        if mutual:
            (tmp_path / "acl").write_text(ACL)
            settings += "require_certificate true\nuse_identity_as_username true\n"
            settings += f"acl_file {tmp_path / 'acl'}\n"
        broker = Mosquitto(tmp_path, extra=settings + extra)
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        broker.kill()


def _outbox(tmp_path: Path, device: str, name: str | None = None) -> Outbox:
    return Outbox(OutboxConfig(path=tmp_path / f"{name or device}.db", device_id=device))


def _fleet(store: SQLiteStore, port: int, pki: Pki) -> Ingest:
    return Ingest(store, BrokerConfig(port=port, tls=pki.tls(pki.clients[FLEET_ID])), sync=FAST)


@pytest.mark.parametrize(
    ("server_names", "host", "accepted"),
    [
        ("127.0.0.1+localhost", "127.0.0.1", True),  # IP SAN
        ("127.0.0.1+localhost", "localhost", True),  # DNS SAN
        ("broker.example+10.9.9.9", "127.0.0.1", False),  # trusted CA, someone else's name
    ],
)
def test_device_verifies_the_broker_name_not_only_its_ca(
    server_names: str,
    host: str,
    accepted: bool,
    tmp_path: Path,
    pki: Pki,
    store: SQLiteStore,
    start_broker: StartBroker,
    encoder: edgemed.Pipeline,
) -> None:
    server = pki.server if accepted else pki.misnamed_server
    broker = start_broker(pki, server=server)
    outbox = _outbox(tmp_path, "bed-a")
    device = BrokerConfig(host=host, port=broker.port, tls=pki.tls(pki.clients["bed-a"]))
    with _fleet(store, broker.port, pki) as ingest, Publisher(outbox, device, FAST) as pub:
        pub.submit(encoder(f"verify {server_names} via {host}"))
        if accepted:
            assert ingest.ready.wait(10) and pub.wait_drained(10), outbox.stats()
        else:  # the fleet is configured for 127.0.0.1 too: it must refuse the broker as well
            connected = lambda: pub.connected or ingest.ready.is_set()  # noqa: E731
            assert not until(connected, NEVER_S), "trusted a certificate for another host"
    assert outbox.depth == (0 if accepted else 1)
    assert store.count_results() == (1 if accepted else 0)
    if not accepted:  # control: the certificate is otherwise fine; only its name is wrong
        insecure = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="name-check-off")
        insecure.tls_set(
            ca_certs=str(pki.ca.path),
            certfile=str(pki.clients["bed-b"].cert),
            keyfile=str(pki.clients["bed-b"].key),
        )
        insecure.tls_insecure_set(True)
        insecure.connect("127.0.0.1", broker.port)
        insecure.loop_start()
        try:
            assert until(insecure.is_connected, 10)
        finally:
            insecure.loop_stop()
            insecure.disconnect()


def test_broker_refuses_client_certificates_from_an_unrelated_ca_or_expired(
    tmp_path: Path,
    pki: Pki,
    store: SQLiteStore,
    start_broker: StartBroker,
    encoder: edgemed.Pipeline,
) -> None:
    broker = start_broker(pki)
    bad = {"unrelated-ca": pki.untrusted_a, "expired": pki.expired_a}
    outboxes = {name: _outbox(tmp_path, "bed-a", name) for name in bad}
    with contextlib.ExitStack() as stack:
        ingest = stack.enter_context(_fleet(store, broker.port, pki))
        assert ingest.ready.wait(10)  # control: a trusted client certificate is accepted
        pubs = {
            name: stack.enter_context(
                Publisher(outboxes[name], BrokerConfig(port=broker.port, tls=pki.tls(cert)), FAST)
            )
            for name, cert in bad.items()
        }
        for name, pub in pubs.items():
            pub.submit(encoder(f"client certificate: {name}"))
        deadline = time.monotonic() + NEVER_S  # watched side by side: one wait for all
        while time.monotonic() < deadline:
            assert not any(p.connected for p in pubs.values()), {
                n: p.connected for n, p in pubs.items()
            }
            time.sleep(0.05)
    assert {name: box.depth for name, box in outboxes.items()} == dict.fromkeys(bad, 1)
    assert store.count_results() == 0 and store.devices() == []


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_acl_identity_is_the_certificate_cn_not_the_claimed_client_id_or_username(
    protocol: Literal["3.1.1", "5"],
    tmp_path: Path,
    pki: Pki,
    store: SQLiteStore,
    start_broker: StartBroker,
    encoder: edgemed.Pipeline,
) -> None:
    """bed-a's certificate, configured as device bed-b and username bed-b: it connects (the
    certificate is valid) but the broker knows it as bed-a, so nothing it sends as bed-b is
    delivered; its result stays in its outbox. Genuine bed-a on the same broker drains."""
    broker = start_broker(pki)
    a_cert = pki.tls(pki.clients["bed-a"])
    impostor_cfg = BrokerConfig(
        port=broker.port, tls=a_cert, username="bed-b", password="x", protocol=protocol
    )
    genuine_cfg = BrokerConfig(port=broker.port, tls=a_cert, protocol=protocol)
    impostor_box = _outbox(tmp_path, "bed-b")
    with (
        _fleet(store, broker.port, pki) as ingest,
        Publisher(impostor_box, impostor_cfg, FAST) as impostor,
        Publisher(_outbox(tmp_path, "bed-a"), genuine_cfg, FAST) as genuine,
    ):
        assert ingest.ready.wait(10) and until(lambda: impostor.connected, 10)
        impostor.submit(encoder("claimed to be bed-b"))
        genuine.submit(encoder("really bed-a"))
        assert genuine.wait_drained(10)
        time.sleep(1.0)  # several resends of the impostor's row (resend_initial_s=0.3)
        assert impostor.connected, "the impostor is connected: it cannot tell it is muted"
    assert impostor_box.depth == 1
    assert [r["device_id"] for r in store.results()] == ["bed-a"]
    assert [d["device_id"] for d in store.devices()] == ["bed-a"]  # bed-b's birth was dropped


def test_wildcard_subscription_and_retained_status_cannot_cross_devices(
    tmp_path: Path,
    pki: Pki,
    store: SQLiteStore,
    start_broker: StartBroker,
    encoder: edgemed.Pipeline,
) -> None:
    broker = start_broker(pki)
    seen: list[str] = []
    subscribed = threading.Event()
    a = pki.clients["bed-a"]
    rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bed-a-rogue")
    rogue.tls_set(ca_certs=str(pki.ca.path), certfile=str(a.cert), keyfile=str(a.key))
    rogue.on_connect = lambda c, *_: c.subscribe([("#", 1), ("edgemed/v1/+/ack", 1)])
    rogue.on_subscribe = lambda *_: subscribed.set()
    rogue.on_message = lambda _c, _u, m: seen.append(m.topic)
    boxes = {dev: _outbox(tmp_path, dev) for dev in ("bed-a", "bed-b")}
    with _fleet(store, broker.port, pki) as ingest:
        assert ingest.ready.wait(10)
        rogue.connect("127.0.0.1", broker.port)
        rogue.loop_start()
        try:
            assert subscribed.wait(10)  # mosquitto grants both filters; it filters per message
            for dev, box in boxes.items():
                cfg = BrokerConfig(port=broker.port, tls=pki.tls(pki.clients[dev]))
                with Publisher(box, cfg, FAST) as pub:
                    pub.submit(encoder(f"genuine {dev}"))
                    assert pub.wait_drained(10)
            # bed-a forges bed-b's next result and a retained death notice for it...
            forged = encode_result(
                encoder("forged"),
                device_id="bed-b",
                seq=2,
                boot_id="forged",
                lowest_unacked_seq=2,
                clock_synced=False,
            )
            forged_status = encode_status(
                "online", device_id="bed-b", boot_id="forged", connection=99
            )
            rogue.publish("edgemed/v1/bed-b/results", forged, qos=1).wait_for_publish(5)
            rogue.publish(
                "edgemed/v1/bed-b/status", forged_status, qos=1, retain=True
            ).wait_for_publish(5)
            # ...then a status on its own topic: once the fleet has it, the forgeries (sent
            # first, on the same connection) would have arrived too.
            mine = encode_status("online", device_id="bed-a", boot_id="sentinel", connection=99)
            rogue.publish("edgemed/v1/bed-a/status", mine, qos=1).wait_for_publish(5)
            assert until(lambda: _device(store, "bed-a")["boot_id"] == "sentinel", 10)
            time.sleep(0.3)
        finally:
            rogue.loop_stop()
            rogue.disconnect()
    assert "edgemed/v1/bed-a/ack" in seen, "control: bed-a's subscription should get its acks"
    assert set(seen) == {"edgemed/v1/bed-a/ack"}, seen  # nothing of bed-b's, no results at all
    b_rows = store.results(device_id="bed-b")
    assert [(r["seq"], r["payload"]["boot_id"]) for r in b_rows] == [(1, boxes["bed-b"].boot_id)]
    b = _device(store, "bed-b")
    assert (b["state"], b["boot_id"]) == ("offline", boxes["bed-b"].boot_id)
    late = _retained(broker.port, pki, "edgemed/v1/bed-b/status")  # what a new fleet would see
    assert late is not None and json.loads(late)["boot_id"] == boxes["bed-b"].boot_id


def _device(store: SQLiteStore, device_id: str) -> dict[str, object]:
    return next((d for d in store.devices() if d["device_id"] == device_id), {})


def _retained(port: int, pki: Pki, name: str) -> bytes | None:
    got: list[bytes] = []
    fleet = pki.clients[FLEET_ID]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-check")
    client.tls_set(ca_certs=str(pki.ca.path), certfile=str(fleet.cert), keyfile=str(fleet.key))
    client.on_connect = lambda c, *_: c.subscribe(name, qos=1)
    client.on_message = lambda _c, _u, m: got.append(m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        until(lambda: got, 1.0)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0] if got else None


def test_passwords_keep_the_outbox_until_the_right_one(
    tmp_path: Path,
    pki: Pki,
    store: SQLiteStore,
    start_broker: StartBroker,
    encoder: edgemed.Pipeline,
) -> None:
    import subprocess

    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        pytest.skip("mosquitto_passwd not installed (package mosquitto): no password file")
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate([("bed-c", "correct horse"), (FLEET_ID, "fleet pw")]):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            [passwd_tool, "-b", *create, str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    extra = f"allow_anonymous false\npassword_file {passwd}\n"
    broker = start_broker(pki, mutual=False, extra=extra)
    server_only = pki.tls()  # TLS with CA verification, no client certificate
    base = BrokerConfig(port=broker.port, tls=server_only)
    refused = {
        "anonymous": base,
        "wrong-password": BrokerConfig(
            port=broker.port, tls=server_only, username="bed-c", password="battery staple"
        ),
        "right-password-plain-tcp": BrokerConfig(
            port=broker.port, username="bed-c", password="correct horse"
        ),
    }
    outboxes = {name: _outbox(tmp_path, "bed-c", name) for name in refused}
    fleet_cfg = BrokerConfig(
        port=broker.port, tls=server_only, username=FLEET_ID, password="fleet pw"
    )
    with Ingest(store, fleet_cfg, sync=FAST) as ingest:
        assert ingest.ready.wait(10)
        with contextlib.ExitStack() as stack:
            pubs = {
                name: stack.enter_context(Publisher(outboxes[name], cfg, FAST))
                for name, cfg in refused.items()
            }
            for name, pub in pubs.items():
                pub.submit(encoder(f"password case {name}"))
            deadline = time.monotonic() + NEVER_S
            while time.monotonic() < deadline:
                assert not any(p.connected for p in pubs.values())
                time.sleep(0.05)
        assert all(box.depth == 1 for box in outboxes.values())
        assert store.count_results() == 0
        # The wrong-password device is fixed: the same outbox drains with the right password.
        good = BrokerConfig(
            port=broker.port, tls=server_only, username="bed-c", password="correct horse"
        )
        with Publisher(outboxes["wrong-password"], good, FAST) as pub:
            assert pub.wait_drained(10)
    assert [r["device_id"] for r in store.results()] == ["bed-c"]


def test_fleet_ingest_fails_closed_too(tmp_path: Path, pki: Pki, start_broker: StartBroker) -> None:
    broker = start_broker(pki)
    fleet_cert = pki.clients[FLEET_ID]
    configs = {
        "control": BrokerConfig(port=broker.port, tls=pki.tls(fleet_cert)),
        "unrelated-ca": BrokerConfig(
            port=broker.port, tls=pki.tls(fleet_cert, ca=pki.other_ca.path)
        ),
        "plain-tcp": BrokerConfig(port=broker.port),
    }
    with contextlib.ExitStack() as stack:
        ingests = {}
        for name, cfg in configs.items():
            store = SQLiteStore(tmp_path / f"fleet-{name}.db")
            stack.callback(store.close)
            ingests[name] = stack.enter_context(
                Ingest(store, cfg, client_id=f"fleet-{name}", sync=FAST)
            )
        assert ingests["control"].ready.wait(10)
        time.sleep(NEVER_S)
        assert {name: i.ready.is_set() for name, i in ingests.items()} == {
            "control": True,
            "unrelated-ca": False,
            "plain-tcp": False,
        }
