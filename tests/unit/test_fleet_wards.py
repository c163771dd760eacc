"""Wards, beds and bed assignments (fleet/wards/): the registry on SQLite and PostgreSQL, the
REST routes, the ward view's NEWS2 colour bands, trends, per-kind results and alert order,
the schema upgrade to version 10, and ``edgemed fleet ward``."""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clinical_stream import body_of
from fastapi.testclient import TestClient
from payloads import news2_body, result_payload, seizure_body
from stores import test_store

from edgemed.cli import main
from edgemed.cli.wards import open_serve_store
from edgemed.errors import InputError
from edgemed.fleet import SQLiteStore, SqlStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.app import create_app
from edgemed.fleet.validation import PayloadValidator
from edgemed.fleet.wards.registry import MAX_DEVICES_PER_BED, WardRegistry, natural_key
from edgemed.fleet.wards.view import BUCKETS, news2_colour, thin

TOKEN = "wards-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HR_88 = {"value": 88, "unit": "/min", "confidence": 0.97, "text": "88", "label": "HR",
         "box": [[0, 0], [10, 0], [10, 5], [0, 5]], "alarm_limits": [50, 120]}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from test_store(request.param, tmp_path)


def ingest(store: SqlStore, device: str, bodies: list[dict[str, Any]], **kw: Any) -> None:
    """Store results through validation and the alert rules, as ingest does."""
    validator, rules = PayloadValidator(), AlertRules()
    start, step = kw.pop("start", time.time() - 60), kw.pop("step", 1.0)
    first = kw.pop("first_seq", 1)
    msgs = [
        validator.result(
            result_payload(device, first + i, body, created_at=start + i * step, **kw),
            topic_device_id=device,
        )
        for i, body in enumerate(bodies)
    ]
    store.insert_results(msgs, lambda m: rules.evaluate(m, time.time()))


def test_wards_beds_and_assignments(store: SqlStore) -> None:
    reg = WardRegistry(store)
    assert reg.wards() == [] and reg.ward("5B") is None
    reg.put_ward("5B", name="Ward 5B")
    assert reg.put_bed("nope", "1") is None  # no such ward
    for bed in ("10", "2", "1"):
        reg.put_bed("5B", bed)
    bed = reg.put_bed("5B", "12", label="Bed 12", devices=["mon-12", "eeg-12", "mon-12"])
    assert bed is not None and bed["devices"] == ["eeg-12", "mon-12"] and bed["label"] == "Bed 12"
    ward = reg.ward("5B")
    assert ward is not None and [b["bed_id"] for b in ward["beds"]] == ["1", "2", "10", "12"]
    # A device serves one bed: assigning it elsewhere moves it.
    moved = reg.assign("eeg-12", "5B", "2")
    assert moved is not None and moved["devices"] == ["eeg-12"]
    place = reg.placement("eeg-12")
    assert place is not None and (place["ward_id"], place["bed_id"]) == ("5B", "2")
    assert reg.bed("5B", "12")["devices"] == ["mon-12"]  # type: ignore[index]
    assert reg.assign("eeg-12", "5B", "99") is None
    # A bed's device list given again replaces it; omitted, it stays.
    reg.put_bed("5B", "12", label="Bed twelve")
    assert reg.bed("5B", "12")["devices"] == ["mon-12"]  # type: ignore[index]
    reg.put_bed("5B", "12", devices=[])
    assert reg.bed("5B", "12")["devices"] == [] and reg.placement("mon-12") is None  # type: ignore[index]
    assert reg.wards() == [
        {"ward_id": "5B", "name": "Ward 5B", "updated_at": ward["updated_at"], "beds": 4,
         "devices": 1}
    ]  # fmt: skip
    with pytest.raises(InputError, match="delete them first"):
        reg.delete_ward("5B")
    assert reg.unassign("eeg-12") and not reg.unassign("eeg-12")
    for bed_id in ("1", "2", "10", "12"):
        assert reg.delete_bed("5B", bed_id)
    assert reg.delete_ward("5B") and not reg.delete_ward("5B")


