"""The benchmarks of record: run them one after the other, save each one's JSON, render the README.

Each benchmark runs in its own process, never two at once (their figures must not disturb each
other), with the arguments of record below. Its JSON is saved in ``results/<key>.json`` with the
command, start time, wall time, git commit and the machine (CPU model, SIMD flags, cores, the
numeric libraries' versions), then ``README.md`` is rendered from ``README.in.md`` and every
saved result (``_report``). A benchmark whose requirements are missing here (a GPU, a service,
a module) is skipped and says why; one that fails keeps its previous result, and the README says
that this run failed and when the kept figures were measured.

Usage: python benchmarks/record.py                   the record: every benchmark this machine runs
       python benchmarks/record.py --only a,b         re-run some, keep the others' saved results
       python benchmarks/record.py --quick            each script's smallest settings (testing)
       python benchmarks/record.py --render-only      no run: README.md from results/*.json
       python benchmarks/record.py --render-only --check   exit 1 if README.md is not that
       python benchmarks/record.py --list             the benchmarks, arguments, requirements
``--only`` takes keys or script names (a script name selects all of its keys).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from _report import render  # noqa: E402
from _report.machine import describe  # noqa: E402

PG_DSN = os.environ.get("EDGEMED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SETTLE_S = 3.0  # between two benchmarks: the last one's processes and page cache settle
Need = Callable[[], "str | None"]


def exe(name: str) -> Need:
    return lambda: None if shutil.which(name) else f"needs the `{name}` executable"


def module(name: str) -> Need:
    def check() -> str | None:
        import importlib.util

        return None if importlib.util.find_spec(name) else f"needs the Python module `{name}`"

    return check


def postgres() -> str | None:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except Exception as exc:  # any reason it cannot be used is a reason to skip
        return f"needs PostgreSQL at $EDGEMED_TEST_POSTGRES ({type(exc).__name__})"
    return None


def cuda() -> str | None:
    if not shutil.which("nvidia-smi"):
        return "needs an NVIDIA GPU (no nvidia-smi)"
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return "needs onnxruntime-gpu (no CUDAExecutionProvider)"
    return None


def same_kernels(rev: str) -> Need:
    """bench_monitor_versions runs ``rev`` from a worktree of this clone (with this tree's
    kernels, or its own built there when csrc/ changed since)."""

    def check() -> str | None:
        git = ["git", "-C", str(ROOT)]
        if subprocess.run([*git, "cat-file", "-e", rev], capture_output=True).returncode:
            return f"needs the baseline commit {rev} in this clone"
        return None

    return check


@dataclass(frozen=True)
class Bench:
    key: str  # results/<key>.json and the README placeholders' name
    script: str  # benchmarks/<script>.py
    args: tuple[str, ...] = ()  # of record (the scripts' docstrings and docs/*.md)
    quick: tuple[str, ...] = ()  # smallest settings: plumbing, not figures
    needs: tuple[Need, ...] = ()


MQTT = exe("mosquitto")
PG = postgres
Q_ARGS = ("1000000", "--runs", "10")  # docs/fleet.md: the 1,000,000 results
Q_QUICK = ("2000", "--runs", "2")
BENCHES: tuple[Bench, ...] = (
    Bench("bench_kernels", "bench_kernels", ("--heap", "both", "--rounds", "7"),
          ("--heap", "both", "--rounds", "1"), (module("rapidocr_onnxruntime"),)),
    Bench("bench_image", "bench_image", ("--heap", "both", "--rounds", "7"),
          ("--heap", "both", "--rounds", "1")),
    Bench("bench_signal", "bench_signal", ("--heap", "both", "--rounds", "7"),
          ("--heap", "both", "--rounds", "1", "--quick"), (module("sleepecg"),)),
    Bench("bench_sdk_overhead", "bench_sdk_overhead", ("--rounds", "7"), ("--rounds", "1")),
    Bench("bench_runtime", "bench_runtime", ("1000",), ("20",)),
    Bench("bench_image_classifier", "bench_image_classifier", ("2000",), ("20",),
          (module("rapidocr_onnxruntime"),)),
    Bench("bench_tabular", "bench_tabular", ("300",), ("10",), (module("openvino"),)),
    Bench("bench_text_backends", "bench_text_backends", ("200", "1", "2"), ("5", "1", "2"),
          (module("openvino"),)),
    Bench("bench_cli_latency", "bench_cli_latency", ("7",), ("1",)),
    Bench("bench_monitor_reader", "bench_monitor_reader", ("--threads", "2", "--rounds", "3"),
          ("--threads", "2", "--rounds", "1")),
    # Against monitor-reader 1.0.0 (38b3776), the version issue 19's speed target is measured
    # against ("no worse than 1.5x"), with the kernels it shipped with (built in its worktree).
    Bench("bench_monitor_versions", "bench_monitor_versions",
          ("--baseline", "38b3776", "--rounds", "4", "--threads", "2"),
          ("--baseline", "38b3776", "--rounds", "1", "--threads", "2"),
          (exe("git"), same_kernels("38b3776"))),
    Bench("bench_verify", "bench_verify", ("20",), ("2",)),
    Bench("bench_bridge", "bench_bridge", (), ("--quick",),
          (exe("make"), exe("cc"), module("pydicom"), module("serial"))),
    Bench("bench_sync_throughput", "bench_sync_throughput", ("2000", "--rounds", "5"),
          ("200", "--rounds", "1"), (MQTT,)),
    Bench("bench_fleet_ingest", "bench_fleet_ingest", ("20000",), ("1000",), (MQTT, PG)),
    Bench("bench_fleet_scaling", "bench_fleet_scaling", ("12000", "--rounds", "3"),
          ("600", "--rounds", "1"), (MQTT, PG)),
    Bench("bench_fleet_jetstream", "bench_fleet_jetstream", ("6000",), ("2000",),
          (exe("nats-server"), module("nats"), PG)),
    Bench("bench_fleet_partitions", "bench_fleet_partitions", (), ("--quick",), (PG,)),
    Bench("bench_fleet_queries", "bench_fleet_queries", Q_ARGS, Q_QUICK),
    Bench("bench_fleet_queries_no_indexes", "bench_fleet_queries",
          (*Q_ARGS, "--without-indexes"), (*Q_QUICK, "--without-indexes")),
    Bench("bench_fleet_queries_postgres", "bench_fleet_queries", (*Q_ARGS, "--postgres", PG_DSN),
          (*Q_QUICK, "--postgres", PG_DSN), (PG,)),
    Bench("bench_fleet_queries_postgres_no_indexes", "bench_fleet_queries",
          (*Q_ARGS, "--postgres", PG_DSN, "--without-indexes"),
          (*Q_QUICK, "--postgres", PG_DSN, "--without-indexes"), (PG,)),
    Bench("bench_ward_view", "bench_ward_view", ("30", "--runs", "10"), ("3", "--runs", "2"),
          (module("fastapi"),)),  # the fleet extra
    Bench("bench_ward_view_eeg3000", "bench_ward_view", ("30", "--eeg", "3000", "--runs", "10"),
          ("3", "--eeg", "30", "--runs", "2"), (module("fastapi"),)),
    Bench("bench_ward_view_eeg5400", "bench_ward_view", ("30", "--eeg", "5400", "--runs", "10"),
          ("3", "--eeg", "54", "--runs", "2"), (module("fastapi"),)),
    Bench("check_cuda_path", "check_cuda_path", ("{tmp}/cuda.json",), ("{tmp}/cuda.json",),
          (cuda,)),
)  # fmt: skip


def select(only: str | None) -> list[Bench]:
    if not only:
        return list(BENCHES)
    names = {n.strip() for n in only.split(",") if n.strip()}
    known = {b.key for b in BENCHES} | {b.script for b in BENCHES}
    if names - known:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(names - known))}")
    return [b for b in BENCHES if b.key in names or b.script in names]


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return out.stdout.strip()

    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(changed)}


def parse_json(stdout: str) -> dict[str, Any]:
    """The JSON document a script printed last (``make`` or a library may print before it)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            try:
                doc = json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                return doc
    raise ValueError("no JSON object on stdout")


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def execute(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """Run in a new session so a timeout ends the benchmark's brokers and workers too."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # edgemed CLI
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -1, out, err + f"\ntimed out after {timeout:g} s"
    except BaseException:  # Ctrl-C reaches this process only, not the benchmark's session
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    with contextlib.suppress(ProcessLookupError):  # a broker or worker it left behind
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err


def run_one(bench: Bench, quick: bool, machine: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One benchmark: the saved envelope (``status`` ok) or the attempt (failed/skipped)."""
    args = bench.quick if quick else bench.args
    shown = ["python", f"benchmarks/{bench.script}.py", *(a.replace("{tmp}", "$TMP") for a in args)]
    base = {"key": bench.key, "script": bench.script, "mode": "quick" if quick else "record",
            "command": shlex.join(shown), "started_at": now_utc(), **git_state()}  # fmt: skip
    reasons = [r for r in (need() for need in bench.needs) if r]
    if reasons:
        return {**base, "status": "skipped", "error": "; ".join(reasons)}
    with tempfile.TemporaryDirectory(prefix="edgemed-record-") as tmp:
        argv = [sys.executable, str(HERE / f"{bench.script}.py")]
        argv += [a.replace("{tmp}", tmp) for a in args]
        load0, t0 = os.getloadavg(), time.perf_counter()
        code, out, err = execute(argv, timeout)
        wall, load1 = time.perf_counter() - t0, os.getloadavg()
    timing = {"wall_s": round(wall, 1),
              "load_average": {"start": [round(x, 2) for x in load0],
                               "end": [round(x, 2) for x in load1]}}  # fmt: skip
    try:
        if code != 0:
            raise ValueError(f"exit status {code}")
        result = parse_json(out)
    except ValueError as exc:
        tail = [line for line in err.strip().splitlines() if line.strip()][-1:] or [""]
        return {**base, **timing, "status": "failed", "error": f"{exc}: {tail[0][-300:]}"}
    return {**base, **timing, "status": "ok", "machine": machine, "result": result}


def save(outcome: dict[str, Any]) -> None:
    """A success replaces the file; a failure or a skip keeps the last result beside it."""
    path = RESULTS / f"{outcome['key']}.json"
    if outcome["status"] == "ok":
        doc = outcome
    else:
        doc = json.loads(path.read_text()) if path.exists() else {"key": outcome["key"]}
        doc["last_attempt"] = outcome
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def write_readme(check: bool) -> int:
    text = render((HERE / "README.in.md").read_text(), RESULTS)
    readme = HERE / "README.md"
    if check:
        if readme.read_text() != text:
            print("benchmarks/README.md differs from results/: run record.py --render-only")
            return 1
        return 0
    readme.write_text(text)
    return 0


def list_benches() -> None:
    for b in BENCHES:
        reasons = [r for r in (need() for need in b.needs) if r]
        state = f"skip: {'; '.join(reasons)}" if reasons else "runs here"
        print(f"{b.key}: {b.script}.py {shlex.join(b.args)}  [quick: {shlex.join(b.quick)}]"
              f"  ({state})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated keys or script names")
    parser.add_argument("--quick", action="store_true", help="smallest settings, not of record")
    parser.add_argument("--render-only", action="store_true", help="rebuild README.md only")
    parser.add_argument("--check", action="store_true", help="with --render-only: compare")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--timeout", type=float, help="seconds per script (3600; quick 900)")
    args = parser.parse_args()
    if args.list:
        list_benches()
        return 0
    if not args.render_only:
        RESULTS.mkdir(exist_ok=True)
        machine, timeout = describe(), args.timeout or (900.0 if args.quick else 3600.0)
        chosen = select(args.only)
        for i, bench in enumerate(chosen):
            if i:
                time.sleep(SETTLE_S)
            print(f"[{i + 1}/{len(chosen)}] {bench.key} ...", end=" ", flush=True)
            outcome = run_one(bench, args.quick, machine, timeout)
            save(outcome)
            detail = f"{outcome.get('wall_s', 0):.1f} s" if outcome["status"] == "ok" else ""
            print(outcome["status"], detail or outcome.get("error", ""), flush=True)
    return write_readme(args.check)


if __name__ == "__main__":
    sys.exit(main())
