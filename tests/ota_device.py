"""A bedside device with a rollout agent, as its own process (rollout acceptance tests).

python tests/ota_device.py --root DIR --port P --fleet-url URL --device-id ID --trust FILE
                           --initial BUNDLE --log FILE [--rate R] [--bandwidth B/s] [--seed S]

Serves live tabular rows through ``OtaAgent`` at ``--rate`` results/s and submits each result
to its outbox; appends "epoch seq version serving_before serving_after" per accepted result to
--log (flushed: a SIGKILL loses nothing the log claims). Prints "READY <version>" once serving
and linked, and "PHASE <state>" at each rollout step. SIGTERM: stop taking inputs, wait until
the fleet has acknowledged everything, exit 0.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from pathlib import Path

from ota_bundles import live_row

from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.ota import OtaAgent, OtaConfig
from edgemed.sync import Outbox, Publisher
from edgemed.trust import TrustPolicy


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("--root", "--trust", "--initial", "--log"):
        ap.add_argument(name, type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fleet-url", required=True)
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--bandwidth", type=float, default=None)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = OtaConfig(
        root=args.root, fleet_url=args.fleet_url, trust=TrustPolicy.from_file(args.trust),
        initial_bundle=args.initial, threads=1, chunk_bytes=args.chunk,
        max_download_bytes_per_s=args.bandwidth,
    )  # fmt: skip
    agent = OtaAgent(config)
    agent.on_phase = lambda phase: print(f"PHASE {phase}", flush=True)
    outbox = Outbox(OutboxConfig(path=args.root / "outbox.sqlite3", device_id=args.device_id))
    sync = SyncConfig(reconnect_min_s=0.1, reconnect_max_s=0.5, heartbeat_s=5.0,
                      resend_initial_s=2.0)  # fmt: skip
    publisher = Publisher(outbox, BrokerConfig(port=args.port), sync, on_command=agent.on_command)
    agent.attach(publisher)
    rng = random.Random(args.seed)
    with agent, publisher, args.log.open("a") as log:
        while not publisher.connected:
            time.sleep(0.01)
        print(f"READY {agent.serving.manifest.version}", flush=True)
        publisher.announce()  # the rollout state recovered at start, if any
        t0, n = time.monotonic(), 0
        while not stop.is_set():
            before = agent.serving.manifest.version
            result = agent(live_row(rng))
            after = agent.serving.manifest.version
            seq = publisher.submit(result)
            log.write(f"{outbox.epoch} {seq} {result.provenance.model_version} {before} {after}\n")
            log.flush()
            n += 1
            stop.wait(max(0.0, t0 + n / args.rate - time.monotonic()))
        drained = publisher.wait_drained(60)
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
