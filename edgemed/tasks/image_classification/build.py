"""What ``edgemed bundle build`` needs to build image classifiers (``BuildSupport``).

Folders: calibration = image files (subfolders allowed); evaluation = one subfolder per
label, named as the label, holding that label's images (multi-label: ``multi_build.py``). Files are read in sorted path order
(the same folders always give the same bundle); files of other suffixes are ignored, an image
file OpenCV cannot decode is an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import BuildError
from ...manifest import Manifest
from ...results import ImageClassification, Result
from ..build_folders import IMAGE_SUFFIXES, files_below, label_folders
from ..label_build import LabelResults
from ..spec import BuildSupport

__all__ = ["BUILD"]


def read_calibration(folder: Path) -> list[object]:
    from ..image_input import read_images  # OpenCV: loaded only when building

    return list(read_images(folder))


def read_evaluation(folder: Path, manifest: Manifest) -> list[tuple[object, str]]:
    """(image, label) for every image in ``folder/<label>/``, labels in sorted order."""
    from ..image_input import load_image  # OpenCV: loaded only when building

    return [
        (load_image(path), label.name)
        for label in label_folders(folder, manifest, IMAGE_SUFFIXES, "images")
        for path in files_below(label, IMAGE_SUFFIXES)
    ]


def _classification(result: Result) -> ImageClassification:
    if not isinstance(result, ImageClassification):
        raise BuildError(f"expected an image classification, got {type(result).__name__}")
    return result


LABELS = LabelResults.of_top_scores(_classification)


def golden_arrays(
    manifest: Manifest, inputs: Sequence[object], results: Sequence[Result]
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``image_<i>`` arrays, and ``scores`` (N, labels in the manifest's order): each result's
    top-k scores in their labels' columns (what the golden check compares); columns outside a
    result's top-k are not recorded (0), so its top-1 is still the row's largest."""
    rows = [_classification(r) for r in results]
    from ..class_scores import golden_scores

    scores = golden_scores(manifest, [r.top for r in rows])
    images = {f"image_{i}": np.asarray(x) for i, x in enumerate(inputs)}
    return images, {"scores": scores}


def _for_manifest(manifest: Manifest) -> BuildSupport:
    """Multi-label classifiers: their own evaluation format, metric and per-class figures."""
    if not manifest.postprocess.get("multi_label"):
        return BUILD
    from .multi_build import multi_label_build

    return multi_label_build(manifest, BUILD)


BUILD = BuildSupport(
    read_calibration=read_calibration,
    read_evaluation=read_evaluation,
    agreement=LABELS.agreement,
    golden_order=LABELS.golden_order,
    metric_name="accuracy",
    metric=LABELS.accuracy,
    golden_arrays=golden_arrays,
    for_manifest=_for_manifest,
)