def test_bad_ids_time_zones_and_limits_are_refused(store: SqlStore) -> None:
    reg = WardRegistry(store)
    reg.put_ward("icu")
    for bad in ("-x", "a b", "x" * 65, "bed/1"):
        with pytest.raises(InputError):
            reg.put_ward(bad)
    with pytest.raises(InputError):
        reg.put_bed("icu", "1", devices=["ok", "not ok"])
    with pytest.raises(InputError, match="at most"):
        reg.put_bed("icu", "1", devices=[f"d{i}" for i in range(MAX_DEVICES_PER_BED + 1)])
    assert reg.timezone() == "UTC"
    assert (
        reg.set_timezone("Europe/London") == "Europe/London" and reg.timezone() == "Europe/London"
    )
    for bad in ("Mars/Olympus", "../etc/passwd", "/etc/localtime", "", "Europe/London\n"):
        with pytest.raises(InputError):
            reg.set_timezone(bad)
    assert reg.timezone() == "Europe/London"


def test_natural_order_and_news2_colour_bands() -> None:
    assert sorted(["10", "2", "B1", "1", "A10", "A9"], key=natural_key) == [
        "1", "2", "10", "A9", "A10", "B1"]  # fmt: skip
    assert news2_colour(0, {}) == "low" and news2_colour(4, {"pulse": 2}) == "low"
    assert news2_colour(3, {"spo2": 3}) == "medium"  # any single parameter scoring 3
    assert news2_colour(5, {}) == news2_colour(6, {}) == "medium"
    assert news2_colour(7, {}) == news2_colour(20, {"spo2": 3}) == "high"


def test_rest_routes(store: SqlStore) -> None:
    client = TestClient(create_app(store, token=TOKEN))
    assert client.get("/api/wards").status_code == 401
    assert client.put("/api/wards/5B", json={"name": "Ward 5B"}, headers=AUTH).status_code == 200
    assert client.put("/api/wards/5B/beds/1", headers=AUTH).json()["devices"] == []
    got = client.put("/api/wards/5B/beds/2", json={"devices": ["mon-2"]}, headers=AUTH).json()
    assert got["devices"] == ["mon-2"]
    assert client.put("/api/wards/5B/beds/1/devices/mon-2", headers=AUTH).json()["devices"] == [
        "mon-2"
    ]
    assert client.get("/api/devices/mon-2/bed", headers=AUTH).json()["bed_id"] == "1"
    assert client.get("/api/devices/mon-9/bed", headers=AUTH).status_code == 404
    assert client.put("/api/wards/zz/beds/1", headers=AUTH).status_code == 404
    assert client.put("/api/wards/5B/beds/9/devices/mon-2", headers=AUTH).status_code == 404
    bad = client.put("/api/wards/5B/beds/1", json={"devices": ["bad id"]}, headers=AUTH)
    assert bad.status_code == 422 and "bad id" not in bad.text  # the rule, never the input
    assert client.put("/api/wards/-5B", headers=AUTH).status_code == 422
    tz = client.put("/api/ward-settings", json={"timezone": "Nowhere/City"}, headers=AUTH)
    assert tz.status_code == 400 and "IANA" in tz.json()["detail"]
    assert client.put(
        "/api/ward-settings", json={"timezone": "Asia/Kolkata"}, headers=AUTH
    ).json() == {"timezone": "Asia/Kolkata"}
    assert client.get("/api/ward-settings", headers=AUTH).json() == {"timezone": "Asia/Kolkata"}
    assert client.delete("/api/wards/5B", headers=AUTH).status_code == 409
    assert client.delete("/api/wards/5B/beds/2/devices/mon-2", headers=AUTH).status_code == 404
    assert client.delete("/api/wards/5B/beds/1/devices/mon-2", headers=AUTH).status_code == 204
    for bed in ("1", "2"):
        assert client.delete(f"/api/wards/5B/beds/{bed}", headers=AUTH).status_code == 204
    assert client.delete("/api/wards/5B", headers=AUTH).status_code == 204
    assert client.get("/api/wards/5B", headers=AUTH).status_code == 404
    assert client.get("/api/wards/5B/view", headers=AUTH).status_code == 404
    assert client.get("/api/wards/5B/view?hours=0", headers=AUTH).status_code == 422
    assert client.get("/api/wards/5B/view?hours=nan", headers=AUTH).status_code == 422


