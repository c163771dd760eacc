"""``GET /metrics`` of a running ``edgemed fleet serve``, scraped after results, a dead letter
and a device's birth arrived over a real mosquitto, parsed with Prometheus' own text parser."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Mosquitto, start_fleet_server, until
from paho.mqtt.enums import CallbackAPIVersion
from payloads import news2_body, result_payload

from edgemed.fleet.broker import free_port
from edgemed.wire import encode_status

prometheus_parser = pytest.importorskip("prometheus_client.parser")

pytestmark = pytest.mark.broker
TOKEN = "fleet-metrics-token-0123456789"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(base: str, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(base + "/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in prometheus_parser.text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_of_a_running_fleet_move_with_what_it_ingests(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = free_port()
    fleet, _ = start_fleet_server(tmp_path / "fleet.db", mosquitto.port, api_port=port, token=TOKEN)
    base = f"http://127.0.0.1:{port}"
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="metrics-devices")
    try:
        status, before = _scrape(base)
        assert status == 200
        assert _samples(before)[("edgemed_fleet_results_total", (("outcome", "stored"),))] == 0
        assert _scrape(base, token=None)[0] == 401  # the API token, as every route but health
        assert _scrape(base, token="wrong-token-wrong-token")[0] == 401

        device.connect("127.0.0.1", mosquitto.port)
        device.loop_start()
        birth = encode_status("online", device_id="icu-1", boot_id="b1", connection=1,
                              models=["news2-rcp2017@1.0.0"], outbox_depth=1500)  # fmt: skip
        messages = [("edgemed/v1/icu-1/status", birth)]
        first = result_payload("icu-1", 1, news2_body(pulse=1))
        messages += [("edgemed/v1/icu-1/results", first)]
        messages += [
            ("edgemed/v1/icu-1/results", result_payload("icu-1", seq, news2_body(pulse=1)))
            for seq in (2, 3)
        ]
        emergency = news2_body(pulse=3, spo2=3, temperature=1)
        messages += [
            ("edgemed/v1/icu-1/results", result_payload("icu-1", 4, emergency)),
            ("edgemed/v1/icu-1/results", first),  # a resend: absorbed as a duplicate
            ("edgemed/v1/icu-1/results", b"\x00 not json"),
            ("edgemed/v1/icu-1/results", result_payload("icu-2", 1, news2_body())),  # posing
        ]
        for topic, payload in messages:
            device.publish(topic, payload, qos=1).wait_for_publish(5)

        def scraped() -> Samples:
            return _samples(_scrape(base)[1])

        def settled() -> bool:
            now = scraped()
            return (
                now[("edgemed_fleet_results_total", (("outcome", "stored"),))] == 4
                and now[("edgemed_fleet_results_total", (("outcome", "duplicate"),))] == 1
                and sum(v for (n, _), v in now.items() if n == "edgemed_fleet_dead_letters_total")
                == 2
            )

        assert until(settled, 20), scraped()
        after = scraped()
        assert after[("edgemed_fleet_ingest_lag_seconds_count", ())] == 4
        assert 0 < after[("edgemed_fleet_ingest_lag_seconds_sum", ())] < 10
        assert after[("edgemed_fleet_dead_letters_total", (("reason", "not-json"),))] == 1
        assert after[("edgemed_fleet_dead_letters_total", (("reason", "device-mismatch"),))] == 1
        assert after[("edgemed_fleet_alerts_open", (("severity", "emergency"),))] == 1
        assert after[("edgemed_fleet_alerts_open", (("severity", "warning"),))] == 1  # backlog
        assert after[("edgemed_fleet_devices", (("state", "online"),))] == 1
        assert after[("edgemed_fleet_device_outbox_depth_max", ())] == 1500
        assert after[("edgemed_fleet_device_outbox_depth_bucket", (("le", "1000"),))] == 0
        assert after[("edgemed_fleet_device_outbox_depth_bucket", (("le", "10000"),))] == 1
        assert after[("edgemed_fleet_store_up", ())] == 1
        # API latency by route template and status: never a URL with a device id in it
        requests: dict[str, float] = {}
        for (name, labels), value in after.items():
            if name == "edgemed_fleet_http_request_duration_seconds_count":
                route = dict(labels)["route"]
                requests[route] = requests.get(route, 0.0) + value
        assert requests["/metrics"] >= 4
        assert not any("icu-1" in route for route in requests)
        assert ("edgemed_fleet_http_request_duration_seconds_count",
                (("method", "GET"), ("route", "/metrics"), ("status", "401"))) in after  # fmt: skip
    finally:
        device.loop_stop()
        device.disconnect()
        fleet.terminate()
        fleet.communicate(timeout=30)
