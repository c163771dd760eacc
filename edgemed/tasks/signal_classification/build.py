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
from ..spec import BuildSupport

__all__ = ["BUILD", "WINDOW_SUFFIXES"]

WINDOW_SUFFIXES = frozenset({".npy", ".npz"})


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in WINDOW_SUFFIXES
    )


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
    return [_read(p) for p in _files(folder)]


def _checker(manifest: Manifest) -> Any:
    from .preprocess import SignalPreprocessor

    try:
        return SignalPreprocessor(manifest)
    except ManifestError as exc:
        raise BuildError(f"the build spec does not fit task or model: {exc}") from exc


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, str]]:
    """(window, label) for every file in ``folder/<label>/``, labels in sorted order; each
    window checked against the model's (BuildError naming the file)."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    known = set(manifest.postprocess.get("labels", ()))
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in known)
    if unknown:
        raise BuildError(
            f"{folder}: subfolder(s) {unknown} are not labels of the model {sorted(known)}"
        )
    stray = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WINDOW_SUFFIXES
    )
    if stray:
        raise BuildError(
            f"{folder}: windows must sit in one subfolder per label (found {stray[:3]} at the top)"
        )
    checker = _checker(manifest)
    labelled: list[tuple[object, str]] = []
    for label in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in _files(label):
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


def decision(result: Result) -> str | None:
    return _classification(result).label


def margin(result: Result) -> float:
    top = _classification(result).top
    return top[0][1] - (top[1][1] if len(top) > 1 else 0.0)


def agreement(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
    """Share of windows where INT8 gives FP32's label (an abstention is a label too)."""
    return sum(decision(a) == decision(b) for a, b in zip(fp32, int8, strict=True)) / len(fp32)


def golden_order(results: Sequence[Result]) -> list[int]:
    """The clearest window of each label in turn, then the next clearest...: golden windows
    cover every label and sit far from a decision boundary (an abstention never serves)."""
    groups: dict[str, list[int]] = {}
    for i, result in enumerate(results):
        label = decision(result)
        if label is not None:
            groups.setdefault(label, []).append(i)
    ranked = [
        sorted(idx, key=lambda i: (-margin(results[i]), i)) for _, idx in sorted(groups.items())
    ]
    order: list[int] = []
    for depth in range(max((len(g) for g in ranked), default=0)):
        order += [g[depth] for g in ranked if depth < len(g)]
    return order


def accuracy(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Share of windows whose label is the true one (an abstention counts as wrong)."""
    hits = sum(bool(decision(r) == t) for r, t in zip(results, truths, strict=True))
    return hits / len(truths)


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``signal_<i>``: each window as the model reads it (its rate, its units), float32, and
    ``fs``; ``scores`` (N, labels in the manifest's order): each result's top-k scores in their
    labels' columns (0 outside its top-k, so its top-1 is still the row's largest)."""
    checker = _checker(manifest)
    rows = [_classification(r) for r in results]
    column = {label: i for i, label in enumerate(manifest.postprocess["labels"])}
    scores = np.zeros((len(rows), len(column)), np.float32)
    for row, r in enumerate(rows):
        for label, score in r.top:
            scores[row, column[label]] = score
    windows = {f"signal_{i}": checker.window(x)[0] for i, x in enumerate(inputs)}
    rate = float(checker.stream.sampling_rate_hz)
    return {**windows, "fs": np.full(len(inputs), rate)}, {"scores": scores}


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=agreement,
    golden_order=golden_order,
    metric_name="accuracy",
    metric=accuracy,
    golden_arrays=golden_arrays,
)
