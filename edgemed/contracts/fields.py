"""The checks every result kind is built from: JSON values in, ContractError out."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_ELEMENTS",
    "ContractError",
    "as_array",
    "as_object",
    "finite",
    "float16s",
    "integer",
    "names_in",
    "number",
]


class ContractError(ValueError):
    """A result body outside its kind's declared ranges; the message says which field and why.

    A ValueError (not an edgemed error): this module is a leaf (the stdlib and NumPy). The wire
    turns it into a PayloadError, the device's result types into a ModelError."""


MAX_ELEMENTS = 1 << 20  # decoded arrays larger than this are refused before decoding


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"{where}: must be an object")
    return value


def as_array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ContractError(f"{where}: must be an array")
    return value


def names_in(value: Any, where: str, allowed: set[str] | frozenset[str] | None = None) -> set[str]:
    names = as_array(value, where)
    if not all(isinstance(n, str) for n in names):
        raise ContractError(f"{where}: must be names")
    if allowed is not None and not set(names) <= allowed:
        raise ContractError(f"{where}: may only name {', '.join(sorted(allowed))}")
    return set(names)


def finite(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if type(value) not in (int, float):  # bool is an int subclass: refused here
        raise ContractError(f"{where}: must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        raise ContractError(f"{where}: is not a finite number") from None
    if not math.isfinite(number):
        raise ContractError(f"{where}: is not a finite number")
    if not lo <= number <= hi:
        raise ContractError(f"{where}: {number:g} is outside [{lo:g}, {hi:g}]")
    return number


def number(
    body: dict[str, Any], key: str, where: str, lo: float = -math.inf, hi: float = math.inf
) -> float:
    if key not in body:
        raise ContractError(f"{where}: field {key!r} is missing")
    return finite(body[key], f"{where}: {key}", lo, hi)


def integer(body: dict[str, Any], key: str, where: str, lo: int, hi: int | None = None) -> int:
    value = body.get(key)
    if type(value) is not int:
        raise ContractError(f"{where}: {key} must be an integer")
    if value < lo or (hi is not None and value > hi):
        top = "" if hi is None else f"-{hi}"
        raise ContractError(f"{where}: {key} {value} is outside {lo}{top or ' or more'}")
    return value


def float16s(packed: Any, where: str, shape: list[Any]) -> npt.NDArray[np.float64]:
    """The values of a ``{"dtype": "float16", "shape": [...], "b64": ...}`` array."""
    as_object(packed, where)
    if packed.get("dtype") != "float16":
        raise ContractError(f"{where}: dtype must be float16")
    if packed.get("shape") != shape or not all(type(d) is int and d >= 0 for d in shape):
        raise ContractError(f"{where}: shape must be {shape}")
    count = math.prod(shape)
    b64 = packed.get("b64")
    if count > MAX_ELEMENTS or not isinstance(b64, str):
        raise ContractError(f"{where}: must hold at most {MAX_ELEMENTS} values in b64")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(f"{where}: b64 is not base64") from None
    if len(raw) != 2 * count:
        raise ContractError(f"{where}: b64 holds {len(raw) // 2} values, shape says {count}")
    return np.frombuffer(raw, dtype="<f2").astype(np.float64)
