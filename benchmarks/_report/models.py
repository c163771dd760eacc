"""Formatters of the model and device benchmarks: SDK overhead, runtimes, backends, the CLI,
the monitor reader, bundle verification, the firmware bridge and the CUDA path."""

# ruff: noqa: RUF001  (the README's typography: multiplication sign, dashes, minus)

from __future__ import annotations

from typing import Any

from .fmt import Envelope, Lines, ms, num, pct, result, table, threads, us, verdict

TARGET = 0.05  # the issues' SDK-overhead target, a fraction of p50


def bench_sdk_overhead(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    t = r.get("threads") or {}
    rows, notes = [], []
    for c in r["results"]:
        if "sdk_overhead" not in c:  # the int8 search on its own: a figure, no baseline
            notes.append(f"{c['case']}: {us(c['search_us'])} ({num(c['index_mb'])} MB read at "
                         f"{num(c['read_gb_per_s'])} GB/s).")  # fmt: skip
            continue
        spread = f"{pct(c['sdk_overhead_min'])} – {pct(c['sdk_overhead_max'])}"
        rows.append([c["case"], us(c["sdk_us"]), us(c["by_hand_us"]),
                     f"{pct(c['sdk_overhead'])} ({spread})", verdict(c["within_5pct"])])  # fmt: skip
    first = next(c for c in r["results"] if "rounds" in c)
    lines = [
        f"Backend {r.get('backend')}, heap {r.get('heap')}, threads SDK / by hand "
        f"{threads(t, 'sdk', 'by_hand')} (int8 search {t.get('int8_search')}); overhead = 1 − by "
        f"hand / SDK, median of the paired rounds ({first['rounds']}; min – max).",
        "",
        *table(["case", "SDK p50", "by hand p50", "overhead (spread)", "≤ 5 %"], rows),
    ]
    return lines + (["", *notes] if notes else [])


def _bench_rows(model: str, report: dict[str, Any]) -> list[list[str]]:
    """One row per backend/device of an ``edgemed.cli.bench.bench_model`` report."""
    rows = []
    for run in report["runs"]:
        s, b = run["single"], run.get("batch") or {}
        batch = f"{b.get('batch')}: {ms(b.get('p50_ms'))}, {num(b.get('items_per_s'))}/s"
        rows.append([
            model, f"{run['backend']} / {run['device']}", run.get("precision", "—"),
            f"{ms(s['p50_ms'])} / {ms(s['by_hand_p50_ms'])}",
            f"{pct(s['sdk_overhead_fraction'])} {verdict(s['sdk_overhead_fraction'] <= TARGET)}",
            f"{num(s['p99_over_p50'])} {verdict(s['p99_over_p50'] <= 2.0)}",
            batch, pct(b.get("sdk_overhead_fraction")),
            ms(run.get("cold_start_ms")), num(run.get("rss_mb"), 0),
        ])  # fmt: skip
    return rows


BENCH_HEAD = ["model", "backend / device", "precision", "single p50 SDK / by hand",
              "SDK overhead (≤ 5 %)", "p99 / p50 (≤ 2)", "batch: p50, items/s", "batch overhead",
              "cold start", "peak RSS MB"]  # fmt: skip


def bench_runtime(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = _bench_rows("clinical-text-minilm, 128 word pieces", r["text_seq128"])
    for model, report in r.items():
        if isinstance(report, dict) and "runs" in report and model != "text_seq128":
            rows += _bench_rows(model, report)
    cold = [t for t in r["targets"].values() if "cold_start_ok" in t]
    met = sum(bool(t["cold_start_ok"]) for t in cold)
    calls = r["text_seq128"]["runs"][0]["single"]["calls"]
    return [
        f"`edgemed.cli.bench.bench_model`, {calls} single calls of the text model; by hand = the "
        "public stages around the backend's `run()`. Cold start target ≤ 1.5 s: met by "
        f"{met} of {len(cold)} text backends.",
        "",
        *table(BENCH_HEAD, rows),
    ]


def bench_image_classifier(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = [[row["input"], row["calls"], ms(row["sdk_p50_ms"]), ms(row["raw_run_p50_ms"]),
             ms(row["preprocess_p50_ms"]), ms(row["postprocess_p50_ms"]),
             f"{ms(row['overhead_ms'])} ({pct(row['overhead_fraction'])}) "
             f"{verdict(row['overhead_fraction'] <= TARGET)}",
             f"{num(row['total_over_raw'])}×"] for row in r["rows"]]  # fmt: skip
    return [
        f"{r.get('model')}; threads {threads(r.get('threads'), 'edgemed', 'onnxruntime_raw')} "
        f"(edgemed / raw); heap {r.get('heap')}; medians.",
        "",
        *table(["input", "calls", "SDK p50", "raw run p50", "preprocess", "postprocess",
                "overhead (≤ 5 %)", "SDK / raw"], rows),
    ]  # fmt: skip


def bench_tabular(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = [[row["model"], row["backend"], us(row["pipeline_row_us"]), us(row["raw_row_us"]),
             us(row["pipeline_overhead_row_us"]), us(row["pipeline_batch64_us"]),
             us(row["raw_batch64_us"]), us(row["pipeline_batch64_per_row_us"]),
             f"{num(row['batch64_vs_64_single_calls'])}×"] for row in r["results"]]  # fmt: skip
    return ["Medians of interleaved calls, one thread.", "",
            *table(["model", "backend", "pipeline(row)", "raw run", "difference",
                    "pipeline.batch(64)", "raw run of 64", "batch per row",
                    "batch vs 64 single calls"], rows)]  # fmt: skip


def bench_text_backends(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = [[row["threads"], row["queries"],
             f"{ms(row['onnxruntime_median_ms'])} ({ms(row['onnxruntime_p90_ms'])})",
             f"{ms(row['openvino_median_ms'])} ({ms(row['openvino_p90_ms'])})",
             num(row["ratio_ort_over_openvino"])] for row in r["results"]]  # fmt: skip
    return ["Median ms per query (p90), backends interleaved query by query.", "",
            *table(["threads", "queries", "ONNX Runtime INT8", "OpenVINO INT8", "ratio ORT / OV"],
                   rows)]  # fmt: skip


def bench_cli_latency(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    row = [f"{num(r['edgemed_run_s'])} s", f"{num(r['baseline_s'])} s", f"{num(r['ratio'])}×",
           f"≤ {num(r['target_s'])} s: {verdict(r['within_target'])}"]  # fmt: skip
    return [f"Median of {r['runs']} runs of each, alternating.", "",
            *table(["`edgemed run clinical-text-minilm \"…\"`", f"`{r['baseline']}`", "ratio",
                    "target"], [row])]  # fmt: skip


def bench_monitor_reader(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = [[name, *(ms(stages.get(k)) for k in ("preprocess", "inference", "postprocess",
                                                   "total"))]
            for name, stages in r["median_ms"].items()]  # fmt: skip
    return [f"{r['screens']} shipped screens, rounds: {r['rounds']}, {r['threads']} threads, "
            "variants interleaved screen by screen; median ms per screen.", "",
            *table(["variant", "preprocess", "detector", "postprocess + recogniser", "total"],
                   rows)]  # fmt: skip


def bench_monitor_versions(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    v = r.get("versions") or {}
    rows = [[f"{name} ({v.get(name, '?')})", ms(r[name]["p50_ms"]), ms(r[name]["p90_ms"])]
            for name in ("current", "baseline")]  # fmt: skip
    return [f"Baseline: commit {r['baseline_rev']}; {r['frames_per_round']} frames × "
            f"{r['rounds']} rounds (ABBA processes); {r['threads'].get('onnxruntime_intra_op')} "
            f"threads; heap {r.get('heap')}. p50 current / baseline: "
            f"{num(r['p50_ratio_current_over_baseline'], 3)}.", "",
            *table(["tree (model version)", "p50 per frame", "p90"], rows)]  # fmt: skip


def bench_verify(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    fresh = ", ".join(ms(t) for t in r["fresh_process_zoo_ms"])
    rows = [[p["id"], num(p["artifact_bytes"] / 1e6), ms(p["first_ms"]), ms(p["median_ms"])]
            for p in r["per_model"]]  # fmt: skip
    rows.append(["**whole zoo**", num(r["artifact_bytes"] / 1e6), f"fresh process: {fresh}",
                 f"**{ms(r['zoo_median_ms'])}** (worst {ms(r['zoo_worst_ms'])})"])  # fmt: skip
    return [f"{r['models']} models, median of {r['runs']} runs in one process (files in the page "
            f"cache); signatures alone {ms(r['signatures_only_median_ms'])}; sha256 at "
            f"{num(r['sha256_throughput_mb_s'])} MB/s. Target: {r['target']}.", "",
            *table(["model", "artifacts MB", "first check", "median"], rows)]  # fmt: skip


def bench_bridge(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = [[row["path"], num(row["samples_per_s"]), f"{num(row['x_realtime'])}×",
             verdict(row["x_realtime"] >= 20)] for row in r["results"]]  # fmt: skip
    return [f"{r['signal']}; median of the runs ({r.get('runs', 5)}); real time on the wire "
            f"{num(r['stream_bytes_per_s_realtime'])} bytes/s. Baseline: {r['baseline']}.", "",
            *table(["path", "samples/s", "× real time", "≥ 20×"], rows)]  # fmt: skip


def check_cuda_path(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows, bench = [], []
    for model, rep in r["models"].items():
        if "error" in rep:
            rows.append([model, "error: " + rep["error"].strip().splitlines()[-1], "", "", ""])
            continue
        auto = rep["auto"]
        rows.append([model, f"{auto['backend']} / {auto['device']}: {auto['reason']}",
                     ", ".join(auto["session_providers"]), num(rep["cuda_vs_cpu_max_abs_diff"], 6),
                     rep["tensorrt"]])  # fmt: skip
        bench += _bench_rows(model, rep["bench"])
    return [f"onnxruntime {r['onnxruntime']}, GPU {r['probe'].get('gpu')}; providers listed: "
            f"{', '.join(r['listed_providers'])}.", "",
            *table(["model", "device=\"auto\" chose", "session providers",
                    "CUDA vs CPU max abs diff", "device=\"tensorrt\""], rows),
            "", *table(BENCH_HEAD, bench)]  # fmt: skip


FORMATTERS = {
    "bench_sdk_overhead": bench_sdk_overhead,
    "bench_runtime": bench_runtime,
    "bench_image_classifier": bench_image_classifier,
    "bench_tabular": bench_tabular,
    "bench_text_backends": bench_text_backends,
    "bench_cli_latency": bench_cli_latency,
    "bench_monitor_reader": bench_monitor_reader,
    "bench_monitor_versions": bench_monitor_versions,
    "bench_verify": bench_verify,
    "bench_bridge": bench_bridge,
    "check_cuda_path": check_cuda_path,
}
