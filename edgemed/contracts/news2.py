"""NEWS2 (RCP 2017) as results carry it: parameters, the chart's scores, bands and partial bounds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .fields import ContractError, as_object, integer, names_in

__all__ = [
    "NEWS2_ASSUMABLE",
    "NEWS2_MAX",
    "NEWS2_PARAMETERS",
    "NEWS2_SCORES",
    "check_news2",
    "check_news2_partial",
    "news2_band",
    "news2_partial_bound",
]


NEWS2_PARAMETERS = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)


# The scores each parameter can take on the NEWS2 chart (RCP 2017): oxygen is 0 or 2 and
# consciousness 0 or 3, so the aggregate is at most 3 * 5 + 2 + 3 = 20.
NEWS2_SCORES: dict[str, frozenset[int]] = {
    "respiration_rate": frozenset({0, 1, 2, 3}),
    "spo2": frozenset({0, 1, 2, 3}),
    "air_or_oxygen": frozenset({0, 2}),
    "systolic_bp": frozenset({0, 1, 2, 3}),
    "pulse": frozenset({0, 1, 2, 3}),
    "consciousness": frozenset({0, 3}),
    "temperature": frozenset({0, 1, 2, 3}),
}


NEWS2_MAX = sum(max(s) for s in NEWS2_SCORES.values())  # 20


def news2_partial_bound(partial_score: int, unscored: Iterable[str]) -> tuple[int, bool]:
    """(highest NEWS2 still possible, whether an escalation threshold is still reachable) for a
    partial score whose ``unscored`` parameters are unknown: each at its chart maximum; the
    thresholds are an aggregate >= 5 or any single parameter scoring 3 (RCP 2017)."""
    maxima = [max(NEWS2_SCORES[p]) for p in unscored]
    top = partial_score + sum(maxima)
    return top, top >= 5 or 3 in maxima


NEWS2_ASSUMABLE = frozenset({"consciousness", "air_or_oxygen"})  # what a caller may default


def news2_band(score: int, parameter_scores: dict[str, int]) -> str:
    """The chart's risk band of an aggregate (RCP 2017, chart 2)."""
    if score >= 7:
        return "high"
    if score >= 5:
        return "medium"
    return "low-medium" if 3 in parameter_scores.values() else "low"


def check_news2(body: Any, where: str = "news2") -> None:
    """A full NEWS2 body: every parameter scored on its chart, the aggregate their sum."""
    as_object(body, where)
    score = integer(body, "score", where, 0, NEWS2_MAX)
    scores = _news2_scores(
        as_object(body.get("parameter_scores"), f"{where}.parameter_scores"), where
    )
    if set(scores) != set(NEWS2_PARAMETERS):
        raise ContractError(
            f"{where}: parameter_scores must give a score for each of {', '.join(NEWS2_PARAMETERS)}"
        )
    if score != sum(scores.values()):
        raise ContractError(f"{where}: score {score} is not the sum of its parameter scores")
    band = body.get("band")
    if band is not None and band != news2_band(score, scores):
        raise ContractError(f"{where}: band does not match score {score}")


def check_news2_partial(body: Any, where: str) -> None:
    as_object(body, where)
    scores = _news2_scores(
        as_object(body.get("parameter_scores"), f"{where}.parameter_scores"), where
    )
    total = integer(body, "partial_score", where, 0, NEWS2_MAX)
    if total != sum(scores.values()):
        raise ContractError(f"{where}: partial_score is not the sum of its scores")
    missing = names_in(body.get("missing", []), f"{where}.missing", set(NEWS2_PARAMETERS))
    names_in(body.get("assumed", []), f"{where}.assumed", NEWS2_ASSUMABLE)
    if body.get("complete", False) is not False:
        raise ContractError(f"{where}: a partial score is never complete")
    if not missing:
        raise ContractError(f"{where}: a partial score must name what is missing")
    if missing & set(scores):
        raise ContractError(f"{where}: a parameter cannot be both scored and missing")


def _news2_scores(scores: dict[str, Any], where: str) -> dict[str, int]:
    for name, value in scores.items():
        allowed = NEWS2_SCORES.get(name)
        if allowed is None:
            raise ContractError(f"{where}: parameter_scores has no NEWS2 parameter {name[:40]!r}")
        if type(value) is not int or value not in allowed:
            raise ContractError(
                f"{where}: parameter_scores[{name}] must be one of {sorted(allowed)} (0-3)"
            )
    return scores
