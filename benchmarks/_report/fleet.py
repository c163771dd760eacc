"""Formatters of the sync and fleet benchmarks: durable sync, ingest, scaling, JetStream,
partitions, list queries and the ward view."""

# ruff: noqa: RUF001  (the README's typography: multiplication sign, dashes, minus)

from __future__ import annotations

from typing import Any

from .fmt import Envelope, Lines, ms, num, result, table, verdict

SYNC_PATHS = {
    "raw_5_unbatched": "raw QoS1, one result per message, MQTT 5",
    "raw_311_unbatched": "raw QoS1, one result per message, MQTT 3.1.1",
    "raw_5_32_per_message": "raw QoS1, 32 results per message (transport ceiling)",
    "durable_4_producers": "durable, `submit()`, 4 producers",
    "durable_16_producers": "durable, `submit()`, 16 producers",
    "durable_4_producers_submit_many_32": "durable, `submit_many()` of 32, 4 producers",
}


STAGES = {
    "device_encode_and_contract_us": "device: encode + output contract check (`prepare_result`)",
    "device_outbox_commit_us_submit": "device: outbox commit, `submit()` (one transaction each)",
    "device_outbox_commit_us_submit_many_32": "device: outbox commit, `submit_many()` of 32",
    "fleet_validate_us": "fleet: validate (JSON, schema, the same contract check)",
    "fleet_validate_store_commit_us_batch_32": "fleet: validate + store + commit, batches of 32",
}


def _runs(values: list[Any]) -> str:
    return " · ".join(num(v) for v in values)


def bench_sync_throughput(envs: list[Envelope]) -> Lines:
    env = envs[0]
    r = result(env)
    med, runs, ratios = (
        r["results_per_s_median"],
        r["results_per_s_runs"],
        r["ratio_to_raw_unbatched"],
    )
    target = r.get("target") or {}
    rows = []
    for key, label in SYNC_PATHS.items():
        if key in med:
            goal = f"≥ {target.get('ratio_4_producers')}" if key == "durable_4_producers" else ""
            rows.append([label, f"{num(med[key])} ({_runs(runs.get(key, []))})",
                         num(ratios.get(key), 3) if key in ratios else "", goal])  # fmt: skip
    lines = [f"{r['results_per_run']} results per run, interleaved rounds: {r['rounds']}, medians "
             f"(each round's figure in brackets); MQTT {r['mqtt_version']}; results of "
             f"{num(r['payload_bytes'])} bytes. Baseline: {r['baseline']}.", "",
             *table(["path", "results/s (runs)", "of raw unbatched", "target"], rows)]  # fmt: skip
    lat = r["submit_to_ack_latency"]
    p99_target = target.get("p99_ms_at_100_per_s")
    lines += ["", f"submit → fleet ack at a steady {num(lat['rate_per_s'])} results/s "
              f"({lat['results']} results): p50 {ms(lat['p50_ms'])}, p99 {ms(lat['p99_ms'])} "
              f"(target ≤ {p99_target} ms: {verdict(lat['p99_ms'] <= p99_target)})."]  # fmt: skip
    return [*lines, "", *_sync_cpu(env, r)]


