"""Formatters of the kernel benchmarks (bench_kernels, bench_image, bench_signal): paired rows,
one column pair per heap state, each ratio with its spread over the rounds."""

# ruff: noqa: RUF001  (the README's typography: multiplication sign, dashes, minus)

from __future__ import annotations

from typing import Any

from .fmt import Envelope, Lines, num, ratio, result, table, threads, us, verdict


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return row["kernel"], row["shape"]


def paired_rows(runs: list[dict[str, Any]], *, baseline: bool = True) -> Lines:
    """Every paired row of every heap state (``runs``, in their order) as one table: edgemed and
    baseline wall µs and the ratio baseline / edgemed (> 1: edgemed faster) with its spread."""
    heaps = [run["heap"] for run in runs]
    by_heap = [{_key(r): r for r in run["results"]} for run in runs]
    slash = " / ".join(heaps)
    head = ["kernel", "shape", *(["baseline"] if baseline else []), "threads edgemed / baseline",
            f"edgemed ({slash})", f"baseline ({slash})",
            *(f"ratio {h} (spread)" for h in heaps)]  # fmt: skip
    rows = []
    for key in by_heap[0]:
        cells = [h.get(key) for h in by_heap]
        first = cells[0] or {}
        rows.append([
            f"`{key[0]}`", key[1], *([first.get("baseline", "")] if baseline else []),
            threads(first.get("threads")),
            " / ".join(us(c["edgemed_us"]) if c else "—" for c in cells),
            " / ".join(us(c["baseline_us"]) if c else "—" for c in cells),
            *(ratio(c) if c else "—" for c in cells),
        ])  # fmt: skip
    return table(head, rows)


def rounds_note(runs: list[dict[str, Any]]) -> str:
    first = runs[0]["results"][0]
    return (
        f"Paired rounds per row: {first.get('rounds')} (ABBA calls, `_timing.paired`); heap states "
        f"{', '.join(run['heap'] for run in runs)}; ratio = baseline / edgemed wall time, median "
        "of the rounds (min–max)."
    )


def bench_kernels(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    runs = r["runs"]
    blas = ", ".join(f"{run['heap']} {run.get('blas_threads')}" for run in runs)
    lines = [rounds_note(runs) + f" BLAS threads: {blas}.", "", *paired_rows(runs)]
    below = r.get("below_1x") or []
    lines += ["", f"Ratios below 1 (`below_1x`): {'; '.join(below) if below else 'none'}."]
    recall = runs[0].get("recall")
    if recall:
        lines.append("Recall: " + ", ".join(f"{k} {v}" for k, v in recall.items()) + ".")
    return lines


def bench_image(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    runs = r["runs"]
    vbmi = (r.get("machine") or {}).get("avx512_vbmi")
    lines = [rounds_note(runs) + f" AVX-512 VBMI (the 16-pixel bilinear path): {vbmi}.", ""]
    lines += paired_rows(runs)
    bw_rows = []
    for run in runs:
        bw = run["bandwidth"]
        for row in run["results"]:
            limit = row.get("bandwidth_limit")
            if limit:
                bw_rows.append([
                    f"`{row['kernel']}`", run["heap"],
                    f"{num(bw['read_GBps'])} / {num(bw['write_GBps'])} GB/s",
                    f"{num(limit['bytes_read'] / 1e6)} MB + {num(limit['bytes_written'] / 1e6)} MB",
                    us(limit["limit_us"]), us(row["edgemed_us"]),
                    f"{num(limit['kernel_vs_limit'])}×", f"{num(limit['kernel_vs_full_frame_limit'])}×",
                ])  # fmt: skip
    lines += ["", "Against the memory bandwidth measured in the same process (target ≤ 1.5×):", ""]
    lines += table(["kernel", "heap", "read / write", "must move", "limit", "kernel",
                    "kernel / limit", "kernel / full-frame limit"], bw_rows)  # fmt: skip
    diffs = [f"{row['kernel']} {row['max_abs_diff_uint8_steps']}" for row in runs[0]["results"]
             if "max_abs_diff_uint8_steps" in row]  # fmt: skip
    lines += ["", f"Largest difference from the OpenCV chain, in uint8 steps: {', '.join(diffs)}."]
    lines += ["", *targets_table(r.get("targets") or {}, limits=True)]
    return lines


def targets_table(targets: dict[str, Any], *, limits: bool = False) -> Lines:
    head = ["target", "ratio (min)", "target ratio", "met"]
    if limits:
        head += ["kernel / bandwidth limit", "≤", "met"]
    rows = []
    for name, t in targets.items():
        row = [name, f"{num(t['ratio'])} ({num(t.get('ratio_min'))})", f"≥ {num(t['target'])}",
               verdict(t.get("met"))]  # fmt: skip
        if limits:
            row += [num(t.get("kernel_vs_limit")), num(t.get("limit_target")),
                    verdict(t.get("limit_met"))]  # fmt: skip
        rows.append(row)
    return ["Issue 28's targets (`targets`):", "", *table(head, rows)] if rows else []


def bench_signal(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    runs = r["runs"]
    cpus = ", ".join(f"{run['heap']} {run.get('cpus_usable')}" for run in runs)
    lines = [rounds_note(runs) + f" CPUs usable: {cpus}.", ""]
    lines += paired_rows(runs)
    agree = max(row.get("max_rel_diff", 0.0) for run in runs for row in run["results"])
    lines += ["", f"Agreement checked first: largest relative difference {agree:.1e}.", ""]
    lines += targets_table(r.get("targets") or {})
    return lines


FORMATTERS = {
    "bench_kernels": bench_kernels,
    "bench_image": bench_image,
    "bench_signal": bench_signal,
}
