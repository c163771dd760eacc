"""A camera on a bedside monitor → vital signs and NEWS2 → the fleet, end to end (the Jetson scenario).

What it shows: frames of a patient-monitor screen, from a camera or a video/stream
(``edgemed.io.frames``) or a folder of screen images, read by ``edgemed.load("monitor-reader")``
(PP-OCRv4 text detection + recognition, label/value pairing): heart rate, SpO2, NIBP, respiration
rate and temperature, each None when not read with certainty, and NEWS2. The log says which
backend ``edgemed.load`` chose and why (``pipeline.choice``): TensorRT on a Jetson with
JetPack's onnxruntime-gpu, the CPU here. Every reading is submitted through a durable
``edgemed.sync.Publisher`` (its own SQLite outbox) to a fleet started in this process
(``edgemed.fleet.local.LocalFleet``: embedded MQTT broker, ingest, REST API); one log line per
frame gives the values, NEWS2, latency and outbox seq.

NEWS2 needs consciousness (ACVPU) and air/oxygen, which no monitor screen shows. Given both
(``--consciousness A --room-air``, or ``--on-oxygen``) and all five vitals read, the reading
carries the full NEWS2 and its band. Otherwise it carries only the scores of the parameters
that are known, logged as ``partial NEWS2 >=N (k of 7 parameters)``: a lower bound, never a
NEWS2. Nothing is assumed for the caller.

Frames where nothing was read (camera knocked off the screen, screen dark, glare) are logged
as ``no vitals read`` and **still submitted**: a reading with no vitals is a fact worth
recording. It shows the fleet that the device was up and looking, so a gap in the charted
values can be told apart from a device that was off or a result that was lost, and it keeps
the texts the reader did see for review. It costs one small row; nothing is ever guessed.

At the end the example reads the fleet's REST API and checks that every submitted reading was
stored exactly once (same seqs, result bodies and input sha256 as on the device) and that the
outbox is empty; it prints ``fleet check OK`` and exits 0, or exits 1. With a folder that has
the renderer's ``labels.json``, it also prints how many fields match the ground truth.

Input: by default the 16 screens in ``tests/fixtures/monitor-screens/`` (the model card's
evaluation subset; needs a repository checkout). They are **rendered** by the bundle's recipe
(``models/recipes/monitor_screens.py``: drawn fonts, synthetic waveforms, simulated blur,
noise and perspective), **not photos of a real monitor**; accuracy on real photos is not
measured (``models/monitor-reader/MODEL_CARD.md``). Not a medical device: a clinician confirms
every value against the monitor; this never replaces the monitor's own alarms.

Run from the repository root (needs ``edgemed[demo,vision]``)::

    python examples/bedside_monitor/bedside_monitor.py [--frames DIR | --camera 0 | --video FILE|URL]
        [--every S] [--count N] [--consciousness A --room-air|--on-oxygen] [--broker mqtt://…]

``--every``: seconds between readings; the default is 0 for a folder (every image, as fast as
the reader runs), 1 s of video time for a video file, and 5 s of wall-clock time for a camera
or stream (frames in between are read and dropped, so each reading sees a fresh screen). A
camera or stream runs until Ctrl-C or ``--count`` readings.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

import edgemed
from edgemed import MonitorFrame
from edgemed.config import OutboxConfig
from edgemed.errors import FleetConflictError, InputError
from edgemed.fleet.local import LocalFleet
from edgemed.io import frames, read_image
from edgemed.results import MONITOR_FIELDS, MonitorReading
from edgemed.sync import Outbox, Publisher

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "tests" / "fixtures" / "monitor-screens"  # rendered by the recipe
DEVICE_ID = "icu-monitor-bed-07"
MODEL_ID = "monitor-reader"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
NEWS2_PARAMETERS = 7


@dataclass(frozen=True)
class Shot:
    """One frame to read: where it came from (for the log) and its BGR pixels."""

    name: str
    image: npt.NDArray[np.uint8]


def folder_shots(folder: Path, every: float, stop: threading.Event) -> Generator[Shot, None, None]:
    """The folder's images in name order, ``every`` seconds apart."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for i, path in enumerate(files):
        if stop.is_set() or (i and stop.wait(every)):
            return
        try:
            image = read_image(path)
        except InputError as exc:
            print(f"  skip   {path.name}: {exc}")
            continue
        yield Shot(path.name, image)


def is_live(source: int | str) -> bool:
    return isinstance(source, int) or "://" in source


def video_shots(
    source: int | str, every: float, stop: threading.Event
) -> Generator[Shot, None, None]:
    """One frame every ``every`` seconds of a camera/stream (wall clock) or of a video file
    (video time: frame index / the file's frame rate); the frames in between are dropped."""
    fps = 0.0
    if not is_live(source):
        probe = cv2.VideoCapture(str(source))
        fps = float(probe.get(cv2.CAP_PROP_FPS)) if probe.isOpened() else 0.0
        probe.release()
    due: float | None = None
    for frame in frames(source):
        if stop.is_set():
            return
        if is_live(source):
            at, when = frame.timestamp, time.strftime("%H:%M:%S", time.localtime(frame.timestamp))
        elif fps > 0:
            at = frame.index / fps
            when = f"{at:5.1f} s"
        else:  # a file that states no frame rate: every frame
            at, when = float(frame.index), "?"
            every = 0.0
        if due is not None and at < due - 1e-6:
            continue
        due = at + every
        yield Shot(f"frame {frame.index:4d} @ {when}", frame.image)