def test_ward_view(store: SqlStore) -> None:
    """Vitals with units, NEWS2 and its band, trends, each kind's latest, alerts in order."""
    reg = WardRegistry(store)
    reg.put_ward("5B")
    reg.put_bed("5B", "1", devices=["mon-1", "eeg-1", "lab-1"])
    reg.put_bed("5B", "2", devices=["mon-2"])
    reg.put_bed("5B", "3", devices=["never-seen"])
    reg.set_timezone("Europe/Berlin")
    now = time.time()
    rng = random.Random(3)
    # Bed 1: monitor readings every 10 min for 5 h, the last with a single parameter at 3.
    readings = [body_of("monitor-reading", rng) for _ in range(30)]
    for body in readings:
        body["fields"] = {**body["fields"], "hr": HR_88}
        body["news2"] = news2_body(pulse=1)
        body["news2_partial"] = None
    readings[-1]["news2"] = news2_body(spo2=3)
    readings[-1]["fields"]["spo2"] = None
    readings[-1]["withheld"] = {"spo2": {"reason": "no-value", "detail": "--"}}
    ingest(store, "mon-1", readings, start=now - 5 * 3600, step=600, model="monitor-reader@1.2.0")
    ingest(store, "eeg-1", [seizure_body(0.2)] * 3 + [seizure_body(0.95)] * 15,
           start=now - 120, step=4, model="seizure-ieeg@1.0.0")  # fmt: skip
    kinds = ["sleep-stages", "tabular-classification", "tabular-regression", "text-embedding"]
    ingest(store, "lab-1", [body_of(k, rng) for k in kinds], start=now - 30)
    # Bed 2: an emergency (NEWS2 7) older than bed 1's seizure episode.
    ingest(store, "mon-2", [news2_body(respiration_rate=3, spo2=3, pulse=1)], start=now - 400)

    client = TestClient(create_app(store, token=TOKEN))
    view = client.get("/api/wards/5B/view?hours=6", headers=AUTH).json()
    assert view["timezone"] == "Europe/Berlin" and abs(view["now"] - now) < 60
    bed1, bed2, bed3 = view["beds"]
    assert bed1["vitals"]["fields"]["hr"] == {"value": 88, "unit": "/min",
                                              "alarm_limits": [50, 120], "confidence": 0.97}  # fmt: skip
    assert bed1["vitals"]["fields"]["spo2"]["withheld"] == "no-value"
    assert bed1["vitals"]["model"] == "monitor-reader@1.2.0"
    assert bed1["news2"]["score"] == 3 and bed1["news2"]["colour"] == "medium"
    assert len(bed1["trend"]["news2"]) == 30 and len(bed1["trend"]["hr"]) == 30
    times = [t for t, _ in bed1["trend"]["hr"]]
    assert times == sorted(times) and times[0] >= view["since"]
    # 18 windows in 72 s: one peak per 90 s bucket of the 6 h window (read in SQL).
    peaks = bed1["trend"]["seizure"]
    assert 1 <= len(peaks) <= 2 and max(p for _, p in peaks) == 0.95
    results = bed1["results"]
    assert set(results) == {"seizure-probability", *kinds}
    assert results["seizure-probability"]["threshold"] == 0.5
    assert len(results["seizure-probability"]["trace"]) == 8
    assert "hypnogram" in results["sleep-stages"] and "probabilities" not in results["sleep-stages"]
    assert "embedding" not in results["text-embedding"]
    assert results["tabular-classification"]["positive_label"] == "malignant"
    (seizure,) = [a for a in bed1["alerts"] if a["episode"] == "seizure"]  # 15 windows: one
    assert len(bed1["alerts"]) == 2  # and the NEWS2 episode (a single parameter at 3)
    assert seizure["episode"] == "seizure" and seizure["episode_count"] == 15
    assert bed2["news2"]["colour"] == "high" and bed2["alerts"][0]["severity"] == "emergency"
    assert bed3["devices"] == [
        {"device_id": "never-seen", "state": None, "known": False, "last_seen": None}
    ]
    assert bed3["vitals"] is None and bed3["trend"] == {} and bed3["alerts"] == []
    # Acknowledged with a comment: off the open list, into the bed's acknowledgements.
    ack = client.post(f"/api/alerts/{seizure['id']}/ack",
                      json={"by": "dr-okafor", "comment": "neurology called"}, headers=AUTH)  # fmt: skip
    assert ack.status_code == 200
    bed1 = client.get("/api/wards/5B/view", headers=AUTH).json()["beds"][0]
    assert [a["episode"] for a in bed1["alerts"]] == ["news2"]
    (done,) = bed1["acknowledged"]
    # The service token's acknowledgements name the claimed person ("service-token:dr-okafor"
    # where the fleet has named users): the view shows what the store recorded.
    assert done["acked_by"] == ack.json()["acked_by"] and done["acked_by"].endswith("dr-okafor")
    assert done["ack_comment"] == "neurology called"


