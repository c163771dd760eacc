"""The ``edgemed`` command. Heavy modules are imported inside each command, keeping --help fast."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import InputError, IntegrityError
from ..extras import require
from .args import Subparsers, dicom_window, positive_int
from .bundle import add_bundle_commands
from .exit import EXIT_INTEGRITY, EXIT_SYNC, epilog, report
from .fleet import add_fleet_commands
from .ota import add_ota_commands

__all__ = ["main"]


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ..backends import probe
    from ..registry import list_models
    from .models import doctor_report

    report = doctor_report(probe(args.root), list_models())
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    cpu, jetson = report["cpu"], report["jetson"]
    print(f"edgemed {__version__} on Python {report['python']} ({report['machine']})")
    print(f"cpu      {cpu['model']}, {cpu['cores']} cores, {cpu['memory_gb']} GB")
    print(f"         features: {', '.join(cpu['features']) or 'none of interest'}")
    print(
        f"jetson   {jetson['model'] or 'not detected'}"
        + (f" ({jetson['l4t_release']})" if jetson["l4t_release"] else "")
    )
    print(f"npu      {'Intel NPU (/dev/accel)' if report['intel_npu'] else 'not detected'}")
    providers = ", ".join(report["onnxruntime_providers"]) or "onnxruntime not installed"
    print(f"onnxruntime providers: {providers}")
    devices = ", ".join(report["openvino_devices"]) or "openvino not installed"
    print(f"openvino devices:      {devices}")
    have = [name for name, e in report["extras"].items() if not e["missing"]]
    lack = [name for name, e in report["extras"].items() if e["missing"]]
    print(f"extras   installed: {', '.join(have) or 'none'}")
    if lack:
        print(f"         not installed: {', '.join(lack)} (pip install 'edgemed[NAME]')")
    for model in report["models"]:
        print(f"model    {model['id']}@{model['version']} ({model['task']}, {model['precision']})")
        uses = model["uses"]
        if uses:
            print(f"  uses   {uses['backend']}/{uses['device']}: {uses['reason']}")
        else:
            print("  uses   nothing: no usable backend")
        for other in model["fallbacks"]:
            print(f"  then   {other['backend']}/{other['device']}: {other['reason']}")
        for note in model["skipped"]:
            print(f"  skips  {note}")
        for extra in model["needs"]:
            print(f"  needs  pip install 'edgemed[{extra}]': it will not load without it")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from ..manifest import load_manifest, verify_artifacts
    from ..registry import find_model_dir, list_models
    from .models import model_info, model_row, print_info

    if args.json and args.action == "verify":
        return _usage("edgemed models: --json applies to list and info")
    if args.action == "list":
        rows = [model_row(m) for m in list_models()]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            print(
                f"{r['id']:24} {r['version']:8} {r['task']:16} {r['precision']:5} "
                f"{','.join(r['backends']):12} {r['summary']}"
            )
        return 0
    if args.action == "info":
        if len(args.ids) != 1:
            return _usage("usage: edgemed models info MODEL_ID [--json]")
        info = model_info(load_manifest(find_model_dir(args.ids[0]), verify=False))
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print_info(info)
        return 0
    failed = 0
    for model_id in args.ids or [m.id for m in list_models()]:
        manifest = load_manifest(find_model_dir(model_id), verify=False)
        if not _verify_model(manifest, verify_artifacts):
            failed += 1
    if failed:
        print(f"{failed} model(s) failed verification", file=sys.stderr)
    return EXIT_INTEGRITY if failed else 0


def _usage(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _verify_model(manifest: Any, verify_artifacts: Any) -> bool:
    """sha256 of every artifact, then the golden vectors on every backend this machine runs."""
    from ..backends import candidates, probe
    from ..pipeline import Pipeline, load

    try:
        verify_artifacts(manifest)
    except IntegrityError as exc:  # report it and go on with the other models
        print(f"{manifest.id}: sha256 FAIL: {exc}")
        return False
    print(f"{manifest.id}: {len(manifest.artifacts)} artifacts, sha256 ok")
    usable, _ = candidates(manifest, probe(runtimes=manifest.backends))
    ok = True
    for choice in usable:
        pipeline: Pipeline = load(
            manifest.root, backend=choice.backend, device=choice.device, verify=False, golden=False
        )
        with pipeline:
            problems = pipeline.check_golden()
        where = f"{choice.backend}/{choice.device}"
        if problems:
            ok = False
            print(f"{manifest.id}: golden vectors FAIL on {where}: " + "; ".join(problems))
        else:
            print(f"{manifest.id}: golden vectors ok on {where}")
    return ok


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..io import Signal
    from ..manifest import load_manifest
    from ..registry import find_model_dir
    from .bench import bench_model, summary, write
    from .inputs import cli_input

    item = None
    if args.input:
        manifest = load_manifest(find_model_dir(args.model), verify=False)
        item = cli_input(args.input, manifest)
        if isinstance(item, Signal):
            raise InputError("bench times one model input: pass one window, not a recording")
    report = bench_model(
        args.model,
        n=args.n,
        batch=args.batch,
        item=item.decode("utf-8", errors="strict") if isinstance(item, bytes) else item,
        backend=args.backend,
        device=args.device,
        cold=not args.no_cold_start,
        seconds=args.seconds,
        progress=None if args.quiet else sys.stderr,
    )
    if args.output:
        write(report, Path(args.output))
    if args.json:
        write(report, None)
    else:
        print(summary(report))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ..io import Signal
    from ..pipeline import load
    from .inputs import cli_input

    with load(
        args.model, backend=args.backend, device=args.device, threads=args.threads
    ) as pipeline:
        item = cli_input(
            args.input, pipeline.manifest, channel=args.channel, fs=args.fs, window=args.window
        )
        if isinstance(item, Signal):  # one JSON line per window, at the file's own rate
            picked = item if args.channel is None else item.pick(args.channel)
            windows = 0
            for result in pipeline.stream(picked, start_time=0.0):
                print(json.dumps(result.summary()))
                windows += 1
            if windows == 0:
                spec = pipeline.manifest.stream
                assert spec is not None
                raise InputError(
                    f"{args.input[1:]}: {picked.duration_s:g} s of signal is shorter than one "
                    f"model window ({spec.samples / spec.sampling_rate_hz:g} s): no result"
                )
            return 0
        result = pipeline(item)
    print(json.dumps(result.summary(), indent=2))
    return 0


def _cmd_sync_status(args: argparse.Namespace) -> int:
    import time

    from ..sync.outbox import read_status

    outbox = args.outbox
    if outbox is None:
        from ..config import load_config

        found = load_config(args.config).outbox
        if found is None:
            raise InputError(f"{args.config}: outbox: an [outbox] table is required")
        outbox = found.path
    device_id, st = read_status(outbox)
    now = time.time()
    status = {
        "device_id": device_id,
        "link": st.link_state,
        "outbox_depth": st.depth,
        "outbox_bytes": st.bytes,
        "oldest_unacked_age_s": None if st.oldest_age_s is None else round(st.oldest_age_s, 1),
        "next_seq": st.next_seq,
        "last_ack_seq": st.last_ack_seq,
        "last_ack_age_s": None if st.last_ack_at is None else round(now - st.last_ack_at, 1),
        "refused_total": st.refused_total,
    }
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for key, value in status.items():
            print(f"{key:22} {value}")
    return 0


def _cmd_bridge_listen(args: argparse.Namespace) -> int:
    from ..bridge.listen import listen

    listen(
        args.port,
        out=sys.stdout,
        baudrate=args.baud,
        seconds=args.seconds,
        start=args.start,
        waveforms=not args.no_waveforms,
        as_json=args.json,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    require("fleet", "edgemed demo")
    if args.broker is None:  # the embedded broker
        require("demo", "edgemed demo without --broker")
    from .demo import run_demo

    return EXIT_SYNC if run_demo(args.broker, args.workdir) else 0  # not every result acked


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgemed",
        description="Bedside AI SDK (not a medical device)",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgemed {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log sync/fleet activity; tracebacks"
    )
    parser.add_argument(
        "--log-json",
        action="store_true",
        default=os.environ.get("EDGEMED_LOG_FORMAT", "").lower() == "json",
        help="log one JSON object per line (also EDGEMED_LOG_FORMAT=json)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _add_model_commands(sub)
    add_fleet_commands(sub)
    add_bundle_commands(sub)
    add_ota_commands(sub)  # edgemed ota status (cli/ota.py)
    _add_device_commands(sub)
    return parser


def _add_model_commands(sub: Subparsers) -> None:
    """doctor, models, run, bench."""
    doctor = sub.add_parser(
        "doctor", help="hardware, runtimes and the backend each model would use"
    )
    doctor.add_argument("--root", default="/", help="read /proc, /dev, /etc below this folder")
    doctor.add_argument("--json", action="store_true", help="the report as one JSON object")
    doctor.set_defaults(func=_cmd_doctor)

    models = sub.add_parser("models", help="bundled models: list | info ID | verify [ID...]")
    models.add_argument("action", choices=["list", "info", "verify"])
    models.add_argument("ids", nargs="*")
    models.add_argument("--json", action="store_true", help="list/info as JSON")
    models.set_defaults(func=_cmd_models)

    run = sub.add_parser("run", help="run a model on one input and print the result")
    run.add_argument("model")
    run.add_argument(
        "input",
        help="the text itself, - for stdin, inline JSON (tabular), or @FILE: .json, an image, "
        ".dcm, or a signal (.csv .npy .npz .edf .hea); signals stream window by window",
    )
    run.add_argument("--channel", help="signal channel to use (default: all / the first)")
    run.add_argument("--fs", type=float, help="sampling rate of a .npy/.csv signal, Hz")
    run.add_argument(
        "--window",
        type=dicom_window,
        metavar="CENTER,WIDTH",
        help="display window of a .dcm image (e.g. 40,400), instead of its header's",
    )
    run.add_argument("--backend", default="auto")
    run.add_argument("--device", default="auto")
    run.add_argument("--threads", type=positive_int, default=None)
    run.set_defaults(func=_cmd_run)

    bench = sub.add_parser(
        "bench",
        help="latency p50/p90/p99, stages, throughput, cold start, RSS and SDK overhead (JSON)",
    )
    bench.add_argument("model")
    bench.add_argument(
        "--input", help="text, @FILE or - (default: the bundle's first golden input)"
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="time budget shared by the backends (default 60; progress and time left on stderr)",
    )
    bench.add_argument(
        "-n", type=positive_int, default=None, help="fixed single-item calls instead of --seconds"
    )
    bench.add_argument("--batch", type=positive_int, default=64)
    bench.add_argument("--backend", default="auto")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--no-cold-start", action="store_true")
    bench.add_argument("--json", action="store_true", help="print the whole report as JSON")
    bench.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    bench.add_argument("-o", "--output", help="also write the JSON report to this file")
    bench.set_defaults(func=_cmd_bench)


def _add_device_commands(sub: Subparsers) -> None:
    """sync status, bridge listen, demo."""
    sync = sub.add_parser("sync", help="device-side result sync")
    sync_sub = sync.add_subparsers(dest="sync_command", required=True)
    status = sync_sub.add_parser("status", help="outbox depth, oldest unacked age, last ack, link")
    where = status.add_mutually_exclusive_group(required=True)
    where.add_argument("--outbox", type=Path, help="the device's outbox file")
    where.add_argument(
        "--config", type=Path, help="the device's configuration file (its [outbox] path)"
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_sync_status)

    bridge = sub.add_parser("bridge", help="serial link to bedside sensor microcontrollers")
    bridge_sub = bridge.add_subparsers(dest="bridge_command", required=True)
    listen = bridge_sub.add_parser("listen", help="print decoded traffic and link statistics")
    listen.add_argument("port", help="serial port, pty or pyserial URL (loop://, socket://h:p)")
    listen.add_argument("--baud", type=int, default=921600)
    listen.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    listen.add_argument("--start", action="store_true", help="send START first, STOP at the end")
    listen.add_argument("--no-waveforms", action="store_true", help="hide WAVEFORM lines")
    listen.add_argument("--json", action="store_true", help="statistics as one JSON line")
    listen.set_defaults(func=_cmd_bridge_listen)

    demo = sub.add_parser("demo", help="device + fleet end to end on this machine")
    demo.add_argument(
        "--broker", default=None, help="mqtt://host:port (default: embedded loopback broker)"
    )
    demo.add_argument("--workdir", type=Path, default=None, help="keep the SQLite files here")
    demo.set_defaults(func=_cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.log_json:
        from ..log_json import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    try:
        return int(args.func(args))
    except Exception as exc:  # every error ends here: its class gives the exit status
        return report(exc, verbose=args.verbose)
