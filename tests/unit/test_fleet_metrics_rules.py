"""fleet/metrics.py in process: reason categories, the token on /metrics, and the shipped
Prometheus alerting rules naming only metrics the fleet exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgemed.fleet import SQLiteStore
from edgemed.fleet.app import create_app
from edgemed.fleet.metrics import DEAD_LETTER_REASONS, FleetMetrics, dead_letter_reason

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "edgemed-fleet-rules.yml"
TOKEN = "metrics-unit-token-0123456789"


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("result: 300049 bytes exceeds 262144", "too-large"),
        ("result: not UTF-8 JSON (Expecting value: line 1 column 1 (char 0))", "not-json"),
        ("result: unsupported schema version 'edgemed.result/2' (this fleet reads …)", "schema-version"),
        ("result: schema 'edgemed.ack/1' is not edgemed.result/1", "schema-version"),
        ("result: device_id 'bed-2' does not match its topic", "device-mismatch"),
        ("not an edgemed topic: 'x/y'", "topic"),
        ("seq-conflict at seq 4", "seq-conflict"),
        ("result.result.score: 3 is not the sum of its parameter scores", "invalid"),
    ],
)  # fmt: skip
def test_dead_letter_reasons_fall_into_few_categories(reason: str, category: str) -> None:
    assert dead_letter_reason(reason) == category and category in DEAD_LETTER_REASONS


def test_metrics_need_the_token_and_survive_a_store_that_does_not_answer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    client = TestClient(create_app(store, token=TOKEN))
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "edgemed_fleet_store_up 1.0" in ok.text
    store.close()  # the database is gone: the scrape still answers, and says so
    down = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert down.status_code == 200 and "edgemed_fleet_store_up 0.0" in down.text


def test_the_alerting_rules_name_only_exported_metrics(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    if not RULES.is_file():
        pytest.skip("deploy/ is not shipped in the wheel; checked in the source tree")
    store = SQLiteStore(tmp_path / "f.db")
    metrics = FleetMetrics(store)
    metrics.request("GET", "/api/health", 200, 0.01)  # labelled series exist once observed
    exported = set(re.findall(r"^(edgemed_fleet_\w+)", metrics.exposition().decode(), re.M))
    store.close()
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"].startswith("EdgemedFleet") and rule["annotations"]["summary"]
        for name in re.findall(r"edgemed_fleet_\w+", rule["expr"]):
            assert name in exported, (rule["alert"], name)
