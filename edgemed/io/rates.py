"""A signal at its own sampling rate, brought to the rate its model was trained at.

A model sees seconds through samples: an EEG recorded at 256 Hz and handed over as if it were
500 Hz is a different signal (its spectrum is stretched by 1.95x), and the model answers without
a word. So every signal path carries its rate, and a window is cut at the **source** rate for
the model's duration (300 s of EEG is 76,800 samples at 256 Hz) and resampled to the model's
rate with the native polyphase kernel (``kernels.resample_poly``: SciPy's ``resample_poly``
Kaiser-windowed sinc, beta 5; docs/kernels.md gives its passband error). Rates outside the
manifest's supported range are refused with :class:`~edgemed.errors.InputError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import kernels
from ..errors import InputError

__all__ = ["RatePlan", "block_rate", "plan_rate"]

MAX_RATIO_TERM = 10_000  # up/down beyond this: filters of 200k taps; refuse instead


@dataclass(frozen=True, kw_only=True)
class RatePlan:
    """Windowing at ``source_hz`` for a model at ``model_hz``: ``samples``/``hop`` counted in
    source samples; ``apply`` turns one source window into exactly ``model_samples``."""

    source_hz: float
    model_hz: float
    samples: int
    hop: int
    model_samples: int
    up: int
    down: int

    @property
    def resamples(self) -> bool:
        return self.up != self.down

    def apply(self, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if not self.resamples:
            return window
        out = kernels.resample_poly(window.astype(np.float64), self.up, self.down)
        # ceil(samples * up / down) == model_samples by construction (plan_rate checks it)
        return np.ascontiguousarray(out[..., : self.model_samples], dtype=np.float32)


def plan_rate(
    source_hz: float,
    *,
    model_hz: float,
    model_samples: int,
    model_hop: int,
    min_hz: float,
    max_hz: float,
) -> RatePlan:
    """How to window a signal at ``source_hz`` for a model expecting ``model_samples`` at
    ``model_hz``; InputError if the rate is outside [min_hz, max_hz] or has no exact window."""
    if not (math.isfinite(source_hz) and source_hz > 0):
        raise InputError(f"sampling rate {source_hz!r} Hz: need a positive number")
    if not min_hz <= source_hz <= max_hz:
        raise InputError(
            f"signal at {source_hz:g} Hz: this model supports {min_hz:g}-{max_hz:g} Hz "
            f"(it runs at {model_hz:g} Hz); resample the recording or use another model"
        )
    ratio = Fraction(model_hz).limit_denominator(MAX_RATIO_TERM) / Fraction(
        source_hz
    ).limit_denominator(MAX_RATIO_TERM)
    up, down = ratio.numerator, ratio.denominator
    samples_exact = model_samples * source_hz / model_hz
    samples = round(samples_exact)
    if (
        max(up, down) > MAX_RATIO_TERM
        or abs(samples - samples_exact) > 1e-6 * samples_exact
        or -(-samples * up // down) != model_samples
    ):
        raise InputError(
            f"signal at {source_hz:g} Hz: no whole number of samples makes the model's "
            f"{model_samples / model_hz:g} s window (rate ratio {up}/{down}); resample it to "
            f"{model_hz:g} Hz first"
        )
    hop = max(1, round(model_hop * source_hz / model_hz))
    return RatePlan(
        source_hz=float(source_hz), model_hz=float(model_hz), samples=samples, hop=hop,
        model_samples=model_samples, up=up, down=down,
    )  # fmt: skip


def block_rate(block: Any, declared: float | None) -> float | None:
    """The rate a block carries (``fs`` of a bridge SampleBlock, ``sampling_rate_hz`` of a
    Signal chunk), checked against the caller's ``declared`` rate; None if neither says."""
    own = getattr(block, "sampling_rate_hz", None)
    if own is None:
        own = getattr(block, "fs", None)
    if own is None:
        return declared
    own = float(own)
    if declared is not None and abs(own - declared) > 1e-9 * declared:
        raise InputError(
            f"signal block at {own:g} Hz, but sampling_rate_hz={declared:g} was declared"
        )
    return own
