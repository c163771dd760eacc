"""The compiled module ``edgemed._kernels``, imported in one place with an error that says what
to do: a source tree that was never built would otherwise fail with Python's misleading
"partially initialized module ... (most likely due to a circular import)"."""

from __future__ import annotations

import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

__all__ = ["_kernels"]


def _advice(exc: ImportError) -> str:
    package = Path(__file__).resolve().parents[1]
    built = [p for s in EXTENSION_SUFFIXES for p in package.glob(f"_kernels{s}")]
    if not built:
        return (
            f"edgemed's compiled kernels (edgemed._kernels) are not built in {package}: you "
            f"are importing the source tree. Run `pip install -e .` in {package.parent}, or "
            "install edgemed (the wheel, or `pip install .`) and run from another folder"
        )
    return (
        f"edgemed's compiled kernels {built[0]} do not load on Python "
        f"{sys.version.split()[0]} ({exc}): reinstall edgemed for this interpreter "
        "(`pip install --force-reinstall edgemed`, or `pip install -e .` in a source tree)"
    )


try:
    from .. import _kernels
except ImportError as exc:
    raise ImportError(_advice(exc), name="edgemed._kernels") from exc
