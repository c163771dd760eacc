"""Whole-process wall time of `edgemed run <text-model> "<text>"` (the <2 s acceptance figure).

Baseline: `python -c "import onnxruntime"` in the same run: the floor any ORT-based CLI pays.
Prints JSON with medians over N runs. Usage: python benchmarks/bench_cli_latency.py [N]
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time

from _machine import machine_info


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    edgemed = shutil.which("edgemed") or "edgemed"
    run = [edgemed, "run", "clinical-text-minilm", "chest pain radiating to the left arm"]
    floor = [sys.executable, "-c", "import onnxruntime"]
    runs, floors = [], []
    for _ in range(n):
        runs.append(wall(run))
        floors.append(wall(floor))
    med_run, med_floor = statistics.median(runs), statistics.median(floors)
    print(
        json.dumps(
            {
                "benchmark": "cli_latency",
                "machine": machine_info(),
                "runs": n,
                "edgemed_run_s": round(med_run, 3),
                "baseline": "python -c 'import onnxruntime'",
                "baseline_s": round(med_floor, 3),
                "ratio": round(med_run / med_floor, 2),
                "target_s": 2.0,
                "within_target": med_run < 2.0,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
