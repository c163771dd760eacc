"""What ``edgemed bundle build`` needs to build text encoders (``BuildSupport``).

Folders hold UTF-8 ``.txt`` files, one text per non-empty line (a text is one line: notes with
line breaks are joined by the caller's own rule before they reach the encoder). Calibration =
such files (subfolders allowed; static INT8 only). Evaluation = one ``.txt`` file per group of
texts that mean the same thing (``chest-pain.txt``, ``sepsis.txt``...), named as the group, at
the top of the folder: at least two groups, each with at least two texts.

Metric ``neighbour_accuracy``: the share of evaluation texts whose nearest other evaluation
text (cosine) is of its own group, i.e. what an encoder is for. Agreement: the share of texts
whose INT8 embedding has cosine >= ``AGREEMENT_COSINE`` with the FP32 one. Golden vectors: the
first evaluation texts, with the shipped model's embeddings; at load they must agree within
the manifest's cosine and max |diff| (INT8 kernels round differently per CPU family).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError, InputError
from ...manifest import Manifest
from ...results import EmbeddingResult, Result
from ..build_folders import files_below
from ..spec import BuildSupport
from .preprocess import coerce_text

__all__ = ["AGREEMENT_COSINE", "BUILD", "neighbour_accuracy"]

AGREEMENT_COSINE = 0.98  # MiniLM-L6, dynamic INT8 per channel: min 0.989 over 62 sentences
_TEXT = frozenset({".txt"})


def _texts(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"{path}: not a readable UTF-8 text file: {exc}") from exc
    texts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            texts.append(coerce_text(line))
        except InputError as exc:
            raise BuildError(f"{path}, line {number}: {exc}") from exc
    return texts


def read_calibration(folder: Path) -> list[object]:
    return [text for path in files_below(folder, _TEXT) for text in _texts(path)]


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, Any]]:
    """(text, group) pairs, groups in sorted name order, texts in file order."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    groups = {p.stem: _texts(p) for p in sorted(folder.glob("*.txt")) if p.is_file()}
    if len(groups) < 2:
        raise BuildError(
            f"{folder}: needs at least two .txt files, one per group of texts that mean the "
            f"same thing (found {len(groups)})"
        )
    if thin := sorted(name for name, texts in groups.items() if len(texts) < 2):
        raise BuildError(f"{folder}: group(s) {thin} hold fewer than two texts")
    return [(text, name) for name, texts in groups.items() for text in texts]


def _matrix(results: Sequence[Result]) -> npt.NDArray[np.float64]:
    rows = []
    for result in results:
        if not isinstance(result, EmbeddingResult):
            raise BuildError(f"expected text embeddings, got {type(result).__name__}")
        rows.append(result.embedding)
    return np.asarray(rows, dtype=np.float64)  # unit rows (the postprocessor normalises)


def _nearest_others(results: Sequence[Result]) -> npt.NDArray[np.intp]:
    """Each text's nearest other text (cosine; the first on a tie)."""
    unit = _matrix(results)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest: npt.NDArray[np.intp] = np.argmax(similarity, axis=1)
    return nearest


def neighbour_accuracy(results: Sequence[Result], truths: Sequence[Any]) -> float:
    """Share of texts whose nearest other text belongs to the same group."""
    nearest = _nearest_others(results)
    return float(np.mean([truths[j] == truths[i] for i, j in enumerate(nearest)]))


def _cosines(fp32: Sequence[Result], int8: Sequence[Result]) -> npt.NDArray[np.float64]:
    a, b = _matrix(fp32), _matrix(int8)
    cosine: npt.NDArray[np.float64] = np.sum(a * b, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )
    return cosine


def agreement(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
    return float(np.mean(_cosines(fp32, int8) >= AGREEMENT_COSINE))


def int8_figures(
    fp32: Sequence[Result], int8: Sequence[Result], truths: Sequence[Any]
) -> dict[str, float]:
    """For the report and card: how close INT8 stays, and whether it keeps the neighbours."""
    cosine = _cosines(fp32, int8)
    same = _nearest_others(fp32) == _nearest_others(int8)
    return {
        "int8_cosine_min": float(cosine.min()),
        "int8_cosine_mean": float(cosine.mean()),
        "int8_same_nearest_text": float(same.mean()),
    }


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    texts = np.array([str(t) for t in inputs], dtype=np.str_)
    return {"texts": texts}, {"embeddings": _matrix(results).astype(np.float32)}


def golden_tolerance(precision: str, results: Sequence[Result]) -> dict[str, float]:
    """FP32 agrees to rounding across CPUs; INT8 kernels differ per CPU family (MiniLM INT8:
    cosine 0.986 between AVX2 and AVX-512 VNNI machines)."""
    if precision == "fp32":
        return {"max_abs_diff": 1e-4, "min_cosine": 0.9999}
    return {"max_abs_diff": 0.05, "min_cosine": 0.98}


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=agreement,
    golden_order=lambda results: list(range(len(results))),
    metric_name="neighbour_accuracy",
    metric=neighbour_accuracy,
    golden_arrays=golden_arrays,
    golden_tolerance=golden_tolerance,
    per_class=int8_figures,
    golden_choice="the first of them in file order",
)
