"""The FHIR push against Medplum's FHIR R4 engine instead of the test receiver.

No complete FHIR server installs from the registries this project reaches (docs/fleet.md, FHIR
section, says what was tried). The closest is npm ``@medplum/fhir-router``: the request router,
transaction processor, conditional create and search of the Medplum server, with its in-memory
repository. ``tests/servers/medplum_fhir_server.mjs`` serves it over HTTP, validates each
resource with Medplum's validator and journals the repository to a file so that the process
can be killed and restarted. The transaction semantics (``ifNoneExist``, ``urn:uuid``
references rewritten to the created or the existing resource, the transaction-response) and
every search below are Medplum's; the HTTP glue and the durability are the test's.

Install (scripts/test.sh does it when npm is present, ~5 s):
    npm install --prefix ~/.cache/edgemed/medplum-fhir-router-5.2.13 @medplum/fhir-router@5.2.13
or point ``EDGEMED_MEDPLUM_DIR`` at another prefix. Skipped, with the reason, without it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clinical_stream import KINDS, stream

from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.exports.fhir import export_result
from edgemed.fleet.exports.worker import FhirPusher
from edgemed.wire import decode_result

MEDPLUM_VERSION = "5.2.13"
MEDPLUM_DIR = Path(
    os.environ.get("EDGEMED_MEDPLUM_DIR")
    or Path.home() / ".cache" / "edgemed" / f"medplum-fhir-router-{MEDPLUM_VERSION}"
)
SHIM = Path(__file__).parents[1] / "servers" / "medplum_fhir_server.mjs"
RESULTS = 630  # ~1,550 creates: the kill below (after the 720th) lands mid-push
TYPES = ("Observation", "RiskAssessment", "Device", "Provenance")


def _node() -> list[str] | None:
    """How to run node with a global WebSocket, which Medplum 5's client code references at
    import: Node >= 22 has one, Node 20 (this machine's) behind a flag; None: neither."""
    if shutil.which("node") is None:
        return None
    for args in (["node"], ["node", "--experimental-websocket"]):
        probe = [*args, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"]
        if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
            return args
    return None


NODE = _node()


def _installed() -> str | None:
    """Why the test cannot run here, or None."""
    if NODE is None:
        return "no node with a WebSocket global (Node >= 22, or >= 20.10 with a flag) is installed"
    package = MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router" / "package.json"
    if not package.exists():
        return (f"Medplum's FHIR engine is not installed in {MEDPLUM_DIR}: npm install --prefix "
                f"{MEDPLUM_DIR} @medplum/fhir-router@{MEDPLUM_VERSION}")  # fmt: skip
    version = json.loads(package.read_text())["version"]
    if version != MEDPLUM_VERSION:
        return f"{package} is {version}, the test is written for {MEDPLUM_VERSION}"
    return None


pytestmark = pytest.mark.skipif(_installed() is not None, reason=str(_installed()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MedplumServer:
    """The engine as a separate process on a loopback port; its journal survives a kill."""

    def __init__(self, port: int, journal: Path) -> None:
        assert NODE is not None
        self.args = [*NODE, str(SHIM), str(MEDPLUM_DIR), str(port), str(journal)]
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *extra: str) -> MedplumServer:
        self.proc = subprocess.Popen([*self.args, *extra], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def get(self, path: str, **query: str | int) -> dict[str, Any]:
        url = f"{self.base}/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=60) as response:
            body: dict[str, Any] = json.loads(response.read())
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
        return body

    def everything(self, resource_type: str) -> list[dict[str, Any]]:
        """Every stored resource of a type, by paged search."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.get(resource_type, _count=500, _offset=len(out))
            entries = [e["resource"] for e in page.get("entry", [])]
            out += entries
            if len(entries) < 500:
                return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "fleet.db")
    msgs = [decode_result(raw, topic_device_id=device) for device, raw in stream(RESULTS)]
    s.insert_results(msgs, lambda m: AlertRules().evaluate(m, time.time()))
    s.put_encounter("enc-bed-1", patient_system="urn:oid:1.2.3.4", patient_id="MRN-0001",
                    encounter_system="urn:oid:1.2.3.5", encounter_id="V-77")  # fmt: skip
    yield s
    s.close()


def _expected(store: SQLiteStore) -> tuple[dict[str, set[str]], set[str], dict[str, str]]:
    """What the stream must leave on the server: identifiers per type, Provenance ids, and a
    sample identifier of each result kind (kind -> ``system|value``)."""
    rows = store.results_for_export(limit=5000)
    mapping = store.encounter_map({"enc-bed-1"})
    identifiers: dict[str, set[str]] = {t: set() for t in TYPES}
    provenances: set[str] = set()
    sample: dict[str, str] = {}
    for row in rows:
        row["payload"] = json.loads(row["payload"])
        export = export_result(row, mapping.get(str(row["payload"].get("encounter"))))
        for resource in export.resources:
            if resource["resourceType"] == "Provenance":
                provenances.add(resource["id"])
                continue
            ident = resource["identifier"][0]
            key = f"{ident['system']}|{ident['value']}"
            identifiers[resource["resourceType"]].add(key)
            if resource["resourceType"] != "Device":
                sample.setdefault(row["kind"], key)
    return identifiers, provenances, sample


def _on_server(server: MedplumServer) -> dict[str, list[dict[str, Any]]]:
    return {t: server.everything(t) for t in TYPES}


def _keys(resources: list[dict[str, Any]]) -> Counter[str]:
    return Counter(f"{i['system']}|{i['value']}" for r in resources for i in r["identifier"])


def test_push_to_medplum_survives_a_kill_and_a_second_export_creates_nothing(
    store: SQLiteStore, tmp_path: Path
) -> None:
    port = _free_port()
    server = MedplumServer(port, tmp_path / "medplum.journal")
    pusher = FhirPusher(store, f"{server.base}/", timeout=60.0, retry_s=0.05, max_retry_s=0.3)
    identifiers, provenances, sample = _expected(store)
    assert set(sample) == set(KINDS)  # every kind of result has a resource to look for
    try:
        # Down before it ever starts: nothing is settled.
        with pytest.raises(OSError):
            pusher.run_once()
        assert store.export_counts(pusher.target) == {}
        # Killed after it committed the transaction holding its 720th create and before
        # it replied: the pusher sees a dropped connection, keeps that batch pending.
        server.start("--die-after", "720")
        assert server.proc is not None
        end = time.monotonic() + 120
        while server.proc.poll() is None and time.monotonic() < end:
            pusher.drain(deadline_s=1)
        assert server.proc.wait(5) == 3
        acked_before = store.export_counts(pusher.target).get("acked", 0)
        assert 0 < acked_before < RESULTS and pusher.failures > 0
        server.start()  # replays its journal: the unanswered transaction is there
        pusher.drain(deadline_s=240)
        counts = store.export_counts(pusher.target)
        assert counts.get("rejected", 0) == 0, counts  # Medplum's validator refused nothing
        assert counts["acked"] + counts.get("skipped", 0) == RESULTS
        assert not store.pending_exports(pusher.target, after=0, limit=1)

        first = _on_server(server)
        for kind, resources in first.items():
            if kind == "Provenance":
                assert Counter(r["id"] for r in resources) == Counter(provenances)
            else:  # each exactly once: nothing lost, nothing created twice
                assert _keys(resources) == Counter(identifiers[kind]), kind
        # Search by identifier (what ifNoneExist runs) finds each result kind's resource once.
        for kind, key in sample.items():
            for resource_type in ("Observation", "RiskAssessment"):
                found = server.get(resource_type, identifier=key).get("total")
                assert found == (1 if key in identifiers[resource_type] else 0), (kind, key)
        # The server rewrote every urn:uuid reference to a resource it holds.
        held = {f"{t}/{r['id']}" for t, rs in first.items() for r in rs}
        for provenance in first["Provenance"]:
            refs = [t["reference"] for t in provenance["target"]]
            refs += [a["who"]["reference"] for a in provenance["agent"]]
            assert refs and set(refs) <= held, refs

        # The same results exported again (a ledger that forgot them: another target name):
        # every entry is a conditional create that matches, so the server holds the same.
        again = FhirPusher(store, f"{server.base}/", timeout=60.0, retry_s=0.05, max_retry_s=0.3)
        again.target = "fhir:again"
        again.drain(deadline_s=240)
        assert store.export_counts("fhir:again") == counts
        second = _on_server(server)
        for kind in TYPES:
            if kind == "Provenance":  # PUT by id: updated in place, same ids
                assert sorted(r["id"] for r in second[kind]) == sorted(provenances)
            else:
                assert {r["id"]: r for r in second[kind]} == {r["id"]: r for r in first[kind]}
    finally:
        server.kill()
    print(f"Medplum {MEDPLUM_VERSION}: {sum(len(v) for v in identifiers.values())} resources "
          f"+ {len(provenances)} Provenance, {acked_before} results acked before the kill")  # fmt: skip
