"""Whether each paired value's box holds one whole number, read whole.

The pairing (vitals_text.py) decides which number belongs to which label; the pixels can still
say that number is not the value as drawn. A candidate is withheld when its value's box may
hold only part of a number (a digit beside the box or not read in it, or the rest of the
number boxed apart), two lines of text (value_extent.py), or a digit whose glyph lacks a
segment the digit read needs (seven_segment.py).
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from ...results import WITHHELD_REASONS
from .panels import Panels
from .screen_text import classify_label, parse_number
from .seven_segment import segments_disagree
from .value_extent import box_problem, number_beside, unread_ink
from .vitals_text import Candidate

__all__ = ["whole_values"]

_NUMBER = re.compile(r"\d+(\.\d+)?")


def whole_values(
    candidates: list[Candidate],
    image: npt.NDArray[np.uint8],
    kept: list[npt.NDArray[np.float32]],
    read: list[tuple[npt.NDArray[np.uint8], tuple[float, ...]]],
    texts: list[str],
    panels: Panels,
) -> list[Candidate]:
    """Each candidate, or its withholding (see the module docstring). ``kept``: every read
    box's corners; ``read``: its crop and where each character was emitted; ``texts``: what
    it read."""
    # A box whose digits read as no number ("1345": a "31"'s left-out "1" boxed with the next
    # tile's "T1 34.5" across their border, seed 2300342) accounts for no ink beside a value:
    # only the others may (once per screen, not per candidate).
    legible = [i for i, t in enumerate(texts) if not _garbled(t)]
    numbers = [i for i in legible if _NUMBER.fullmatch(texts[i].strip())]
    out = []
    for c in candidates:
        problem = (
            None
            if c.value_box is None or c.value is None
            else _problem(c.value_box, image, kept, read, texts, legible, numbers, panels)
        )
        out.append(c if problem is None else
                   replace(c, value=None, reason=problem, detail=WITHHELD_REASONS[problem]))  # fmt: skip
    return out


def _problem(
    at: int,
    image: npt.NDArray[np.uint8],
    kept: list[npt.NDArray[np.float32]],
    read: list[tuple[npt.NDArray[np.uint8], tuple[float, ...]]],
    texts: list[str],
    legible: list[int],
    numbers: list[int],
    panels: Panels,
) -> str | None:
    """Why the value read in box ``at`` may not be the value as drawn, or None."""
    others = [kept[i] for i in legible if i != at]
    crop, where = read[at]
    problem = box_problem(image, kept[at], others) or unread_ink(crop, where)
    # One of the two pieces is a lone digit (a seven-segment "1" boxed apart): two numbers of
    # several digits side by side are two tiles' values (a top bar's "133" and "36").
    single = len(re.sub(r"\D", "", texts[at])) == 1
    beside = [kept[i] for i in numbers if i != at and (single or len(texts[i].strip()) == 1)]
    if problem is None and number_beside(kept[at], beside, panels.apart):
        problem = "partial-number"
    if problem is None and segments_disagree(crop, texts[at]):
        problem = "segments-disagree"
    return problem


def _garbled(text: str) -> bool:
    """Digits that read as no number and begin no label ("1345", "2476")."""
    t = text.strip().upper()
    return any(ch.isdigit() for ch in t) and parse_number(t) is None and not classify_label(t)
