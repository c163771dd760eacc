"""The device inside the power-loss VM (tests/power_loss_vm.py): opens the outbox on its own
disk, says what it found, then commits results as fast as it can and prints each seq once
``put`` has returned (and each ``ack_through`` once applied), until the power goes.

    python tests/power_loss_guest.py DISK_DIR [COUNT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgemed.config import OutboxConfig
from edgemed.sync import Outbox

PAYLOAD = b'{"result": "' + b"x" * 2600 + b'"}'  # a text-embedding result's size


def main() -> int:
    disk = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else 10**9
    outbox = Outbox(OutboxConfig(path=disk / "outbox.db", device_id="bed-power-loss"))
    stats = outbox.stats()
    moved = 0 if outbox.recovered_from is None else 1
    print(f"OPEN next_seq={stats.next_seq} depth={stats.depth} moved={moved}", flush=True)
    for i in range(count):
        seq = outbox.put(lambda s, b, low: PAYLOAD)
        print(f"PUT {seq}", flush=True)
        if i % 40 == 39:  # acks arrive now and then: rows are deleted under power cuts too
            print(f"ACKING {seq - 20}", flush=True)
            outbox.ack_through(seq - 20)
            print(f"ACKED {seq - 20}", flush=True)
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
