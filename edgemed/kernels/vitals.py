"""NEWS2 early warning score (Royal College of Physicians, 2017) in ``csrc/src/vitals.cpp``.

Decision support only: edgemed is not a medical device. The score follows the published chart;
measurements are rounded to the chart's resolution (whole units, temperature to 0.1 °C, halves
up) before scoring. Implausible or missing values raise :class:`InputError`: a NEWS2 computed
from a missing parameter would understate risk, so there is no partial score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..wire import NEWS2_PARAMETERS
from ._checks import native
from ._native import _kernels

__all__ = ["NEWS2_BANDS", "News2", "VitalSigns", "news2", "news2_many", "news2_table"]

Consciousness = Literal["A", "C", "V", "P", "U"]
_ACVPU = {"A": 0, "C": 1, "V": 2, "P": 3, "U": 4}
# Band name -> the chart's clinical response (RCP 2017, chart 2).
NEWS2_BANDS = {
    "low": "ward-based response: assessment by a competent registered nurse",
    "low-medium": "urgent ward-based response: a single parameter scores 3",
    "medium": "key threshold for urgent response by a clinician with acute-illness competencies",
    "high": "urgent or emergency response by a critical-care team",
}
_BAND_NAMES = tuple(NEWS2_BANDS)


@dataclass(frozen=True, kw_only=True)
class VitalSigns:
    """One set of observations. ``spo2_scale=2`` only when a clinician prescribes it
    (hypercapnic respiratory failure, target 88-92 %)."""

    respiration_rate: float
    spo2: float
    on_oxygen: bool
    systolic_bp: float
    pulse: float
    consciousness: Consciousness
    temperature: float
    spo2_scale: Literal[1, 2] = 1

    def row(self) -> list[float]:
        if self.consciousness not in _ACVPU:
            raise InputError(
                f"consciousness must be one of A, C, V, P, U, got {self.consciousness!r}"
            )
        return [
            self.respiration_rate,
            self.spo2,
            float(self.on_oxygen),
            float(self.spo2_scale),
            self.systolic_bp,
            self.pulse,
            float(_ACVPU[self.consciousness]),
            self.temperature,
        ]


@dataclass(frozen=True)
class News2:
    """Per-parameter scores (wire names), the aggregate and the clinical risk band."""

    parameter_scores: dict[str, int]
    score: int
    band: str

    @property
    def response(self) -> str:
        return NEWS2_BANDS[self.band]

    def body(self) -> dict[str, object]:
        """The ``news2`` result body of the wire protocol (edgemed.wire)."""
        return {
            "kind": "news2",
            "score": self.score,
            "parameter_scores": dict(self.parameter_scores),
            "band": self.band,
        }


def news2_table(
    observations: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int32], npt.NDArray[np.int8]]:
    """Vectorised NEWS2 over a float64 (n, 8) table with columns ``respiration_rate, spo2,
    on_oxygen (0/1), spo2_scale (1/2), systolic_bp, pulse, consciousness (0-4 = A,C,V,P,U),
    temperature``. Returns per-parameter scores (n, 7), totals (n,) and band codes (n,)
    indexing :data:`NEWS2_BANDS`."""
    table = np.ascontiguousarray(observations, dtype=np.float64)
    return native(_kernels.news2, table)


def news2(vitals: VitalSigns) -> News2:
    """NEWS2 of one set of vital signs."""
    return news2_many([vitals])[0]


def news2_many(vitals: Sequence[VitalSigns]) -> list[News2]:
    """NEWS2 of each set of vital signs, in one native call."""
    rows = [v.row() for v in vitals]
    scores, totals, bands = news2_table(np.array(rows, dtype=np.float64).reshape(-1, 8))
    return [
        News2(
            dict(zip(NEWS2_PARAMETERS, (int(s) for s in scores[i]), strict=True)),
            int(totals[i]),
            _BAND_NAMES[int(bands[i])],
        )
        for i in range(len(rows))
    ]
