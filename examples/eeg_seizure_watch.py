"""A seizure watch on one iEEG channel → seizure probability every 20 s → fleet alerts, end to end.

What it shows: a continuous signal fed in 1 s blocks (as an amplifier driver delivers them) to
``pipeline.stream()`` of ``edgemed.load("eeg-seizure-watch")``, which windows it (300 s windows
every 20 s, from the manifest) and yields one ``SeizureProbability`` per window; every result is
submitted through a durable ``edgemed.sync.Publisher`` to a fleet started in this process
(``edgemed.fleet.local.LocalFleet``). The fleet's alert rules (``edgemed/fleet/alerts.py``)
raise a ``seizure`` alert for a result at or above the model's threshold (0.5), in the same
transaction as the result, and fold consecutive ones into one episode
(``edgemed/fleet/episodes.py``). At the end the example reads ``/api/results`` and
``/api/alerts`` and checks that every result arrived once and that each run of results above
threshold raised exactly one alert episode counting its windows; it prints ``alert check OK``
and exits 0, or exits 1. It also prints the seizure episodes
(``edgemed.tasks.eeg_seizure.postprocess.seizure_episodes``) found on the device side.

Input — **synthetic, not real EEG**: no real iEEG of >= 300 s at >= 200 Hz is available
offline. The signal is the bundle's three golden windows (``models/eeg-seizure-watch/golden/
inputs.npy``: 1/f background, a rhythmic spike-wave-like discharge, and an artifact/spike
window built by ``models/recipes/eeg_seizure_watch.py``'s ``synthetic_window``) played back to
back as one 15-minute trace (looped for longer runs); windows that straddle two golden windows
see a splice. The model card explains what the probability is and is not. Not a medical device.

Run from the repository root (needs ``edgemed[demo]``)::

    python examples/eeg_seizure_watch.py [--minutes 15] [--realtime] [--broker mqtt://…]

By default the 15-minute trace is streamed as fast as the model runs (31 windows, a few
seconds); ``--realtime`` paces the blocks at the signal's own rate (a first result after 5 min).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

import edgemed
from edgemed.config import OutboxConfig
from edgemed.errors import FleetConflictError
from edgemed.fleet.local import LocalFleet
from edgemed.results import SeizureProbability
from edgemed.sync import Outbox, Publisher
from edgemed.tasks.eeg_seizure.postprocess import seizure_episodes

DEVICE_ID = "sim-eeg-bed-02"
MODEL_ID = "eeg-seizure-watch"


def blocks(
    trace: npt.NDArray[np.float32], fs: float, minutes: float, realtime: bool
) -> Iterator[npt.NDArray[np.float32]]:
    """``minutes`` of ``trace`` (looped) in 1 s blocks, paced at ``fs`` if ``realtime``."""
    step = round(fs)
    total = round(minutes * 60 * fs)
    started = time.monotonic()
    for sent in range(0, total, step):
        at = sent % trace.size
        yield trace[at : at + min(step, total - sent)]
        if realtime:
            time.sleep(max(0.0, started + (sent + step) / fs - time.monotonic()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="signal to stream (min)")
    parser.add_argument("--realtime", action="store_true", help="pace blocks at the signal rate")
    parser.add_argument("--broker", default=None, help="mqtt://host:port (default: embedded)")
    args = parser.parse_args()
    # The SDK's own warnings (fleet alerts, link trouble) on stderr, marked as such.
    logging.basicConfig(level=logging.WARNING, format="log      %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="edgemed-eeg-") as tmp, LocalFleet(
        args.broker, Path(tmp) / "fleet"
    ) as fleet, edgemed.load(MODEL_ID) as watch:  # fmt: skip
        spec = watch.manifest.stream
        assert spec is not None
        fs = spec.sampling_rate_hz
        golden = np.load(watch.manifest.path("golden_inputs"))  # (3, 1, 150000) float32
        trace = np.ascontiguousarray(golden[:, 0, :].reshape(-1))
        print(f"device   {DEVICE_ID} runs {watch!r}")
        print(f"input    SYNTHETIC iEEG: {golden.shape[0]} golden windows back to back, "
              f"{trace.size / fs / 60:.0f} min at {fs:g} Hz; streaming {args.minutes:g} min "
              f"({spec.samples / fs:.0f} s windows every {spec.hop / fs:.0f} s)")  # fmt: skip
        outbox = Outbox(OutboxConfig(path=Path(tmp) / "outbox.sqlite3", device_id=DEVICE_ID))
        submitted: dict[int, SeizureProbability] = {}
        started = time.monotonic()
        t0 = time.time()
        with Publisher(
            outbox, fleet.broker, models=[f"{MODEL_ID}@{watch.manifest.version}"]
        ) as pub:
            for result in watch.stream(
                blocks(trace, fs, args.minutes, args.realtime), sampling_rate_hz=fs, start_time=t0
            ):
                assert isinstance(result, SeizureProbability)
                seq = pub.submit(result)
                submitted[seq] = result
                window = result.provenance.window
                assert window is not None
                at = window.start_sample / fs
                print(f"  window {at:5.0f}-{at + spec.samples / fs:4.0f} s  reports "
                      f"{at + result.segment_start_s:4.0f}-{at + result.segment_end_s:4.0f} s  "
                      f"p={result.probability:.3f}{'  SEIZURE' if result.seizure else ''}  "
                      f"{result.provenance.timings.total_ms:5.1f} ms  -> seq {seq}")  # fmt: skip
            drained = pub.wait_drained(30)
        elapsed = time.monotonic() - started
        depth = outbox.stats().depth
        outbox.close()
        for ep in seizure_episodes(submitted.values()):
            print(f"episode  {ep.start_time - t0:5.1f}-{ep.end_time - t0:5.1f} s into the stream, "
                  f"peak p={ep.peak_probability:.3f}")  # fmt: skip

        # The fleet's view, through its REST API only.
        rows = fleet.results(device_id=DEVICE_ID)
        alerts = fleet.get(f"/api/alerts?device_id={DEVICE_ID}&rule=seizure&limit=1000")
        print(f"fleet    {len(rows)} result(s) from {DEVICE_ID} in {elapsed:.1f} s; "
              f"{len(alerts)} seizure alert(s); device outbox holds {depth}")  # fmt: skip
        for alert in sorted(alerts, key=lambda a: a["seq"]):
            when = dt.datetime.fromtimestamp(alert["raised_at"]).strftime("%H:%M:%S")
            print(f"  ALERT {alert['severity']} seq {alert['seq']} at {when}: {alert['detail']}")
        # One alert per episode (fleet/episodes.py): a run of consecutive windows above the
        # threshold raises one alert, at its first window, counting every window of the run.
        runs: list[list[int]] = []
        for seq in sorted(submitted):
            if submitted[seq].seizure:
                if runs and runs[-1][-1] == seq - 1:
                    runs[-1].append(seq)
                else:
                    runs.append([seq])
        expected = [(run[0], len(run)) for run in runs]
        got = sorted((a["seq"], a["episode_count"]) for a in alerts)
        ok = (
            drained
            and depth == 0
            and sorted(row["seq"] for row in rows) == sorted(submitted)
            and got == expected
        )
        above = sum(len(run) for run in runs)
        if ok:
            print(f"alert check OK: {len(submitted)} results stored once each; the {above} above "
                  f"threshold raised {len(alerts)} alert episode(s), not {above} alerts")  # fmt: skip
        else:
            print(f"alert check FAILED: alert episodes (first seq, windows) {got}, expected "
                  f"{expected}; stored {len(rows)} of {len(submitted)}")  # fmt: skip
        return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FleetConflictError as exc:  # --broker names a broker that another fleet serves
        sys.exit(f"{sys.argv[0]}: {exc}")
