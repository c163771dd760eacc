"""``edgemed bench`` for a person: a time budget, progress with the time left, --json."""

from __future__ import annotations

import io
import json

import pytest

from edgemed.cli.bench import MIN_BATCHES, MIN_CALLS, bench_model, summary
from edgemed.cli.commands import main


def test_time_budgeted_run_reports_progress_and_time_left() -> None:
    progress = io.StringIO()
    report = bench_model(
        "wdbc-malignancy-mlp",
        n=None,
        seconds=1.0,
        backend="onnxruntime",
        cold=False,
        batch=4,
        progress=progress,
    )
    (run,) = report["runs"]
    assert run["single"]["calls"] >= MIN_CALLS and run["batch"]["repeats"] >= MIN_BATCHES
    lines = progress.getvalue().splitlines()
    assert lines and all("s left" in line for line in lines)
    assert any("single calls" in line for line in lines)
    text = summary(report)
    assert "onnxruntime/cpu" in text and "SDK overhead" in text


def test_fixed_count_still_counts(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["-n", "25", "--batch", "2", "--backend", "onnxruntime", "--no-cold-start"]
    assert main(["bench", "wdbc-malignancy-mlp", *args, "--json", "-q"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["runs"][0]["single"]["calls"] == 25
    assert report["runs"][0]["batch"]["repeats"] == 20  # max(20, n // 5)
    assert out.err == ""  # -q: no progress
