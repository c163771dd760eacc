"""The INT8 gate: does the quantised model still decide what its FP32 original decided?"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import Gate

__all__ = ["GateResult", "judge"]


@dataclass(frozen=True, kw_only=True)
class GateResult:
    agreement: float  # share of evaluation inputs where INT8 decides as FP32 does
    fp32_metric: float
    int8_metric: float
    metric_name: str
    gate: Gate
    # Why the INT8 model's outputs were refused by the task's own checks (a class id that is
    # no label, a score outside [0, 1]: what INT8 rounding does to a graph's post-processing);
    # None: they were not.
    broken: str | None = None

    @property
    def metric_drop(self) -> float:
        return self.fp32_metric - self.int8_metric

    @property
    def passed(self) -> bool:
        return (
            self.broken is None
            and self.agreement >= self.gate.min_agreement
            and self.metric_drop <= self.gate.max_metric_drop
        )

    def explain(self) -> str:
        """One sentence a user can act on."""
        if self.broken is not None:
            return (
                f"INT8 refused: its outputs fail the task's checks ({self.broken}); quantise "
                "less of the graph (e.g. export it without the post-processing that INT8 "
                "rounds) or ship FP32 with --fp32-if-gate-fails"
            )
        figures = (
            f"INT8 agrees with FP32 on {self.agreement:.1%} of the evaluation set (gate "
            f">= {self.gate.min_agreement:.1%}); {self.metric_name} {self.fp32_metric:.4f} FP32 "
            f"vs {self.int8_metric:.4f} INT8 (drop {self.metric_drop:+.4f}, gate <= "
            f"{self.gate.max_metric_drop:.4f})"
        )
        if self.passed:
            return f"INT8 passed: {figures}"
        return (
            f"INT8 refused: {figures}. Check that the calibration folder holds inputs like the "
            "ones the model will see (not blank or mislabelled images), add more of them, or "
            "ship FP32 with --fp32-if-gate-fails"
        )


def judge(
    agreement: float, *, fp32_metric: float, int8_metric: float, metric_name: str, gate: Gate
) -> GateResult:
    return GateResult(
        agreement=agreement,
        fp32_metric=fp32_metric,
        int8_metric=int8_metric,
        metric_name=metric_name,
        gate=gate,
    )
