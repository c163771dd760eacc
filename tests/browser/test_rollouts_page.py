"""The rollouts page in a real browser (Debian's Chromium via Playwright, as the dashboard's
test): signed in through the dashboard, it lists bundles, starts a rollout from its form,
shows its waves and devices, pauses and aborts it, and shows a device's failure reason as
text. Screenshots go to $EDGEMED_TEST_ARTIFACTS (default ./test-artifacts)."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Mosquitto
from ota_bundles import make_key, make_version

from edgemed.config import BrokerConfig
from edgemed.delivery import RolloutReport, pack_bundle
from edgemed.fleet import SQLiteStore
from edgemed.fleet.rollouts.bundles import BundleShelf
from edgemed.fleet.rollouts.engine import record_report, rollout_key
from edgemed.fleet.server import FleetServer
from edgemed.trust import TrustPolicy

CHROMIUM = os.environ.get("EDGEMED_CHROMIUM", "/usr/bin/chromium")
TOKEN = "rollouts-page-token-0123456789"
ARTIFACTS = Path(os.environ.get("EDGEMED_TEST_ARTIFACTS", "test-artifacts"))

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Chromium at {CHROMIUM}"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[FleetServer, str]]:
    key = make_key(tmp_path)
    bundle = make_version(tmp_path, "1.1.0", key)
    shelf = BundleShelf(
        folder=tmp_path / "shelf",
        policy=TrustPolicy(keys={key.kid: key.raw}, rollback_state=None),
    )
    store = SQLiteStore(tmp_path / "fleet.db")
    broker = BrokerConfig(port=mosquitto.port)
    with FleetServer(store, broker, token=TOKEN, port=0, bundles=shelf) as server:
        archive = io.BytesIO()
        pack_bundle(bundle, archive)
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.api.port}/api/bundles", data=archive.getvalue(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-tar"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            sha = json.loads(response.read())["sha256"]
        yield server, sha
    store.close()


def test_start_follow_pause_and_abort_a_rollout(fleet: tuple[FleetServer, str]) -> None:
    server, _sha = fleet
    expect = sync_api.expect
    base = f"http://127.0.0.1:{server.api.port}"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(  # a Content-Security-Policy violation ("Refused to apply inline style ...")
            "console", lambda msg: errors.append(msg.text) if "Refused to" in msg.text else None
        )
        page.goto(base + "/")
        page.fill("#token", TOKEN)
        page.click("#login button[type=submit]")
        expect(page.get_by_test_id("rollouts-link")).to_be_visible()
        page.get_by_test_id("rollouts-link").click()
        expect(page.get_by_test_id("bundles")).to_contain_text("1.1.0")
        page.fill("#devices", "bed-1 bed-2 bed-3 bed-4")
        page.fill("#waves-n", "1")
        page.click("#create button[type=submit]")
        detail = page.get_by_test_id("rollout-detail")
        expect(detail).to_contain_text("diabetes-progression@1.1.0 (running)")
        devices = page.get_by_test_id("rollout-devices")
        expect(devices).to_contain_text("commanded")  # the canary, over the real broker
        rollout_id = server.store.rollouts()[0]["id"]
        report = RolloutReport(
            rollout_id=rollout_key(server.store.store_id, rollout_id), state="failed", seq=1,
            at=time.time(), model_id="diabetes-progression", version="1.1.0",
            serving="diabetes-progression@1.0.0",
            reason="shadow: <b>3</b> of 4 results disagreed",
        )  # fmt: skip
        page.click("button[data-action=pause]")
        expect(detail).to_contain_text("(paused)")
        record_report(server.store, "bed-1", report.body())  # the canary fails
        expect(detail).to_contain_text("(halted)", timeout=10_000)
        expect(devices).to_contain_text("shadow: <b>3</b> of 4 results disagreed")  # as text
        expect(devices).to_contain_text("skipped")
        canary_bar = page.locator("#waves .wave").first.locator(".bar .failed")
        assert canary_bar.evaluate("e => e.getBoundingClientRect().width") > 50  # sized, CSP or not
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "rollouts-halted.png"), full_page=True)
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("button[data-action=abort]")
        expect(page.locator("#control-error")).to_contain_text("cannot abort")
        browser.close()
    assert errors == [], errors
