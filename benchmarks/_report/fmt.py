"""Small formatting helpers shared by the formatters: Markdown tables and numbers."""

# ruff: noqa: RUF001, RUF002  (the README's typography: multiplication sign, dashes, minus)

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Envelope = dict[str, Any]  # one saved results/<key>.json with a result
Lines = list[str]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Lines:
    """A Markdown table; cells are written as given (``str()``), ``|`` escaped."""

    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def num(x: Any, digits: int | None = None) -> str:
    """A number for a reader: thousands separated; ``digits`` decimals, or by magnitude."""
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if digits is None:
        size = abs(x)
        digits = 0 if isinstance(x, int) or size >= 100 else 1 if size >= 10 else 2
    return f"{x:,.{digits}f}"


def us(x: Any) -> str:
    """Microseconds, with µs or ms as fits."""
    if x is None:
        return "—"
    return f"{num(x / 1000)} ms" if x >= 10_000 else f"{num(x)} µs"


def ms(x: Any) -> str:
    return "—" if x is None else f"{num(x)} ms"


def ratio(row: dict[str, Any], key: str = "ratio") -> str:
    """A paired ratio with its spread over the rounds: ``2.28 (2.10–2.41)``."""
    r = row.get(key)
    lo, hi = row.get(f"{key}_min"), row.get(f"{key}_max")
    if r is None:
        return "—"
    return f"{r:.2f} ({lo:.2f}–{hi:.2f})" if lo is not None and hi is not None else f"{r:.2f}"


def pct(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f} %"


def threads(t: dict[str, Any] | None, ours: str = "edgemed", theirs: str = "baseline") -> str:
    if not t:
        return "—"
    return f"{t.get(ours, '?')} / {t.get(theirs, '?')}"


def verdict(met: Any) -> str:
    return "—" if met is None else "met" if met else "**not met**"


def result(env: Envelope) -> dict[str, Any]:
    """The script's own JSON inside a saved envelope."""
    out: dict[str, Any] = env["result"]
    return out
