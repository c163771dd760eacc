"""What ``edgemed bundle build`` needs to build signal classifiers (``BuildSupport``).

Folders hold one window per file: ``.npy``, a float array (channels, samples) at the model's
rate (``stream.sampling_rate_hz``) in its units (``preprocess.units``), or ``.npz`` with
``signal`` (channels, samples), ``fs`` (its rate, Hz; resampled as a caller's window is) and
optionally ``units`` (one per lead, or one for all). Calibration = such files (subfolders
allowed); evaluation = one subfolder per label, named as the label. Files are read in sorted
path order (the same folders always give the same bundle); other suffixes are ignored. A file
that cannot be read, is not floating point, or holds NaN or infinity is a BuildError naming it;
an evaluation window the model cannot take (channels, duration, rate) too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError, InputError, ManifestError
from ...manifest import Manifest
from ...results import Result, SignalClassification
from ..build_folders import files_below, label_folders
from ..label_build import LabelResults
from ..spec import BuildSupport

__all__ = ["BUILD", "WINDOW_SUFFIXES"]

WINDOW_SUFFIXES = frozenset({".npy", ".npz"})


def _read(path: Path) -> object:
    """One window file as a caller input, checked on its own (not yet against the model)."""
    from .preprocess import read_window_file

    try:
        item = read_window_file(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"{path}: not a signal window (.npy array, or .npz with 'signal' and 'fs'): {exc}"
        ) from exc
    values = item["signal"] if isinstance(item, dict) else item
    if not isinstance(values, np.ndarray) or values.dtype.kind != "f" or values.ndim not in (1, 2):
        what = f"{values.dtype} {values.shape}" if isinstance(values, np.ndarray) else "no array"
        raise BuildError(f"{path}: expected float samples (channels, samples), got {what}")
    if not np.isfinite(values).all():
        raise BuildError(f"{path}: contains NaN or infinity; a window must be real signal")
    return item


def read_calibration(folder: Path) -> list[object]:
    return [_read(p) for p in files_below(folder, WINDOW_SUFFIXES)]


def _checker(manifest: Manifest) -> Any:
    from .preprocess import SignalPreprocessor

    try:
        return SignalPreprocessor(manifest)
    except ManifestError as exc:
        raise BuildError(f"the build spec does not fit task or model: {exc}") from exc


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, str]]:
    """(window, label) for every file in ``folder/<label>/``, labels in sorted order; each
    window checked against the model's (BuildError naming the file)."""
    labels = label_folders(folder, manifest, WINDOW_SUFFIXES, "windows")
    checker = _checker(manifest)
    labelled: list[tuple[object, str]] = []
    for label in labels:
        for path in files_below(label, WINDOW_SUFFIXES):
            item = _read(path)
            try:
                checker.window(item)
            except InputError as exc:
                raise BuildError(f"{path}: {exc}") from exc
            labelled.append((item, label.name))
    return labelled


def _classification(result: Result) -> SignalClassification:
    if not isinstance(result, SignalClassification):
        raise BuildError(f"expected a signal classification, got {type(result).__name__}")
    return result


LABELS = LabelResults.of_top_scores(_classification)


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``signal_<i>``: each window as the model reads it (its rate, its units), float32, and
    ``fs``; ``scores`` (N, labels in the manifest's order): each result's top-k scores in their
    labels' columns (0 outside its top-k, so its top-1 is still the row's largest)."""
    from ..class_scores import golden_scores

    checker = _checker(manifest)
    scores = golden_scores(manifest, [_classification(r).top for r in results])
    windows = {f"signal_{i}": checker.window(x)[0] for i, x in enumerate(inputs)}
    rate = float(checker.stream.sampling_rate_hz)
    return {**windows, "fs": np.full(len(inputs), rate)}, {"scores": scores}


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=LABELS.agreement,
    golden_order=LABELS.golden_order,
    metric_name="accuracy",
    metric=LABELS.accuracy,
    golden_arrays=golden_arrays,
)
