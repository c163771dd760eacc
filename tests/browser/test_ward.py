"""The ward page in a real browser (Debian's Chromium driven by Playwright, never ``playwright
install``) against a real fleet server and mosquitto: vitals with units and alarm limits,
NEWS2 colour bands, trends with labelled axes, every result kind drawn as what it is, one
alert episode for 15 seizure windows published live over MQTT, and an acknowledgement with a
comment through the page, recorded as the signed-in user's.

Screenshots: ``$EDGEMED_ARTIFACTS/ward`` if set, else ``<pytest tmp path>/ward-artifacts``
(printed; the path is in the test's output with ``-s``).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from clinical_stream import body_of
from conftest import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from payloads import news2_body, result_payload, seizure_body

from edgemed.config import BrokerConfig
from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.server import FleetServer
from edgemed.fleet.validation import PayloadValidator
from edgemed.fleet.wards.registry import WardRegistry

CHROMIUM = os.environ.get("EDGEMED_CHROMIUM", "/usr/bin/chromium")
TOKEN = "ward-page-test-token-0123456789"
ZONE = "America/New_York"  # not the machine's zone: times must follow the ward setting
USER, PASSWORD = "dr.okafor", "ward-test-password-4821"

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        not shutil.which(CHROMIUM),
        reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("EDGEMED_ARTIFACTS")
    folder = Path(given) / "ward" if given else tmp_path_factory.mktemp("ward-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"ward page screenshots: {folder}")
    return folder


def _vital(value: float, unit: str, limits: list[float] | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "confidence": 0.97, "text": str(value), "label": None,
            "box": [[0, 0], [10, 0], [10, 5], [0, 5]], "alarm_limits": limits}  # fmt: skip


def monitor(i: int, news2: dict[str, Any]) -> dict[str, Any]:
    """A monitor reading: a heart rate climbing over the hours, alarm limits on HR and SpO2."""
    return {
        "kind": "monitor-reading",
        "fields": {
            "hr": _vital(78 + i * 2, "/min", [50, 120]),
            "spo2": _vital(97 - i // 6, "%", [90, 100]),
            "nibp_systolic": _vital(124 - i, "mmHg"),
            "nibp_diastolic": _vital(78, "mmHg"),
            "rr": _vital(16 + i // 4, "/min"),
            "temperature": _vital(37.1, "°C"),
        },
        "texts": [], "news2": news2, "news2_partial": None, "news2_assumed": [],
    }  # fmt: skip


def ingest(store: SQLiteStore, device: str, bodies: list[dict[str, Any]], *, start: float,
           step: float, model: str, first: int = 1) -> None:  # fmt: skip
    """As ingest stores them: validated, with the alerts the rules raise."""
    validator, rules = PayloadValidator(), AlertRules()
    msgs = [
        validator.result(
            result_payload(device, first + i, body, created_at=start + i * step, model=model),
            topic_device_id=device,
        )
        for i, body in enumerate(bodies)
    ]
    store.insert_results(msgs, lambda m: rules.evaluate(m, time.time()))


def seed(store: SQLiteStore) -> None:
    """Ward 5B: bed 1 deteriorating over 4 h (NEWS2 high), bed 2 an EEG watch and the lab
    models, bed 3 one reading from yesterday, bed 4 a single parameter scoring 3."""
    reg = WardRegistry(store)
    reg.set_timezone(ZONE)
    reg.put_ward("5B", name="Ward 5B")
    reg.put_bed("5B", "1", label="Bed 1", devices=["mon-1"])
    reg.put_bed("5B", "2", label="Bed 2", devices=["eeg-2", "lab-2"])
    reg.put_bed("5B", "3", devices=["mon-3"])
    reg.put_bed("5B", "4", devices=["mon-4"])
    now = time.time()
    scores = [news2_body(pulse=1)] * 12 + [news2_body(pulse=2, respiration_rate=1, spo2=1)] * 8
    scores += [news2_body(pulse=2, respiration_rate=3, spo2=2)] * 4  # 7: high
    bodies = [monitor(i, s) for i, s in enumerate(scores)]
    ingest(store, "mon-1", bodies, start=now - 4 * 3600, step=600, model="monitor-reader@1.2.0")
    ingest(store, "mon-3", [monitor(0, news2_body())], start=now - 30 * 3600, step=1,
           model="monitor-reader@1.2.0")  # fmt: skip
    ingest(store, "mon-4", [news2_body(consciousness=3)], start=now - 900, step=1,
           model="news2-rcp2017@1.0.0")  # fmt: skip
    rng = random.Random(5)
    lab = [body_of(k, rng) for k in ("sleep-stages", "tabular-classification", "text-embedding")]
    lab[2] = {**lab[2], "abstained": False, "suggestion": lab[2]["nearest"][0]}
    ingest(store, "lab-2", lab, start=now - 1200, step=60, model="lab-models@1.0.0")
    ingest(store, "eeg-2", [seizure_body(0.1)] * 3, start=now - 60, step=4,
           model="seizure-ieeg@1.0.0")  # fmt: skip


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[FleetServer]:
    store = SQLiteStore(tmp_path / "fleet.db")
    seed(store)
    with FleetServer(store, BrokerConfig(port=mosquitto.port), token=TOKEN, port=0) as server:
        assert server.workers[0].ready.wait(10)
        yield server
    store.close()


@pytest.fixture
def page(fleet: FleetServer) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id="UTC")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if _problem(m) else None)
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith("http://127.0.0.1:") else outside.append(r.url))  # fmt: skip
        yield page
        browser.close()
        assert errors == [], errors
        assert outside == [], f"the page fetched from outside the fleet server: {outside}"


def _problem(message: Any) -> bool:
    """A console error or warning, but not the 401 the browser logs before signing in."""
    return message.type in ("error", "warning") and not any(
        benign in message.text for benign in ("Failed to load resource", "unauthorized")
    )


def publish_seizure(port: int, first_seq: int, windows: int) -> None:
    """An EEG device streaming ``windows`` 4 s windows above threshold over MQTT."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="eeg-2")
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.time() - windows * 4
    for i in range(windows):
        raw = result_payload("eeg-2", first_seq + i, seizure_body(0.9 + i * 0.005),
                             created_at=start + i * 4, model="seizure-ieeg@1.0.0")  # fmt: skip
        client.publish("edgemed/v1/eeg-2/results", raw, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def named_user(store: SQLiteStore) -> None:
    """A clinician to sign in as (fleet/auth/): acknowledgements record who is signed in."""
    store.add_user(USER, "clinician", PASSWORD)


def sign_in(page: sync_api.Page, base: str) -> None:
    page.goto(base)
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    sync_api.expect(page.get_by_test_id("live")).to_have_text("live")


def test_ward_page_vitals_news2_bands_trend_axes_episode_and_acknowledgement(
    fleet: FleetServer, page: sync_api.Page, artifacts: Path
) -> None:
    expect = sync_api.expect
    named_user(fleet.store)
    sign_in(page, f"http://127.0.0.1:{fleet.api.port}/")
    expect(page.get_by_test_id("whoami")).to_contain_text(USER)
    page.get_by_test_id("wards-nav").get_by_text("Ward 5B").click()
    expect(page.get_by_test_id("ward-title")).to_have_text("Ward 5B")
    expect(page.get_by_test_id("ward-meta")).to_contain_text(f"times in {ZONE}")
    tiles = page.get_by_test_id("bed-tile")
    expect(tiles).to_have_count(4)
    bed = {n: page.locator(f"[data-testid=bed-tile][data-bed='{n}']") for n in "1234"}

    # Vitals with units, alarm limits and the age of the reading.
    hr = bed["1"].locator("[data-vital=hr]")
    expect(hr).to_contain_text("124")  # 78 + 23 x 2
    expect(hr).to_contain_text("/min")
    expect(hr.get_by_test_id("alarm-limits")).to_have_text("alarm 50\u2013120")
    expect(hr).to_have_class("vital out-of-limits")
    expect(bed["1"].locator("[data-vital=nibp]")).to_contain_text("101/78")
    expect(bed["1"].locator("[data-vital=temperature]")).to_contain_text("°C")
    expect(bed["1"].get_by_test_id("vitals").get_by_test_id("stamp")).to_contain_text("ago")
    # NEWS2 colour bands: 7 high, a single parameter at 3 medium, 0 low.
    for n, colour, text in (("1", "high", "NEWS2 7"), ("4", "medium", "NEWS2 3"),
                            ("3", "low", "NEWS2 0")):  # fmt: skip
        badge = bed[n].get_by_test_id("news2")
        expect(badge).to_have_attribute("data-colour", colour)
        expect(badge).to_contain_text(text)
    # A reading from yesterday (in the hospital's zone) shows its date.
    (old,) = fleet.store.results(device_id="mon-3")
    yesterday = datetime.fromtimestamp(old["created_at"], ZoneInfo(ZONE))
    expect(bed["3"].get_by_test_id("vitals").get_by_test_id("stamp")).to_contain_text(
        f"read {yesterday.day} {yesterday:%b} {yesterday:%H:%M}"
    )
    # The trend: labelled time and value axes.
    trend = bed["1"].get_by_test_id("trend")
    expect(trend.locator("[data-axis=x] text.title")).to_have_text(f"time ({ZONE})")
    expect(trend.locator("[data-axis=y] text.title")).to_have_text("NEWS2 score")
    assert trend.locator("[data-axis=x] text.tick").count() >= 3
    assert trend.locator("[data-axis=y] text.tick").count() >= 3
    expect(trend.locator("path[data-series=news2]")).to_have_count(1)
    bed["1"].get_by_test_id("trend-select").select_option("hr")
    expect(trend.locator("[data-axis=y] text.title")).to_have_text("HR (/min)")
    bed["1"].get_by_test_id("trend-select").select_option("news2")
    # Every other kind drawn as what it is.
    expect(bed["2"].get_by_test_id("hypnogram").locator("[data-axis=y] text.tick")).to_contain_text(
        ["undef.", "NREM", "REM", "Wake"]
    )
    expect(bed["2"].get_by_test_id("result-tabular-classification")).to_contain_text("p(malignant)")
    expect(bed["2"].get_by_test_id("icd-list").locator("li")).to_have_count(3)
    expect(bed["2"].get_by_test_id("result-text-embedding")).to_contain_text("not diagnoses")
    seizure = bed["2"].get_by_test_id("seizure-trace")
    expect(seizure.locator(".threshold")).to_have_attribute("data-threshold", "0.5")
    expect(bed["2"].get_by_test_id("bed-alert")).to_have_count(0)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"horizontal scrolling at 1366x768: {width}px"
    page.screenshot(path=str(artifacts / "ward-1-vitals-news2-trends.png"), full_page=True)

    # 15 seizure windows over MQTT, live: one alert episode on bed 2.
    publish_seizure(fleet.workers[0].broker.port, first_seq=4, windows=15)
    alert = bed["2"].get_by_test_id("bed-alert")
    expect(alert.get_by_test_id("episode")).to_contain_text("15 alerts", timeout=15_000)
    expect(alert).to_have_count(1)
    episodes = [a for a in fleet.store.alerts(device_id="eeg-2") if a["rule"] == "seizure"]
    assert [a["episode_count"] for a in episodes] == [15]
    expect(bed["2"].get_by_test_id("result-seizure-probability")).to_contain_text("seizure")
    expect(bed["2"].locator("[data-testid=trend-select] option")).to_have_count(1)  # seizure p
    bed["2"].scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "ward-2-seizure-episode.png"), full_page=True)

    # Acknowledge from the page with a comment.
    alert.get_by_test_id("ward-ack").click()
    alert.get_by_test_id("ack-comment").fill("EEG reviewed, neurology on the way")
    page.screenshot(path=str(artifacts / "ward-3-acknowledging.png"), full_page=True)
    alert.get_by_test_id("ack-confirm").click()
    expect(bed["2"].get_by_test_id("bed-alert")).to_have_count(0)
    acked = bed["2"].get_by_test_id("acked")
    expect(acked).to_have_count(1)
    (row,) = [a for a in fleet.store.alerts(device_id="eeg-2") if a["rule"] == "seizure"]
    assert (
        row["acked_at"] is not None and row["ack_comment"] == "EEG reviewed, neurology on the way"
    )
    assert row["acked_by"] == USER  # the signed-in user, not a name the page claims
    expect(acked.get_by_test_id("acked-by")).to_have_text(row["acked_by"])
    expect(acked.get_by_test_id("ack-text")).to_contain_text("neurology on the way")
    page.screenshot(path=str(artifacts / "ward-4-acknowledged.png"), full_page=True)
