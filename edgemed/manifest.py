"""Model manifests (schema ``edgemed.manifest/1``) parsed into frozen dataclasses.

Parsing is strict: unknown keys, wrong types and missing fields raise :class:`ManifestError`
naming the offending path (``artifacts.model.sha256``); so do a manifest.json over 1 MiB
(refused before it is parsed), duplicate keys and NaN/Infinity anywhere in it.
:func:`verify_artifacts` checks that every artifact is a plain file inside the bundle folder
(no symlink on the way, nothing resolving outside it) with the recorded sha256 and raises
:class:`IntegrityError`; :func:`load_manifest` does both. Signatures and trust policies are
``edgemed.trust``'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from .errors import IntegrityError, ManifestError

__all__ = [
    "MANIFEST_FILE",
    "MAX_MANIFEST_BYTES",
    "SCHEMA",
    "Artifact",
    "GoldenTolerance",
    "Manifest",
    "Source",
    "StreamWindow",
    "TensorSpec",
    "file_sha256",
    "load_manifest",
    "manifest_bytes",
    "parse_manifest",
    "parse_section",
    "read_bundle_file",
    "strict_json",
    "verify_artifacts",
]

SCHEMA = "edgemed.manifest/1"
MANIFEST_FILE = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20  # the largest bundled manifest is under 10 kB
BackendName = Literal["onnxruntime", "openvino"]
# Literal values, kept as tuples too because annotations are strings at run time.
BACKENDS: tuple[str, ...] = get_args(BackendName)
DTYPES = ("float32", "float16", "int64", "int32", "uint8", "int8")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Artifacts each backend runs (OpenVINO IR is an .xml graph beside a .bin of weights).
BACKEND_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("model",),
    "openvino": ("openvino_model", "openvino_weights"),
}


@dataclass(frozen=True, kw_only=True)
class Artifact:
    path: str
    sha256: str
    format: str | None = None
    precision: Literal["fp32", "fp16", "int8"] | None = None


@dataclass(frozen=True, kw_only=True)
class Source:
    package: str
    upstream: str
    recipe: str


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One model input/output; ``shape`` names dynamic axes (``"batch"``), fixes the rest."""

    name: str
    dtype: Literal["float32", "float16", "int64", "int32", "uint8", "int8"]
    shape: tuple[int | str, ...]
    layout: str | None = None  # e.g. "NCHW", "NCT" (channels x time)
    units: str | None = None  # physical unit of the values, e.g. "mV"

    def static_shape(self, batch: int = 1) -> tuple[int, ...] | None:
        """The shape with ``batch`` for a leading named axis, or None if another axis is named."""
        dims: list[int] = []
        for i, d in enumerate(self.shape):
            if isinstance(d, str) and i > 0:
                return None
            dims.append(batch if isinstance(d, str) else d)
        return tuple(dims)


@dataclass(frozen=True, kw_only=True)
class StreamWindow:
    """How ``Pipeline.stream`` cuts a continuous signal into model inputs."""

    sampling_rate_hz: float
    channels: int
    samples: int  # window length
    hop: int  # samples between window starts (samples - hop = overlap)
    # Source rates Pipeline.stream accepts and resamples to sampling_rate_hz (io/rates.py);
    # absent: only sampling_rate_hz itself.
    min_sampling_rate_hz: float | None = None
    max_sampling_rate_hz: float | None = None


@dataclass(frozen=True, kw_only=True)
class GoldenTolerance:
    """How far outputs on the golden inputs may drift on this machine and backend.

    The top-level limits are the conservative default for platforms nobody has measured.
    ``platforms`` maps ``"<backend>/<cpu family>"`` (hardware.cpu_family) to limits set from
    the drift measured there, with a margin (models/recipes/golden_drift.py): a model that
    drifted to the edge of a loose gate is then refused where its numerics are known. The
    release gate (INT8 against FP32, when the bundle is built) is a separate figure in
    ``metrics``, never a load-time tolerance."""

    max_abs_diff: float
    min_cosine: float | None = None
    min_label_agreement: float | None = None
    platforms: dict[str, GoldenTolerance] = field(default_factory=dict)

    def for_platform(self, backend: str, family: str) -> tuple[GoldenTolerance, str | None]:
        """The limits for ``backend`` on a CPU ``family``, and the platform key they were
        measured for (None: the default)."""
        key = f"{backend}/{family}"
        return (self.platforms[key], key) if key in self.platforms else (self, None)


