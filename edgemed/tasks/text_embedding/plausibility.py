"""Numbers the encoder cannot read: a measured value in the note that contradicts a code.

A sentence embedding does not know that "glucose 2.1 mmol/L" is low: the nearest codes of
"blood glucose 2.1 mmol/L" are hyperglycaemia codes (same words, opposite meaning). These
rules read a few measurements with their units and mark a suggested code whose family
implies the opposite direction as contradicted. Each rule is one row of ``RULES``:

* the analyte's names and units (converted to one canonical unit; a value written without a
  unit is used only when every plausible reading of it is on the same side, e.g. glucose
  "2.1" is low whether mmol/L or mg/dL, "25" is not used);
* ``low_below`` / ``high_above``: clearly low / clearly high values, from common clinical
  cut-offs (hypoglycaemia < 3.9 mmol/L = 70 mg/dL, ADA level 1; hyperglycaemia > 11.1 mmol/L
  = 200 mg/dL; K 3.5-5.5 and Na 135-145 mmol/L; temperature 35-38 °C; heart rate 60-100/min;
  systolic BP 90-140 mmHg);
* the ICD-10-CM code families that imply high and low values.

Only the opposite direction contradicts: a normal value beside "hypoglycaemia" may be a
treated episode and is left alone. The rules are not fitted to any evaluation phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["RULES", "Measurement", "Rule", "contradiction", "measurements"]

Level = Literal["low", "normal", "high"]


@dataclass(frozen=True, kw_only=True)
class Rule:
    analyte: str
    names: str  # regex alternatives (lower case)
    unit: str  # canonical unit
    units: tuple[
        tuple[str, float, float], ...
    ]  # (regex, scale, offset): canonical = v*scale+offset
    plausible: tuple[float, float]  # canonical values a measurement can take
    low_below: float
    high_above: float
    high_codes: str  # regex on the code: families implying a high value
    low_codes: str


_MMOL = (r"mmol(?:/l)?", 1.0, 0.0)
_MEQ = (r"meq(?:/l)?", 1.0, 0.0)
RULES: tuple[Rule, ...] = (
    Rule(
        analyte="glucose",
        names=r"(?:blood |capillary |fasting |random |plasma |serum )?(?:glucose|sugars?)"
        r"|bg|bm|bms|cbg|bsl|rbs|fbs|fbg|glu|gluc|accu-?chek",
        unit="mmol/L",
        units=(_MMOL, (r"mg/dl|mg%", 1 / 18.0, 0.0)),
        plausible=(0.5, 100.0),
        low_below=3.9,
        high_above=11.1,
        # R73 elevated blood glucose; diabetes with hyperosmolarity (.0), ketoacidosis (.1),
        # hyperglycaemia (.65)
        high_codes=r"^R73\.|^E(?:0[89]|1[013])\.(?:0|1|65)",
        # E15 nondiabetic hypoglycaemic coma, E16.0-E16.2 hypoglycaemia, diabetes with
        # hypoglycaemia (.64), neonatal hypoglycaemia P70.3-P70.4
        low_codes=r"^E15$|^E16\.[0-2]|^E(?:0[89]|1[013])\.64|^P70\.[34]",
    ),
    Rule(
        analyte="potassium",
        names=r"potassium|k\+?",
        unit="mmol/L",
        units=(_MMOL, _MEQ),
        plausible=(1.0, 10.0),
        low_below=3.5,
        high_above=5.5,
        high_codes=r"^E87\.5",
        low_codes=r"^E87\.6",
    ),
    Rule(
        analyte="sodium",
        names=r"sodium|na\+?",
        unit="mmol/L",
        units=(_MMOL, _MEQ),
        plausible=(90.0, 200.0),
        low_below=135.0,
        high_above=145.0,
        high_codes=r"^E87\.0",
        low_codes=r"^E87\.1",
    ),
    Rule(
        analyte="temperature",
        names=r"temperature|temp|t|febrile to|pyrexial to|fever of|fever to",
        unit="°C",
        units=(
            (r"°\s?c|deg(?:rees)?\s?c|c", 1.0, 0.0),
            (r"°\s?f|deg(?:rees)?\s?f|f", 5 / 9, -160 / 9),
        ),
        plausible=(25.0, 45.0),
        low_below=35.0,
        high_above=38.0,
        high_codes=r"^R50\.|^T67\.0",  # fever; heatstroke
        low_codes=r"^R68\.0|^T68|^P80\.",  # hypothermia
    ),
    Rule(
        analyte="heart rate",
        names=r"heart rate|hr|pulse(?: rate)?|apical rate",
        unit="/min",
        units=((r"bpm|/min|beats(?: per |/)min(?:ute)?", 1.0, 0.0),),
        plausible=(15.0, 300.0),
        low_below=60.0,
        high_above=100.0,
        high_codes=r"^R00\.0|^I47\.",  # tachycardia
        low_codes=r"^R00\.1",  # bradycardia
    ),
    Rule(
        analyte="systolic blood pressure",
        names=r"blood pressure|bp|nibp|sbp",
        unit="mmHg",
        units=((r"mm\s?hg", 1.0, 0.0),),
        plausible=(30.0, 300.0),
        low_below=90.0,
        high_above=140.0,
        high_codes=r"^I1[0-6]|^R03\.0",  # hypertension; elevated BP reading
        low_codes=r"^I95\.|^R03\.1",  # hypotension; low BP reading
    ),
)
# Words allowed between an analyte's name and its value ("glucose was 2.1", "BM of 2.1").
_LINK = r"(?:\s*[:=~]?\s*(?:(?:of|was|is|at|level|levels|reading|now|only|down to|up to|dropped to|rose to|fell to|measured|checked|recorded)\s+)*)"
_NUMBER = r"(\d{1,3}(?:[.,]\d{1,2})?)"


@dataclass(frozen=True, kw_only=True)
class Measurement:
    analyte: str
    value: float  # as written
    unit: str | None  # as written (None: no unit)
    canonical: float  # in the rule's canonical unit
    level: Level
    text: str  # e.g. "glucose 2.1 mmol/L" (for callers; never put into a result)


def _compile(rule: Rule) -> re.Pattern[str]:
    units = "|".join(u for u, _, _ in rule.units)
    return re.compile(
        rf"(?<![a-z0-9])(?:{rule.names}){_LINK}{_NUMBER}(?:\s*/\s*\d{{1,3}})?\s*({units})?(?![a-z])",
        re.IGNORECASE,
    )


_PATTERNS = tuple((rule, _compile(rule)) for rule in RULES)
_DIGIT = re.compile(r"\d")


def _readings(rule: Rule, value: float, unit: str | None) -> list[float]:
    """Canonical values ``value`` may stand for: one per unit written, every unit if none."""
    if unit is not None:
        for pattern, scale, offset in rule.units:
            if re.fullmatch(pattern, unit, re.IGNORECASE):
                return [value * scale + offset]
        return []
    if rule.analyte == "temperature" and value > 45:  # written in °F without a unit
        return [value * 5 / 9 - 160 / 9]
    readings = {value * scale + offset for _, scale, offset in rule.units}
    return sorted(readings)


def _level(rule: Rule, canonical: float) -> Level:
    if canonical < rule.low_below:
        return "low"
    return "high" if canonical > rule.high_above else "normal"


def measurements(text: str) -> tuple[Measurement, ...]:
    """The measurements the rules can read in ``text`` whose level is unambiguous."""
    if _DIGIT.search(text) is None:  # every rule reads a number: skip a dozen scans
        return ()
    found: list[Measurement] = []
    for rule, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            value = float(m.group(1).replace(",", "."))
            unit = m.group(2)
            low, high = rule.plausible
            readings = [r for r in _readings(rule, value, unit) if low <= r <= high]
            levels = {_level(rule, r) for r in readings}
            if len(levels) != 1:  # no plausible reading, or readings on different sides
                continue
            found.append(
                Measurement(
                    analyte=rule.analyte,
                    value=value,
                    unit=unit,
                    canonical=readings[0],
                    level=levels.pop(),
                    text=m.group(0).strip(),
                )
            )
    return tuple(found)


def contradiction(code: str, found: tuple[Measurement, ...]) -> str | None:
    """Why a measurement contradicts ``code`` (None if none does)."""
    if not found:  # most notes: nothing measured, nothing to match the code against
        return None
    for rule in RULES:
        implies: Level | None = (
            "high"
            if re.search(rule.high_codes, code)
            else "low"
            if re.search(rule.low_codes, code)
            else None
        )
        if implies is None:
            continue
        for m in found:
            if m.analyte == rule.analyte and m.level not in (implies, "normal"):
                # The reason names the cut-off, not the value: results carry no note content.
                bound = f"< {rule.low_below:g}" if m.level == "low" else f"> {rule.high_above:g}"
                return (
                    f"a {m.level} {rule.analyte} ({bound} {rule.unit}) in the text; "
                    f"{code} implies a {implies} one"
                )
    return None
