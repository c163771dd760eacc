"""Per-frame latency of the monitor reader: this tree against an earlier version of edgemed.

The two versions cannot share one Python process, so each round runs one process per version,
alternating A B B A so drift hits both; each process loads ``monitor-reader`` (warm: two
unmeasured frames first) and times every screen of both shipped fixture folders. The baseline is
a ``git worktree`` of ``--baseline`` (default: the last commit with monitor-reader 1.0.0) that
reuses this tree's compiled ``edgemed/_kernels`` when ``csrc/`` did not change since, and
otherwise builds the baseline's own kernels in the worktree (g++ with setup.py's flags, a few
minutes), so each version runs with the kernels it shipped with.

Run:  python benchmarks/bench_monitor_versions.py [--baseline 38b3776] [--rounds 4] [--threads 2]
Prints JSON: per-frame p50/p90 ms per version, the p50 ratio, thread counts, CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("monitor-screens", "monitor-screens-v2")

CHILD = r"""
import json, sys, time
from pathlib import Path
import cv2
import edgemed
threads, folders = int(sys.argv[1]), sys.argv[2:]
images = [cv2.imread(str(p)) for f in folders for p in sorted(Path(f).glob("*.png"))]
with edgemed.load("monitor-reader", threads=threads) as reader:
    for img in images[:2]:
        reader(img)
    times = []
    for img in images:
        t0 = time.perf_counter()
        reader(img)
        times.append((time.perf_counter() - t0) * 1000.0)
print(json.dumps({"version": reader.manifest.version, "edgemed": edgemed.__file__, "ms": times}))
"""


def baseline_tree(rev: str, tmp: Path) -> Path:
    tree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                   check=True, capture_output=True)  # fmt: skip
    kernels = ["csrc/src", "csrc/include", "csrc/bindings"]
    diff = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", rev, "--", *kernels])
    if diff.returncode != 0:
        build_kernels(tree)
        return tree
    for so in (ROOT / "edgemed").glob("_kernels*"):
        shutil.copy(so, tree / "edgemed" / so.name)
    return tree


def build_kernels(tree: Path) -> None:
    """The baseline's own ``edgemed/_kernels`` with the flags of setup.py (-O3,
    -ffp-contract=off, C++17, pybind11's hidden visibility), compiled directly: an older
    pyproject.toml may not parse with today's setuptools."""
    import sysconfig
    from concurrent.futures import ThreadPoolExecutor

    import pybind11

    sources = sorted((tree / "csrc").glob("src/*.cpp")) + sorted(
        (tree / "csrc").glob("bindings/*.cpp")
    )
    flags = ["-O3", "-ffp-contract=off", "-std=c++17", "-fPIC", "-fvisibility=hidden",
             f"-I{tree / 'csrc' / 'include'}", f"-I{pybind11.get_include()}",
             f"-I{sysconfig.get_paths()['include']}"]  # fmt: skip
    objects = [tree / "build-kernels" / f"{src.parent.name}_{src.stem}.o" for src in sources]
    objects[0].parent.mkdir(exist_ok=True)

    def compile_one(pair: tuple[Path, Path]) -> None:
        src, obj = pair
        subprocess.run(["g++", *flags, "-c", str(src), "-o", str(obj)], check=True,
                       capture_output=True)  # fmt: skip

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(compile_one, zip(sources, objects, strict=True)))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.run(["g++", "-shared", *map(str, objects), "-o",
                    str(tree / "edgemed" / f"_kernels{suffix}")], check=True)  # fmt: skip


def run(tree: Path, threads: int) -> dict[str, object]:
    folders = [str(ROOT / "tests" / "fixtures" / f) for f in FOLDERS]
    env = {k: v for k, v in os.environ.items() if k != "EDGEMED_MODELS_PATH"}
    env["PYTHONPATH"] = str(tree)  # the tree's own edgemed and models/ folder
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), *folders], cwd=tree,
                         env=env, check=True, capture_output=True, text=True)  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="38b3776")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(args.baseline, Path(tmp))
        try:
            ms: dict[str, list[float]] = {"current": [], "baseline": []}
            versions: dict[str, object] = {}
            for r in range(args.rounds):
                order = ("current", "baseline") if r % 2 == 0 else ("baseline", "current")
                for name in order:
                    got = run(ROOT if name == "current" else base, args.threads)
                    assert str(got["edgemed"]).startswith(str(ROOT if name == "current" else base))
                    versions[name] = got["version"]
                    ms[name] += list(got["ms"])  # type: ignore[arg-type]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           capture_output=True)  # fmt: skip

    def stats(xs: list[float]) -> dict[str, float]:
        q = statistics.quantiles(xs, n=10)
        return {"p50_ms": round(statistics.median(xs), 1), "p90_ms": round(q[8], 1)}

    report = {
        "bench": "monitor-reader per-frame latency, current tree vs baseline version",
        "machine": machine_info(),
        "threads": {"onnxruntime_intra_op": args.threads, "both": True},
        "heap": "warm (two frames discarded per process)",
        "frames_per_round": len(ms["current"]) // args.rounds,
        "rounds": args.rounds,
        "baseline_rev": args.baseline,
        "versions": versions,
        "current": stats(ms["current"]),
        "baseline": stats(ms["baseline"]),
        "p50_ratio_current_over_baseline": round(
            statistics.median(ms["current"]) / statistics.median(ms["baseline"]), 3
        ),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
