"""``edgemed bundle build | keygen | sign | verify | inspect``: bring your own model.

``build`` turns an ONNX file, a build spec and labelled data into a gated, documented bundle
(docs/bring-your-own-model.md); ``keygen`` and ``sign`` make Ed25519 keys and detached
signatures (docs/signing.md); ``verify`` checks any bundle as a device loads it, under a trust
policy if one is given; ``inspect`` prints what a bundle says about itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .args import Subparsers

__all__ = ["add_bundle_commands"]

_BUILD_HELP = """\
Build a bundle from MODEL.onnx and SPEC.json: check the graph, run FP32 on the evaluation
folder, quantise to INT8 on the calibration folder, gate INT8 against FP32, write golden
vectors, manifest.json (every sha256) and MODEL_CARD.md (measured figures filled in, what you
must add marked TO COMPLETE), then load the bundle as a device would. Nothing is written to
OUT unless all of it passed.

Folders, by task (docs/bring-your-own-model.md has every format):
  image-classification   --evaluation DIR/<label>/*.png|jpg|bmp|tif; --calibration DIR of images;
                         multi_label: DIR of images + DIR/labels.csv (image, then 0/1 per label)
  image-segmentation     --evaluation DIR/images/* with DIR/masks/<same stem>.png of class
                         indices; --calibration DIR of images
  object-detection       --evaluation DIR/images/* with DIR/boxes.csv (image,label,x1,y1,x2,y2
                         per true box, in the image's pixels) or a COCO DIR/annotations.json;
                         --calibration DIR of images
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


def _cmd_keygen(args: argparse.Namespace) -> int:
    from ..bundle import generate_key

    public = generate_key(args.out)
    print(json.dumps(public, indent=2))
    print(
        f"private key: {args.out} (keep it off devices); public key: {args.out}.pub.json",
        file=sys.stderr,
    )
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from ..bundle import sign_bundle

    sig = sign_bundle(args.dir, args.key, rollback_from=args.rollback_from)
    if args.json:
        print(json.dumps(sig.to_json(), indent=2))
        return 0
    grant = f", rollback from up to {sig.rollback_from} allowed" if sig.rollback_from else ""
    print(f"signed {sig.model_id} {sig.model_version} with key {sig.key_id}{grant}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..bundle import verify_bundle

    report = verify_bundle(args.dir, threads=args.threads, trust=args.trust)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    sig = report["signature"]
    if sig is None:
        trust = "no trust policy: signature not checked"
    elif sig["key_id"] is None:
        trust = "unsigned, allowed by the trust policy"
    else:
        trust = f"signature by trusted key {sig['key_id']} valid"
        if sig["highest_served"] is not None:
            trust += f", highest version served here {sig['highest_served']}"
    print(
        f"{report['id']} {report['version']}: {report['artifacts_verified']} artifacts "
        f"verified, golden vectors passed on {report['backend']}/{report['device']}; {trust}"
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
    signed = info["signed_by"]
    print(f"signature: key {signed} (check it: bundle verify --trust)" if signed else "unsigned")
    for key, value in sorted(info["metrics"].items()):
        print(f"  {key}: {value}")
    return 0


def add_bundle_commands(sub: Subparsers) -> None:
    bundle = sub.add_parser(
        "bundle", help="bring your own model: build | keygen | sign | verify | inspect"
    )
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
    _add_signing_commands(bundle_sub)
    for name, func, text in (
        ("verify", _cmd_verify, "check every sha256 and the golden vectors, as a device would"),
        ("inspect", _cmd_inspect, "print what a bundle says about itself (no model is run)"),
    ):
        cmd = bundle_sub.add_parser(name, help=text, description=text)
        cmd.add_argument("dir", type=Path, help="bundle folder")
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name == "verify":
            cmd.add_argument("--threads", type=int, default=None, help="runtime threads")
            cmd.add_argument(
                "--trust",
                type=Path,
                default=None,
                help="trust policy JSON: check the signature, files and anti-rollback as a "
                "device with it would (default: $EDGEMED_TRUST; docs/signing.md)",
            )
        cmd.set_defaults(func=func)


def _add_signing_commands(bundle_sub: Any) -> None:
    keygen = bundle_sub.add_parser(
        "keygen",
        help="make an Ed25519 signing key (private PEM 0600 + public .pub.json)",
        description="Write a new Ed25519 private key to KEYFILE (PEM, mode 0600, never "
        "overwritten) and its public key to KEYFILE.pub.json; print the public key (key_id, "
        "public_key) for devices' trust policies.",
    )
    keygen.add_argument("--out", type=Path, required=True, help="private key file to create")
    keygen.set_defaults(func=_cmd_keygen)
    sign = bundle_sub.add_parser(
        "sign",
        help="sign a bundle (writes DIR/signature.json)",
        description="Check DIR as a device under a trust policy would (every sha256, no "
        "unlisted file, a semantic version) and write DIR/signature.json: an Ed25519 "
        "signature over manifest.json's exact bytes, the model id and version.",
    )
    sign.add_argument("dir", type=Path, help="bundle folder")
    sign.add_argument("--key", type=Path, required=True, help="private key (bundle keygen)")
    sign.add_argument(
        "--rollback-from",
        metavar="VERSION",
        default=None,
        help="also sign a permission to serve this (older) version on devices that have "
        "served versions up to VERSION",
    )
    sign.add_argument("--json", action="store_true", help="print signature.json")
    sign.set_defaults(func=_cmd_sign)