def vitals_text(r: MonitorReading) -> str:
    def show(name: str, width: int) -> str:
        v = r.value(name)
        text = "--" if v is None else (f"{v:.1f}" if name == "temperature" else f"{v:g}")
        return f"{text:>{width}}"

    if all(v is None for v in r.fields.values()):
        return f"no vitals read ({len(r.texts)} text box(es))".ljust(53)
    return (
        f"HR {show('hr', 3)}  SpO2 {show('spo2', 3)}  "
        f"NIBP {show('nibp_systolic', 3)}/{show('nibp_diastolic', 3).strip():<3}  "
        f"RR {show('rr', 2)}  T {show('temperature', 4)}"
    )


def limits_and_withheld_text(r: MonitorReading) -> str:
    """Alarm limits read beside the values (never taken as values) and why a field is None."""
    limits = [
        f"{name} {lo:g}-{hi:g}"
        for name, f in r.fields.items()
        if f is not None and f.alarm_limits is not None
        for lo, hi in [f.alarm_limits]
    ]
    limits += [
        f"{name.removesuffix('_systolic')} {w.alarm_limits[0]:g}-{w.alarm_limits[1]:g}"
        for name, w in r.withheld.items()
        if w.alarm_limits is not None and name != "nibp_diastolic"
    ]
    shown = [
        f"{name.removesuffix('_systolic')} ({w.reason})"
        for name, w in r.withheld.items()
        if name != "nibp_diastolic" and w.reason != "not-shown"
    ]
    parts = []
    if limits:
        parts.append("alarm limits " + ", ".join(limits))
    if shown:
        parts.append("withheld " + ", ".join(shown))
    return "; ".join(parts)


def news2_text(r: MonitorReading) -> str:
    if r.news2 is not None:
        return f"NEWS2 {r.news2['score']:2d} {r.news2['band']}".ljust(38)
    p = r.news2_partial
    assert p is not None
    return f"partial NEWS2 >={p.score:<2} ({len(p.parameter_scores)} of {NEWS2_PARAMETERS} parameters)"  # fmt: skip


