"""Signal units and quality: what a result must say about the signal it was computed from.

Amplitude units are part of a signal's contract. A declared unit is converted to the one the
model expects; an undeclared one is assumed, and an amplitude implausible for it (an ECG at
1000x the usual size: microvolts handed over as millivolts) is flagged, with what it looks
like. Flat stretches (a lead off) and samples pinned at the signal's extremes (clipping at an
amplifier's rails) are measured and reported, so that nobody reads a result computed from half
a recording as if it came from a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...errors import InputError

__all__ = ["SignalQuality", "assess", "to_unit"]

# Factors to volts. "u" stands for micro where a keyboard has no mu.
_VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6, "μV": 1e-6, "nV": 1e-9}


def to_unit(x: npt.NDArray[np.float64], declared: str, expected: str) -> npt.NDArray[np.float64]:
    """``x`` in ``declared`` units converted to ``expected`` (both volt multiples)."""
    for unit in (declared, expected):
        if unit not in _VOLTS:
            raise InputError(f"unit {unit!r}: expected one of {', '.join(_VOLTS)}")
    factor = _VOLTS[declared] / _VOLTS[expected]
    return x if factor == 1.0 else x * factor


@dataclass(frozen=True, kw_only=True)
class SignalQuality:
    """What the signal looked like; ``warnings`` say in words what a reader must know."""

    units: str  # the unit the samples were taken to be in (declared, or "mV (assumed)")
    amplitude: float  # robust peak-to-peak (99.5th - 0.5th percentile), in the model's unit
    flat_fraction: float  # share of 1 s segments with (almost) no signal
    clipped_fraction: float  # share of samples pinned at the recording's min or max
    warnings: tuple[str, ...]

    def body(self) -> dict[str, object]:
        return {
            "units": self.units,
            "amplitude": round(self.amplitude, 6),
            "flat_fraction": round(self.flat_fraction, 4),
            "clipped_fraction": round(self.clipped_fraction, 4),
            "warnings": list(self.warnings),
        }


def assess(
    x: npt.NDArray[np.float64],
    fs: float,
    *,
    unit: str,
    declared: bool,
    plausible: tuple[float, float],
) -> SignalQuality:
    """Quality of ``x`` (already in ``unit``); ``plausible`` bounds its robust peak-to-peak
    amplitude in that unit (e.g. 0.05-20 mV for a surface ECG)."""
    lo, hi = np.percentile(x, [0.5, 99.5])
    amplitude = float(hi - lo)
    warnings: list[str] = []
    low, high = plausible
    if amplitude > high or 0 < amplitude < low:
        guess = _likely_unit(amplitude, unit, plausible)
        warnings.append(
            f"amplitude {amplitude:.4g} {unit} is implausible for this signal in {unit} "
            f"(expected {low:g}-{high:g})" + (f": the samples look like {guess}" if guess else "")
            + ("" if declared else "; declare the units")
        )  # fmt: skip
    second = max(1, int(fs))
    n = x.size // second
    segments = x[: n * second].reshape(n, second) if n else x[None, :]
    ptp = np.ptp(segments, axis=1)
    flat = float(np.mean(ptp <= max(amplitude, 1e-12) * 1e-3))
    if flat > 0.05:
        warnings.append(f"{flat:.0%} of the recording is flat (a lead off?)")
    pinned = (x >= x.max()) | (x <= x.min())
    clipped = float(pinned.mean()) if pinned.mean() > 0.001 and amplitude > 0 else 0.0
    if clipped > 0.001:
        warnings.append(f"{clipped:.1%} of the samples sit at the signal's extremes (clipping?)")
    return SignalQuality(
        units=unit if declared else f"{unit} (assumed)",
        amplitude=amplitude,
        flat_fraction=flat,
        clipped_fraction=clipped,
        warnings=tuple(warnings),
    )


def _likely_unit(amplitude: float, unit: str, plausible: tuple[float, float]) -> str | None:
    """The volt multiple in which ``amplitude`` (read as ``unit``) would be plausible."""
    for other, volts in _VOLTS.items():
        if other in ("µV", "μV") or other == unit:
            continue
        converted = amplitude * volts / _VOLTS[unit]
        if plausible[0] <= converted <= plausible[1]:
            return other
    return None