def _golden(data: Any) -> GoldenTolerance:
    where = "manifest.golden"
    platforms = data.get("platforms", {}) if isinstance(data, dict) else {}
    if not isinstance(platforms, dict):
        raise ManifestError(f"{where}.platforms: expected an object")
    parsed = {}
    for key, limits in platforms.items():
        if not isinstance(limits, dict) or "platforms" in limits or key.count("/") != 1:
            raise ManifestError(f"{where}.platforms.{key}: need '<backend>/<cpu family>': limits")
        parsed[key] = _strict(GoldenTolerance, limits, f"{where}.platforms.{key}")
    return _strict(GoldenTolerance, data, where, platforms=parsed)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    schema: str
    id: str
    version: str
    task: str  # served by the edgemed.tasks spec of that name (checked when loaded)
    summary: str
    license: str
    medical_device: bool
    source: Source
    artifacts: Mapping[str, Artifact]
    backends: tuple[BackendName, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Task-specific sections, validated by the task's pre/postprocessor (``parse_section``).
    preprocess: Mapping[str, Any]
    postprocess: Mapping[str, Any]
    golden: GoldenTolerance
    metrics: Mapping[str, float | int | str]
    root: Path  # folder the artifact paths are relative to (not part of the JSON)
    stream: StreamWindow | None = None
    # True when a row's outputs never depend on other rows of a batch (FP32, static INT8):
    # Pipeline.batch may then stack inputs into one backend call.
    rows_independent: bool = False
    tensorrt_precision: Literal["fp32", "fp16", "int8"] = "fp16"

    def path(self, role: str) -> Path:
        """Absolute path of the artifact with this role (``model``, ``tokenizer``, ...)."""
        try:
            return self.root / self.artifacts[role].path
        except KeyError:
            raise ManifestError(f"{self.id}: manifest has no artifact {role!r}") from None

    def has(self, role: str) -> bool:
        return role in self.artifacts

    @property
    def model_sha256(self) -> str:
        return self.artifacts["model"].sha256

    @property
    def precision(self) -> str:
        return self.artifacts["model"].precision or "fp32"


T = TypeVar("T")


def _check_literal(value: Any, allowed: tuple[Any, ...], where: str) -> None:
    if value not in allowed:
        raise ManifestError(f"{where}: {value!r} is not one of {list(allowed)}")


def _strict(cls: type[T], data: Any, where: str, **converted: Any) -> T:
    """Build dataclass ``cls`` from a JSON object, rejecting unknown and missing keys."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)} - {"root"}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {unknown}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in converted:
            continue
        if f.name not in data:
            if f.default is not MISSING or f.default_factory is not MISSING:  # optional key
                continue
            raise ManifestError(f"{where}: missing key {f.name!r}")
        kwargs[f.name] = _check_type(data[f.name], f.type, f"{where}.{f.name}")
    return cls(**kwargs, **converted)


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "str | None": (str, type(None)),
    "float | None": (float, int, type(None)),
    "int | None": (int, type(None)),
}


def parse_section(cls: type[T], data: Any, where: str) -> T:
    """Strictly parse a task-specific manifest section (``preprocess``...) into ``cls``."""
    return _strict(cls, data, where)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    expected = _SIMPLE_TYPES.get(text)
    if expected is None:  # Literal[...] fields: checked by the caller where they matter
        return value
    is_bool = isinstance(value, bool)
    if not isinstance(value, expected) or (is_bool and text in ("int", "float")):
        raise ManifestError(f"{where}: expected {text}, got {type(value).__name__}")
    return value


def _tensor(data: Any, where: str) -> TensorSpec:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object")
    shape = data.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int | str) for d in shape):
        raise ManifestError(f"{where}.shape: expected a list of ints and names")
    spec = _strict(TensorSpec, data, where, shape=tuple(shape))
    _check_literal(spec.dtype, DTYPES, f"{where}.dtype")
    return spec


def _artifacts(data: Any, where: str) -> dict[str, Artifact]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object")
    arts: dict[str, Artifact] = {}
    for role, raw in data.items():
        art = _strict(Artifact, raw, f"{where}.{role}")
        if not _SHA_RE.match(art.sha256):
            raise ManifestError(f"{where}.{role}.sha256: expected 64 lowercase hex digits")
        parts = Path(art.path).parts
        if not parts or "\x00" in art.path or Path(art.path).is_absolute() or ".." in parts:
            raise ManifestError(f"{where}.{role}.path: must be relative, inside the model folder")
        if art.precision is not None:
            _check_literal(art.precision, ("fp32", "fp16", "int8"), f"{where}.{role}.precision")
        arts[role] = art
    return arts


def _section(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object")
    return data


def _stream(data: Any) -> StreamWindow | None:
    if data is None:
        return None
    window = _strict(StreamWindow, data, "manifest.stream")
    if not (window.sampling_rate_hz > 0 and window.channels >= 1 and window.hop >= 1):
        raise ManifestError("manifest.stream: need sampling_rate_hz > 0, channels >= 1, hop >= 1")
    if window.samples < 2:
        raise ManifestError("manifest.stream.samples: must be >= 2")
    low = window.min_sampling_rate_hz or window.sampling_rate_hz
    high = window.max_sampling_rate_hz or window.sampling_rate_hz
    if not 0 < low <= window.sampling_rate_hz <= high:
        raise ManifestError(
            "manifest.stream: need 0 < min_sampling_rate_hz <= sampling_rate_hz <= "
            "max_sampling_rate_hz"
        )
    return window


def parse_manifest(data: Any, root: Path) -> Manifest:
    """Validate a decoded manifest.json; ``root`` is the folder holding its artifacts."""
    if not isinstance(data, dict):
        raise ManifestError("manifest: expected a JSON object")
    if data.get("schema") != SCHEMA:
        raise ManifestError(f"manifest.schema: expected {SCHEMA!r}, got {data.get('schema')!r}")
    task = data.get("task")
    if not isinstance(task, str) or not _ID_RE.match(task):
        raise ManifestError(f"manifest.task: expected a task name (a-z, 0-9, '-'), got {task!r}")
    backends = data.get("backends")
    if not isinstance(backends, list) or not backends:
        raise ManifestError("manifest.backends: expected a non-empty list")
    for b in backends:
        _check_literal(b, BACKENDS, "manifest.backends")
    for key in ("inputs", "outputs"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ManifestError(f"manifest.{key}: expected a non-empty list")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(v, int | float | str) for v in metrics.values()
    ):
        raise ManifestError("manifest.metrics: expected an object of numbers and strings")
    manifest = _strict(
        Manifest,
        data,
        "manifest",
        task=task,
        source=_strict(Source, data.get("source"), "manifest.source"),
        artifacts=_artifacts(data.get("artifacts"), "manifest.artifacts"),
        backends=tuple(backends),
        inputs=tuple(_tensor(t, f"manifest.inputs[{i}]") for i, t in enumerate(data["inputs"])),
        outputs=tuple(_tensor(t, f"manifest.outputs[{i}]") for i, t in enumerate(data["outputs"])),
        preprocess=_section(data.get("preprocess"), "manifest.preprocess"),
        postprocess=_section(data.get("postprocess"), "manifest.postprocess"),
        golden=_golden(data.get("golden")),
        metrics=metrics,
        root=root,
        stream=_stream(data.get("stream")),
    )
    _check_literal(
        manifest.tensorrt_precision, ("fp32", "fp16", "int8"), "manifest.tensorrt_precision"
    )
    for backend in manifest.backends:
        missing = [r for r in BACKEND_ARTIFACTS[backend] if r not in manifest.artifacts]
        if missing:
            raise ManifestError(f"manifest.backends: {backend} needs artifact(s) {missing}")
    if not _ID_RE.match(manifest.id):
        raise ManifestError(f"manifest.id: {manifest.id!r} must match {_ID_RE.pattern}")
    return manifest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:  # json.loads would keep the last silently: two readers, two meanings
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # a NaN limit would compare False and pass


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999: an infinite limit passes anything
        raise ValueError(f"{text} is not a finite number")
    return value


def strict_json(raw: bytes, where: str, error: type[Exception] = ManifestError) -> Any:
    """Decode UTF-8 JSON with duplicate keys, NaN/Infinity and numbers that overflow to
    infinity refused (``error`` names ``where``)."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise error(f"{where}: not valid JSON: {exc}") from exc


def read_bundle_file(
    path: Path, limit: int, error: type[Exception] = ManifestError
) -> bytes | None:
    """The bytes of a small bundle file (None if absent): a plain file, not a symlink, at most
    ``limit`` bytes, checked before it is read and read no further than that."""
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symlink (O_NOFOLLOW)
        if path.is_symlink():
            raise error(f"{path}: is a symlink; bundle files must be plain files") from None
        raise error(f"{path}: cannot be read: {exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a plain file")
        if info.st_size > limit:
            raise error(f"{path}: {info.st_size} bytes, over the {limit}-byte limit; not parsed")
        raw = fh.read(limit + 1)
    if len(raw) > limit:  # grew while being read
        raise error(f"{path}: over the {limit}-byte limit; not parsed")
    return raw


def _artifact_file(manifest: Manifest, role: str, art: Artifact, real_root: Path) -> Path:
    """The artifact's path, refused if a symlink lies on the way or it resolves outside."""
    path = manifest.root
    for part in Path(art.path).parts:
        path = path / part
        if path.is_symlink():
            raise IntegrityError(
                f"{manifest.id}: artifact {role!r} ({art.path}): {path.name} is a symlink; "
                "bundle files must be plain files inside the bundle folder"
            )
    if not path.resolve().is_relative_to(real_root):
        raise IntegrityError(
            f"{manifest.id}: artifact {role!r} ({art.path}) resolves outside the bundle folder"
        )
    if not path.is_file():
        raise IntegrityError(f"{manifest.id}: artifact {role!r} missing: {path}")
    return path


def verify_artifacts(manifest: Manifest) -> None:
    """Raise IntegrityError unless every artifact is a plain file inside the bundle folder
    (the folder itself may be reached through a symlink) with the recorded sha256."""
    real_root = manifest.root.resolve()
    for role, art in manifest.artifacts.items():
        path = _artifact_file(manifest, role, art, real_root)
        actual = file_sha256(path)
        if actual != art.sha256:
            raise IntegrityError(
                f"{manifest.id}: artifact {role!r} ({art.path}) has sha256 {actual[:12]}…, "
                f"manifest says {art.sha256[:12]}…; the file is corrupt or was modified"
            )


def manifest_bytes(model_dir: Path) -> bytes:
    """The exact bytes of ``model_dir/manifest.json`` (ManifestError: absent, a symlink, not a
    plain file, over 1 MiB)."""
    raw = read_bundle_file(model_dir / MANIFEST_FILE, MAX_MANIFEST_BYTES)
    if raw is None:
        raise ManifestError(f"no manifest.json in {model_dir}")
    return raw


def load_manifest(model_dir: Path, *, verify: bool = True) -> Manifest:
    """Read, validate and (by default) integrity-check ``model_dir/manifest.json``."""
    raw = manifest_bytes(model_dir)
    manifest = parse_manifest(strict_json(raw, str(model_dir / MANIFEST_FILE)), model_dir)
    if verify:
        verify_artifacts(manifest)
    return manifest
