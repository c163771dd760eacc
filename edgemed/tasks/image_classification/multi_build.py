"""What ``edgemed bundle build`` needs to build multi-label image classifiers
(``postprocess.multi_label: true``): the evaluation format, per-class FP32-vs-INT8 agreement
and F1, and golden images far from every threshold.

Evaluation folder: the images (subfolders allowed) and ``labels.csv``: a header ``image``
then every label of the model once (any order), one row per image: its path relative to the
folder, then 1 (present) or 0 (absent) per label. Every image has its row and every row its
image. A class is decided present when the result's ``positive`` holds it (its score at or
above its threshold; an abstention decides none).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from ...errors import BuildError
from ...manifest import Manifest
from ...results import ImageClassification, Result
from ..build_folders import IMAGE_SUFFIXES, files_below
from ..spec import BuildSupport

__all__ = ["multi_label_build"]

LABELS_CSV = "labels.csv"
Truth = frozenset[str]


def _read_rows(folder: Path, labels: Sequence[str]) -> dict[str, Truth]:
    path = folder / LABELS_CSV
    if not path.is_file():
        raise BuildError(f"{path}: no such file (multi-label evaluation: image, then 0/1 a label)")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header = [c.strip() for c in rows[0]] if rows else []
    if not header or header[0] != "image" or sorted(header[1:]) != sorted(labels):
        raise BuildError(
            f"{path}: header must be 'image' then every label once {sorted(labels)}, got {header}"
        )
    truths: dict[str, Truth] = {}
    for n, row in enumerate(rows[1:], start=2):
        values = [v.strip() for v in row]
        if len(values) != len(header) or any(v not in ("0", "1") for v in values[1:]):
            raise BuildError(f"{path}:{n}: expected an image path then 0 or 1 per label")
        if values[0] in truths:
            raise BuildError(f"{path}:{n}: {values[0]} has two rows")
        truths[values[0]] = frozenset(
            h for h, v in zip(header[1:], values[1:], strict=True) if v == "1"
        )
    return truths


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, Truth]]:
    """(image, its labels) for every image below ``folder``, in sorted path order."""
    from ..image_input import load_image  # OpenCV: loaded only when building

    truths = _read_rows(folder, list(manifest.postprocess["labels"]))
    images = {p.relative_to(folder).as_posix(): p for p in files_below(folder, IMAGE_SUFFIXES)}
    unlisted, missing = sorted(set(images) - set(truths)), sorted(set(truths) - set(images))
    if unlisted or missing:
        raise BuildError(
            f"{folder}: images without a row in {LABELS_CSV} {unlisted[:3]}, rows without "
            f"an image {missing[:3]}"
        )
    return [(load_image(images[name]), truths[name]) for name in sorted(images)]


def _positive(result: Result) -> frozenset[str]:
    if not isinstance(result, ImageClassification):
        raise BuildError(f"expected an image classification, got {type(result).__name__}")
    return frozenset(result.positive)


def _f1(said: Sequence[frozenset[str]], truths: Sequence[Truth], label: str) -> float:
    tp = sum(label in s and label in t for s, t in zip(said, truths, strict=True))
    fp = sum(label in s and label not in t for s, t in zip(said, truths, strict=True))
    fn = sum(label not in s and label in t for s, t in zip(said, truths, strict=True))
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _agreement(fp32: Sequence[Result], int8: Sequence[Result], label: str) -> float:
    pairs = [
        (label in _positive(a), label in _positive(b)) for a, b in zip(fp32, int8, strict=True)
    ]
    return sum(x == y for x, y in pairs) / len(pairs)


def multi_label_build(manifest: Manifest, single: BuildSupport) -> BuildSupport:
    """The build support of a multi-label classifier ``manifest`` (``single``: the
    single-label one, whose golden arrays it shares)."""
    labels = list(manifest.postprocess["labels"])
    given = manifest.postprocess.get("thresholds") or {}
    thresholds = {label: float(given.get(label, 0.5)) for label in labels}

    def agreement(fp32: Sequence[Result], int8: Sequence[Result]) -> float:
        """Mean over the classes of the share of inputs where INT8 decides as FP32."""
        return sum(_agreement(fp32, int8, label) for label in labels) / len(labels)

    def macro_f1(results: Sequence[Result], truths: Sequence[Truth]) -> float:
        said = [_positive(r) for r in results]
        return sum(_f1(said, truths, label) for label in labels) / len(labels)

    def per_class(
        fp32: Sequence[Result], int8: Sequence[Result], truths: Sequence[Truth]
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        said32, said8 = [_positive(r) for r in fp32], [_positive(r) for r in int8]
        for label in labels:
            out[f"agreement[{label}]"] = _agreement(fp32, int8, label)
            out[f"fp32_f1[{label}]"] = _f1(said32, truths, label)
            out[f"int8_f1[{label}]"] = _f1(said8, truths, label)
        return out

    def golden_order(results: Sequence[Result]) -> list[int]:
        """Results far from every threshold first (no class near flipping), no abstention."""

        def distance(result: Result) -> float:
            assert isinstance(result, ImageClassification)
            scores = dict(result.top)
            return min((abs(s - thresholds[k]) for k, s in scores.items()), default=0.0)

        usable = [
            i for i, r in enumerate(results)
            if isinstance(r, ImageClassification) and r.abstained is None
        ]  # fmt: skip
        return sorted(usable, key=lambda i: (-distance(results[i]), i))

    return BuildSupport(
        read_calibration=single.read_calibration,
        read_evaluation=read_evaluation,
        agreement=agreement,
        golden_order=golden_order,
        golden_choice="those farthest from every label's threshold (no label near flipping)",
        metric_name="macro_f1",
        metric=macro_f1,
        golden_arrays=single.golden_arrays,
        per_class=per_class,
    )
