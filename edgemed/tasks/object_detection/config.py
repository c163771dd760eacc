"""The manifest's ``postprocess`` section for object detectors, checked against itself and the
model's declared outputs (ManifestError naming the key on anything wrong).

- ``labels``: class names, in the order of the model's score columns (1..1000).
- ``layout``: how the model's outputs hold the candidates:

  - ``yolo``: one output ``[1, 4 + C, N]`` or ``[1, N, 4 + C]`` (``[.., 5 + C, ..]`` with
    ``objectness``): per candidate a box, then C class scores;
  - ``boxes_scores``: two outputs, boxes ``[1, N, 4]`` and scores ``[1, N, C]`` (or
    ``[1, C, N]``), e.g. an SSD or a detector whose graph already decodes its anchors;
  - ``picodet``: PP-PicoDet / GFL heads, per stride (``strides``) one score output
    ``[1, N_s, C]`` and one box-distribution output ``[1, N_s, 4 * (reg_max + 1)]`` (distances
    from each grid cell's centre to the box's sides, in stride units, as a distribution over
    ``0..reg_max``); the score outputs first, then the distributions, in ``strides`` order;
  - ``detections``: a graph that already ran NMS (YOLOv10 / ultralytics ``end2end``, ONNX
    ``NonMaxSuppression`` then gathers, torchvision-style exports): final detections, one row
    each, either one output ``[1, k, W]`` or ``[k, W]`` whose ``columns`` say where the box,
    score and class sit, or three outputs ``boxes`` ``[1, k, 4]``, ``scores`` ``[1, k]``,
    ``classes`` ``[1, k]`` (and optionally ``count``, how many rows are real, EfficientNMS
    style). Rows of class -1 or score 0 are padding. No NMS is run again, so
    ``iou_threshold`` and ``class_agnostic`` are refused; scores must be ``probabilities``.

- ``outputs``: the output names the layout reads, ``{"boxes": name, "scores": name}``
  (boxes_scores) or ``{"scores": [...], "boxes": [...]}`` (picodet, one per stride) or
  ``{"output": name}`` (yolo) or ``{"detections": name}`` / ``{"boxes", "scores",
  "classes"[, "count"]}`` (detections); default: the manifest's outputs in order (the one
  output, for detections).
- ``columns`` (detections, one output): ``{"box": i, "score": j, "class": k}`` and optionally
  ``"batch": b`` (a batch index column, which must be 0); the box is the four columns from
  ``i``; default ``{"box": 0, "score": 4, "class": 5}`` (``x1, y1, x2, y2, score, class``).
- ``box_format`` (yolo, boxes_scores, detections): ``cxcywh`` (centre, width, height; yolo's
  default), ``xyxy`` (corners; the others' default) or ``yxyx`` (corners, y first);
  ``box_units``: ``pixels`` of the model's input (default) or ``normalized`` (0..1 of its
  width and height).
- ``scores``: what the class columns hold: ``probabilities`` (default), ``sigmoid`` (logits
  of independent classes) or ``softmax`` (logits of competing classes); ``objectness`` (yolo:
  a column before the classes, multiplied in, as the scores are); ``background`` (a first
  class column that is no label: softmax over background + C, SSD-style; dropped).
- ``score_threshold`` (default 0.5) and ``thresholds`` (label -> value, overriding it): a
  box is kept where its class's score is at least its threshold.
- ``iou_threshold`` (default 0.5): non-maximum suppression drops a box overlapping a better
  one of the same class (of any class with ``class_agnostic``) by more than this (not for
  ``detections``: the graph's own NMS did that).
- ``max_candidates`` (default 1000): the best-scored boxes kept before suppression;
  ``max_detections`` (default 100, at most 1000): after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ManifestError
from ...manifest import Manifest, parse_section
from ...results.detection import MAX_DETECTIONS

__all__ = [
    "BOX_FORMATS", "DEFAULT_COLUMNS", "LAYOUTS", "SCORES", "DetectionPostprocess",
    "parse_postprocess",
]  # fmt: skip

LAYOUTS = ("yolo", "boxes_scores", "picodet", "detections")
BOX_FORMATS = ("cxcywh", "xyxy", "yxyx")
BOX_UNITS = ("pixels", "normalized")
SCORES = ("probabilities", "sigmoid", "softmax")
MAX_LABELS = 1000
MAX_CANDIDATES = 100_000
DEFAULT_COLUMNS = {"box": 0, "score": 4, "class": 5}  # x1, y1, x2, y2, score, class
_COLUMN_KEYS = ("box", "score", "class", "batch")
_SEPARATE = ("boxes", "scores", "classes")  # detections as three outputs (+ "count")
_WHERE = "manifest.postprocess"


@dataclass(frozen=True, kw_only=True)
class DetectionPostprocess:
    """The section, as the manifest gives it (``outputs`` resolved into ``output_names``)."""

    labels: list[Any]
    layout: str  # LAYOUTS
    outputs: dict[str, Any] = field(default_factory=dict)
    box_format: str | None = None  # BOX_FORMATS; None: the layout's default
    box_units: str = "pixels"
    scores: str = "probabilities"
    objectness: bool = False
    background: bool = False
    strides: list[Any] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)  # detections: column -> index
    score_threshold: float = 0.5
    thresholds: dict[str, Any] = field(default_factory=dict)
    iou_threshold: float = 0.5
    class_agnostic: bool = False
    max_candidates: int = 1000
    max_detections: int = 100


@dataclass(frozen=True)
class Parsed:
    """The checked section: labels, the box format in force and the outputs each role reads."""

    config: DetectionPostprocess
    labels: tuple[str, ...]
    box_format: str
    outputs: dict[str, tuple[str, ...]]  # role -> output names (boxes, scores, output...)
    columns: dict[str, int] = field(default_factory=dict)  # detections, one output


def _unit(value: Any) -> bool:
    return type(value) in (int, float) and 0.0 <= value <= 1.0


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ManifestError(f"{_WHERE}.{key}: {value!r} is not one of {list(allowed)}")


def _labels(labels: Any) -> tuple[str, ...]:
    if not (isinstance(labels, list) and all(isinstance(x, str) and x for x in labels)):
        raise ManifestError(f"{_WHERE}.labels: expected a list of non-empty class names")
    if not 1 <= len(labels) <= MAX_LABELS or len(set(labels)) != len(labels):
        raise ManifestError(f"{_WHERE}.labels: 1..{MAX_LABELS} distinct names")
    return tuple(labels)


def _check_scores(c: DetectionPostprocess, labels: tuple[str, ...]) -> None:
    _choice(c.scores, SCORES, "scores")
    if c.objectness and c.layout != "yolo":
        raise ManifestError(f"{_WHERE}.objectness: only for layout 'yolo'")
    if c.background and c.scores == "sigmoid":
        raise ManifestError(f"{_WHERE}.background: only for 'softmax' or 'probabilities' scores")
    if not _unit(c.score_threshold):
        raise ManifestError(f"{_WHERE}.score_threshold: must be in [0, 1]")
    if not isinstance(c.thresholds, dict):
        raise ManifestError(f"{_WHERE}.thresholds: expected an object label -> threshold")
    for name, value in c.thresholds.items():
        if name not in labels:
            raise ManifestError(f"{_WHERE}.thresholds.{name}: not one of the labels")
        if not _unit(value):
            raise ManifestError(f"{_WHERE}.thresholds.{name}: must be in [0, 1]")
    if not _unit(c.iou_threshold):
        raise ManifestError(f"{_WHERE}.iou_threshold: must be in [0, 1]")
    if not 1 <= c.max_detections <= MAX_DETECTIONS:
        raise ManifestError(f"{_WHERE}.max_detections: must be 1..{MAX_DETECTIONS}")
    if not c.max_detections <= c.max_candidates <= MAX_CANDIDATES:
        raise ManifestError(f"{_WHERE}.max_candidates: must be max_detections..{MAX_CANDIDATES}")


def _box_format(c: DetectionPostprocess) -> str:
    if c.layout == "picodet":
        if c.box_format is not None or c.box_units != "pixels":
            raise ManifestError(
                f"{_WHERE}.box_format/box_units: a picodet head gives distances per stride"
            )
        strides = c.strides
        ok = isinstance(strides, list) and 1 <= len(strides) <= 8
        if not (ok and all(type(s) is int and 1 <= s <= 1024 for s in strides)):
            raise ManifestError(f"{_WHERE}.strides: expected 1..8 integer strides, e.g. [8, 16]")
        return "ltrb"
    if c.strides:
        raise ManifestError(f"{_WHERE}.strides: only for layout 'picodet'")
    fmt = c.box_format or ("cxcywh" if c.layout == "yolo" else "xyxy")
    _choice(fmt, BOX_FORMATS, "box_format")
    _choice(c.box_units, BOX_UNITS, "box_units")
    return fmt


def _names(value: Any, key: str, n: int | None) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not (isinstance(names, list) and names and all(isinstance(x, str) for x in names)):
        raise ManifestError(f"{_WHERE}.outputs.{key}: expected an output name or a list of them")
    if n is not None and len(names) != n:
        raise ManifestError(f"{_WHERE}.outputs.{key}: expected {n} output name(s)")
    return tuple(names)


def _roles(c: DetectionPostprocess) -> dict[str, int]:
    """Role -> how many outputs it reads; ``detections`` reads one output or, where
    ``outputs`` names them, separate boxes, scores and classes (and a row count)."""
    if c.layout == "detections":
        given = c.outputs if isinstance(c.outputs, dict) else {}
        if not given or "detections" in given:
            return {"detections": 1}
        return {role: 1 for role in (*_SEPARATE, "count") if role != "count" or role in given}
    k = len(c.strides)
    return {
        "yolo": {"output": 1},
        "boxes_scores": {"boxes": 1, "scores": 1},
        "picodet": {"scores": k, "boxes": k},
    }[c.layout]


def _outputs(c: DetectionPostprocess, manifest: Manifest) -> dict[str, tuple[str, ...]]:
    """Each role's output names, named by ``outputs`` or taken in the manifest's order."""
    declared = [o.name for o in manifest.outputs]
    given: Mapping[str, Any] = c.outputs
    roles = _roles(c)
    if not isinstance(given, dict) or (given and set(given) != set(roles)):
        names = str(sorted(roles))
        if c.layout == "detections":
            names = "['detections'] or ['boxes', 'classes', 'scores'] (and optionally 'count')"
        raise ManifestError(
            f"{_WHERE}.outputs: layout {c.layout!r} names {names} (or nothing: the "
            "manifest's outputs in that order)"
        )
    if given:
        resolved = {role: _names(given[role], role, n) for role, n in roles.items()}
    else:
        need = sum(roles.values())
        if len(declared) != need:
            raise ManifestError(
                f"manifest.outputs: layout {c.layout!r} reads {need} output(s) "
                f"({', '.join(f'{n} {r}' for r, n in roles.items())}), the model has "
                f"{len(declared)}: name them in {_WHERE}.outputs"
            )
        it = iter(declared)
        order = ("scores", "boxes") if c.layout == "picodet" else tuple(roles)
        resolved = {role: tuple(next(it) for _ in range(roles[role])) for role in order}
    missing = sorted({n for names in resolved.values() for n in names} - set(declared))
    if missing:
        raise ManifestError(f"{_WHERE}.outputs: {missing} are not outputs of the model {declared}")
    return resolved


def _axes(manifest: Manifest, name: str, want: int, what: str) -> None:
    """A declared output of fixed size must have an axis of ``want`` (after the batch)."""
    shape = next(o.shape for o in manifest.outputs if o.name == name)
    fixed = [d for d in shape[1:] if isinstance(d, int)]
    if len(shape) not in (2, 3) or (len(fixed) == len(shape) - 1 and want not in fixed):
        raise ManifestError(
            f"manifest.outputs: {name!r} {list(shape)} has no axis of {want} ({what}): "
            f"check {_WHERE}.labels, layout and objectness/background against the model"
        )


def _check_shapes(p: Parsed, manifest: Manifest) -> None:
    c, classes = p.config, len(p.labels) + int(p.config.background)
    if c.layout == "yolo":
        k = 4 + int(c.objectness) + classes
        what = f"4 box values{', objectness' * c.objectness} + {classes} class scores"
        _axes(manifest, p.outputs["output"][0], k, what)
    elif c.layout == "boxes_scores":
        _axes(manifest, p.outputs["boxes"][0], 4, "box corners")
        _axes(manifest, p.outputs["scores"][0], classes, f"{classes} class scores")
    elif c.layout == "picodet":
        for name in p.outputs["scores"]:
            _axes(manifest, name, classes, f"{classes} class scores")
    elif "detections" in p.outputs:
        name, width = p.outputs["detections"][0], max(_ends(p.columns))
        shape = next(o.shape for o in manifest.outputs if o.name == name)
        if len(shape) not in (2, 3) or (isinstance(shape[-1], int) and shape[-1] < width):
            raise ManifestError(
                f"manifest.outputs: {name!r} {list(shape)} is not [1, k, W] or [k, W] rows of "
                f"at least {width} columns (as {_WHERE}.columns places them)"
            )
    else:
        _axes(manifest, p.outputs["boxes"][0], 4, "box corners")


def _ends(columns: Mapping[str, int]) -> list[int]:
    """One past each column's last index (the box spans four)."""
    return [i + (4 if key == "box" else 1) for key, i in columns.items()]


