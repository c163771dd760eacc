"""Named points where a crash test can make this process die, aimed at the windows that matter.

Random kills rarely land between a commit and the message that announces it; these points do.
Off unless ``EDGEMED_FAILPOINTS`` is set when the process starts: ``name:N[,name:N...]`` kills
the process (SIGKILL, as a power cut would: no cleanup, no flush) the N-th time it reaches
``name``. For crash tests only: never set it on a device or fleet in service. Unset, a point
costs one dictionary truth test.

Points: ``outbox.committed`` (a device's result is durable, the caller not yet told),
``publisher.sent`` (results handed to MQTT, no ack yet), ``outbox.acked`` (a fleet ack applied:
rows deleted), ``ingest.committed`` (the fleet stored a batch, the devices' acks not yet sent),
``ingest.acked`` (acks sent; a work-queue message not yet acknowledged to its engine).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["POINTS", "hit"]

POINTS = frozenset(
    {"outbox.committed", "publisher.sent", "outbox.acked", "ingest.committed", "ingest.acked"}
)


def _armed(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, count = item.partition(":")
        if name not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(
                f"EDGEMED_FAILPOINTS: {item!r} is not <point>:<n>, points {sorted(POINTS)}"
            )
        armed[name] = int(count)
    return armed


_ARMED = _armed(os.environ.get("EDGEMED_FAILPOINTS", ""))
_LOCK = threading.Lock()


def hit(name: str) -> None:
    """Die here if this is the armed point's N-th hit; otherwise nothing."""
    if not _ARMED:
        return
    with _LOCK:
        left = _ARMED.get(name)
        if left is None:
            return
        _ARMED[name] = left - 1
        if left > 1:
            return
    sys.stderr.write(f"edgemed failpoint {name}: killing process {os.getpid()}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
