"""FHIR R4 export of stored results: every resource of a mixed 1,050-result stream validates
(fhir.resources, R4B models), exports are identical when repeated, and the mappings say what
the issue asks (LOINC + UCUM vitals, NEWS2 with components, RiskAssessment, ICD-10-CM as
suggestions only, AI labels, Device and Provenance)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from clinical_stream import KINDS, stream
from fhir.resources.R4B import get_fhir_model_class
from payloads import result_payload

from edgemed.fleet import SQLiteStore
from edgemed.fleet.alerts import AlertRules
from edgemed.fleet.exports.fhir import AIAST, LOINC, UCUM, bundle, export_result
from edgemed.wire import decode_result


def _validate(resource: dict[str, Any]) -> None:
    # Unknown elements, wrong types, missing required elements and bad codes raise.
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert model.get_resource_type() == resource["resourceType"]


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[SQLiteStore, list[dict[str, Any]]]:
    store = SQLiteStore(tmp_path / "f.db")
    msgs = [decode_result(raw, topic_device_id=device) for device, raw in stream(1050)]
    store.insert_results(msgs, lambda m: AlertRules().evaluate(m, time.time()))
    store.put_encounter("enc-bed-1", patient_system="urn:oid:1.2.3.4", patient_id="MRN-0001",
                        encounter_system="urn:oid:1.2.3.5", encounter_id="V-77")  # fmt: skip
    return store, store.results_for_export(limit=5000)


def _exports(store: SQLiteStore, rows: list[dict[str, Any]]) -> list[Any]:
    refs = {json.loads(r["payload"]).get("encounter") for r in rows} - {None}
    mapping = store.encounter_map(refs)
    return [export_result(r, mapping.get(json.loads(r["payload"]).get("encounter"))) for r in rows]


def test_every_resource_of_a_mixed_stream_validates_and_repeats_identically(
    loaded: tuple[SQLiteStore, list[dict[str, Any]]],
) -> None:
    store, rows = loaded
    assert len(rows) == 1050 and {r["kind"] for r in rows} == set(KINDS)
    started = time.perf_counter()
    exports = _exports(store, rows)
    types: Counter[str] = Counter()
    for export in exports:
        for resource in export.resources:
            _validate(resource)
            types[resource["resourceType"]] += 1
    elapsed = time.perf_counter() - started
    skipped = Counter(e.skipped for e in exports if e.skipped)
    # Only text results without label suggestions have nothing to export, each with a reason.
    assert set(skipped) == {"text-embedding: nothing to export (no value read or suggested)"}
    assert 0 < sum(skipped.values()) < 150
    assert types["Condition"] == 0  # ICD-10-CM codes are suggestions, never diagnoses
    assert types["RiskAssessment"] == 150 and types["Provenance"] == 1050 - sum(skipped.values())
    assert types["Observation"] > 1300 and types["Device"] == 2 * types["Provenance"], types
    print(f"{sum(types.values())} resources validated in {elapsed:.1f} s: {dict(types)}")
    # Exporting again (re-read from the store) gives identical resources, ids included.
    again = _exports(store, store.results_for_export(limit=5000))
    assert [e.resources for e in again] == [e.resources for e in exports]
    # The transaction bundle validates as a whole too.
    _validate(bundle(exports[:50]))


def _one(store: SQLiteStore, body: dict[str, Any], *, encounter: str | None = None, kind_model: str = "monitor-reader@1.2.0") -> list[dict[str, Any]]:  # fmt: skip
    raw = result_payload("bed-9", 1, body, model=kind_model, created_at=1_700_000_000.0,
                         encounter=encounter)  # fmt: skip
    store.insert_result(decode_result(raw, topic_device_id="bed-9"))
    (row,) = store.results_for_export(limit=1)
    mapping = store.encounter(encounter) if encounter else None
    export = export_result(row, mapping)
    assert export.skipped is None
    for resource in export.resources:
        _validate(resource)
    return export.resources


def test_monitor_vitals_use_loinc_and_ucum_and_name_the_mapped_patient(tmp_path: Path) -> None:
    from clinical_stream import _reading

    store = SQLiteStore(tmp_path / "f.db")
    store.put_encounter("opaque-7", patient_system="urn:oid:1.2.3.4", patient_id="MRN-42")
    fields = {"hr": _reading(72, "/min"), "spo2": _reading(97, "%"), "rr": _reading(14, "/min"),
              "nibp_systolic": _reading(120, "mmHg"), "nibp_diastolic": _reading(80, "mmHg"),
              "temperature": _reading(37.1, "°C")}  # fmt: skip
    body = {"kind": "monitor-reading", "fields": fields, "texts": [], "news2": None,
            "news2_partial": None, "news2_assumed": []}  # fmt: skip
    resources = _one(store, body, encounter="opaque-7")
    by_code = {
        r["code"]["coding"][0]["code"]: r for r in resources if r["resourceType"] == "Observation"
    }
    expected = {"8867-4": (72, "/min"), "59408-5": (97, "%"), "9279-1": (14, "/min"),
                "8310-5": (37.1, "Cel")}  # fmt: skip
    for code, (value, ucum) in expected.items():
        obs = by_code[code]
        assert obs["code"]["coding"][0]["system"] == LOINC
        assert obs["valueQuantity"] == {
            **obs["valueQuantity"],
            "value": value,
            "code": ucum,
            "system": UCUM,
        }
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
        assert obs["meta"]["security"] == [AIAST]
        assert obs["subject"]["identifier"] == {"system": "urn:oid:1.2.3.4", "value": "MRN-42"}
    panel = by_code["85354-9"]
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
            for c in panel["component"]] == [("8480-6", 120, "mm[Hg]"), ("8462-4", 80, "mm[Hg]")]  # fmt: skip
    devices = [r for r in resources if r["resourceType"] == "Device"]
    model = next(d for d in devices if "version" in d)
    assert model["type"]["coding"][0]["code"] == "Artificial-Intelligence"
    assert model["version"] == [{"value": "1.2.0"}]
    (prov,) = [r for r in resources if r["resourceType"] == "Provenance"]
    assert {t["reference"] for t in prov["target"]} == {
        f"Observation/{o['id']}" for o in by_code.values()
    }
    assert {a["who"]["reference"] for a in prov["agent"]} == {f"Device/{d['id']}" for d in devices}
    # The hospital's identifier is only in the export: the payload carried the opaque ref.
    assert "MRN-42" not in json.dumps(store.results()[0]["payload"])


def test_news2_icd_suggestions_and_risk(tmp_path: Path) -> None:
    import random

    from clinical_stream import body_of

    store = SQLiteStore(tmp_path / "f.db")
    from payloads import news2_body

    (news2, *_rest) = _one(store, news2_body(spo2=3, pulse=1), kind_model="news2-rcp2017@1.0.0")
    assert news2["code"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "1104051000000101",
                                          "display": "Royal College of Physicians NEWS2 total score"}  # fmt: skip
    assert news2["valueInteger"] == 4 and len(news2["component"]) == 7
    rng = random.Random(3)
    text = body_of("text-embedding", rng)
    while not text["nearest"] or text.get("abstained"):
        text = body_of("text-embedding", rng)
    store2 = SQLiteStore(tmp_path / "g.db")
    (icd, *_rest) = _one(store2, text, kind_model="clinical-text-minilm@1.0.0")
    assert icd["resourceType"] == "Observation" and icd["status"] == "preliminary"
    assert (
        "not diagnoses" in icd["code"]["text"]
        and "not a diagnosis" in icd["valueCodeableConcept"]["text"]
    )
    assert icd["valueCodeableConcept"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10-cm"
    store3 = SQLiteStore(tmp_path / "h.db")
    (risk, *_rest) = _one(store3, body_of("tabular-classification", rng), kind_model="bc@1")
    assert risk["resourceType"] == "RiskAssessment" and risk["meta"]["security"] == [AIAST]
    assert 0.0 <= risk["prediction"][0]["probabilityDecimal"] <= 1.0


def test_a_kind_without_a_mapping_is_skipped_with_a_reason(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    raw = result_payload("bed-1", 1, {"kind": "gait-speed", "value": 1.2}, model="gait@1")
    store.insert_result(decode_result(raw, topic_device_id="bed-1"))
    (row,) = store.results_for_export(limit=1)
    export = export_result(row)
    assert export.resources == [] and export.skipped == "kind 'gait-speed' has no FHIR mapping"


def test_the_export_stream_is_what_the_fleet_accepts() -> None:
    # The helper stream must pass the fleet's own JSON Schema check, or the export tests would
    # test payloads no fleet ever stores.
    from edgemed.fleet.validation import PayloadValidator

    validator = PayloadValidator()
    for device, raw in stream(len(KINDS) * 3):
        validator.result(raw, topic_device_id=device)
