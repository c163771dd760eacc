"""FHIR R4 resources from stored results (docs/fleet.md "FHIR R4 export" has the table).

Pure functions of a stored result row (and the encounter mapping): exporting the same result
twice gives identical resources. Ids are UUIDv5s of (device id, result id, part); every
resource also carries a stable ``identifier`` under ``urn:edgemed:result`` that a transaction
uses for conditional create (``ifNoneExist``), so a push repeated after a failure never
duplicates anything.

AI involvement follows HL7 "AI Transparency on FHIR" (STU1): every resource a model asserted
carries the security label ``AIAST`` (``v3-ObservationValue``, "Artificial Intelligence
asserted") in ``meta.security``; the model is a Device typed ``Artificial-Intelligence``
(``AIdeviceTypeCS``) with its version; a Provenance names the model (author) and the bedside
device (performer) for each result's resources.

ICD-10-CM codes from the text model are exported as an Observation of *suggestions* for a
human coder (status ``preliminary``), never as a Condition or a diagnosis.

The fleet never imports ``fhir.resources`` at run time; the tests validate every resource with
its R4B models (``fhir.resources`` ships R4B, 4.3.0, and R5; the elements used here are the same
in R4 4.0.1).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

__all__ = ["LOINC", "SNOMED", "UCUM", "ResultExport", "bundle", "export_result", "iso"]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOCAL = "urn:edgemed:code"  # edgemed's own codes, where no standard code exists
RESULT_ID = "urn:edgemed:result"
_NS = uuid.UUID("6f1d2b0e-6d0c-5a8e-9a43-5d1f1e4c2a10")
AIAST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
AI_DEVICE_TYPE = {
    "system": "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS",
    "code": "Artificial-Intelligence",
    "display": "All kinds of Artificial Intelligence",
}
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# Monitor field -> (LOINC, display, UCUM code, unit shown)
VITALS: dict[str, tuple[str, str, str, str]] = {
    "hr": ("8867-4", "Heart rate", "/min", "/min"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%"),
    "rr": ("9279-1", "Respiratory rate", "/min", "/min"),
    "temperature": ("8310-5", "Body temperature", "Cel", "°C"),
}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BP_PARTS = {
    "nibp_systolic": ("8480-6", "Systolic blood pressure"),
    "nibp_diastolic": ("8462-4", "Diastolic blood pressure"),
}
NEWS2_CODE = ("1104051000000101", "Royal College of Physicians NEWS2 total score")


@dataclass
class ResultExport:
    """The resources of one result (the result's own first, then its Devices and Provenance),
    or ``skipped`` with the reason when it has nothing to export."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None


def iso(t: float) -> str:
    """A Unix time as a FHIR instant (UTC, milliseconds)."""
    text = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": text or display}


def _quantity(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


class _Context:
    """What every resource of one result shares."""

    def __init__(self, row: dict[str, Any], encounter: dict[str, Any] | None) -> None:
        payload = row["payload"]
        self.payload: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else payload
        self.body: dict[str, Any] = self.payload["result"]
        self.device_id = str(row["device_id"])
        self.result_id = str(row["result_id"])
        self.received = float(row["received_at"])
        created = float(row["created_at"])
        self.clock_suspect = bool(row.get("clock_suspect"))
        self.effective = iso(self.received if self.clock_suspect else created)
        model = self.payload.get("model", {})
        self.model = (str(row["model_id"]), str(row["model_version"]))
        self.model_sha = str(model.get("sha256", ""))
        self.model_device = f"{model.get('backend', '?')}/{model.get('precision', '?')}"
        self.input = self.payload.get("input", {})
        self.encounter = encounter
        self.bedside_id = str(uuid.uuid5(_NS, f"device/{self.device_id}"))
        self.model_id = str(uuid.uuid5(_NS, f"model/{self.model[0]}@{self.model[1]}"))

    def rid(self, part: str) -> str:
        return str(uuid.uuid5(_NS, f"{self.device_id}/{self.result_id}/{part}"))

    def identifier(self, part: str) -> list[dict[str, Any]]:
        return [{"system": RESULT_ID, "value": f"{self.device_id}/{self.result_id}/{part}"}]

    def subject(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.encounter is not None:
            patient = self.encounter
            out["subject"] = {
                "type": "Patient",
                "identifier": {"system": patient["patient_system"], "value": patient["patient_id"]},
            }
            if patient.get("encounter_id"):
                out["encounter"] = {
                    "type": "Encounter",
                    "identifier": {
                        "system": patient.get("encounter_system") or patient["patient_system"],
                        "value": patient["encounter_id"],
                    },
                }
        return out

    def observation(
        self, part: str, code: dict[str, Any], category: str, **value: Any
    ) -> dict[str, Any]:
        """An AI-asserted Observation of this result; ``value`` holds value[x], component..."""
        notes = [f"Produced by {self.model[0]}@{self.model[1]} on device {self.device_id}."]
        if self.clock_suspect:
            notes.append("The device clock was implausible: effective is the time received.")
        return {
            "resourceType": "Observation",
            "id": self.rid(part),
            "meta": {"security": [AIAST]},
            "identifier": self.identifier(part),
            "status": value.pop("status", "final"),
            "category": [{"coding": [_coding(_CATEGORY, category, category.replace("-", " "))]}],
            "code": code,
            **self.subject(),
            "effectiveDateTime": self.effective,
            "issued": iso(self.received),
            "device": {"reference": f"Device/{self.model_id}"},
            **value,
            "note": [{"text": " ".join(notes)}],
        }


def export_result(row: dict[str, Any], encounter: dict[str, Any] | None = None) -> ResultExport:
    """The FHIR resources of one stored result (a row of ``results``: device_id, result_id,
    model_id, model_version, kind, created_at, received_at, payload, clock_suspect).
    ``encounter``: the mapping of its encounter reference (patient and encounter identifiers),
    if the hospital gave one. Never raises on a result the fleet stored: a kind without a
    mapping, or a result with nothing clinical to say, is ``skipped`` with the reason."""
    ctx = _Context(row, encounter)
    kind = str(row["kind"])
    build = _KINDS.get(kind)
    if build is None:
        return ResultExport(skipped=f"kind {kind[:60]!r} has no FHIR mapping")
    resources = build(ctx)
    if not resources:
        return ResultExport(skipped=f"{kind}: nothing to export (no value read or suggested)")
    done = [*resources, *_devices(ctx), _provenance(ctx, resources)]
    return ResultExport(resources=[clean(r) for r in done])


def _monitor(ctx: _Context) -> list[dict[str, Any]]:
    fields: dict[str, Any] = ctx.body.get("fields", {})
    out = []
    for name, (loinc, display, ucum, unit) in VITALS.items():
        reading = fields.get(name)
        if reading is None:
            continue
        out.append(
            ctx.observation(
                name, _concept(LOINC, loinc, display), "vital-signs",
                valueQuantity=_quantity(reading["value"], ucum, unit),
            )
        )  # fmt: skip
    parts = [
        {
            "code": _concept(LOINC, loinc, display),
            "valueQuantity": _quantity(fields[name]["value"], "mm[Hg]", "mmHg"),
        }
        for name, (loinc, display) in BP_PARTS.items()
        if fields.get(name) is not None
    ]
    if parts:
        out.append(
            ctx.observation(
                "bp", _concept(LOINC, *BP_PANEL, text="Blood pressure"), "vital-signs",
                component=parts,
            )
        )  # fmt: skip
    if ctx.body.get("news2") is not None:  # a partial NEWS2 (a lower bound) is not exported
        out.append(_news2_observation(ctx, ctx.body["news2"]))
    return out


def _news2_observation(ctx: _Context, news2: dict[str, Any]) -> dict[str, Any]:
    components = [
        {
            "code": _concept(LOCAL, f"news2-{name}", f"NEWS2 {name.replace('_', ' ')} score"),
            "valueInteger": int(score),
        }
        for name, score in news2["parameter_scores"].items()
    ]
    band = str(news2.get("band", ""))
    return ctx.observation(
        "news2",
        _concept(SNOMED, *NEWS2_CODE, text="NEWS2 total score"),
        "survey",
        valueInteger=int(news2["score"]),
        interpretation=[{"text": f"NEWS2 clinical risk: {band}"}] if band else [],
        component=components,
    )


def _news2(ctx: _Context) -> list[dict[str, Any]]:
    return [_news2_observation(ctx, ctx.body)]


def _seizure(ctx: _Context) -> list[dict[str, Any]]:
    body = ctx.body
    flag = "H" if body["probability"] >= body["threshold"] else "N"
    display = "High" if flag == "H" else "Normal"
    return [
        ctx.observation(
            "seizure",
            _concept(LOCAL, "seizure-probability", "Seizure probability (iEEG model)"),
            "exam",
            valueQuantity=_quantity(round(float(body["probability"]), 6), "1"),
            interpretation=[_concept(_INTERPRETATION, flag, display)],
            component=[
                {
                    "code": _concept(LOCAL, "seizure-threshold", "Model operating threshold"),
                    "valueQuantity": _quantity(float(body["threshold"]), "1"),
                }
            ],
        )
    ]


def _sleep(ctx: _Context) -> list[dict[str, Any]]:
    body = ctx.body
    epoch_min = float(body["epoch_seconds"]) / 60.0
    parts = [
        {
            "code": _concept(LOCAL, f"sleep-{name}", f"Time in {name} (sleep staging)"),
            "valueQuantity": _quantity(round(count * epoch_min, 3), "min"),
        }
        for name, count in body["counts"].items()
    ]
    return [
        ctx.observation(
            "sleep",
            _concept(LOCAL, "sleep-stages", "Sleep stages from ECG (hypnogram)"),
            "exam",
            valueString=str(body["hypnogram"]) or "(no epochs)",
            component=parts,
        )
    ]


def _classification(ctx: _Context) -> list[dict[str, Any]]:
    body = ctx.body
    subject = ctx.subject()
    out_of_range = list(body.get("out_of_range", []))
    note = f"Model threshold {body['threshold']}; decision: {body['label']}."
    if out_of_range:
        note += f" Features outside the training range: {', '.join(map(str, out_of_range))}."
    return [
        {
            "resourceType": "RiskAssessment",
            "id": ctx.rid("risk"),
            "meta": {"security": [AIAST]},
            "identifier": ctx.identifier("risk"),
            "status": "final",
            "method": {"text": f"{ctx.model[0]}@{ctx.model[1]}"},
            "subject": subject.get("subject", {"display": "patient not identified"}),
            **({"encounter": subject["encounter"]} if "encounter" in subject else {}),
            "occurrenceDateTime": ctx.effective,
            "performer": {"reference": f"Device/{ctx.model_id}"},
            "prediction": [
                {
                    "outcome": {"text": str(body["positive_label"])},
                    "probabilityDecimal": round(float(body["probability"]), 6),
                }
            ],
            "note": [{"text": note}],
        }
    ]


def _regression(ctx: _Context) -> list[dict[str, Any]]:
    body = ctx.body
    name = str(body.get("name", "value"))
    return [
        ctx.observation(
            "regression",
            {"coding": [_coding(LOCAL, f"tabular-{name}"[:64], name)], "text": name},
            "exam",
            valueQuantity={"value": float(body["value"]), "unit": str(body.get("unit", ""))},
        )
    ]


def _text(ctx: _Context) -> list[dict[str, Any]]:
    body = ctx.body
    nearest = [n for n in body.get("nearest", []) if isinstance(n, dict) and n.get("code")]
    if not nearest:
        return []  # an embedding without label suggestions says nothing clinical
    parts: list[dict[str, Any]] = [
        {
            "code": _concept(
                LOCAL, "icd10cm-suggestion", "Suggested ICD-10-CM code (not a diagnosis)"
            ),
            "valueCodeableConcept": {
                "coding": [_coding(ICD10CM, str(n["code"]), str(n.get("text", "")))],
                "text": f"suggestion {i}: {n['code']} (similarity {float(n['score']):.3f})",
            },
        }
        for i, n in enumerate(nearest, 1)
    ]
    value: dict[str, Any]
    suggestion = body.get("suggestion")
    if isinstance(suggestion, dict) and not body.get("abstained"):
        value = {
            "valueCodeableConcept": {
                "coding": [_coding(ICD10CM, str(suggestion["code"]), str(suggestion["text"]))],
                "text": "AI suggestion for a human coder, not a diagnosis",
            }
        }
    else:
        reason = body.get("abstain_reason") or "the model makes no confident suggestion"
        value = {"dataAbsentReason": {"text": f"no confident suggestion: {reason}"[:500]}}
    if body.get("assertion"):
        parts.append(
            {
                "code": _concept(LOCAL, "note-assertion", "How the note asserts its findings"),
                "valueString": str(body["assertion"]),
            }
        )
    return [
        ctx.observation(
            "icd",
            _concept(
                LOCAL, "icd10cm-suggestions", "ICD-10-CM code suggestions",
                text="AI-suggested ICD-10-CM codes: suggestions for review, not diagnoses",
            ),
            "exam", status="preliminary", component=parts, **value,
        )
    ]  # fmt: skip


_KINDS = {
    "monitor-reading": _monitor,
    "news2": _news2,
    "seizure-probability": _seizure,
    "sleep-stages": _sleep,
    "tabular-classification": _classification,
    "tabular-regression": _regression,
    "text-embedding": _text,
}
KINDS = tuple(_KINDS)


def _devices(ctx: _Context) -> list[dict[str, Any]]:
    model, version = ctx.model
    return [
        {
            "resourceType": "Device",
            "id": ctx.bedside_id,
            "identifier": [{"system": "urn:edgemed:device", "value": ctx.device_id}],
            "status": "active",
            "deviceName": [{"name": ctx.device_id, "type": "user-friendly-name"}],
            "type": {"text": "edgemed bedside device"},
        },
        {
            "resourceType": "Device",
            "id": ctx.model_id,
            "identifier": [{"system": "urn:edgemed:model", "value": f"{model}@{version}"}],
            "status": "active",
            "deviceName": [{"name": model, "type": "model-name"}],
            "type": {"coding": [AI_DEVICE_TYPE], "text": "AI model"},
            "version": [{"value": version}],
            "note": [{"text": f"Model artifact sha256 {ctx.model_sha}"}] if ctx.model_sha else [],
        },
    ]


def _provenance(ctx: _Context, targets: list[dict[str, Any]]) -> dict[str, Any]:
    entity = []
    if ctx.input.get("sha256"):
        entity.append(
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": "urn:edgemed:input-sha256",
                        "value": ctx.input["sha256"],
                    },
                    "display": f"{ctx.input.get('kind', 'input')} given to the model",
                },
            }
        )
    return {
        "resourceType": "Provenance",
        "id": ctx.rid("provenance"),
        "target": [{"reference": f"{r['resourceType']}/{r['id']}"} for r in targets],
        "occurredDateTime": ctx.effective,
        "recorded": iso(ctx.received),
        "agent": [
            {
                "type": _concept(_PARTICIPANT, "author", "Author"),
                "who": {"reference": f"Device/{ctx.model_id}"},
            },
            {
                "type": _concept(_PARTICIPANT, "performer", "Performer"),
                "who": {"reference": f"Device/{ctx.bedside_id}"},
            },
        ],
        "entity": entity,
    }


