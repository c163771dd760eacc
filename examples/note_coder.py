"""A clinical note → ICD-10-CM code suggestions with scores, on the bedside device.

What it shows: ``edgemed.load("clinical-text-minilm")`` encodes free text with the bundled
INT8 MiniLM encoder (ONNX Runtime or OpenVINO, whichever this machine serves fastest) and
searches an int8 index of the 36,343 ICD-10-CM April 2026 leaf codes with the native cosine
top-k kernel. Each suggestion carries its code, the CDC description and the cosine score; the
result's provenance says which model, backend and input produced it (the note itself is never
stored in the result, only its sha256).

Each result also says whether its first suggestion is a *confident* one: ``result.suggestion``
(else None, with ``result.abstain_reason``), the calibrated ``result.confidence`` that its
3-character category is right, and how the sentence asserts its finding (``result.assertion``:
present, negated, uncertain, pending, hypothetical or mixed). Negated, pending and rule-out
findings ("no chest pain", "troponin pending", "rule out MI") are never coded, and a code that
a measured value contradicts ("glucose 2.1 mmol/L" vs hyperglycaemia) is marked ``✗``.

These are **suggestions for a human coder**, not codes: at the model card's operating point
about one affirmed phrase in eight gets a confident code. Not a medical device.

Run from the repository root::

    python examples/note_coder.py "elderly woman with new confusion and urinary frequency"
    python examples/note_coder.py --file note.txt [--top 5] [--backend openvino]
    python examples/note_coder.py            # a few built-in example notes

Each note is also split into sentences, and codes are suggested per sentence, because one
embedding of a long note blurs several problems into one vector.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import edgemed
from edgemed.io import read_text

EXAMPLE_NOTES = [
    "Productive cough with fever and crackles at the right lung base for three days.",
    "Type 2 diabetes with peripheral neuropathy; numbness in both feet.",
    "Fell at home, pain in the left hip, unable to bear weight. Known osteoporosis.",
    "Scabies on both hands. No fever. Skin scrapings sent. ?Secondary impetigo.",
    "New confusion overnight, blood glucose 2.1 mmol/L.",
]


def sentences(note: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.;!?])\s+", note) if p.strip()]
    return parts or [note.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("note", nargs="?", help="the note text (default: built-in examples)")
    parser.add_argument("--file", type=Path, help="read the note from a UTF-8 text file")
    parser.add_argument("--top", type=int, default=5, help="suggestions per sentence (<= 10)")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    notes = [read_text(args.file)] if args.file else [args.note] if args.note else EXAMPLE_NOTES
    problems: list[str] = []
    with edgemed.load("clinical-text-minilm", backend=args.backend) as coder:
        print(f"model    {coder!r}: {coder.choice.reason}")
        for note in notes:
            print(f"\nnote     {note[:100]}{'…' if len(note) > 100 else ''}")
            for sentence in sentences(note):
                result = coder(sentence)
                assert isinstance(result, edgemed.EmbeddingResult)
                problems += check(result)
                t = result.provenance.timings
                print(f"  «{sentence[:70]}»  ({t.total_ms:.1f} ms, {result.n_tokens} tokens)")
                p = "-" if result.confidence is None else f"{result.confidence:.2f}"
                if result.suggestion is not None:
                    s = result.suggestion
                    print(f"    CODE {s.code} (p {p}, {result.assertion})  {s.text[:70]}")
                else:
                    print(
                        f"    no confident code (p {p}, {result.assertion}): {result.abstain_reason}"
                    )
                for s in result.nearest[: args.top]:
                    flag = "✗" if s.contradicted else " "
                    print(f"    {flag} {s.code:9} {s.score:.3f}  {s.text[:76]}")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def check(result: edgemed.EmbeddingResult) -> list[str]:
    """The result's own promises: no code for a finding that is not affirmed, none that a
    measured value contradicts, a probability in [0, 1]."""
    problems = []
    if result.suggestion is not None and result.assertion not in ("present", "mixed"):
        problems.append(f"a {result.assertion} finding was coded {result.suggestion.code}")
    if result.suggestion is not None and result.suggestion.contradicted:
        problems.append(f"{result.suggestion.code} is contradicted yet confident")
    if result.confidence is not None and not 0.0 <= result.confidence <= 1.0:
        problems.append(f"confidence {result.confidence} is not a probability")
    return problems


if __name__ == "__main__":
    sys.exit(main())