def _columns(c: DetectionPostprocess, outputs: Mapping[str, Any]) -> dict[str, int]:
    """``columns`` checked: known keys, the required ones present, no two overlapping."""
    if c.columns and (c.layout != "detections" or "detections" not in outputs):
        raise ManifestError(f"{_WHERE}.columns: only for layout 'detections' with one output")
    if "detections" not in outputs:
        return {}
    given = c.columns or DEFAULT_COLUMNS
    if not isinstance(given, dict) or not set(DEFAULT_COLUMNS) <= set(given) <= set(_COLUMN_KEYS):
        raise ManifestError(
            f"{_WHERE}.columns: expected {{'box': i, 'score': j, 'class': k}} (and optionally "
            f"'batch'), got {given!r}"
        )
    if not all(type(i) is int and 0 <= i < 1024 for i in given.values()):
        raise ManifestError(f"{_WHERE}.columns: column indices are integers 0..1023")
    taken = [j for key, i in given.items() for j in range(i, i + (4 if key == "box" else 1))]
    if len(set(taken)) != len(taken):
        raise ManifestError(f"{_WHERE}.columns: {given} overlap (the box spans 4 columns)")
    return dict(given)


def _check_detections(c: DetectionPostprocess, raw: Mapping[str, Any]) -> None:
    """What a graph that already ran NMS cannot honour is refused, not ignored."""
    if c.layout != "detections":
        return
    for key in ("iou_threshold", "class_agnostic"):
        if key in raw:
            raise ManifestError(
                f"{_WHERE}.{key}: layout 'detections' is after the graph's own NMS; set its "
                "IoU and class handling when exporting the model"
            )
    if c.scores != "probabilities" or c.background:
        raise ManifestError(
            f"{_WHERE}.scores: layout 'detections' reads final scores ('probabilities', no "
            "background column)"
        )


