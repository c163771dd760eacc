"""Doubt on ICD-10-CM suggestions: calibrated confidence, assertion status and plausibility.

A cosine nearest neighbour is always *some* code, so every suggestion is judged before it is
offered as a confident one (a wrong code is worse than a missing one):

1. assertion (``assertion.py``): a negated, pending, uncertain or hypothetical finding is not
   coded. The nearest codes are still listed for a human coder, but the result abstains and
   says why. Text that mixes affirmed and other findings ("chest pain, no fever") is one
   embedding of both, so its first suggestion is kept only when its description shares a
   word with an affirmed finding and none with the others;
2. plausibility (``plausibility.py``): a measured value that contradicts a suggested code's
   family (glucose 2.1 mmol/L vs hyperglycaemia) marks that code contradicted, and the result
   abstains when it is the first one;
3. confidence: ``P(the first suggestion's 3-character category is right)`` from a logistic
   (Platt) model of the top-1 cosine and its margins, fitted by the recipe on a calibration
   split of ICD-10-CM inclusion terms and shipped as ``code_confidence.json`` (sha256 in the
   manifest). Below the operating threshold there is no confident suggestion;
4. backend drift: the INT8 engines (ONNX Runtime, OpenVINO) move scores by up to a few
   hundredths, so when the top-1/top-2 margin is below ``min_margin`` the first suggestion
   could differ on the other engine and is never confident.

The category, not the exact leaf code, is what the probability is about: exact-code top-1 is
right about half the time even for the highest scores (the card gives both precisions).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ...errors import ManifestError
from ...manifest import Manifest, parse_section
from . import assertion, plausibility

__all__ = [
    "CONFIDENCE_SCHEMA",
    "CodeConfidence",
    "Features",
    "Judgement",
    "features",
    "judge",
    "load_confidence",
]

CONFIDENCE_SCHEMA = "edgemed.code-confidence/1"
FEATURE_NAMES = ("top1", "margin", "category_margin")


@dataclass(frozen=True, kw_only=True)
class Features:
    top1: float  # cosine of the first suggestion
    margin: float  # top1 - top2
    category_margin: float  # top1 - best suggestion of another category (or top1 - last)

    def vector(self) -> tuple[float, ...]:
        return (self.top1, self.margin, self.category_margin)


def features(codes: Sequence[str], scores: Sequence[float]) -> Features:
    """Features of one ranked top-k list (scores descending)."""
    if not scores:
        raise ValueError("features need at least one suggestion")
    top1 = float(scores[0])
    second = float(scores[1]) if len(scores) > 1 else float(scores[0])
    category = codes[0][:3]
    other = next((float(s) for c, s in zip(codes, scores, strict=True) if c[:3] != category), None)
    floor = float(scores[-1]) if other is None else other
    return Features(top1=top1, margin=top1 - second, category_margin=top1 - floor)


@dataclass(frozen=True, kw_only=True)
class CodeConfidence:
    """The bundle's ``code_confidence.json``: a Platt model and the operating point."""

    schema: str
    target: Literal["category"]
    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    threshold: float  # probability at or above which a suggestion may be confident
    min_margin: float  # top1 - top2 below this: the other INT8 engine may rank differently
    top_k: int  # the ranked list length the features were computed on
    fitted_on: str

    def probability(self, f: Features) -> float:
        z = self.intercept + sum(w * x for w, x in zip(self.weights, f.vector(), strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def load_confidence(manifest: Manifest, top_k: int) -> CodeConfidence | None:
    """The calibration the bundle ships (``code_confidence`` artifact), checked, or None."""
    if not manifest.has("code_confidence"):
        return None
    path = manifest.path("code_confidence")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: cannot read the code confidence: {exc}") from exc
    if isinstance(raw, dict):
        raw = {
            **raw,
            **{k: tuple(raw[k]) for k in ("features", "weights") if isinstance(raw.get(k), list)},
        }
    conf = parse_section(CodeConfidence, raw, str(path))
    problems = []
    if conf.schema != CONFIDENCE_SCHEMA:
        problems.append(f"schema {conf.schema!r} is not {CONFIDENCE_SCHEMA!r}")
    if conf.features != FEATURE_NAMES or len(conf.weights) != len(FEATURE_NAMES):
        problems.append(f"features must be {list(FEATURE_NAMES)} with one weight each")
    if not all(math.isfinite(w) for w in (*conf.weights, conf.intercept)):
        problems.append("weights must be finite")
    elif conf.weights[0] <= 0:
        problems.append("the top-1 cosine weight must be > 0 (confidence rises with the score)")
    if not (0.0 < conf.threshold < 1.0 and 0.0 <= conf.min_margin < 1.0):
        problems.append("need 0 < threshold < 1 and 0 <= min_margin < 1")
    if conf.top_k != top_k:
        problems.append(f"fitted on top-{conf.top_k} lists, the model serves top-{top_k}")
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return conf


Assertion = assertion.Status | Literal["mixed"]


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """What the result says about its first suggestion."""

    confidence: float | None
    confident: bool
    assertion: Assertion
    reason: str | None  # why there is no confident suggestion (None when there is one)
    contradicted: tuple[str | None, ...]  # per suggestion: why a measurement contradicts it


def judge(
    text: str,
    codes: Sequence[str],
    descriptions: Sequence[str],
    scores: Sequence[float],
    calibration: CodeConfidence | None,
) -> Judgement:
    """Judge one ranked suggestion list for ``text`` (see the module docstring for the rules)."""
    spans = assertion.analyse(text)
    status = assertion.overall(spans)
    found = plausibility.measurements(text)
    contradicted = tuple(plausibility.contradiction(code, found) for code in codes)
    confidence = None
    if calibration is not None and codes:
        confidence = calibration.probability(features(codes, scores))
    reason = _reason(
        text, spans, status, descriptions, contradicted, scores, confidence, calibration
    )
    return Judgement(
        confidence=confidence,
        confident=reason is None,
        assertion=status,
        reason=reason,
        contradicted=contradicted,
    )


def _reason(
    text: str,
    spans: tuple[assertion.AssertionSpan, ...],
    status: Assertion,
    descriptions: Sequence[str],
    contradicted: tuple[str | None, ...],
    scores: Sequence[float],
    confidence: float | None,
    calibration: CodeConfidence | None,
) -> str | None:
    """The first rule that withholds a confident suggestion, in the order of the docstring."""
    if not descriptions:
        return "no label set"
    if status not in ("present", "mixed"):
        cues = sorted({s.cue for s in spans if s.cue})
        return f"{status} finding (cue: {', '.join(repr(c) for c in cues)}): not coded"
    if status == "mixed":
        why = _mixed_reason(text, spans, descriptions[0])
        if why is not None:
            return why
    if contradicted[0] is not None:
        return f"contradicted: {contradicted[0]}"
    if calibration is None or confidence is None:
        return "no calibration shipped with this model"
    if confidence < calibration.threshold:
        return f"low confidence ({confidence:.2f} < {calibration.threshold:.2f})"
    margin = float(scores[0]) - float(scores[1]) if len(scores) > 1 else 1.0
    if margin < calibration.min_margin:
        return (
            f"top-1/top-2 margin {margin:.3f} < {calibration.min_margin:.3f}: within INT8 "
            "engine drift, another backend may rank another code first"
        )
    return None


def _mixed_reason(
    text: str, spans: tuple[assertion.AssertionSpan, ...], description: str
) -> str | None:
    """None when the first suggestion's description shares a word with an affirmed finding
    and none with a negated/pending/uncertain one: then it describes what is affirmed. The
    description is read with the same rules, so a code that itself says "without aura" may
    match "migraine without aura"."""
    said = [
        assertion.content_words(description[s.start : s.end])
        for s in assertion.analyse(description)
        if s.status == "present"
    ]
    words = frozenset().union(*said) if said else frozenset()
    for span in spans:
        if span.status != "present" and assertion.shares_word(
            words, assertion.content_words(text[span.start : span.end])
        ):
            return (
                f"mixed: the first suggestion names a {span.status} finding "
                f"(cue: {span.cue!r}), not coded"
            )
    if not any(
        assertion.shares_word(words, assertion.content_words(text[s.start : s.end]))
        for s in spans
        if s.status == "present"
    ):
        return "mixed: the first suggestion names no affirmed finding of the text"
    return None
