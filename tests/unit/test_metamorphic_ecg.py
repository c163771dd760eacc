"""Metamorphic tests of ECG sleep staging: the same recording at another sampling rate or in
another amplitude unit (declared) must give the same stages; a unit mix-up is flagged.

Measured when written (MIT-BIH 208, 5 min at 360 Hz, resampled by SciPy): stage agreement 1.0
at 256, 500 and 1000 Hz, max |probability difference| 0.016 / 0.0035 / 0.022 (R-peak times
move by up to half a sample period, which moves the HRV features). Tolerance: 0.05.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from scipy.signal import resample_poly

import edgemed
from edgemed.errors import InputError
from edgemed.tasks import task_spec


@pytest.fixture(scope="module")
def stager() -> Iterator[edgemed.Pipeline]:
    with edgemed.load("ecg-sleep-staging", threads=1) as pipeline:
        yield pipeline


@pytest.fixture(scope="module")
def recording(stager: edgemed.Pipeline) -> tuple[np.ndarray, float]:
    rec: Any = task_spec(stager.manifest).golden_inputs(stager.manifest)[0]
    return np.asarray(rec.ecg, dtype=np.float64), float(rec.fs)


@pytest.mark.parametrize("rate", [256, 500, 1000])
def test_same_recording_at_another_rate_gives_the_same_stages(
    stager: edgemed.Pipeline, recording: tuple[np.ndarray, float], rate: int
) -> None:
    ecg, fs = recording
    base: Any = stager({"ecg": ecg, "fs": fs})
    ratio = Fraction(rate, int(fs))
    other: Any = stager({"ecg": resample_poly(ecg, ratio.numerator, ratio.denominator),
                         "fs": float(rate)})  # fmt: skip
    assert other.stages == base.stages
    assert np.abs(other.probabilities - base.probabilities).max() <= 0.05


def test_units_declared_give_identical_results_and_a_mix_up_is_flagged(
    stager: edgemed.Pipeline, recording: tuple[np.ndarray, float]
) -> None:
    ecg, fs = recording
    in_mv: Any = stager({"ecg": ecg, "fs": fs, "units": "mV"})
    in_uv: Any = stager({"ecg": ecg * 1000.0, "fs": fs, "units": "uV"})
    assert in_uv.stages == in_mv.stages
    assert np.array_equal(in_uv.probabilities, in_mv.probabilities)
    assert in_uv.quality["amplitude"] == pytest.approx(in_mv.quality["amplitude"])
    assert in_mv.quality["units"] == "mV" and in_mv.quality["warnings"] == []
    # microvolts handed over without saying so: the stages do not depend on gain, but the
    # result says the amplitude is implausible for mV and what the samples look like
    unsaid: Any = stager({"ecg": ecg * 1000.0, "fs": fs})
    assert unsaid.quality["units"] == "mV (assumed)"
    (warning,) = unsaid.quality["warnings"]
    assert "implausible" in warning and "uV" in warning and "declare the units" in warning
    assert unsaid.body()["quality"]["warnings"] == [warning]  # synced with the result
    with pytest.raises(InputError, match="unit 'mmHg'"):
        stager({"ecg": ecg, "fs": fs, "units": "mmHg"})


def test_flat_and_clipped_stretches_are_reported(
    stager: edgemed.Pipeline, recording: tuple[np.ndarray, float]
) -> None:
    ecg, fs = recording
    damaged = ecg.copy()
    damaged[: int(60 * fs)] = 0.0  # a minute with the lead off
    top = np.percentile(ecg, 99.0)
    damaged = np.minimum(damaged, top)  # the amplifier clips the R waves
    result: Any = stager({"ecg": damaged, "fs": fs, "units": "mV"})
    quality = result.quality
    assert 0.15 <= quality["flat_fraction"] <= 0.25  # 1 of 5 minutes
    assert quality["clipped_fraction"] > 0.005
    assert any("flat" in w for w in quality["warnings"])
    assert any("clipping" in w for w in quality["warnings"])
