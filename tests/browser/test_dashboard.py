"""The dashboard in a real browser: Debian's Chromium driven by Playwright (never
``playwright install``), against a real fleet server, mosquitto and a real device publisher.

Screenshots go to $EDGEMED_TEST_ARTIFACTS (default ./test-artifacts) for review.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from payloads import news2_body, result_payload

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig
from edgemed.fleet import SQLiteStore
from edgemed.fleet.server import FleetServer
from edgemed.sync import Outbox, Publisher

CHROMIUM = os.environ.get("EDGEMED_CHROMIUM", "/usr/bin/chromium")
TOKEN = "dashboard-test-token-0123456789"
ARTIFACTS = Path(os.environ.get("EDGEMED_TEST_ARTIFACTS", "test-artifacts"))

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        not shutil.which(CHROMIUM),
        reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[FleetServer]:
    store = SQLiteStore(tmp_path / "fleet.db")
    with FleetServer(store, BrokerConfig(port=mosquitto.port), token=TOKEN, port=0) as server:
        assert server.workers[0].ready.wait(10)
        yield server
    store.close()


@pytest.fixture
def page(fleet: FleetServer) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
        external: list[str] = []
        page.on(
            "request",
            lambda req: (
                None if req.url.startswith("http://127.0.0.1:") else external.append(req.url)
            ),
        )
        yield page
        browser.close()
        assert errors == [], errors
        assert external == [], f"the dashboard fetched from outside the fleet server: {external}"


def _shot(page: sync_api.Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_login_device_online_live_result_and_alert_acknowledge(
    fleet: FleetServer, page: sync_api.Page, tmp_path: Path, encoder: edgemed.Pipeline
) -> None:
    expect = sync_api.expect
    base = f"http://127.0.0.1:{fleet.api.port}/"
    page.goto(base)
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.fill("#token", "not-the-token-at-all")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not accepted")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("live")).to_have_text("live")
    _shot(page, "1-empty-fleet")

    broker = BrokerConfig(port=fleet.workers[0].broker.port)
    outbox = Outbox(OutboxConfig(path=tmp_path / "bed.db", device_id="ward5-bed12"))
    with Publisher(outbox, broker, models=["clinical-text-minilm@1.1.0"]) as device:
        row = page.locator("tr[data-device='ward5-bed12']")
        expect(row.get_by_test_id("state")).to_have_text("online", timeout=15_000)  # no reload
        expect(page.get_by_test_id("models")).to_contain_text("clinical-text-minilm")

        for note in ("productive cough and fever", "pleuritic chest pain", "ankle swelling"):
            device.submit(encoder(note))
        feed = page.get_by_test_id("feed-item").filter(has_text="ward5-bed12")
        expect(feed.first).to_be_visible(timeout=15_000)
        assert device.wait_drained(10)

        monitor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="vitals-monitor")
        monitor.connect("127.0.0.1", broker.port)
        monitor.loop_start()
        vitals = news2_body(respiration_rate=3, spo2=3, pulse=1)
        monitor.publish(
            "edgemed/v1/icu-2/results", result_payload("icu-2", 1, vitals), qos=1
        ).wait_for_publish(5)
        monitor.loop_stop()
        monitor.disconnect()
        alert = page.get_by_test_id("alert").filter(has_text="news2-emergency")
        expect(alert).to_contain_text("NEWS2 7", timeout=15_000)
        expect(page.get_by_test_id("feed-item").filter(has_text="icu-2")).to_contain_text("NEWS2 7")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"horizontal scrolling at 1366x768: {width}px"
        _shot(page, "2-live-result-and-alert")

        alert.get_by_test_id("ack").click()
        expect(alert).to_have_count(0)
        (acked,) = fleet.store.alerts(rule="news2-emergency")
        # Signed in with the shared service token: the name the page gives is only claimed,
        # and recorded as such (fleet/app.py); a named user's login records the user.
        assert acked["acked_by"] == "service-token:dashboard" and acked["acked_at"] is not None
        _shot(page, "3-alert-acknowledged")

        page.click("a[href='#/device/ward5-bed12']")
        expect(page.get_by_test_id("device-title")).to_have_text("ward5-bed12")
        expect(page.locator("#fleet-view")).to_be_hidden()
        expect(page.get_by_test_id("device-results").locator("tbody tr")).to_have_count(3)
        # Value and latency each over time, on labelled axes (before: value against latency).
        for series, title in (("value", "top code score (cosine)"), ("latency", "latency (ms)")):
            chart = page.get_by_test_id(f"{series}-chart")
            expect(chart.locator(f"path[data-series={series}]")).to_have_count(1)
            expect(chart.locator("[data-axis=y] text.title")).to_have_text(title)
            expect(chart.locator("[data-axis=x] text.title")).to_contain_text("time (UTC)")
        _shot(page, "4-device-page")
    outbox.close()
