"""Nested Python values checked in one native pass (``csrc/bindings/values.cpp``).

It holds the GIL (it reads Python objects). The device encodes result payloads with orjson,
which writes NaN and infinities as ``null`` where the stdlib's encoder refused them; the wire
refuses them first with this check.
"""

from __future__ import annotations

from ._native import _kernels

__all__ = ["all_finite"]


def all_finite(value: object) -> bool:
    """False if a float (or a float subclass, e.g. ``numpy.float64``) nested in ``value``'s
    dicts, lists and tuples is NaN or infinite. Nothing else is looked into: strings, ints,
    ``None`` and other objects (a NumPy array, a ``numpy.float32``) pass, for the encoder to
    write or refuse."""
    return bool(_kernels.all_finite(value))