def _drop_empty(resource: dict[str, Any]) -> dict[str, Any]:
    """FHIR forbids empty arrays and objects."""
    return {k: v for k, v in resource.items() if v not in ([], {}, None)}


def bundle(exports: list[ResultExport]) -> dict[str, Any]:
    """A transaction Bundle: each resource once, created only if its identifier is new
    (``ifNoneExist``); references between them use ``urn:uuid:`` full URLs, which the
    server resolves to the created or the already existing resource."""
    entries: dict[str, dict[str, Any]] = {}
    for export in exports:
        for resource in export.resources:
            if resource["id"] in entries:
                continue  # a Device shared by several results
            identifier = resource["identifier"][0] if "identifier" in resource else None
            body = _relink(clean(resource))
            request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
            if identifier is not None:
                request["ifNoneExist"] = (
                    f"identifier={quote(identifier['system'], safe=':')}|"
                    f"{quote(identifier['value'], safe='')}"
                )
            else:  # Provenance has no identifier element in R4: keyed by its target
                body["id"] = resource["id"]
                request = {"method": "PUT", "url": f"Provenance/{resource['id']}"}
            entries[resource["id"]] = {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": body,
                "request": request,
            }
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries.values())}


def clean(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without empty elements (what the read endpoint and a push send)."""
    return _drop_empty(resource)


def _relink(resource: dict[str, Any]) -> dict[str, Any]:
    """References ``Type/<uuid>`` -> ``urn:uuid:<uuid>`` and no ``id`` (POST assigns one)."""
    text = json.dumps({k: v for k, v in resource.items() if k != "id"})
    for kind in ("Device", "Observation", "RiskAssessment"):
        text = text.replace(f'"reference": "{kind}/', '"reference": "urn:uuid:')
    out: dict[str, Any] = json.loads(text)
    return out
