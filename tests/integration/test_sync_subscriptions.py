"""A subscription the broker refuses is said and asked for again (sync/subscriptions.py).

Before: the publisher never read its SUBACK codes. A broker refusing the device's ack
subscription (NATS failing to create the consumer behind it while a node recovered, or a
permission) left the device with no acks and a growing outbox, with nothing said. Here a real
NATS server's MQTT listener refuses it by permission (mosquitto 2.0 grants an ACL-denied
subscription and then delivers nothing, so it cannot show a refusal), then grants it after its
configuration is reloaded (SIGHUP): the device logs the refusal, subscribes again, and its
outbox drains. Acks come from a real fleet ingest through the same server.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import until
from nats_cluster import NATS_SERVER

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.fleet import Ingest, SQLiteStore
from edgemed.fleet.broker import free_port, wait_for_port
from edgemed.sync import Outbox, Publisher

pytestmark = pytest.mark.broker
FAST = SyncConfig(resend_initial_s=0.3, resend_max_s=1.0, reconnect_min_s=0.1, reconnect_max_s=0.5)
CONF = """listen: 127.0.0.1:{port}
server_name: sub-test
jetstream {{ store_dir: "{store}" }}
mqtt {{ listen: 127.0.0.1:{mqtt} }}
authorization {{ users = [
  {{ user: fleet, password: fleet-password }},
  {{ user: bed-1, password: device-password,
    permissions: {{ publish: ">", subscribe: {{ allow: ">"{deny} }} }} }}
] }}
"""
DENY_ACKS = ', deny: "edgemed.v1.*.ack"'


def test_a_refused_ack_subscription_is_logged_and_retried_until_granted(
    tmp_path: Path, store: SQLiteStore, encoder: edgemed.Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed (scripts/test.sh installs it)")
    port, mqtt_port = free_port(), free_port()
    conf = tmp_path / "nats.conf"
    settings = {"port": port, "mqtt": mqtt_port, "store": tmp_path / "js"}
    conf.write_text(CONF.format(**settings, deny=DENY_ACKS))
    with (tmp_path / "nats.log").open("wb") as log:
        server = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=log, stderr=log)
    caplog.set_level(logging.WARNING, logger="edgemed.sync.subscriptions")
    try:
        assert wait_for_port(mqtt_port, timeout=20)
        fleet = BrokerConfig(port=mqtt_port, username="fleet", password="fleet-password")
        device = BrokerConfig(port=mqtt_port, username="bed-1", password="device-password")
        outbox = Outbox(OutboxConfig(path=tmp_path / "bed-1.db", device_id="bed-1"))
        with Ingest(store, fleet, sync=FAST) as ingest, Publisher(outbox, device, FAST) as pub:
            assert ingest.ready.wait(20) and until(lambda: pub.connected, 20)
            for note in ("chest pain", "fever and cough", "fall at home"):
                pub.submit(encoder(note))
            assert until(lambda: store.count_results() == 3, 20)  # stored and acked by the fleet
            assert until(lambda: "refused" in caplog.text, 10), caplog.text
            time.sleep(1.0)
            assert outbox.stats().depth == 3  # ...but the acks cannot reach the device
            conf.write_text(CONF.format(**settings, deny=""))
            server.send_signal(signal.SIGHUP)  # nats-server reloads its configuration
            assert pub.wait_drained(30), "the ack subscription was not asked for again"
        assert outbox.stats().depth == 0 and outbox.stats().last_ack_seq == 3
        assert "device bed-1" in caplog.text and "subscriptions" in caplog.text
    finally:
        server.kill()
        server.wait()
