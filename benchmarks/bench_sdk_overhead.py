"""SDK overhead against the same work done by hand with the same libraries (issue 28, item 4).

Text (clinical-text-minilm, a 128-word-piece note): ``pipeline(note)`` vs tokenize (the
bundle's tokenizer.json with ``tokenizers``) + the raw ``InferenceSession.run`` + the same int8
top-10 search (``kernels.cosine_topk_int8`` over the shipped 36,343-code index);
``pipeline(TextQuery(note, nearest=False))`` vs tokenize + the raw run; and the search on its
own. Tabular (every bundled tabular model): ``pipeline(row)`` vs the feature vector built from
the same dict + the raw run; ``pipeline.batch(64 rows)`` vs 64 vectors stacked + one raw run;
``pipeline.table(64 rows)`` (columns, one provenance) vs the same, vs a quicker hand path (one
``itemgetter`` call per row, no type checks) + one raw run, and ``pipeline.table`` of a 2-D
float64 array vs its float32 cast + one raw run.

Both sides use the very session the pipeline holds (same threads, same options), one thread.
Paired, interleaved rounds (``_timing.paired``); overhead = 1 - by_hand / SDK of each round's
medians, reported as the median over rounds with its spread. What the SDK does beyond the hand
path is what the issue requires of every result: input validation and its sha256, provenance,
the output contract check (norm, ranges), NaN/inf refusal of model outputs.

Usage: python benchmarks/bench_sdk_overhead.py [--rounds N] [--backend onnxruntime|openvino]
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from _machine import machine_info
from _timing import heap_state, paired

import edgemed
from edgemed import kernels
from edgemed.registry import find_model_dir

TEXT = "clinical-text-minilm"


def raw_runner(pipe: edgemed.Pipeline) -> Callable[[dict[str, np.ndarray]], Any]:
    """The runtime's own call on the pipeline's own session / compiled model."""
    backend: Any = pipe.backend
    raw = backend.raw()
    if pipe.backend.name == "onnxruntime":
        return lambda feeds: raw.run(None, feeds)
    request = raw.create_infer_request()
    return lambda feeds: request.infer(feeds)


def overhead(
    kind: str, ours: Callable[[], object], hand: Callable[[], object], **kw: Any
) -> dict[str, Any]:
    r = paired(ours, hand, **kw)
    # paired() reports baseline / edgemed per round; overhead = 1 - that ratio
    return {
        "case": kind,
        "sdk_us": r["edgemed_us"],
        "by_hand_us": r["baseline_us"],
        "sdk_overhead": round(1 - r["ratio"], 4),
        "sdk_overhead_min": round(1 - r["ratio_max"], 4),
        "sdk_overhead_max": round(1 - r["ratio_min"], 4),
        "within_5pct": 1 - r["ratio"] <= 0.05,
        "rounds": r["rounds"],
        "calls_per_round": r["calls_per_round"],
    }


def text_cases(backend: str, rounds: int) -> list[dict[str, Any]]:
    from bench_runtime import note_of_exactly
    from tokenizers import Tokenizer

    note = note_of_exactly(128)
    model_dir = find_model_dir(TEXT)
    with edgemed.load(TEXT, backend=backend, threads=1) as pipe:
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=pipe.manifest.preprocess["max_tokens"])
        tok.no_padding()
        matrix = np.load(pipe.manifest.path("label_index_int8"))
        run = raw_runner(pipe)
        out_name = pipe.manifest.outputs[0].name

        def embed() -> np.ndarray:
            enc = tok.encode(note)
            feeds = {
                "input_ids": np.array([enc.ids], np.int64),
                "attention_mask": np.array([enc.attention_mask], np.int64),
            }
            out = run(feeds)
            return np.asarray(out[0] if isinstance(out, list) else out[out_name])

        def embed_and_search() -> object:
            return kernels.cosine_topk_int8(embed(), matrix, 10)

        unit = kernels.l2_normalize(embed())
        alone = edgemed.TextQuery(note, nearest=False)
        search = paired(
            lambda: kernels.cosine_topk_int8(unit, matrix, 10),
            lambda: kernels.cosine_topk_int8(unit, matrix, 10),
            rounds=rounds,
            calls=20,
        )
        return [
            overhead(
                "text seq128: pipeline(note) vs tokenize + run + int8 top-10",
                lambda: pipe(note),
                embed_and_search,
                rounds=rounds,
                calls=30,
            ),
            overhead(
                "text seq128: pipeline(TextQuery(note, nearest=False)) vs tokenize + run",
                lambda: pipe(alone),
                embed,
                rounds=rounds,
                calls=30,
            ),
            {
                "case": "int8 top-10 over 36,343 x 384 on its own (two threads)",
                "search_us": search["edgemed_us"],
                "index_mb": round(matrix.nbytes / 1e6, 2),
                "read_gb_per_s": round(matrix.nbytes / search["edgemed_us"] / 1e3, 2),
            },
        ]


def tabular_model(model: str, backend: str, rounds: int) -> list[dict[str, Any]]:
    with edgemed.load(model, backend=backend, threads=1) as pipe:
        golden = json.loads(pipe.manifest.path("golden_inputs").read_text())
        rows = [golden[i % len(golden)] for i in range(64)]
        names = [f["name"] for f in pipe.manifest.preprocess["features"]]
        name = pipe.manifest.inputs[0].name
        run = raw_runner(pipe)

        def one() -> object:
            return run({name: np.array([[rows[0][n] for n in names]], np.float32)})

        def batch() -> object:
            return run({name: np.array([[r[n] for n in names] for r in rows], np.float32)})

        getter = operator.itemgetter(*names)

        def batch_getter() -> object:  # a quicker hand path: one C-level call per row
            return run({name: np.array(list(map(getter, rows)), np.float32)})

        array = np.array([[r[n] for n in names] for r in rows], np.float64)

        def array_run() -> object:
            return run({name: array.astype(np.float32)})

        cases: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
            ("pipeline(row) vs vector + run", lambda: pipe(rows[0]), one, 400),
            ("pipeline.batch(64) vs 64 vectors + one run", lambda: pipe.batch(rows), batch, 60),
            (
                "pipeline.table(64 dicts) vs 64 vectors + one run",
                lambda: pipe.table(rows),
                batch,
                200,
            ),
            (
                "pipeline.table(64 dicts) vs itemgetter rows + one run",
                lambda: pipe.table(rows),
                batch_getter,
                200,
            ),
            (
                f"pipeline.table(64 x {len(names)} array) vs float32 cast + one run",
                lambda: pipe.table(array),
                array_run,
                200,
            ),
        ]
        return [
            overhead(f"{model}: {case}", ours, hand, rounds=rounds, calls=calls)
            for case, ours, hand, calls in cases
        ]


def tabular_cases(backend: str, rounds: int) -> list[dict[str, Any]]:
    out = []
    for manifest in edgemed.list_models():
        if manifest.task.startswith("tabular"):
            out += tabular_model(manifest.id, backend, rounds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(__file__))
    results = text_cases(args.backend, args.rounds) + tabular_cases(args.backend, args.rounds)
    report = {
        "benchmark": "sdk_overhead",
        "machine": machine_info(),
        "heap": heap_state(),
        "backend": args.backend,
        "threads": {"sdk": 1, "by_hand": 1, "int8_search": 2},
        "load_average": os.getloadavg(),
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
