"""Where bundled models live and how to find one by id.

Search order: ``$EDGEMED_MODELS_PATH`` (os.pathsep-separated folders), the ``models/`` folder
installed inside the package, then the source checkout's ``models/`` (editable installs).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelError
from .manifest import Manifest, load_manifest

__all__ = ["find_model_dir", "list_models", "model_dirs", "search_paths"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def search_paths() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("EDGEMED_MODELS_PATH", "").split(os.pathsep) if p]
    return [*extra, _PACKAGE_DIR / "models", _PACKAGE_DIR.parent / "models"]


def model_dirs() -> dict[str, Path]:
    """Model id -> folder, first match in search order wins."""
    found: dict[str, Path] = {}
    for base in search_paths():
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            if (child / "manifest.json").is_file():
                found.setdefault(child.name, child)
    return found


def find_model_dir(model_id: str) -> Path:
    dirs = model_dirs()
    if model_id not in dirs:
        known = ", ".join(sorted(dirs)) or "none"
        raise ModelError(f"unknown model {model_id!r}; bundled models: {known}")
    return dirs[model_id]


def list_models(*, verify: bool = False) -> list[Manifest]:
    """Manifests of every installed model (sha256 checks only with ``verify=True``: slow)."""
    return [load_manifest(path, verify=verify) for path in model_dirs().values()]
