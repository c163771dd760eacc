"""Runtime acceptance figures (issue 5), measured with `edgemed.cli.bench` in one run.

* text encoder at exactly 128 word pieces, 1,000 single calls: SDK overhead vs doing the same
  work by hand with the public stages around the backend's ``run()`` (target <= 5 % of p50),
  p99/p50 (<= 2), cold start process -> first result (<= 1.5 s) and its peak RSS;
* every bundled tabular model's batch path (64 rows): ``pipeline.batch`` vs the same rows by hand
  around one backend ``run()``, N batches (target <= 5 %).

Usage: python benchmarks/bench_runtime.py [N]   (N single calls, default 1000)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from _machine import machine_info

import edgemed
from edgemed.cli.bench import bench_model

TEXT_MODEL = "clinical-text-minilm"


def note_of_exactly(tokens: int) -> str:
    """A clinical-style note that tokenizes to exactly ``tokens`` word pieces ([CLS]/[SEP] incl.)."""
    from tokenizers import Tokenizer

    from edgemed.registry import find_model_dir

    tok = Tokenizer.from_file(str(find_model_dir(TEXT_MODEL) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    words = [
        "elderly",
        "patient",
        "admitted",
        "with",
        "worsening",
        "shortness",
        "of",
        "breath",
        "productive",
        "cough",
        "fever",
        "and",
        "pleuritic",
        "chest",
        "pain",
        "over",
        "three",
        "days",
        "on",
        "examination",
        "crackles",
        "at",
        "the",
        "right",
        "base",
    ]
    text, i = "", 0
    while len(tok.encode(text).ids) < tokens:
        text = f"{text} {words[i % len(words)]}".strip()
        i += 1
    while len(tok.encode(text).ids) > tokens:
        text = text.rsplit(" ", 1)[0]
    assert len(tok.encode(text).ids) == tokens, "could not hit the exact token count"
    return text


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    out: dict[str, Any] = {"machine": machine_info(), "targets": {}}
    text = bench_model(TEXT_MODEL, n=n, batch=16, item=note_of_exactly(128))
    out["text_seq128"] = text
    for run in text["runs"]:
        key = f"text_seq128/{run['backend']}/{run['device']}"
        single = run["single"]
        out["targets"][key] = {
            "sdk_overhead_fraction": single["sdk_overhead_fraction"],
            "sdk_overhead_ok": single["sdk_overhead_fraction"] <= 0.05,
            "p99_over_p50": single["p99_over_p50"],
            "p99_ok": single["p99_over_p50"] <= 2.0,
            "cold_start_ms": run.get("cold_start_ms"),
            "cold_start_ok": run.get("cold_start_ms", 1e9) <= 1500,
        }
    for manifest in edgemed.list_models():
        if not manifest.task.startswith("tabular"):
            continue
        # A batch of 64 takes about 1 ms here: n batches keep the 5 % target out of the noise.
        report = bench_model(manifest.id, n=max(100, n // 5), batch=64, batch_repeats=n)
        out[manifest.id] = report
        for run in report["runs"]:
            batch = run["batch"]
            out["targets"][f"{manifest.id}/batch64/{run['backend']}/{run['device']}"] = {
                "sdk_overhead_fraction": batch["sdk_overhead_fraction"],
                "sdk_overhead_ok": batch["sdk_overhead_fraction"] <= 0.05,
                "items_per_s": batch["items_per_s"],
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