def load_truth(folder: Path) -> dict[str, dict[str, Any]]:
    """The renderer's ground truth (``labels.json``), by file name, if the folder has one."""
    labels = folder / "labels.json"
    if not labels.is_file():
        return {}
    screens = json.loads(labels.read_text(encoding="utf-8")).get("screens", [])
    return {s["file"]: {k: s.get(k) for k in MONITOR_FIELDS} for s in screens if "file" in s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--frames", type=Path, metavar="DIR",
                        help="folder of monitor-screen images (default: the rendered test screens)")  # fmt: skip
    source.add_argument("--camera", type=int, metavar="N", help="camera index (OpenCV)")
    source.add_argument("--video", metavar="FILE|URL", help="video file or rtsp:// / http:// URL")
    parser.add_argument("--every", type=float, default=None, metavar="S",
                        help="seconds between readings (default: 0 folder, 1 video, 5 camera)")  # fmt: skip
    parser.add_argument(
        "--count", type=int, default=None, metavar="N", help="stop after N readings"
    )
    parser.add_argument("--consciousness", choices=list("ACVPU"), default=None,
                        help="ACVPU, from the bedside team (needed for the full NEWS2)")  # fmt: skip
    air = parser.add_mutually_exclusive_group()
    air.add_argument("--room-air", dest="on_oxygen", action="store_false", default=None,
                     help="patient breathes air (needed for the full NEWS2)")  # fmt: skip
    air.add_argument("--on-oxygen", dest="on_oxygen", action="store_true",
                     help="patient is on supplemental oxygen")  # fmt: skip
    parser.add_argument("--broker", default=None, help="mqtt://host:port (default: embedded)")
    args = parser.parse_args()
    # The SDK's own warnings (fleet alerts, link trouble) on stderr, marked as such.
    logging.basicConfig(level=logging.WARNING, format="log      %(name)s: %(message)s")

    stream: int | str | None = None
    folder: Path | None = None
    if args.camera is not None:
        stream, every, what = args.camera, 5.0, f"camera {args.camera}"
    elif args.video is not None:
        video: str = args.video
        if not is_live(video) and not Path(video).is_file():
            parser.error(f"--video: no such file: {video}")
        stream = video
        every, what = (5.0, f"stream {video}") if is_live(video) else (1.0, f"video {video}")
    else:
        folder = args.frames or SCREENS
        if not folder.is_dir():
            parser.error(f"no folder {folder} (the default needs a repository checkout); "
                         "pass --frames DIR, --camera N or --video FILE")  # fmt: skip
        every, what = 0.0, f"folder {folder}"
        if args.frames is None:
            what += ": RENDERED screens (models/recipes/monitor_screens.py), not photos of a real monitor"  # fmt: skip
    every = every if args.every is None else args.every
    if every < 0 or (args.count is not None and args.count < 1):
        parser.error("--every must be >= 0 and --count >= 1")
    full_news2 = args.consciousness is not None and args.on_oxygen is not None

    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    with tempfile.TemporaryDirectory(prefix="edgemed-bedside-") as tmp, LocalFleet(
        args.broker, Path(tmp) / "fleet"
    ) as fleet, edgemed.load(MODEL_ID) as reader:  # fmt: skip
        choice = reader.choice
        print(f"device   {DEVICE_ID} runs {reader!r}")
        print(f"backend  {choice.backend}/{choice.device}: {choice.reason}")
        pace = (
            f"a reading every {every:g} s" if every else "every frame, as fast as the reader runs"
        )
        print(f"input    {what}; {pace}")
        if full_news2:
            air_text = "on oxygen" if args.on_oxygen else "room air"
            print(f"news2    consciousness {args.consciousness}, {air_text} (given): full NEWS2 "
                  "when all five vitals are read, else partial")  # fmt: skip
        else:
            print("news2    PARTIAL only (a lower bound, not a NEWS2): consciousness and air/oxygen "
                  "are not on a monitor screen; pass --consciousness A --room-air|--on-oxygen")  # fmt: skip
        shots = (
            folder_shots(folder, every, stop)
            if folder is not None
            else video_shots(stream if stream is not None else 0, every, stop)
        )
        outbox = Outbox(OutboxConfig(path=Path(tmp) / "outbox.sqlite3", device_id=DEVICE_ID))
        submitted: dict[int, MonitorReading] = {}
        names: dict[int, str] = {}
        started = time.monotonic()
        with Publisher(
            outbox, fleet.broker, models=[f"{MODEL_ID}@{reader.manifest.version}"]
        ) as pub:
            try:
                for shot in shots:
                    reading = reader(
                        MonitorFrame(
                            image=shot.image,
                            consciousness=args.consciousness,
                            on_oxygen=args.on_oxygen,
                        )
                    )
                    assert isinstance(reading, MonitorReading)
                    seq = pub.submit(reading)
                    submitted[seq], names[seq] = reading, shot.name
                    print(f"  {shot.name:<22}  {vitals_text(reading)}  {news2_text(reading)}  "
                          f"{reading.provenance.timings.total_ms:5.0f} ms  -> seq {seq}")  # fmt: skip
                    if extra := limits_and_withheld_text(reading):
                        print(f"  {'':<22}  {extra}")
                    if args.count is not None and len(submitted) >= args.count:
                        break
            except InputError as exc:  # e.g. a camera that cannot be opened
                print(f"input    {exc}")
            finally:
                shots.close()  # releases the camera
            drained = pub.wait_drained(30)
        elapsed = time.monotonic() - started
        depth = outbox.stats().depth
        outbox.close()

        readings = list(submitted.values())
        if not readings:
            print("input    no frame was read: nothing to submit")
        complete = sum(1 for r in readings if r.news2 is not None)
        all_five = sum(1 for r in readings if all(v is not None for v in r.fields.values()))
        empty = sum(1 for r in readings if all(v is None for v in r.fields.values()))
        print(f"readings {len(readings)}: {all_five} with every vital read, {empty} with none; "
              f"full NEWS2 on {complete}")  # fmt: skip
        truth = load_truth(folder) if folder is not None else {}
        if truth:
            tally = {"exact": 0, "unread": 0, "wrong": 0}
            for seq, r in submitted.items():
                for k, shown in truth.get(names[seq], {}).items():
                    read = r.value(k)
                    key = "exact" if read == shown else "unread" if read is None else "wrong"
                    tally[key] += 1
            print(f"truth    labels.json (rendered ground truth): {tally['exact']} of "
                  f"{sum(tally.values())} fields exact, {tally['unread']} not read, "
                  f"{tally['wrong']} wrong value(s)")  # fmt: skip

        # The fleet's view, through its REST API only.
        rows = fleet.results(device_id=DEVICE_ID)
        seqs = sorted(row["seq"] for row in rows)
        same = all(
            row["kind"] == "monitor-reading"
            and row["payload"]["result"] == json.loads(json.dumps(submitted[row["seq"]].body()))
            and row["payload"]["input"]["sha256"] == submitted[row["seq"]].provenance.input_sha256
            for row in rows
            if row["seq"] in submitted
        )
        print(f"fleet    {len(rows)} result(s) from {DEVICE_ID} after {elapsed:.1f} s; "
              f"device outbox holds {depth}")  # fmt: skip
        ok = bool(submitted) and drained and depth == 0 and seqs == sorted(submitted) and same
        if ok:
            print(
                f"fleet check OK: {len(submitted)} submitted, {len(rows)} stored, each exactly once"
            )
        else:
            print(f"fleet check FAILED: submitted seqs {sorted(submitted)}, stored {seqs}, "
                  f"bodies equal {same}, drained {drained}, outbox depth {depth}")  # fmt: skip
        return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FleetConflictError as exc:  # --broker names a broker that another fleet serves
        sys.exit(f"{sys.argv[0]}: {exc}")
