"""Stage 2 for tabular models: one row of named clinical features -> a float32 [1, n] tensor.

Input policy (stated once, tested):

* a ``Mapping[str, float]`` holding every feature of the manifest by name (missing or unknown
  names raise :class:`InputError` naming them), or a 1-D sequence/ndarray of exactly
  ``n_features`` numbers in the manifest's feature order;
* values must be real, finite numbers within float32's range (NaN, inf, 1e39, bools, strings,
  None raise ``InputError``);
* values outside a feature's valid range (manifest ``min``/``max``: the training data's range
  widened by a margin) are **not** rejected but flagged: the result's ``out_of_range`` names
  them, so a caller sees the input lies outside what the model saw.

Standardisation happens inside the model graph (manifest ``standardization: "in_graph"``), so
the tensor holds the raw units the manifest lists.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ... import digest, kernels
from ...errors import InputError, ManifestError
from ...manifest import Manifest, parse_section
from ..prepared import Prepared

__all__ = [
    "Feature",
    "TableContext",
    "TabularContext",
    "TabularPreprocess",
    "TabularPreprocessor",
    "golden_inputs",
]

STANDARDIZATION = ("in_graph",)


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One model input column: name, physical unit, and the range the model was trained on."""

    name: str
    unit: str
    min: float
    max: float


@dataclass(frozen=True, kw_only=True)
class TabularPreprocess:
    """The manifest's ``preprocess`` section for tabular models."""

    features: list[Any]  # objects parsed into Feature
    range_source: str  # how min/max were chosen (e.g. observed range widened by 10 %)
    standardization: str  # where features are standardised; only "in_graph" is supported


@dataclass(frozen=True, kw_only=True)
class TabularContext:
    out_of_range: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, eq=False)
class TableContext:
    """A whole table's context (``Pipeline.table``): its float32 rows and their range flags."""

    inputs: npt.NDArray[np.float32]
    out_of_range: dict[int, tuple[str, ...]]  # row index -> features outside the range


def parse_features(manifest: Manifest) -> tuple[TabularPreprocess, tuple[Feature, ...]]:
    where = "manifest.preprocess"
    config = parse_section(TabularPreprocess, manifest.preprocess, where)
    if config.standardization not in STANDARDIZATION:
        raise ManifestError(
            f"{where}.standardization: {config.standardization!r} is not one of "
            f"{list(STANDARDIZATION)}"
        )
    if not isinstance(config.features, list) or not config.features:
        raise ManifestError(f"{where}.features: expected a non-empty list")
    features = tuple(
        parse_section(Feature, f, f"{where}.features[{i}]") for i, f in enumerate(config.features)
    )
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ManifestError(f"{where}.features: duplicate feature names")
    for f in features:
        if not (math.isfinite(f.min) and math.isfinite(f.max) and f.min <= f.max):
            raise ManifestError(f"{where}.features.{f.name}: need finite min <= max")
    spec = manifest.inputs[0]
    if len(manifest.inputs) != 1 or spec.dtype != "float32" or spec.shape[1:] != (len(names),):
        raise ManifestError(
            f"{manifest.id}: a tabular model takes one float32 input [batch, {len(names)}]; "
            f"manifest declares {[(s.name, s.dtype, list(s.shape)) for s in manifest.inputs]}"
        )
    return config, features


# The smallest float64 that float32 rounds to infinity: FLT_MAX plus half its last place (a
# tie rounds to the even neighbour, which is infinity). |x| below it stays finite in float32.
F32_LIMIT = float(np.finfo(np.float32).max) + 2.0**103

# Exact types taken without the (slow, ABC-based) numbers.Real check; bool is not among them.
_PLAIN_NUMBERS = frozenset({float, int})


