"""The folders ``edgemed bundle build`` reads, as the tasks' build support shares them: files
of the task's suffixes below a folder, in sorted path order (the same folders always give the
same bundle; other suffixes are ignored), and evaluation folders of one subfolder per label.
"""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path

from ..errors import BuildError
from ..manifest import Manifest

__all__ = ["IMAGE_SUFFIXES", "files_below", "label_folders"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def files_below(folder: Path, suffixes: Set[str]) -> list[Path]:
    """Every file below ``folder`` (subfolders included) whose suffix is one of ``suffixes``
    (any case), in sorted path order."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def label_folders(folder: Path, manifest: Manifest, suffixes: Set[str], noun: str) -> list[Path]:
    """The subfolders of an evaluation ``folder``, one per label and named as it, in sorted
    order. BuildError on a subfolder that is no label of the model, or on ``noun`` ("images")
    (files of ``suffixes``) lying at the top instead of in their label's subfolder."""
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder")
    known = set(manifest.postprocess.get("labels", ()))
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in known)
    if unknown:
        raise BuildError(
            f"{folder}: subfolder(s) {unknown} are not labels of the model {sorted(known)}"
        )
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if stray:
        raise BuildError(
            f"{folder}: {noun} must sit in one subfolder per label (found {stray[:3]} at the top)"
        )
    return sorted(p for p in folder.iterdir() if p.is_dir())