def _sync_cpu(env: Envelope, r: dict[str, Any]) -> Lines:
    """CPU per durable result, and the ceiling and the target's budget it implies on the cores
    of the machine it ran on (the arithmetic behind the 0.7 target)."""
    cpu = r["cpu_ms_per_result_durable_4_producers"]
    total = sum(cpu.values())
    cores = (env.get("machine") or {}).get("cpus_usable") or 1
    raw = r["results_per_s_median"].get("raw_5_unbatched")
    goal = (r.get("target") or {}).get("ratio_4_producers", 0.7) * (raw or 0)
    rows = [[f"process CPU, 4 producers: {k}", f"{num(v * 1000)} µs"] for k, v in cpu.items()]
    rows.append(["**all processes, per durable result**", f"**{num(total * 1000)} µs**"])
    rows.append(
        [
            f"ceiling on {cores} cores (cores / CPU per result)",
            f"{num(cores * 1000 / total)} results/s",
        ]
    )
    if goal:
        rows.append([f"budget per result for the target ({num(goal)} results/s)",
                     f"{num(cores * 1e6 / goal)} µs"])  # fmt: skip
    rows += [[f"timed alone (thread CPU): {STAGES.get(k, k)}", f"{num(v)} µs"]
             for k, v in r["stage_cpu_us_per_result"].items()]  # fmt: skip
    shape = r.get("durable_4_producers_batching") or {}
    if shape:
        rows += [["4 producers: results per MQTT message", num(shape["results_per_message"], 2)],
                 ["4 producers: results per outbox commit (one fsync each)",
                  num(shape["results_per_commit"], 2)]]  # fmt: skip
    if "fdatasync_4kib_us_p50" in r:
        rows.append(["fdatasync of a 4 KiB append on the outbox's disk, p50",
                     f"{num(r['fdatasync_4kib_us_p50'])} µs"])  # fmt: skip
    return table(["CPU per result", ""], rows)


