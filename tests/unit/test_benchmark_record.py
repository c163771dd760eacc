"""benchmarks/record.py and benchmarks/_report: the README rendered from saved results.

The fixtures (tests/fixtures/benchmark_results) are saved results trimmed from one
``record.py --quick`` run of each script (bench_monitor_versions and check_cuda_path cannot run
here: theirs follow the JSON their code prints).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_results"

pytestmark = pytest.mark.skipif(
    not (BENCHMARKS / "record.py").exists() or not FIXTURES.is_dir(),
    reason="needs the source tree's benchmarks/ (absent where the tests run against a wheel)",
)


@pytest.fixture(scope="module")
def record() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import record as module
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results/ folder holding every fixture."""
    folder = tmp_path / "results"
    shutil.copytree(FIXTURES, folder)
    return folder


def template() -> str:
    return (BENCHMARKS / "README.in.md").read_text()


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next heading of its level."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def placeholder_keys(kind: str) -> set[str]:
    found = re.findall(r"\{\{" + kind + r":([\w,]+)\}\}", template())
    return {key for group in found for key in group.split(",")}


def test_every_benchmark_has_a_formatter_a_fixture_and_both_placeholders(record: Any) -> None:
    from _report import FORMATTERS

    keys = {b.key for b in record.BENCHES}
    assert len(keys) == len(record.BENCHES), "duplicate keys"
    assert keys == set(FORMATTERS)
    assert keys == placeholder_keys("table") == placeholder_keys("header")
    assert keys == {p.stem for p in FIXTURES.glob("*.json")}
    assert all((BENCHMARKS / f"{b.script}.py").exists() for b in record.BENCHES)


def test_every_placeholder_is_filled_with_a_table_from_the_json(record: Any, results: Path) -> None:
    from _report import FORMATTERS, render

    text = render(template(), results)
    assert "{{" not in text and "}}" not in text
    assert "Not measured" not in text and "Failed" not in text
    for key in FORMATTERS:  # each formatter alone on its fixture gives a table
        alone = render(f"{{{{header:{key}}}}}\n\n{{{{table:{key}}}}}\n", results)
        assert "|---|" in alone, key
        assert "*Measured at commit `0123456` on " in alone, key
    kernels = section(text, "Kernels against what they replace")
    assert "2026-12-06 10:47 UTC" in kernels and "AVX-512 (VNNI, VBMI)" in kernels
    assert "`python benchmarks/bench_kernels.py --heap both --rounds 1`" in kernels
    assert "ratio fresh (spread)" in kernels and "ratio warm (spread)" in kernels


def test_generated_line_first_and_quick_mode_said_at_the_top(record: Any, results: Path) -> None:
    from _report import render

    lines = render(template(), results).splitlines()
    assert "python benchmarks/record.py" in lines[0] and "do not edit" in lines[0]
    assert "Quick mode, not of record" in lines[2]
    for path in results.glob("*.json"):  # the same figures as the record: no banner
        doc = json.loads(path.read_text())
        path.write_text(json.dumps({**doc, "mode": "record"}))
    text = render(template(), results)
    assert "Quick mode, not of record" not in text  # neither the banner nor a header says it


def test_a_missing_result_says_not_measured(record: Any, results: Path) -> None:
    from _report import render

    (results / "bench_signal.json").unlink()
    (results / "bench_ward_view_eeg3000.json").unlink()
    text = render(template(), results)
    signal = section(text, "Signal kernels")
    assert "*Not measured*: no saved result for `bench_signal`" in signal
    assert "|---|" not in signal
    ward = section(text, "Ward view")
    assert "no saved result for `bench_ward_view_eeg3000`" in ward
    assert "| 3 | 54 | 378 |" in ward  # the other two wards are still shown


def test_a_failed_run_keeps_the_last_figures_and_says_so(
    record: Any, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _report import render

    monkeypatch.setattr(record, "RESULTS", results)
    before = json.loads((results / "bench_bridge.json").read_text())
    failed = {"key": "bench_bridge", "status": "failed", "mode": "record",
              "started_at": "2027-01-02T03:04:05+00:00", "error": "exit status 2: make: no cc"}  # fmt: skip
    record.save(failed)
    after = json.loads((results / "bench_bridge.json").read_text())
    assert after["result"] == before["result"] and after["last_attempt"] == failed
    (results / "bench_tabular.json").unlink()
    record.save({**failed, "key": "bench_tabular"})
    text = render(template(), results)
    bridge = section(text, "Firmware bridge")
    assert "**Failed** in the run of 2027-01-02 03:04 UTC (record mode)" in bridge
    assert "make: no cc" in bridge
    assert "The figures below are kept from 2026-12-06 10:49 UTC" in bridge
    assert "|---|" in bridge
    tabular = section(text, "Tabular pipeline against the raw runtime call")
    assert "**Failed**" in tabular and "no earlier figures: not measured" in tabular
    record.save({**failed, "status": "ok", "result": before["result"]})  # a later success
    assert "last_attempt" not in json.loads((results / "bench_bridge.json").read_text())


def test_rendering_is_deterministic(record: Any, results: Path, tmp_path: Path) -> None:
    from _report import render

    first = render(template(), results)
    assert render(template(), results) == first
    assert render(template(), shutil.copytree(results, tmp_path / "elsewhere")) == first


def test_a_bad_placeholder_is_refused(record: Any, results: Path) -> None:
    from _report import render

    with pytest.raises(ValueError, match="no formatter for bench_nothing"):
        render("{{table:bench_nothing}}", results)
    with pytest.raises(ValueError, match="unknown placeholder kind"):
        render("{{figure:bench_image}}", results)
    with pytest.raises(ValueError, match="different formatters"):
        render("{{table:bench_image,bench_signal}}", results)
    with pytest.raises(ValueError, match="unfilled placeholder"):
        render("{{table:bench image}}", results)


def test_only_selects_keys_or_scripts_and_json_is_found_after_noise(record: Any) -> None:
    assert [b.key for b in record.select("bench_image")] == ["bench_image"]
    queries = [b.key for b in record.select("bench_fleet_queries")]
    assert len(queries) == 4 and all(k.startswith("bench_fleet_queries") for k in queries)
    assert len(record.select(None)) == len(record.BENCHES)
    with pytest.raises(SystemExit, match="bench_nope"):
        record.select("bench_image,bench_nope")
    out = 'make: nothing to be done\n{"a": [1,\n 2]}\n'
    assert record.parse_json(out) == {"a": [1, 2]}
    with pytest.raises(ValueError):
        record.parse_json("no json here\n")


def test_committed_readme_is_what_render_only_makes(record: Any) -> None:
    """benchmarks/README.md cannot drift from benchmarks/results/*.json (nor from the template):
    after editing either, run ``python benchmarks/record.py --render-only``."""
    from _report import render

    expected = render(template(), BENCHMARKS / "results")
    assert (BENCHMARKS / "README.md").read_text() == expected
