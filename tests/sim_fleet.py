"""Many bedside devices in one process, each a real Publisher with its own outbox and client.

python tests/sim_fleet.py --port P --workdir DIR --devices 200 --per-device 100 [--rate 1000]

Prints READY once every device is connected, submits round-robin at --rate results/s in total,
then waits until every outbox is drained (all results acknowledged by the fleet) and prints
one JSON line: {"accepted": N, "drained": bool, "seconds": s}.
Exits 0 only if every device drained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.sync import Outbox, Publisher


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--per-device", type=int, default=100)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--drain-timeout", type=float, default=180.0)
    args = ap.parse_args()
    with edgemed.load("clinical-text-minilm", threads=1) as model:
        results = [model(f"ward round note {i}: observations stable") for i in range(4)]
    # Resends after 3 s: a killed ingest worker's share comes back from the devices.
    sync = SyncConfig(
        inflight_window=32, resend_initial_s=3.0, resend_max_s=6.0,
        reconnect_min_s=0.2, reconnect_max_s=2.0,
    )  # fmt: skip
    broker = BrokerConfig(port=args.port)
    with ExitStack() as stack:
        pubs = []
        for d in range(args.devices):
            device_id = f"sim-{d:04d}"
            outbox = Outbox(
                OutboxConfig(path=args.workdir / f"{device_id}.db", device_id=device_id)
            )
            stack.callback(outbox.close)
            pubs.append(stack.enter_context(Publisher(outbox, broker, sync, models=["sim@1"])))
        deadline = time.monotonic() + 60
        while not all(p.connected for p in pubs):
            if time.monotonic() > deadline:
                print("devices could not connect", file=sys.stderr)
                return 1
            time.sleep(0.05)
        print("READY", flush=True)
        t0 = time.monotonic()
        n = 0
        for _ in range(args.per_device):
            for pub in pubs:
                pub.submit(results[n % len(results)])
                n += 1
                time.sleep(max(0.0, t0 + n / args.rate - time.monotonic()))
        drained = all(
            p.wait_drained(max(1.0, t0 + args.drain_timeout - time.monotonic())) for p in pubs
        )
        seconds = time.monotonic() - t0
    summary = {"accepted": n, "drained": drained, "seconds": round(seconds, 2)}
    print(json.dumps(summary), flush=True)
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
