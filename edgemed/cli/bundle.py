"""``edgemed bundle build | verify | inspect``: bring your own model.

``build`` turns an ONNX file, a build spec and labelled data into a gated, documented bundle
(docs/bring-your-own-model.md); ``verify`` checks any bundle as a device loads it; ``inspect``
prints what a bundle says about itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .args import Subparsers

__all__ = ["add_bundle_commands"]

_BUILD_HELP = """\
Build a bundle from MODEL.onnx and SPEC.json: check the graph, run FP32 on the evaluation
folder, quantise to INT8 on the calibration folder, gate INT8 against FP32, write golden
vectors, manifest.json (every sha256) and MODEL_CARD.md (measured figures filled in, what you
must add marked TO COMPLETE), then load the bundle as a device would. Nothing is written to
OUT unless all of it passed.

Folders, by task (docs/bring-your-own-model.md has every format):
  image-classification   --evaluation DIR/<label>/*.png|jpg|bmp|tif; --calibration DIR of images
  image-segmentation     --evaluation DIR/images/* with DIR/masks/<same stem>.png of class
                         indices; --calibration DIR of images
  signal-classification  --evaluation DIR/<label>/*.npy (channels, samples) windows at the
                         manifest's rate; --calibration DIR of such windows
  tabular-*              .csv files: every feature by name, plus label (classification) or
                         target (regression) in the evaluation folder
Calibration inputs should look like what the model will see (100-500 is typical).

Exit status 11: INT8 fell short of the gate (no bundle written; --fp32-if-gate-fails ships
FP32 instead). Exit status 10: the model, spec or folders cannot make a bundle.
"""


def _cmd_build(args: argparse.Namespace) -> int:
    from ..bundle import build_bundle, load_spec

    report = build_bundle(
        load_spec(args.spec),
        args.onnx,
        evaluation=args.evaluation,
        calibration=args.calibration,
        out=args.out,
        fp32_if_gate_fails=args.fp32_if_gate_fails,
        force=args.force,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps({"path": str(report.path), **report.metrics}, indent=2))
    else:
        print(f"built {report.path} ({report.shipped_precision})")
        print(report.gate)
        print(f"complete the sections marked TO COMPLETE in {report.path / 'MODEL_CARD.md'}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..bundle import verify_bundle

    report = verify_bundle(args.dir, threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['id']} {report['version']}: {report['artifacts_verified']} artifacts "
            f"verified, golden vectors passed on {report['backend']}/{report['device']}"
        )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ..bundle import inspect_bundle

    info = inspect_bundle(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"{info['id']} {info['version']} ({info['task']}, {info['precision']}): {info['summary']}"
    )
    print(f"licence: {info['license']}; medical device: {info['medical_device']}")
    for key, value in sorted(info["metrics"].items()):
        print(f"  {key}: {value}")
    return 0


def add_bundle_commands(sub: Subparsers) -> None:
    bundle = sub.add_parser("bundle", help="bring your own model: build | verify | inspect")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", required=True)
    build = bundle_sub.add_parser(
        "build",
        help="ONNX model + build spec + data -> gated, documented bundle",
        description=_BUILD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("spec", type=Path, help="build spec (JSON; docs/bring-your-own-model.md)")
    build.add_argument("--onnx", type=Path, required=True, help="the FP32 ONNX model")
    build.add_argument("--evaluation", type=Path, required=True, help="labelled evaluation folder")
    build.add_argument("--calibration", type=Path, help="calibration folder (static INT8)")
    build.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    build.add_argument(
        "--fp32-if-gate-fails", action="store_true", help="ship FP32 when INT8 fails the gate"
    )
    build.add_argument("--force", action="store_true", help="replace OUT if it exists")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.add_argument("--json", action="store_true", help="print the measured figures as JSON")
    build.set_defaults(func=_cmd_build)
    for name, func, text in (
        ("verify", _cmd_verify, "check every sha256 and the golden vectors, as a device would"),
        ("inspect", _cmd_inspect, "print what a bundle says about itself (no model is run)"),
    ):
        cmd = bundle_sub.add_parser(name, help=text, description=text)
        cmd.add_argument("dir", type=Path, help="bundle folder")
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name == "verify":
            cmd.add_argument("--threads", type=int, default=None, help="runtime threads")
        cmd.set_defaults(func=func)