def _one(name: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    return lambda item: (item[name],)


def _number(value: object, name: str) -> float:
    # bool is an int subclass: True as a lab value is a caller bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"feature {name!r}: expected a number, got {type(value).__name__}")
    return float(value)


def _numbers(values: Sequence[Any], names: Sequence[str]) -> Sequence[Any]:
    """``values`` checked to be numbers (plain ints and floats, or other reals as floats)."""
    if set(map(type, values)) <= _PLAIN_NUMBERS:  # one C-level pass (a generator cost 2x)
        return values
    return [_number(v, name) for v, name in zip(values, names, strict=True)]


class TabularPreprocessor:
    """Validate, order and range-check one row of features (a mapping or a 1-D sequence)."""

    def __init__(self, manifest: Manifest) -> None:
        _, self.features = parse_features(manifest)
        self.names = tuple(f.name for f in self.features)
        self._index = {n: i for i, n in enumerate(self.names)}
        # A mapping's values in manifest order as one C-level call (a tuple, even for one name)
        self._get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*self.names) if len(self.names) > 1 else _one(self.names[0])
        )
        self._input = manifest.inputs[0].name
        self._lo = np.array([f.min for f in self.features], dtype=np.float64)
        self._hi = np.array([f.max for f in self.features], dtype=np.float64)
        self._lo_list = self._lo.tolist()
        self._hi_list = self._hi.tolist()
        self._row_digest = digest.row_hasher(np.dtype(np.float32), len(self.names))

    def row(self, item: object) -> npt.NDArray[np.float64]:
        """The caller's row as float64 in manifest order, or InputError."""
        table = self._table([self._numbers_of(item)])
        self._check_float32(table)
        values: npt.NDArray[np.float64] = table[0]
        return values

    def _table(self, rows: Sequence[Any]) -> npt.NDArray[np.float64]:
        try:
            table: npt.NDArray[np.float64] = np.array(rows, dtype=np.float64)
        except OverflowError:  # a Python int beyond float64 (10**400): name it
            for row in rows:
                for name, v in zip(self.names, row, strict=True):
                    if isinstance(v, int) and not -(2**1023) < v < 2**1024:
                        raise InputError(
                            f"feature {name!r}: an integer of {v.bit_length()} bits, beyond "
                            "the float32 range"
                        ) from None
            raise
        return table

    def _numbers_of(self, item: object) -> Sequence[Any] | npt.NDArray[np.float64]:
        """The row's numbers in manifest order, checked but for the float32 range (done once
        for a whole batch, whose table is made from these in one call)."""
        n = len(self.names)
        if isinstance(item, Mapping):
            try:
                raw = self._get(item)
            except KeyError:
                raw = None
            if raw is None or len(item) != n:  # some name is missing or unknown
                unknown = sorted(str(k) for k in item if k not in self._index)
                missing = [name for name in self.names if name not in item]
                parts = []
                if missing:
                    parts.append(f"missing feature(s) {missing}")
                if unknown:
                    parts.append(f"unknown feature(s) {unknown}")
                raise InputError("; ".join(parts) + f"; expected exactly {list(self.names)}")
            return _numbers(raw, self.names)
        if isinstance(item, np.ndarray):
            if item.ndim != 1 or item.shape[0] != n:
                raise InputError(
                    f"expected a 1-D array of {n} features, got shape {item.shape} "
                    "(several rows: use Pipeline.batch)"
                )
            if not (
                np.issubdtype(item.dtype, np.floating) or np.issubdtype(item.dtype, np.integer)
            ):
                raise InputError(f"expected a numeric array, got dtype {item.dtype}")
            return item.astype(np.float64)
        if isinstance(item, Sequence) and not isinstance(item, str | bytes | bytearray):
            if len(item) != n:
                raise InputError(
                    f"expected {n} features in order {list(self.names)}, got {len(item)}"
                )
            return _numbers(list(item), self.names)
        raise InputError(
            f"expected a mapping of feature name -> number or a 1-D sequence of {n} numbers, "
            f"got {type(item).__name__}"
        )

    def _check_float32(self, table: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """``table`` (rows, features) as float32, or InputError naming the first bad row's
        features. The model runs in float32: a value finite in float64 but beyond float32's
        range would reach it as inf. One scalar test (a float64 sum of float32 values cannot
        overflow); the culprits are looked for only when it fails."""
        with np.errstate(over="ignore"):  # overflow to inf is what the test below catches
            as_f32 = table.astype(np.float32)
        if not math.isfinite(float(as_f32.sum(dtype=np.float64))):
            first = int(np.flatnonzero(~np.isfinite(as_f32).all(axis=1))[0])
            bad = [self.names[i] for i in np.flatnonzero(~np.isfinite(as_f32[first]))]
            row = f"row {first}: " if len(table) > 1 else ""
            raise InputError(f"{row}feature(s) {bad} are NaN, infinite or beyond the float32 range")
        return as_f32

    def _out_of_range(self, table: npt.NDArray[np.float64]) -> dict[int, tuple[str, ...]]:
        """Row index -> the features outside their range, in manifest order (rows within
        range are absent)."""
        outside: npt.NDArray[np.bool_] = (table < self._lo) | (table > self._hi)
        if not outside.any():
            return {}
        return {
            i: tuple(self.names[j] for j in np.flatnonzero(outside[i]))
            for i in np.flatnonzero(outside.any(axis=1)).tolist()
        }

    def __call__(self, item: object) -> Prepared:
        values = self._numbers_of(item)
        if not isinstance(values, np.ndarray):
            fast = self._plain_row(values)
            if fast is not None:
                return fast
        table = self._table([values])
        tensor = self._check_float32(table)  # (1, features): the model's input
        return Prepared(
            tensors={self._input: tensor},
            input_sha256=Prepared.array_sha256(tensor),
            input_kind="tabular",
            context=TabularContext(out_of_range=self._out_of_range(table).get(0, ())),
        )

    def _plain_row(self, values: Sequence[Any]) -> Prepared | None:
        """:meth:`__call__` of one row of plain numbers in Python floats: the same tensor, hash
        and flags (a NumPy call on ten numbers costs ~1-3 us, and the array path made ~70 % of
        a tabular call's time). None where a value is not finite in float32 (or an int too
        large for a float): the array path then gives its InputError."""
        try:
            floats = list(map(float, values))
        except OverflowError:
            return None
        # sum() is NaN or inf if any value is; then min/max are well defined. A sum that
        # overflows only sends the row to the array path, which checks each value.
        if not (
            math.isfinite(sum(floats)) and min(floats) > -F32_LIMIT and max(floats) < F32_LIMIT
        ):
            return None
        tensor = np.array([floats], dtype=np.float32)
        hashed = self._row_digest.copy()
        hashed.update(tensor.data)
        outside: tuple[str, ...] = ()
        if any(map(operator.lt, floats, self._lo_list)) or any(
            map(operator.gt, floats, self._hi_list)
        ):
            outside = tuple(
                name
                for name, v, lo, hi in zip(
                    self.names, floats, self._lo_list, self._hi_list, strict=True
                )
                if v < lo or v > hi
            )
        return Prepared(
            tensors={self._input: tensor},
            input_sha256=hashed.hexdigest(),
            input_kind="tabular",
            context=TabularContext(out_of_range=outside),
        )

    def many(self, items: Sequence[object]) -> list[Prepared]:
        """``[self(item) for item in items]`` (the same tensors, hashes and flags, the same
        InputError for the first bad row), with the float32 and range checks done once for
        the whole table: ``Pipeline.batch`` spent most of a tabular batch's time here."""
        if not items:
            return []
        try:
            # Plain dicts of plain numbers in one native pass (as Pipeline.table takes them)
            table = kernels.dict_rows(items, self.names) if isinstance(items, list) else None
            if table is None:
                table = self._table([self._numbers_of(item) for item in items])
            f32 = self._check_float32(table)
        except InputError:
            return [self(item) for item in items]  # raises the first bad row's own error
        flags = self._out_of_range(table)
        hashes = Prepared.rows_sha256(f32)
        prepared = []
        for i, row_sha256 in enumerate(hashes):
            prepared.append(
                Prepared(
                    tensors={self._input: f32[i : i + 1]},
                    input_sha256=row_sha256,
                    input_kind="tabular",
                    context=TabularContext(out_of_range=flags.get(i, ())),
                )
            )
        return prepared

    def table(self, rows: object) -> Prepared:
        """Many rows as one (rows, features) float32 tensor (``Pipeline.table``): a sequence of
        rows as :meth:`__call__` takes them, or a 2-D numeric array in manifest order. The same
        checks as each row's, InputError naming the first bad row's index; one sha256 of the
        whole table; range flags by row index (rows within range are absent)."""
        n = len(self.names)
        if isinstance(rows, np.ndarray):
            if rows.ndim != 2 or rows.shape[1] != n:
                raise InputError(f"expected a 2-D array (rows, {n} features), got {rows.shape}")
            if not (
                np.issubdtype(rows.dtype, np.floating) or np.issubdtype(rows.dtype, np.integer)
            ):
                raise InputError(f"expected a numeric array, got dtype {rows.dtype}")
            table = rows.astype(np.float64)
        elif isinstance(rows, Sequence) and not isinstance(rows, str | bytes | bytearray):
            table = self._rows_table(rows)
        else:
            raise InputError(
                f"expected a sequence of rows or a 2-D array, got {type(rows).__name__}"
            )
        if table.shape[0] == 0:
            raise InputError("no rows: a table needs at least one")
        f32 = self._check_float32(table)
        return Prepared(
            tensors={self._input: f32},
            input_sha256=digest.array_sha256(f32),
            input_kind="tabular-table",
            context=TableContext(inputs=f32, out_of_range=self._out_of_range(table)),
        )

    def _rows_table(self, rows: Sequence[object]) -> npt.NDArray[np.float64]:
        """The rows' numbers as a float64 table; InputError names the first bad row."""
        n = len(self.names)
        # Plain dicts holding exactly the manifest's names and plain numbers: one native pass
        # (4x the Python passes it replaced: itemgetter per row, a set of types, np.array).
        table = kernels.dict_rows(rows, self.names)
        if table is not None:
            return table
        checked = []
        for i, row in enumerate(rows):
            try:
                checked.append(self._table([self._numbers_of(row)])[0])
            except InputError as exc:
                raise InputError(f"row {i}: {exc}") from None
        return np.array(checked, dtype=np.float64).reshape(len(rows), n)


def golden_inputs(manifest: Manifest) -> list[object]:
    """The bundle's golden rows: a JSON list of {feature name: value} objects, or (bundles
    made by ``edgemed bundle build``) an .npz whose ``rows`` array (N, features) is in the
    manifest's feature order."""
    path = manifest.path("golden_inputs")
    if path.suffix == ".npz":
        names = [f.name for f in parse_features(manifest)[1]]
        with np.load(path, allow_pickle=False) as npz:
            table = np.asarray(npz["rows"], dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != len(names):
            raise ManifestError(
                f"{manifest.id}: golden rows {table.shape} for {len(names)} features"
            )
        return [dict(zip(names, map(float, row), strict=True)) for row in table]
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ManifestError(f"{manifest.id}: golden inputs must be a JSON list of objects")
    return list(rows)
