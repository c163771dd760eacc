"""A bedside device as its own process, for kill tests: submit N results, log each accepted seq.

python tests/sim_device.py --outbox PATH --port P --count N --log PATH [--rate R]
Prints READY once connected; appends "seq boot_id" per accepted result to --log (flushed, so a
SIGKILL loses nothing the caller was told); exits 0 after every result is acknowledged.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig, SyncConfig
from edgemed.sync import Outbox, Publisher


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outbox", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--device-id", default="bed-d")
    args = ap.parse_args()
    model = edgemed.load("clinical-text-minilm", threads=1)
    results = [model(f"sample {i}: respiratory rate {12 + i}") for i in range(4)]
    outbox = Outbox(OutboxConfig(path=args.outbox, device_id=args.device_id))
    sync = SyncConfig(resend_initial_s=2.0, reconnect_min_s=0.1, reconnect_max_s=0.5)
    with Publisher(outbox, BrokerConfig(port=args.port), sync) as pub, args.log.open("a") as log:
        while not pub.connected:
            time.sleep(0.01)
        print("READY", flush=True)
        t0 = time.monotonic()
        for i in range(args.count):
            seq = pub.submit(results[i % len(results)])
            log.write(f"{seq} {outbox.boot_id}\n")
            log.flush()
            time.sleep(max(0.0, t0 + (i + 1) / args.rate - time.monotonic()))
        return 0 if pub.wait_drained(120) else 1


if __name__ == "__main__":
    sys.exit(main())
