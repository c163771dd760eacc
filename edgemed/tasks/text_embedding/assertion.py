"""Assertion status of the findings in a clinical text: a small NegEx/ConText-style rule set.

An embedding cannot tell "chest pain" from "no chest pain" (cosine ~0.9 between them), so the
words that change what a finding *means* for coding are read explicitly, before any code is
suggested:

* negated:      "no", "denies", "without", "negative for", "free of", "ruled out", "... negative"
* uncertain:    "rule out", "r/o", "possible", "suspected", "concern for", "?", "... unlikely"
* pending:      "pending", "awaiting", "ordered", "to be done", "sent", "outstanding"
* hypothetical: "if", "in case of", "watch for", "return if"

Scope (as in NegEx): a cue *before* its finding ("no fever, chills or rigors") covers the words
after it up to the end of the sentence (``.;!`` or a line break; a colon is transparent, so
"Troponin: pending" and "Chest pain: no" read as written), a terminating word ("but",
"however", "although", "except", "apart from", ...) or the next cue, so lists after one cue stay
in its scope; a cue *after* its finding ("troponin pending", "PE?") covers the words back to
the previous comma or sentence start, which is how such shorthand is written. Cues that may
stand on either side ("pending", "possible", "ordered", "?") look forward when a finding follows
them in their clause, else backward. Pseudo-cues ("no change", "gram negative", "not only",
"without difficulty") are matched first and assert nothing. Longer cues win ("not ruled out"
is uncertain, "ruled out" negated).

The rules are deliberately few and listed here in full; they were written from the clinical
NLP literature (NegEx, ConText), not fitted to any evaluation phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AssertionSpan", "Status", "analyse", "content_words", "overall", "shares_word"]

Status = Literal["present", "negated", "uncertain", "pending", "hypothetical"]
Direction = Literal["pre", "post", "both", "around"]


@dataclass(frozen=True, kw_only=True)
class AssertionSpan:
    """A run of consecutive content words sharing one status (``start``/``end``: characters)."""

    start: int
    end: int
    status: Status
    cue: str | None  # the cue that set the status (None: present)


# (cue words, status, direction). Multi-word cues are matched on lower-cased word tokens.
_CUES: tuple[tuple[str, Status, Direction], ...] = (
    # negation
    ("no", "negated", "both"),  # "no fever"; "Fever: no"
    ("not", "negated", "pre"),
    ("nil", "negated", "both"),
    ("none", "negated", "both"),
    ("denies", "negated", "both"),
    ("denied", "negated", "both"),
    ("deny", "negated", "pre"),
    ("denying", "negated", "pre"),
    ("without", "negated", "pre"),
    ("w/o", "negated", "pre"),
    ("negative for", "negated", "pre"),
    ("neg for", "negated", "pre"),
    ("negative", "negated", "both"),  # "troponin negative", "negative D-dimer"
    ("free of", "negated", "pre"),
    ("absence of", "negated", "pre"),
    ("absent", "negated", "post"),  # "pulses absent"; "absent pulses" is a finding
    ("no evidence of", "negated", "pre"),
    ("no sign of", "negated", "pre"),
    ("no signs of", "negated", "pre"),
    ("never had", "negated", "pre"),
    ("ruled out", "negated", "both"),
    ("has been ruled out", "negated", "post"),
    ("was ruled out", "negated", "post"),
    ("excluded", "negated", "both"),
    ("resolved", "negated", "post"),
    ("unremarkable", "negated", "post"),
    # uncertainty (longer cues first in matching, so these beat "ruled out" / "not")
    ("not ruled out", "uncertain", "post"),
    ("not excluded", "uncertain", "post"),
    ("cannot be ruled out", "uncertain", "post"),
    ("cannot rule out", "uncertain", "pre"),
    ("can't rule out", "uncertain", "pre"),
    ("cannot exclude", "uncertain", "pre"),
    ("rule out", "uncertain", "pre"),
    ("rule-out", "uncertain", "pre"),
    ("to rule out", "uncertain", "pre"),
    ("ruling out", "uncertain", "pre"),
    ("r/o", "uncertain", "pre"),
    ("possible", "uncertain", "both"),
    ("possibly", "uncertain", "pre"),
    ("probable", "uncertain", "pre"),
    ("probably", "uncertain", "pre"),
    ("likely", "uncertain", "both"),
    ("unlikely", "uncertain", "both"),
    ("suspected", "uncertain", "both"),
    ("suspect", "uncertain", "pre"),
    ("suspicion of", "uncertain", "pre"),
    ("suspicious for", "uncertain", "pre"),
    ("suspicious of", "uncertain", "pre"),
    ("query", "uncertain", "both"),
    ("questionable", "uncertain", "pre"),
    ("?", "uncertain", "both"),
    ("concern for", "uncertain", "pre"),
    ("concerning for", "uncertain", "pre"),
    ("worried about", "uncertain", "pre"),
    ("consider", "uncertain", "pre"),
    ("differential", "uncertain", "pre"),
    ("ddx", "uncertain", "pre"),
    ("versus", "uncertain", "around"),  # a differential: both alternatives are uncertain
    ("vs", "uncertain", "around"),
    ("may have", "uncertain", "pre"),
    ("might have", "uncertain", "pre"),
    ("could be", "uncertain", "pre"),
    ("presumed", "uncertain", "pre"),
    ("evaluate for", "uncertain", "pre"),
    ("eval for", "uncertain", "pre"),
    ("assess for", "uncertain", "pre"),
    ("screen for", "uncertain", "pre"),
    ("not certain", "uncertain", "both"),
    # pending: a test or result not yet back, a finding not yet established
    ("pending", "pending", "both"),
    ("awaiting", "pending", "pre"),
    ("await", "pending", "pre"),
    ("awaited", "pending", "post"),
    ("to be done", "pending", "post"),
    ("to follow", "pending", "post"),
    ("to be repeated", "pending", "post"),
    ("not yet done", "pending", "post"),
    ("ordered", "pending", "both"),
    ("requested", "pending", "both"),
    ("request", "pending", "pre"),
    ("sent", "pending", "post"),
    ("sent for", "pending", "pre"),
    ("outstanding", "pending", "post"),
    ("in progress", "pending", "post"),
    ("not yet back", "pending", "post"),
    ("not back", "pending", "post"),
    ("not yet available", "pending", "post"),
    ("to check", "pending", "pre"),
    ("to obtain", "pending", "pre"),
    ("will check", "pending", "pre"),
    ("will obtain", "pending", "pre"),
    ("plan for", "pending", "pre"),
    ("scheduled for", "pending", "pre"),
    ("booked for", "pending", "pre"),
    # hypothetical
    ("if", "hypothetical", "pre"),
    ("in case of", "hypothetical", "pre"),
    ("watch for", "hypothetical", "pre"),
    ("monitor for", "hypothetical", "pre"),
    ("return if", "hypothetical", "pre"),
    ("should he develop", "hypothetical", "pre"),
    ("should she develop", "hypothetical", "pre"),
)
# Phrases that contain a cue but assert nothing about a finding.
_PSEUDO = (
    "no change",
    "no significant change",
    "no interval change",
    "no increase",
    "no longer on",
    "not only",
    "not necessarily",
    "gram negative",
    "gram-negative",
    "without difficulty",
    "if needed",
    "if required",
    "as needed",
)
# Words that end a cue's scope (besides sentence punctuation and the next cue).
_TERMINATORS = (
    "but",
    "however",
    "although",
    "though",
    "whereas",
    "except",
    "apart from",
    "aside from",
    "which",
    "still",
    "yet has",
)
# Words that state a finding is absent by themselves ("afebrile" = no fever).
_SELF_NEGATED = frozenset(
    [
        "afebrile",
        "apyrexial",
        "asymptomatic",
        "normotensive",
        "euglycaemic",
        "euglycemic",
        "pain-free",
    ]
)
# Words that carry no finding: a clause made only of these is not evidence of anything.
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "nor",
        "with",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "he",
        "she",
        "they",
        "his",
        "her",
        "their",
        "this",
        "that",
        "these",
        "those",
        "any",
        "some",
        "pt",
        "patient",
        "pts",
        "today",
        "yesterday",
        "overnight",
        "now",
        "currently",
        "also",
        "reports",
        "reported",
        "report",
        "states",
        "stated",
        "complains",
        "c/o",
        "presents",
        "presented",
        "noted",
        "seen",
        "found",
        "x",
        "per",
        "day",
        "days",
        "hours",
        "weeks",
        "hrs",
        "h",
        "d",
        "wk",
        "on",
        "as",
    ]
)

# ":" is not a token: "Troponin: pending" and "Fever: no" read as "troponin pending", "fever no".
_TOKEN = re.compile(r"[a-z][a-z0-9'+]*(?:[/-][a-z0-9]+)*|\d+(?:[.,]\d+)?|[?.;!,\n]")
_SENTENCE_END = frozenset(".;!\n")


@dataclass(frozen=True)
class _Cue:
    words: tuple[str, ...]
    status: Status
    direction: Direction


def _compile() -> tuple[tuple[tuple[str, ...], _Cue | None, bool], ...]:
    """Every phrase as (words, cue or None for a pseudo-cue, is_terminator), longest first."""
    rows: list[tuple[tuple[str, ...], _Cue | None, bool]] = []
    for text, status, direction in _CUES:
        words = tuple(_TOKEN.findall(text))
        rows.append((words, _Cue(words, status, direction), False))
    rows.extend((tuple(_TOKEN.findall(p)), None, False) for p in _PSEUDO)
    rows.extend((tuple(_TOKEN.findall(t)), None, True) for t in _TERMINATORS)
    return tuple(sorted(rows, key=lambda r: -len(r[0])))


_PHRASES = _compile()
_BY_FIRST: dict[str, tuple[tuple[tuple[str, ...], _Cue | None, bool], ...]] = {
    first: tuple(row for row in _PHRASES if row[0][0] == first)
    for first in {row[0][0] for row in _PHRASES}
}  # phrases by their first word: one dict lookup per token, longest phrase first


_Kind = Literal["word", "number", "comma", "end", "cue", "pseudo", "term"]


@dataclass(slots=True)
class _Tok:
    text: str
    start: int
    end: int
    kind: _Kind = "word"
    cue: _Cue | None = None
    status: Status = "present"
    cue_text: str | None = None


def _tokens(text: str) -> list[_Tok]:
    toks = []
    for m in _TOKEN.finditer(text.lower()):
        word = m.group()
        kind: Literal["word", "number", "comma", "end"] = (
            "comma" if word == "," else "end" if word in _SENTENCE_END else "word"
        )
        if word[0].isdigit():
            kind = "number"
        toks.append(_Tok(word, m.start(), m.end(), kind))
    _mark_phrases(toks)
    for tok in toks:  # "PE?" (glued to the word before) looks back; "?PE", "? PE" look forward
        if tok.text == "?" and tok.cue is not None:
            glued_back = tok.start > 0 and text[tok.start - 1].isalnum()
            direction: Direction = "post" if glued_back else "pre"
            tok.cue = _Cue(tok.cue.words, tok.cue.status, direction)
    return toks


def _mark_phrases(toks: list[_Tok]) -> None:
    i = 0
    while i < len(toks):
        for words, cue, is_term in _BY_FIRST.get(toks[i].text, ()):
            n = len(words)
            if tuple(t.text for t in toks[i : i + n]) == words:
                kind: _Kind = "cue" if cue else "term" if is_term else "pseudo"
                for t in toks[i : i + n]:
                    t.kind = kind
                toks[i].cue = cue
                toks[i].cue_text = " ".join(words)
                i += n
                break
        else:
            i += 1


_COUNT = re.compile(r"x\d")  # "x2", "x3d": counts and durations, not findings


def _is_content(tok: _Tok) -> bool:
    return (
        tok.kind == "word"
        and tok.text not in _FILLER
        and len(tok.text) > 1
        and not _COUNT.match(tok.text)
    )


def _forward_has_content(toks: list[_Tok], i: int) -> bool:
    """Whether a finding follows cue ``i`` in its clause (before a comma or sentence end)."""
    for t in toks[i + 1 :]:
        if t.kind in ("comma", "end", "term") or t.cue is not None:
            return False
        if _is_content(t):
            return True
    return False


def analyse(text: str) -> tuple[AssertionSpan, ...]:
    """The content words of ``text`` grouped into spans of one assertion status, in order."""
    toks = _tokens(text)
    for i, tok in enumerate(toks):
        cue = tok.cue
        if cue is None:
            continue
        forward = cue.direction in ("pre", "around") or (
            cue.direction == "both" and _forward_has_content(toks, i)
        )
        if forward:  # to the sentence end, a terminator or the next cue; through commas
            for t in toks[i + 1 :]:
                if t.kind in ("end", "term") or t.cue is not None:
                    break
                t.status, t.cue_text = cue.status, tok.cue_text
        if not forward or cue.direction == "around":
            # back to the previous comma, sentence end, terminator or cue
            for t in reversed(toks[:i]):
                if t.kind in ("end", "comma", "term", "cue"):
                    break
                t.status, t.cue_text = cue.status, tok.cue_text
    runs: list[list[Any]] = []  # [start, end, status, cue]: one per span, extended in place
    for tok in toks:
        if not _is_content(tok):
            continue
        if tok.text in _SELF_NEGATED:
            tok.status, tok.cue_text = "negated", tok.text
        cue_text = tok.cue_text if tok.status != "present" else None
        if runs and runs[-1][2] == tok.status and runs[-1][3] == cue_text:
            runs[-1][1] = tok.end
        else:
            runs.append([tok.start, tok.end, tok.status, cue_text])
    return tuple(AssertionSpan(start=a, end=b, status=st, cue=c) for a, b, st, c in runs)


def overall(spans: tuple[AssertionSpan, ...]) -> Status | Literal["mixed"]:
    """One status for the whole text: ``present`` when every finding is affirmed (or there is
    none), the first status when none is, ``mixed`` when affirmed and other findings share it."""
    statuses = [s.status for s in spans]
    if all(s == "present" for s in statuses):
        return "present"
    if "present" in statuses:
        return "mixed"
    return statuses[0]


_SPELLING = (("ae", "e"), ("oe", "e"))
_SUFFIXES = ("es", "s", "ic", "ia", "al", "ed", "ing", "y")


def _stem(word: str) -> str:
    for old, new in _SPELLING:  # British -> US spelling: haematuria/hematuria, oedema/edema
        word = word.replace(old, new)
    for suffix in _SUFFIXES:
        if len(word) > 5 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


# A few ward abbreviations, used only to compare a code's description with the words of a
# clause (never to change what the model embeds).
_ABBREVIATIONS = {
    "sob": "shortness breath",
    "cp": "chest pain",
    "mi": "myocardial infarction",
    "pe": "pulmonary embolism",
    "dvt": "deep vein thrombosis",
    "uti": "urinary tract infection",
    "af": "atrial fibrillation",
    "afib": "atrial fibrillation",
    "chf": "heart failure",
    "ccf": "heart failure",
    "copd": "chronic obstructive pulmonary disease",
    "htn": "hypertension",
    "dm": "diabetes",
    "t2dm": "type diabetes",
    "t1dm": "type diabetes",
    "aki": "acute kidney failure",
    "ckd": "chronic kidney disease",
    "cva": "cerebral infarction stroke",
    "tia": "transient ischemic attack",
    "n/v": "nausea vomiting",
    "abdo": "abdominal",
    "sepsis": "sepsis septicemia",
}


def content_words(text: str) -> frozenset[str]:
    """Stemmed content words of ``text`` (abbreviations expanded), for lexical comparison."""
    words: set[str] = set()
    for tok in _tokens(text):
        if _is_content(tok) or tok.text in _ABBREVIATIONS:
            for w in _ABBREVIATIONS.get(tok.text, tok.text).split():
                words.add(_stem(w))
    return frozenset(words)


def shares_word(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two stemmed word sets share a word (or one word is a >= 5-letter prefix of the
    other: "pain"/"pains", "infarct"/"infarction")."""
    for x in a:
        for y in b:
            short, long = (x, y) if len(x) <= len(y) else (y, x)
            if short == long or (len(short) >= 5 and long.startswith(short)):
                return True
    return False