def bench_fleet_ingest(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    base = r["baseline"]
    rows = []
    for run in r["runs"]:
        offered = run["offered_per_s"]
        rows.append([run["store"], run["workers"], "max" if offered == "max" else f"{num(offered)}/s",
                     num(run["results"]), num(run["results_per_s"]),
                     num(run["ratio_vs_raw_subscriber"]) if offered == "max" else "—",
                     " · ".join(num(x) for x in run["commit_latency_ms_p50"]),
                     " · ".join(num(x) for x in run["commit_latency_ms_p99"])])  # fmt: skip
    return [f"Baseline: {base['name']}, median {num(base['results_per_s_median'])} results/s "
            f"(runs {_runs(base['runs'])}). Target: {r['target']}.", "",
            *table(["store", "workers", "offered", "results", "committed/s", "ratio vs baseline",
                    "receive→commit p50 ms (per worker)", "p99 ms (per worker)"], rows)]  # fmt: skip


def bench_fleet_scaling(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    c = r["conditions"]
    rows = []
    for s in r["summary"]:
        cpu = s["cpu_ms_per_result_median"]
        rows.append([s["workers"], f"{num(s['results_per_s_median'])} ({_runs(s['results_per_s_runs'])})",
                     *(num(cpu.get(k), 3) for k in ("fleet", "postgres", "broker", "loader")),
                     num(sum(cpu.values()), 3)])  # fmt: skip
    return [f"Rounds: {c['rounds']}, {c['order']}; {c['pinned']}; {c['store']}.", "",
            *table(["workers", "results/s median (runs)", "fleet CPU ms/result", "PostgreSQL",
                    "broker", "loader", "total"], rows)]  # fmt: skip


def bench_fleet_jetstream(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    rows = [[run["workers"], num(run["results"]), num(run["queued_before_start"]),
             f"{num(run['load_s_mqtt_qos1_to_one_node'])} s", f"{num(run['first_to_last_commit_s'])} s",
             num(run["results_per_s"]), num(run["fleet_cpu_ms_per_result"], 3),
             f"{num(run['wall_s_including_start'])} s"] for run in r["runs"]]  # fmt: skip
    return [f"{r['cluster']}; store {r['store']}.", "",
            *table(["fleet processes", "results", "queued first", "load (MQTT QoS1, one node)",
                    "first → last commit", "results/s", "fleet CPU ms/result",
                    "wall incl. start"], rows)]  # fmt: skip


def bench_fleet_partitions(envs: list[Envelope]) -> Lines:
    r = result(envs[0])
    part, flat = r["partitioned_results_per_s"], r["unpartitioned_results_per_s"]
    rounds = r["rounds"]
    rows = [["results partitioned by month (schema 12)", num(part), _runs(rounds["partitioned"])],
            ["unpartitioned (baseline)", num(flat), _runs(rounds["unpartitioned"])]]  # fmt: skip
    return [f"Paired rounds: {len(rounds['partitioned'])}, {num(r.get('results_per_round', 6000))} "
            f"results each; partitioned / unpartitioned: {num(part / flat, 3)}.", "",
            *table(["table", "median results/s", "rounds"], rows)]  # fmt: skip


def _store_name(r: dict[str, Any]) -> str:
    if r["store"] == "postgresql":
        return "PostgreSQL" + (", partitioned" if r.get("results_partitioned_by_month") else "")
    return "SQLite"


def bench_fleet_queries(envs: list[Envelope]) -> Lines:
    """One column pair per store: with the list indexes, without (the baseline), and the ratio."""
    stores: dict[str, dict[bool, dict[str, Any]]] = {}
    for env in envs:
        r = result(env)
        stores.setdefault(_store_name(r), {})[bool(r["list_indexes"])] = r
    head, cols = ["query (first page of 100)"], []
    for name, pair in stores.items():
        for indexed in (True, False):
            if indexed in pair:
                head.append(f"{name}{'' if indexed else ', without list indexes'}: p50 (max) ms")
                cols.append(pair[indexed]["queries"])
        if len(pair) == 2:
            head.append(f"{name}: without / with")
            cols.append({q: (pair[False]["queries"][q]["p50_ms"], pair[True]["queries"][q]["p50_ms"])
                         for q in pair[True]["queries"]})  # fmt: skip
    names = list(cols[0])
    rows = [[q, *(_query_cell(col.get(q)) for col in cols)] for q in names]
    sizes = "; ".join(f"{name}{'' if ix else ' without indexes'}: {num(r['results'])} results, "
                      f"filled in {num(r['fill_s'])} s"
                      for name, pair in stores.items() for ix, r in pair.items())  # fmt: skip
    worst = max((v["p50_ms"] for pair in stores.values() if True in pair
                 for v in pair[True]["queries"].values()), default=None)  # fmt: skip
    lines = [f"{sizes}. Slowest p50 with the indexes: {ms(worst)} (issue 25: ≤ 50 ms with "
             "1,000,000 results)." if worst is not None else sizes + ".", ""]  # fmt: skip
    return lines + table(head, rows)


def _query_cell(cell: Any) -> str:
    if cell is None:
        return "—"
    if isinstance(cell, tuple):
        without, with_ = cell
        return f"{num(without / with_)}×" if with_ else "—"
    return f"{num(cell['p50_ms'])} ({num(cell['max_ms'])})"


def bench_ward_view(envs: list[Envelope]) -> Lines:
    rows = []
    for env in envs:
        r = result(env)
        rows.append([r["beds"], num(r["eeg_windows_per_bed"]), num(r["results"]),
                     ms(r["p50_ms"]), ms(r["min_ms"]), f"{num(r['reply_bytes'] / 1000)} kB"])  # fmt: skip
    return table(
        ["beds", "EEG windows per bed", "results in the store", "p50", "min", "reply"], rows
    )


FORMATTERS = {
    "bench_sync_throughput": bench_sync_throughput,
    "bench_fleet_ingest": bench_fleet_ingest,
    "bench_fleet_scaling": bench_fleet_scaling,
    "bench_fleet_jetstream": bench_fleet_jetstream,
    "bench_fleet_partitions": bench_fleet_partitions,
    "bench_fleet_queries": bench_fleet_queries,
    "bench_fleet_queries_no_indexes": bench_fleet_queries,
    "bench_fleet_queries_postgres": bench_fleet_queries,
    "bench_fleet_queries_postgres_no_indexes": bench_fleet_queries,
    "bench_ward_view": bench_ward_view,
    "bench_ward_view_eeg3000": bench_ward_view,
    "bench_ward_view_eeg5400": bench_ward_view,
}