def test_open_alerts_of_a_ward_most_severe_first_then_oldest(store: SqlStore) -> None:
    reg = WardRegistry(store)
    reg.put_ward("w")
    reg.put_bed("w", "1", devices=["a", "b"])
    now = time.time()
    ingest(store, "a", [seizure_body(0.9)], start=now - 50)  # urgent
    ingest(store, "b", [news2_body(respiration_rate=3, spo2=3, pulse=1)], start=now - 10)
    time.sleep(0.01)
    ingest(store, "a", [news2_body(respiration_rate=3, spo2=3, pulse=2)], start=now, first_seq=2)
    alerts = reg.open_alerts(["a", "b"])
    assert [(a["severity"], a["device_id"]) for a in alerts] == [
        ("emergency", "b"), ("emergency", "a"), ("urgent", "a")]  # fmt: skip


def test_an_older_store_is_upgraded_to_schema_10(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:  # as a store of schema 9 left it
        for table in ("wards", "beds", "bed_devices", "ward_settings"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version VALUES (9)")
    store = SQLiteStore(path)
    assert store.schema_version() >= 10
    assert WardRegistry(store).put_ward("5B")["beds"] == []
    store.close()


def test_the_ward_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", str(tmp_path / "f.db")]
    assert main(["fleet", "ward", "add", "5B", "--name", "Ward 5B", *db]) == 0
    assert main(["fleet", "ward", "bed", "5B", "12", "--device", "mon-12", *db]) == 0
    assert main(["fleet", "ward", "assign", "eeg-12", "5B", "12", *db]) == 0
    assert main(["fleet", "ward", "timezone", "Europe/London", *db]) == 0
    capsys.readouterr()
    assert main(["fleet", "ward", "show", "5B", *db]) == 0
    shown = capsys.readouterr().out
    assert '"eeg-12"' in shown and '"mon-12"' in shown
    assert main(["fleet", "ward", "remove", "5B", *db]) == 3  # has a bed: InputError
    assert main(["fleet", "ward", "timezone", "Atlantis/Capital", *db]) == 3
    assert main(["fleet", "ward", "unassign", "eeg-12", *db]) == 0
    assert main(["fleet", "ward", "list", *db]) == 0
    assert '"timezone": "Europe/London"' in capsys.readouterr().out
    # fleet serve --timezone: set in the store as the server opens it; a bad zone stops it.
    serve = argparse.Namespace(db=db[1], pg_schema="edgemed", timezone="Asia/Tokyo")
    store = open_serve_store(serve)
    assert WardRegistry(store).timezone() == "Asia/Tokyo"
    store.close()
    with pytest.raises(InputError):
        open_serve_store(argparse.Namespace(db=db[1], pg_schema="edgemed", timezone="UTC+1"))


def test_a_streamed_trend_is_bucketed_without_losing_its_extremes(store: SqlStore) -> None:
    """A day of 4 s seizure windows comes back as each bucket's peak; a dense vital series
    keeps each bucket's lowest and highest value."""
    reg = WardRegistry(store)
    now = time.time()
    probs = [0.05] * 2000
    probs[1234] = 0.99  # one spike
    ingest(store, "eeg", [seizure_body(p) for p in probs], start=now - 8000, step=4,
           model="seizure-ieeg@1.0.0")  # fmt: skip
    peaks = reg.peak_trend("eeg", "seizure-probability", now - 3 * 3600, 45.0)
    assert 170 <= len(peaks) <= 180  # 8,000 s in 45 s buckets
    assert max(p for _, p in peaks) == 0.99 and [t for t, _ in peaks] == sorted(t for t, _ in peaks)
    series = [[now - 6 * 3600 + i * 10.0, 80.0] for i in range(2160)]
    series[700][1], series[1500][1] = 30.0, 190.0
    thinned = thin(series, now - 6 * 3600, now)
    assert len(thinned) <= 2 * BUCKETS and {30.0, 190.0} <= {v for _, v in thinned}
    assert [t for t, _ in thinned] == sorted(t for t, _ in thinned)
