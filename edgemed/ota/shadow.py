"""The shadow period: a candidate version runs beside the serving one on the same live
inputs; its results are compared, counted and dropped (never returned, never in the outbox).

Two results agree when their bodies (the result as it goes on the wire, provenance aside)
have the same structure, equal text and flags, and every number within ``abs_tolerance`` +
``rel_tolerance`` x |serving value|. The period passes once ``shadow_results`` inputs were
compared and at least ``min_agreement`` of them agreed; it fails as soon as that can no
longer happen, or at once if the candidate raises on an input the serving version handled.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from ..delivery import Criteria
from ..pipeline import Pipeline
from ..results import Result
from ..results.base import check_contract

__all__ = ["Shadow", "agree"]


def agree(served: Any, candidate: Any, criteria: Criteria) -> bool:
    """Whether two result bodies agree under ``criteria`` (see the module docstring)."""
    if isinstance(served, bool) or isinstance(candidate, bool):
        return served is candidate
    if isinstance(served, int | float) and isinstance(candidate, int | float):
        if not (math.isfinite(served) and math.isfinite(candidate)):
            return served == candidate
        limit = criteria.abs_tolerance + criteria.rel_tolerance * abs(served)
        return abs(served - candidate) <= limit
    if isinstance(served, dict) and isinstance(candidate, dict):
        return served.keys() == candidate.keys() and all(
            agree(served[k], candidate[k], criteria) for k in served
        )
    if isinstance(served, list | tuple) and isinstance(candidate, list | tuple):
        return len(served) == len(candidate) and all(
            agree(a, b, criteria) for a, b in zip(served, candidate, strict=True)
        )
    return bool(served == candidate)


class Shadow:
    """One shadow period of ``candidate`` under ``criteria``; fed by the serving path."""

    def __init__(self, candidate: Pipeline, criteria: Criteria) -> None:
        self.candidate = candidate
        self.criteria = criteria
        self.done = 0
        self.agreed = 0
        self.failure: str | None = None
        self.finished = threading.Event()
        self._lock = threading.Lock()
        needed = criteria.shadow_results
        # Disagreements beyond this and the criterion cannot be met any more.
        self._allowed = needed - math.ceil(criteria.min_agreement * needed - 1e-9)

    @property
    def passed(self) -> bool:
        return self.finished.is_set() and self.failure is None

    def offer(self, item: object, served: Result) -> None:
        """Run the candidate on ``item`` and compare with the serving version's ``served``."""
        if self.finished.is_set():
            return
        try:
            body = check_contract(self.candidate(item))
            same = agree(served.body(), body, self.criteria)
        except Exception as exc:  # the candidate's own failure: the shadow period fails
            self._finish(f"the new version failed on a live input: {exc}"[:400])
            return
        with self._lock:
            self.done += 1
            self.agreed += int(same)
            done, agreed = self.done, self.agreed
        disagreed = done - agreed
        needed = self.criteria.shadow_results
        if disagreed > self._allowed:
            self._finish(
                f"shadow: {disagreed} of {done} results disagreed with the serving version; "
                f"at most {self._allowed} of {needed} may (min_agreement "
                f"{self.criteria.min_agreement:g})"
            )
        elif done >= needed:
            self._finish(None)

    def _finish(self, failure: str | None) -> None:
        with self._lock:
            if self.finished.is_set():
                return
            self.failure = failure
            self.finished.set()