def _check_dtypes(outputs: Mapping[str, tuple[str, ...]], manifest: Manifest) -> None:
    """Boxes and scores are floats; separate class ids and a row count may be integers."""
    integers = {n for role in ("classes", "count") for n in outputs.get(role, ())}
    read = {n for names in outputs.values() for n in names}
    for spec in manifest.outputs:
        allowed = ("float32", "float16") + ("int64", "int32") * (spec.name in integers)
        if spec.name in read and spec.dtype not in allowed:
            raise ManifestError(
                f"manifest.outputs: {spec.name!r} is {spec.dtype}; a detector's boxes and "
                f"scores are float32 or float16{' (class ids and counts: or int)' * bool(integers)}"
            )


def parse_postprocess(manifest: Manifest) -> Parsed:
    """The section, checked against itself and the manifest's outputs."""
    c = parse_section(DetectionPostprocess, manifest.postprocess, _WHERE)
    labels = _labels(c.labels)
    _choice(c.layout, LAYOUTS, "layout")
    _check_scores(c, labels)
    _check_detections(c, manifest.postprocess)
    fmt = _box_format(c)
    outputs = _outputs(c, manifest)
    _check_dtypes(outputs, manifest)
    parsed = Parsed(c, labels, fmt, outputs, _columns(c, outputs))
    _check_shapes(parsed, manifest)
    return parsed
