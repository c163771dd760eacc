"""A vital sign's number as the reader reports it: display ranges, units and their conversion.

°F is converted to °C and kPa to mmHg (the reader's units); a unit that disagrees with the
value's magnitude, a temperature in the °F range with no unit, a pressure whose two numbers
are drawn in different formats, or a number outside the parameter's plausible range gives no
value but a reason (codes of
``edgemed.results.WITHHELD_REASONS``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .screen_text import Box

__all__ = [
    "KPA", "MMHG_PER_KPA", "PLAUSIBLE", "TEMP_F", "TYPICAL", "Number", "alarm_limits", "convert", "drawn_unalike", "fits",
]  # fmt: skip

# Accepted display ranges (inclusive) in the reader's units; outside, a number is not the value.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "hr": (20, 300),
    "spo2": (50, 100),
    "nibp_systolic": (40, 300),
    "nibp_diastolic": (15, 200),
    "rr": (0, 80),
    "temperature": (25.0, 45.0),
}
TEMP_F = (77.0, 113.0)  # PLAUSIBLE temperature in °F
KPA = (2.0, 40.0)  # PLAUSIBLE NIBP in kPa
MMHG_PER_KPA = 7.50062

# Values outside these are possible but rare: a misread digit lands there more often than a
# patient does, so the confidence model weighs it.
TYPICAL: dict[str, tuple[float, float]] = {
    "hr": (40, 180),
    "spo2": (80, 100),
    "nibp": (70, 230),
    "rr": (6, 40),
    "temperature": (34.0, 41.5),
}


@dataclass(frozen=True)
class Number:
    """A segment that parsed as a number (or a ``a/b`` pair), as drawn on the screen."""

    box: Box
    value: tuple[float, ...]
    unit: str | None
    decimals: bool


# The two numbers of a pressure, as drawn ("120/80", "16.0/10.7").
_PAIR = re.compile(r"(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)")


def drawn_unalike(text: str) -> bool:
    """Whether the two numbers of a pressure in ``text`` are drawn in different formats: a
    monitor draws both alike (whole mmHg, or kPa to one decimal), so "19/6.1" is a misread
    (a held-out-family screen's "11.9/6.1" kPa lost its "1." and read as 143/46 mmHg)."""
    m = _PAIR.search(text)
    return m is not None and ("." in m.group(1)) != ("." in m.group(2))


def fits(name: str, value: tuple[float, ...]) -> bool:
    """Whether a value in the reader's units has the shape and magnitude of ``name``."""
    if name == "other":
        return True
    if any(math.copysign(1.0, v) < 0 for v in value):
        return False  # no reported vital sign is negative: "-0" is a misread "40", not 0
    if name == "nibp":
        if len(value) != 2:
            return False
        s, d = value
        lo_s, hi_s = PLAUSIBLE["nibp_systolic"]
        lo_d, hi_d = PLAUSIBLE["nibp_diastolic"]
        return lo_s <= s <= hi_s and lo_d <= d <= hi_d and d < s
    if len(value) != 1:
        return False
    lo, hi = PLAUSIBLE[name]
    return lo <= value[0] <= hi


def convert(
    name: str, num: Number, unit: str | None
) -> tuple[tuple[float, ...] | None, str | None, str | None]:
    """(value in the reader's units or None, unit converted from, reason when None)."""
    v = num.value
    if any(round(x, 1) != x for x in v):
        # Monitors show temperature and kPa to one decimal: "36.78" is a misread (a "36.7"
        # boxed with the next tile's "8", seed 1900630), not a value to round.
        return None, None, "implausible"
    if name == "temperature" and len(v) == 1:
        in_c = PLAUSIBLE["temperature"][0] <= v[0] <= PLAUSIBLE["temperature"][1]
        in_f = TEMP_F[0] <= v[0] <= TEMP_F[1]
        if unit == "°F":
            if in_f:
                return (round((v[0] - 32) * 5 / 9, 1),), "°F", None
            return None, None, "unit-mismatch"
        if in_f:  # °C shown, or no unit, with a °F magnitude
            return None, None, "unit-mismatch" if unit == "°C" else "unit-unknown"
        return (v if in_c else None), None, (None if in_c else "implausible")
    if name == "nibp" and len(v) == 2:
        if drawn_unalike(num.box.text):
            return None, None, "implausible"
        if unit == "kPa" or (num.decimals and unit is None):
            if unit == "kPa" and all(KPA[0] <= x <= KPA[1] for x in v):
                mm = (float(round(v[0] * MMHG_PER_KPA)), float(round(v[1] * MMHG_PER_KPA)))
                return (
                    (mm if fits(name, mm) else None),
                    "kPa",
                    (None if fits(name, mm) else "implausible"),
                )
            return None, None, "unit-mismatch" if unit == "kPa" else "unit-unknown"
        if num.decimals:
            return None, None, "implausible"
    elif name != "temperature" and num.decimals:
        return None, None, "implausible"  # only temperature (and kPa) is shown with decimals
    if unit in ("°F", "°C", "kPa") and name != "temperature":
        return None, None, "unit-mismatch"
    return (v if fits(name, v) else None), None, (None if fits(name, v) else "implausible")


def alarm_limits(name: str, small: list[Number]) -> tuple[float, float] | None:
    """Two small single numbers of the parameter's scale: (low, high); a ``hi/lo`` pair too."""
    if len(small) == 1 and len(small[0].value) == 2 and name != "nibp":
        hi, lo = small[0].value
        return (lo, hi) if lo < hi else None
    singles = [n for n in small if len(n.value) == 1]
    if len(singles) != 2 or len(small) != 2:
        return None
    a, b = singles
    if not 0.75 <= a.box.height / b.box.height <= 1.33:
        return None  # the two limits are drawn alike
    lo, hi = sorted((a.value[0], b.value[0]))
    return (lo, hi) if lo < hi else None
