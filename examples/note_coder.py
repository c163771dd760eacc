"""A clinical note → ICD-10-CM code suggestions with scores, on the bedside device.

What it shows: ``edgemed.load("clinical-text-minilm")`` encodes free text with the bundled
INT8 MiniLM encoder (ONNX Runtime or OpenVINO, whichever this machine serves fastest) and
searches an int8 index of the 36,343 ICD-10-CM April 2026 leaf codes with the native cosine
top-k kernel. Each suggestion carries its code, the CDC description and the cosine score; the
result's provenance says which model, backend and input produced it (the note itself is never
stored in the result, only its sha256).

These are **suggestions for a human coder**, not codes: the model card's recall@10 on the
tabular list's inclusion terms is about 68 %, and it handles negation poorly ("no chest pain"
still ranks chest-pain codes first). Not a medical device.

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
    with edgemed.load("clinical-text-minilm", backend=args.backend) as coder:
        print(f"model    {coder!r}: {coder.choice.reason}")
        for note in notes:
            print(f"\nnote     {note[:100]}{'…' if len(note) > 100 else ''}")
            for sentence in sentences(note):
                result = coder(sentence)
                assert isinstance(result, edgemed.EmbeddingResult)
                t = result.provenance.timings
                print(f"  «{sentence[:70]}»  ({t.total_ms:.1f} ms, {result.n_tokens} tokens)")
                for s in result.nearest[: args.top]:
                    print(f"    {s.code:9} {s.score:.3f}  {s.text[:80]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
