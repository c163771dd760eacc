"""Exports against real receiving processes: HL7 v2 over MLLP to hl7apy's MLLP listener, FHIR
transaction pushes to a minimal receiver that enforces ifNoneExist, both killed and restarted
mid-stream; and the FHIR read endpoint and encounter mapping over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import call
from clinical_stream import stream
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.app import FleetApi
from edgemed.fleet.exports.fhir import export_result
from edgemed.fleet.exports.hl7 import build_oru
from edgemed.fleet.exports.worker import FhirPusher, Hl7Sender
from edgemed.wire import decode_result

SERVERS = Path(__file__).parents[1] / "servers"
TOKEN = "fleet-export-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, script: str, *args: str) -> None:
        self.args = [sys.executable, str(SERVERS / script), *args]
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *extra: str) -> Process:
        self.proc = subprocess.Popen([*self.args, *extra], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "fleet.db")
    msgs = [decode_result(raw, topic_device_id=device) for device, raw in stream(1050)]
    s.insert_results(msgs, lambda m: AlertRules().evaluate(m, time.time()))
    s.put_encounter("enc-bed-1", patient_system="urn:oid:1.2.3.4", patient_id="MRN-0001",
                    encounter_system="urn:oid:1.2.3.5", encounter_id="V-77")  # fmt: skip
    yield s
    s.close()


def _rows(store: SQLiteStore) -> list[dict[str, Any]]:
    rows = store.results_for_export(limit=5000)
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


@pytest.mark.slow  # hl7apy's strict validation: ~0.25 s a message here
def test_hl7_messages_of_the_whole_stream_parse_and_validate(store: SQLiteStore) -> None:
    rows = _rows(store)
    mapping = store.encounter_map({"enc-bed-1"})
    outcome: Counter[str] = Counter()
    started = time.perf_counter()
    for row in rows:
        msg = build_oru(row, mapping.get(str(row["payload"].get("encounter"))))
        if msg.skipped:
            outcome["skipped"] += 1
            continue
        parsed = parse_message(msg.er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        assert parsed.validate()
        assert msg.er7 == build_oru(row, mapping.get(str(row["payload"].get("encounter")))).er7
        codes = [obx.obx_3.obx_3_1.value for obx in parsed.children.get("ORU_R01_PATIENT_RESULT")[0]
                 .children.get("ORU_R01_ORDER_OBSERVATION")[0].children if obx.name == "ORU_R01_OBSERVATION"
                 for obx in [obx.obx]]  # fmt: skip
        assert codes and set(codes) <= {"8867-4", "59408-5", "9279-1", "8310-5", "8480-6", "8462-4",
                                        "1104051000000101"} | {c for c in codes if c.startswith("news2-")}  # fmt: skip
        outcome["valid"] += 1
        if row["payload"].get("encounter") == "enc-bed-1":
            assert "PID|||MRN-0001^^^urn_oid_1.2.3.4^MR" in msg.er7 and "V-77" in msg.er7
            outcome["with patient"] += 1
    print(f"HL7: {dict(outcome)} in {time.perf_counter() - started:.1f} s")
    assert outcome["valid"] >= 300 and outcome["with patient"] > 0
    assert outcome["valid"] + outcome["skipped"] == 1050


@pytest.mark.slow  # hl7apy's strict validation: ~0.25 s a message here
def test_mllp_sender_retries_until_ack_and_never_resends_after_an_ack(
    store: SQLiteStore, tmp_path: Path
) -> None:
    port, log = _free_port(), tmp_path / "received.log"
    listener = Process("mllp_listener.py", str(port), str(log))
    sender = Hl7Sender(store, "127.0.0.1", port, timeout=5.0, retry_s=0.05, max_retry_s=0.2)
    sender.batch = 10
    # The listener is not up yet: nothing is settled, everything stays pending.
    with pytest.raises(Exception, match="MLLP"):
        sender.run_once()
    assert store.export_counts(sender.target).get("acked", 0) == 0
    listener.start()
    try:
        for _ in range(5):  # some batches, then the listener dies and comes back
            sender.run_once()
        acked_before = store.export_counts(sender.target)["acked"]
        listener.kill()
        with pytest.raises(Exception, match="MLLP"):
            sender.run_once()
        listener.start()
        sender.drain(deadline_s=240)
    finally:
        listener.kill()
    counts = store.export_counts(sender.target)
    received = log.read_text().split()
    assert acked_before > 0 and counts["acked"] == len(set(received)) >= 300
    assert counts["acked"] + counts["skipped"] == 1050 and "rejected" not in counts
    assert len(received) == len(set(received))  # no message twice
    assert store.pending_exports(sender.target, after=0.0, limit=10) == []
    sent = sender.sent
    assert sender.drain(deadline_s=5) == 0 and sender.sent == sent  # nothing left to send


def test_fhir_push_survives_a_crashing_receiver_without_loss_or_duplicates(
    store: SQLiteStore, tmp_path: Path
) -> None:
    port, data = _free_port(), tmp_path / "fhir.jsonl"
    receiver = Process("fhir_receiver.py", str(port), str(data))
    pusher = FhirPusher(store, f"http://127.0.0.1:{port}/", timeout=10.0, retry_s=0.05,
                        max_retry_s=0.3)  # fmt: skip
    try:
        receiver.start("--die-after", "700")  # dies mid-transaction after 700 creates
        assert receiver.proc is not None
        end = time.monotonic() + 60
        while receiver.proc.poll() is None and time.monotonic() < end:
            pusher.drain(deadline_s=1)  # pushes until the receiver is gone
        pusher.drain(deadline_s=0.5)  # ...then fails against the dead port, keeps everything
        assert receiver.proc.wait(5) == 3
        assert pusher.failures > 0 and store.pending_exports(pusher.target, after=0, limit=1)
        receiver.start()
        pusher.drain(deadline_s=240)
    finally:
        receiver.kill()
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    created = Counter(row["key"] for row in lines if row["key"])
    assert max(created.values()) == 1  # no resource created twice
    expected: set[str] = set()
    for row in _rows(store):
        for resource in export_result(row).resources:
            if "identifier" in resource:
                ident = resource["identifier"][0]
                expected.add(f"{ident['system']}|{ident['value']}")
    assert set(created) == expected  # nothing lost
    counts = store.export_counts(pusher.target)
    assert counts["acked"] + counts["skipped"] == 1050 and "rejected" not in counts


def _get(base: str, path: str, token: str | None = TOKEN, method: str = "GET",
         body: object = None) -> tuple[int, Any]:  # fmt: skip
    return call(base, path, token=token, method=method, body=body)


def test_fhir_read_endpoint_and_encounter_mapping(store: SQLiteStore) -> None:
    api = FleetApi(store, token=TOKEN, port=0).start()
    base = f"http://127.0.0.1:{api.port}"
    try:
        assert _get(base, "/fhir/Observation", token=None)[0] == 401
        assert _get(base, "/api/encounters/enc-bed-2", token=None, method="PUT",
                    body={"patient_system": "s", "patient_id": "p"})[0] == 401  # fmt: skip
        status, mapped = _get(base, "/api/encounters/enc-bed-2", method="PUT",
                              body={"patient_system": "urn:oid:9", "patient_id": "MRN-2"})  # fmt: skip
        assert status == 200 and mapped["patient_id"] == "MRN-2"
        status, found = _get(
            base, "/fhir/Observation?subject=Patient/MRN-2&code=http://loinc.org|8867-4&_count=500"
        )
        assert status == 200 and found["resourceType"] == "Bundle" and found["type"] == "searchset"
        hr = [e["resource"] for e in found["entry"]]
        assert hr and all(r["code"]["coding"][0]["code"] == "8867-4" for r in hr)
        assert {r["subject"]["identifier"]["value"] for r in hr} == {"MRN-2"}
        # Dates: the stream starts at 2023-11-14T22:13:20Z, one result a second.
        status, day = _get(
            base,
            "/fhir/Observation?date=ge2023-11-14T22:13:20Z&date=lt2023-11-14T22:13:40Z&_count=500",
        )
        stamps = sorted({e["resource"]["effectiveDateTime"] for e in day["entry"]})
        assert stamps[0] >= "2023-11-14T22:13:20" and stamps[-1] < "2023-11-14T22:13:40"
        assert _get(base, "/fhir/Observation?date=2023-13-01")[0] == 400
        assert _get(base, "/fhir/Observation?patient=x")[0] == 400  # unsupported, not ignored
        status, none = _get(base, "/fhir/Observation?subject=Patient/nobody")
        assert status == 200 and "entry" not in none
        assert _get(base, "/api/encounters/enc-bed-2", method="DELETE")[0] == 204
        assert _get(base, "/api/encounters/enc-bed-2")[0] == 404
    finally:
        api.stop()


@pytest.mark.broker
def test_fleet_serve_exports_every_ingested_result_to_fhir_and_mllp(tmp_path: Path) -> None:
    """``edgemed fleet serve --fhir-push URL --hl7-mllp HOST:PORT`` as a user runs it: results
    arriving over MQTT reach a FHIR receiver and a real MLLP listener, each exactly once, and
    /api/health reports both targets."""
    import paho.mqtt.client as mqtt
    from conftest import Mosquitto, start_fleet_server, until
    from paho.mqtt.enums import CallbackAPIVersion

    broker = Mosquitto(tmp_path)
    broker.start()
    fhir_port, mllp_port = _free_port(), _free_port()
    receiver = Process("fhir_receiver.py", str(fhir_port), str(tmp_path / "fhir.jsonl")).start()
    mllp_log = tmp_path / "mllp.log"
    listener = Process("mllp_listener.py", str(mllp_port), str(mllp_log)).start()
    api_port = _free_port()
    fleet, _ = start_fleet_server(
        tmp_path / "fleet.db",
        broker.port,
        api_port=api_port,
        token=TOKEN,
        extra=["--fhir-push", f"http://127.0.0.1:{fhir_port}/",
               "--hl7-mllp", f"127.0.0.1:{mllp_port}"],
    )  # fmt: skip
    try:
        assert fleet.stdout is not None
        banner = [fleet.stdout.readline() for _ in range(2)]
        assert any(f"fhir:http://127.0.0.1:{fhir_port}" in line for line in banner), banner
        assert any(f"hl7:127.0.0.1:{mllp_port}" in line for line in banner), banner
        payloads = stream(21, devices=3)  # three of every kind
        raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="replayer")
        raw.connect("127.0.0.1", broker.port)
        raw.loop_start()
        for device, payload in payloads:
            raw.publish(f"edgemed/v1/{device}/results", payload, qos=1).wait_for_publish(5)
        raw.loop_stop()
        raw.disconnect()

        def exports() -> list[dict[str, Any]]:
            _, body = call(f"http://127.0.0.1:{api_port}", "/api/health", token=TOKEN)
            return list(body.get("exports", [])) if isinstance(body, dict) else []

        def settled() -> bool:
            rows = exports()
            return len(rows) == 2 and all(
                sum((r["settled"] or {}).values()) == len(payloads) for r in rows
            )

        assert until(settled, 120), exports()
    finally:
        fleet.terminate()
        fleet.wait(15)
        receiver.kill()
        listener.kill()
        broker.kill()
    store = SQLiteStore(tmp_path / "fleet.db")
    try:
        fhir = store.export_counts(f"fhir:http://127.0.0.1:{fhir_port}")
        hl7 = store.export_counts(f"hl7:127.0.0.1:{mllp_port}")
    finally:
        store.close()
    received = mllp_log.read_text().split()
    assert len(received) == len(set(received)) == hl7["acked"] > 0  # each message once
    assert fhir["acked"] > 0 and "rejected" not in fhir and "rejected" not in hl7
    lines = (tmp_path / "fhir.jsonl").read_text().splitlines()
    created = [k for k in (json.loads(line)["key"] for line in lines) if k]
    assert len(created) == len(set(created))  # no resource created twice
