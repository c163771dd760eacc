"""What ``edgemed bundle build`` asks of a task whose results are labels, shared by the
classifiers: INT8 agreement (the same label), golden order (the clearest result of each label
in turn) and accuracy, given how to read a result's label and how clear it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..results import Result

__all__ = ["LabelResults"]


class _Scored(Protocol):
    @property
    def label(self) -> str | None: ...
    @property
    def top(self) -> tuple[tuple[str, float], ...]: ...


@dataclass(frozen=True)
class LabelResults:
    """A task's results as labels. ``label``: a result's label (None: an abstention), raising
    BuildError on a result of another task; ``margin``: how clear it is (larger: further from
    changing on another CPU's rounding)."""

    label: Callable[[Result], str | None]
    margin: Callable[[Result], float]

    @classmethod
    def of_top_scores(cls, classification: Callable[[Result], _Scored]) -> LabelResults:
        """Results with a ``label`` and ``top`` (label, score) pairs, best first, as
        ``classification`` reads them: as clear as the best score stands above the second."""

        def margin(result: Result) -> float:
            top = classification(result).top
            return top[0][1] - (top[1][1] if len(top) > 1 else 0.0)

        return cls(label=lambda result: classification(result).label, margin=margin)

    def agreement(self, fp32: Sequence[Result], int8: Sequence[Result]) -> float:
        """Share of inputs where INT8 gives FP32's label (an abstention is a label too)."""
        same = sum(self.label(a) == self.label(b) for a, b in zip(fp32, int8, strict=True))
        return same / len(fp32)

    def golden_order(self, results: Sequence[Result]) -> list[int]:
        """The clearest result of each label in turn, then the next clearest...: golden
        vectors cover every label and sit far from a decision boundary (an abstention never
        serves)."""
        groups: dict[str, list[int]] = {}
        for i, result in enumerate(results):
            label = self.label(result)
            if label is not None:
                groups.setdefault(label, []).append(i)
        ranked = [
            sorted(idx, key=lambda i: (-self.margin(results[i]), i))
            for _, idx in sorted(groups.items())
        ]
        order: list[int] = []
        for depth in range(max((len(g) for g in ranked), default=0)):
            order += [g[depth] for g in ranked if depth < len(g)]
        return order

    def accuracy(self, results: Sequence[Result], truths: Sequence[Any]) -> float:
        """Share of inputs whose label is the true one (an abstention counts as wrong)."""
        hits = sum(bool(self.label(r) == t) for r, t in zip(results, truths, strict=True))
        return hits / len(truths)
