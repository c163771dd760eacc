"""GET /api/devices/{id}/events (and the device page's ``events``): token-protected."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from edgemed.fleet import SQLiteStore
from edgemed.fleet.app import create_app
from edgemed.wire import ResultMessage

TOKEN = "device-events-token-0123"


def _msg(seq: int, epoch: str) -> ResultMessage:
    return ResultMessage(
        device_id="bed-1", epoch=epoch, seq=seq, boot_id="b", result_id=f"{epoch}{seq}",
        lowest_unacked_seq=1, created_at=1.0, model_id="m", model_version="1", kind="k",
        payload_sha256=epoch * 64, body={}, raw="{}",
    )  # fmt: skip


def test_device_events_route(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    store.insert_results([_msg(1, "a"), _msg(2, "a")])
    store.insert_results([_msg(1, "b")])  # the outbox was lost: seqs restart in epoch b
    client = TestClient(create_app(store, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/devices/bed-1/events").status_code == 401
    assert client.get("/api/devices/nope/events", headers=auth).status_code == 404
    (event,) = client.get("/api/devices/bed-1/events", headers=auth).json()
    assert (event["kind"], event["epoch"], event["previous_epoch"]) == ("seq-restart", "b", "a")
    assert (event["previous_acked_seq"], event["start_seq"]) == (2, 1)
    device = client.get("/api/devices/bed-1", headers=auth).json()
    assert device["events"] == [event] and device["epoch"] == "b"
    store.close()
