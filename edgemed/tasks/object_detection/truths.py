"""The true boxes of an evaluation folder: ``boxes.csv`` or a COCO ``annotations.json``
beside ``images/`` (exactly one of them), checked entry by entry against the images and the
model's labels (BuildError naming the line or the annotation).

``boxes.csv``: a header ``image,label,x1,y1,x2,y2``, then one row per true box: the image's
path relative to ``images/``, its label, its corners in that image's pixels.

``annotations.json`` (COCO object detection): ``images`` (``id``, ``file_name`` relative to
``images/``, ``width``, ``height``: the file's own), ``categories`` (``id``, ``name``: the
model's labels, by name) and ``annotations`` (``image_id``, ``category_id``, ``bbox`` [x, y,
width, height] in pixels). Crowd annotations (``iscrowd: 1``) are refused: edgemed scores
every true box, and a crowd region is not one. Images in ``images/`` that the file does not
list hold no object, like images without a CSV row.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from ...errors import BuildError

__all__ = ["HEADER", "read_truths"]

HEADER = ["image", "label", "x1", "y1", "x2", "y2"]
Truths = dict[str, list[tuple[int, list[float]]]]  # image path -> (class, corners) per box
_FILES = ("boxes.csv", "annotations.json")


def _check_box(box: list[float], size: tuple[int, int], where: str, shown: object) -> None:
    h, w = size
    x1, y1, x2, y2 = box
    if not (all(math.isfinite(v) for v in box) and 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise BuildError(
            f"{where}: box {shown} is not within the {w} x {h} image with x1 < x2, y1 < y2"
        )


def _csv(path: Path, sizes: dict[str, tuple[int, int]], labels: list[str]) -> Truths:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [row for row in csv.reader(f) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BuildError(f"{path}: not a readable UTF-8 CSV file: {exc}") from exc
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise BuildError(f"{path}: the header must be {','.join(HEADER)}")
    found: Truths = {name: [] for name in sizes}
    for n, row in enumerate(rows[1:], start=2):
        where = f"{path} line {n}"
        if len(row) != len(HEADER):
            raise BuildError(f"{where}: expected {len(HEADER)} values, got {len(row)}")
        name, label = row[0].strip(), row[1].strip()
        if name not in sizes:
            raise BuildError(f"{where}: no image {name!r} in images/")
        if label not in labels:
            raise BuildError(f"{where}: label {label!r} is not one of the model's {labels[:12]}")
        try:
            box = [float(v) for v in row[2:]]
        except ValueError:
            raise BuildError(f"{where}: x1, y1, x2, y2 must be numbers, got {row[2:]}") from None
        _check_box(box, sizes[name], where, row[2:])
        found[name].append((labels.index(label), box))
    return found


def _entries(data: Any, key: str, path: Path) -> list[dict[str, Any]]:
    entries = data.get(key) if isinstance(data, dict) else None
    if not (isinstance(entries, list) and all(isinstance(e, dict) for e in entries)):
        raise BuildError(f"{path}: expected a COCO object with a list of {key!r} objects")
    return entries


def _coco_images(data: Any, path: Path, sizes: dict[str, tuple[int, int]]) -> dict[Any, str]:
    by_id: dict[Any, str] = {}
    for entry in _entries(data, "images", path):
        name = entry.get("file_name")
        where = f"{path} image {entry.get('id')!r}"
        if name not in sizes:
            raise BuildError(f"{where}: no image {name!r} in images/")
        if (entry.get("height"), entry.get("width")) != sizes[name]:
            raise BuildError(
                f"{where}: says {entry.get('width')} x {entry.get('height')}, the file is "
                f"{sizes[name][1]} x {sizes[name][0]}"
            )
        by_id[entry.get("id")] = name
    return by_id


def _coco(path: Path, sizes: dict[str, tuple[int, int]], labels: list[str]) -> Truths:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BuildError(f"{path}: not a readable JSON file: {exc}") from exc
    images = _coco_images(data, path, sizes)
    categories = {c.get("id"): c.get("name") for c in _entries(data, "categories", path)}
    found: Truths = {name: [] for name in sizes}
    for i, a in enumerate(_entries(data, "annotations", path)):
        where = f"{path} annotation {a.get('id', i)!r}"
        if a.get("iscrowd"):
            raise BuildError(f"{where}: crowd annotations (iscrowd 1) are not scored; remove them")
        if a.get("image_id") not in images:
            raise BuildError(f"{where}: image_id {a.get('image_id')!r} is not in images")
        label = categories.get(a.get("category_id"))
        if label not in labels:
            raise BuildError(f"{where}: category {label!r} is not one of the model's {labels[:12]}")
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise BuildError(f"{where}: bbox must be [x, y, width, height]")
        if not all(type(v) in (int, float) for v in bbox):
            raise BuildError(f"{where}: bbox must be [x, y, width, height] numbers, got {bbox}")
        x, y, w, h = (float(v) for v in bbox)
        name = images[a["image_id"]]
        _check_box([x, y, x + w, y + h], sizes[name], where, bbox)
        found[name].append((labels.index(label), [x, y, x + w, y + h]))
    return found


def read_truths(folder: Path, sizes: dict[str, tuple[int, int]], labels: list[str]) -> Truths:
    """Every image's true boxes (``sizes``: image path -> (height, width)), from whichever of
    ``boxes.csv`` and ``annotations.json`` the folder holds."""
    present = [name for name in _FILES if (folder / name).is_file()]
    if len(present) != 1:
        raise BuildError(
            f"{folder}: expected images/ and one of boxes.csv or annotations.json (COCO), "
            f"found {present or 'neither'}"
        )
    read = _csv if present[0] == "boxes.csv" else _coco
    return read(folder / present[0], sizes, labels)
