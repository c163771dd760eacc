"""The build spec: what a device maker writes to describe their model (a JSON file).

::

    {
      "id": "wound-stage", "version": "1.0.0", "task": "image-classification",
      "summary": "...", "license": "...",
      "source": {"upstream": "who trained it, on what"},
      "preprocess": {...}, "postprocess": {...},          (the task's manifest sections)
      "stream": {...},                                   (streaming tasks: manifest.stream)
      "quantization": "static" | "dynamic" | "none",     (default "static")
      "openvino": true,                                  (an OpenVINO IR beside the ONNX)
      "gate": {"min_agreement": 0.98, "max_metric_drop": 0.01},
      "golden_count": 6,
      "files": {"tokenizer": "tokenizer.json"},          (files the task needs, by role)
      "card": {"intended_use": "...", "data_provenance": "...", "not_measured": "..."}
    }

``files`` (paths relative to the spec file) are copied into the bundle under their own names
and listed in the manifest by role, e.g. a text encoder's ``tokenizer``. ``postprocess.labels_file`` (one label per line, relative to the spec file) may stand for
``postprocess.labels``. docs/bring-your-own-model.md explains every key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import BuildError

__all__ = ["RESERVED_ROLES", "BuildSpec", "Gate", "load_spec"]

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_KEYS = {
    "id", "version", "task", "summary", "license", "source", "preprocess", "postprocess",
    "quantization", "openvino", "gate", "golden_count", "card", "stream", "files",
}  # fmt: skip
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Roles and names the builder writes itself: a caller's file never stands in for them.
RESERVED_ROLES = frozenset({
    "model", "golden_inputs", "golden_outputs", "model_card", "openvino_model", "openvino_weights",
})  # fmt: skip
RESERVED_NAMES = frozenset({
    "manifest.json", "signature.json", "MODEL_CARD.md", "model.fp32.onnx", "model.int8.onnx",
    "golden", "openvino",
})  # fmt: skip
_CARD_KEYS = ("intended_use", "data_provenance", "not_measured", "limitations")


@dataclass(frozen=True, kw_only=True)
class Gate:
    """INT8 ships only if it agrees with FP32 on at least ``min_agreement`` of the evaluation
    inputs and loses at most ``max_metric_drop`` of the metric (absolute)."""

    min_agreement: float = 0.98
    max_metric_drop: float = 0.01


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    id: str
    version: str
    task: str
    summary: str
    license: str
    source: dict[str, str]
    preprocess: dict[str, Any]
    postprocess: dict[str, Any]
    quantization: Literal["static", "dynamic", "none"] = "static"
    openvino: bool = True
    gate: Gate = field(default_factory=Gate)
    golden_count: int = 6
    card: dict[str, str] = field(default_factory=dict)
    stream: dict[str, Any] | None = None  # the manifest's stream window, checked by its parser
    files: dict[str, Path] = field(default_factory=dict)  # role -> a file to ship as it is


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BuildError(f"{where}: {key!r} must be a non-empty string")
    return value


def _labels(post: dict[str, Any], base: Path) -> dict[str, Any]:
    if "labels_file" not in post:
        return post
    path = base / str(post["labels_file"])
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"postprocess.labels_file: cannot read {path}: {exc}") from exc
    labels = [label for label in labels if label]
    if not labels:
        raise BuildError(f"postprocess.labels_file: {path} holds no labels")
    rest = {k: v for k, v in post.items() if k != "labels_file"}
    return {**rest, "labels": labels}


def _files(data: Any, base: Path, where: str) -> dict[str, Path]:
    """``files``: role -> an existing file, its name free in the bundle (BuildError otherwise)."""
    if not isinstance(data, dict):
        raise BuildError(f"{where}: 'files' must be an object of role -> path")
    files: dict[str, Path] = {}
    for role, rel in sorted(data.items()):
        if not _ROLE.match(str(role)) or role in RESERVED_ROLES:
            raise BuildError(
                f"{where}: files: role {role!r} must be lowercase letters, digits and '_' "
                f"and not one the builder writes ({sorted(RESERVED_ROLES)})"
            )
        path = base / str(rel)
        if not isinstance(rel, str) or not path.is_file():
            raise BuildError(f"{where}: files.{role}: {path} is not a file")
        if path.name in RESERVED_NAMES or path.name in {p.name for p in files.values()}:
            raise BuildError(f"{where}: files.{role}: the name {path.name!r} is taken in a bundle")
        files[str(role)] = path
    return files


def _gate(data: Any) -> Gate:
    if not isinstance(data, dict) or set(data) - {"min_agreement", "max_metric_drop"}:
        raise BuildError("gate: expected {'min_agreement': 0..1, 'max_metric_drop': 0..1}")
    gate = Gate(**data)
    if not (0 <= gate.min_agreement <= 1 and 0 <= gate.max_metric_drop <= 1):
        raise BuildError(f"gate: values must be in [0, 1], got {data}")
    return gate


def load_spec(path: Path) -> BuildSpec:
    """Read and check a build spec file (BuildError naming the key on anything wrong)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BuildError(f"{path}: not a readable JSON build spec: {exc}") from exc
    if not isinstance(data, dict):
        raise BuildError(f"{path}: expected a JSON object")
    if unknown := sorted(set(data) - _KEYS):
        raise BuildError(f"{path}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    where = str(path)
    model_id = _text(data, "id", where)
    if not _ID.match(model_id):
        raise BuildError(f"{where}: id {model_id!r}: lowercase letters, digits and '-' only")
    for key in ("source", "preprocess", "postprocess", "card", "stream"):
        if not isinstance(data.get(key, {}), dict):
            raise BuildError(f"{where}: {key!r} must be an object")
    if bad := sorted(set(data.get("card", {})) - set(_CARD_KEYS)):
        raise BuildError(f"{where}: card key(s) {bad}; known: {list(_CARD_KEYS)}")
    quantization = data.get("quantization", "static")
    if quantization not in ("static", "dynamic", "none"):
        raise BuildError(f"{where}: quantization must be static, dynamic or none")
    openvino = data.get("openvino", True)
    if not isinstance(openvino, bool):
        raise BuildError(f"{where}: openvino must be true or false")
    golden = data.get("golden_count", 6)
    if isinstance(golden, bool) or not isinstance(golden, int) or not 1 <= golden <= 64:
        raise BuildError(f"{where}: golden_count must be an integer in 1..64")
    return BuildSpec(
        id=model_id,
        version=_text(data, "version", where),
        task=_text(data, "task", where),
        summary=_text(data, "summary", where),
        license=_text(data, "license", where),
        source={str(k): str(v) for k, v in data.get("source", {}).items()},
        preprocess=dict(data.get("preprocess", {})),
        postprocess=_labels(dict(data.get("postprocess", {})), path.parent),
        quantization=quantization,
        openvino=openvino,
        gate=_gate(data.get("gate", {})),
        golden_count=golden,
        card={str(k): str(v) for k, v in data.get("card", {}).items()},
        stream=dict(data["stream"]) if "stream" in data else None,
        files=_files(data.get("files", {}), path.parent, where),
    )
