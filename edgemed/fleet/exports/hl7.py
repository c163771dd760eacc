"""HL7 v2.5 ORU^R01 messages from stored results, built and validated with hl7apy.

One message per result: vital signs (LOINC codes, UCUM units) and NEWS2 (SNOMED CT total score,
parameter scores under the local coding system ``99EDG``) as OBX segments, derived from the
same mapping as the FHIR export (``fhir.export_result``), so both exports always agree. Other
kinds have no HL7 v2 mapping here and are skipped with that reason.

- MSH-10 (message control id) is stable per result: a receiver can recognise a resend.
- PID/PV1 only when the result's encounter reference is mapped (``/api/encounters``): PID-3 is
  the hospital's patient id, PV1-19 its encounter (visit) id; PID-5 (a required name) is sent
  as the HL7 null ``""``: the fleet never holds names.
- An NTE says that an AI model produced the values and which one.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

from .fhir import LOINC, SNOMED, UCUM, export_result

__all__ = ["HL7_VERSION", "Hl7Message", "build_oru", "control_id", "parse_ack"]

HL7_VERSION = "2.5"
_SYSTEMS = {LOINC: "LN", SNOMED: "SCT", "urn:edgemed:code": "99EDG"}
_SPECIAL = re.compile(r"[|^~\\&\r\n]")


class Hl7Message:
    """An ER7 message and its control id (MSH-10), or ``skipped`` with the reason."""

    def __init__(self, er7: str = "", control: str = "", skipped: str | None = None) -> None:
        self.er7, self.control, self.skipped = er7, control, skipped


def control_id(row: dict[str, Any]) -> str:
    """MSH-10: 20 characters, the same for every send of the same result."""
    key = f"{row['device_id']}/{row['result_id']}".encode()
    return hashlib.sha256(key).hexdigest()[:20].upper()


def _text(value: Any, limit: int = 199) -> str:
    """Free text made safe for a field: no HL7 delimiters, bounded."""
    return _SPECIAL.sub(" ", str(value))[:limit]


def _ts(iso_time: str) -> str:
    parsed = datetime.fromisoformat(iso_time.replace("Z", "+00:00")).astimezone(timezone.utc)
    return parsed.strftime("%Y%m%d%H%M%S") + "+0000"


def _observations(resources: list[dict[str, Any]]) -> list[tuple[str, str, Any, str]]:
    """(code^text^system, value type, value, units) for each vital and NEWS2 value."""
    rows: list[tuple[str, str, Any, str]] = []
    for resource in resources:
        if resource["resourceType"] != "Observation":
            continue
        coding = resource["code"]["coding"][0]
        if coding["system"] not in (LOINC, SNOMED):
            continue  # vitals (LOINC) and NEWS2 (SNOMED) only
        parts = [resource] if "component" not in resource or "valueInteger" in resource else []
        parts += resource.get("component", [])
        for part in parts:
            c = part["code"]["coding"][0]
            code = f"{_text(c['code'], 20)}^{_text(c['display'], 60)}^{_SYSTEMS[c['system']]}"
            if "valueQuantity" in part:
                q = part["valueQuantity"]
                units = (
                    f"{_text(q['code'], 20)}^{_text(q['unit'], 20)}^UCUM"
                    if q.get("system") == UCUM
                    else ""
                )
                rows.append((code, "NM", q["value"], units))
            elif "valueInteger" in part:
                rows.append((code, "NM", part["valueInteger"], ""))
    return rows


def build_oru(
    row: dict[str, Any],
    encounter: dict[str, Any] | None = None,
    *,
    sending: tuple[str, str] = ("EDGEMED", "FLEET"),
    receiving: tuple[str, str] = ("EHR", "HOSPITAL"),
) -> Hl7Message:
    """The ORU^R01 of one stored result, validated strictly by hl7apy (a ValidationError
    would be a bug here, never a property of the data)."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.core import Message

    export = export_result(row, encounter)
    values = _observations(export.resources)
    if not values:
        return Hl7Message(
            skipped=f"{str(row['kind'])[:60]}: no HL7 v2 mapping (vitals and NEWS2 only)"
        )
    effective = next(r for r in export.resources if r["resourceType"] == "Observation")[
        "effectiveDateTime"
    ]
    when = _ts(effective)
    control = control_id(row)
    msg = Message("ORU_R01", version=HL7_VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    _header(msg.msh, row, control, sending, receiving)
    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    if encounter is not None:
        _patient(result, encounter)
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.obr.obr_1 = "1"
    order.obr.obr_3 = f"{control}^EDGEMED"
    order.obr.obr_4 = f"{_text(row['kind'], 40)}^edgemed {_text(row['kind'], 40)}^99EDG"
    order.obr.obr_7 = when
    order.obr.obr_25 = "F"
    model = f"{_text(row['model_id'], 60)}@{_text(row['model_version'], 30)}"
    note = order.add_segment("NTE")
    note.nte_1 = "1"
    note.nte_3 = (
        f"AI-asserted: values produced by model {model} on device {_text(row['device_id'], 64)}"
    )
    for i, (code, kind, value, units) in enumerate(values, 1):
        obs = order.add_group("ORU_R01_OBSERVATION")
        obs.obx.obx_1 = str(i)
        obs.obx.obx_2 = kind
        obs.obx.obx_3 = code
        obs.obx.obx_5 = str(value)
        if units:
            obs.obx.obx_6 = units
        obs.obx.obx_11 = "F"
        obs.obx.obx_14 = when
        obs.obx.obx_18 = f"{model}^EDGEMED"
    msg.validate()
    return Hl7Message(er7=msg.to_er7(), control=control)


def _header(
    msh: Any,
    row: dict[str, Any],
    control: str,
    sending: tuple[str, str],
    receiving: tuple[str, str],
) -> None:
    """MSH: who sends to whom, when the fleet received the result, the control id."""
    msh.msh_3, msh.msh_4 = sending
    msh.msh_5, msh.msh_6 = receiving
    msh.msh_7 = _ts(datetime.fromtimestamp(float(row["received_at"]), timezone.utc).isoformat())
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control
    msh.msh_11 = "P"
    msh.msh_12 = HL7_VERSION


def _patient(result: Any, encounter: dict[str, Any]) -> None:
    """PID (and PV1 when the encounter has an id) of a mapped encounter."""
    patient = result.add_group("ORU_R01_PATIENT")
    authority = _text(encounter["patient_system"], 60).replace(":", "_")
    patient.pid.pid_3 = f"{_text(encounter['patient_id'], 60)}^^^{authority}^MR"
    patient.pid.pid_5 = '""'
    if encounter.get("encounter_id"):
        visit = patient.add_group("ORU_R01_VISIT")
        visit.pv1.pv1_2 = "U"
        visit.pv1.pv1_19 = _text(encounter["encounter_id"], 60)


def parse_ack(er7: str) -> tuple[str, str, str]:
    """(MSA-1 acknowledgement code, MSA-2 control id, MSA-3 text) of an ACK message."""
    from hl7apy.parser import parse_message

    ack = parse_message(er7.strip("\r\n"), find_groups=False)
    msa = ack.msa
    return msa.msa_1.value, msa.msa_2.value, msa.msa_3.value if msa.msa_3 else ""
