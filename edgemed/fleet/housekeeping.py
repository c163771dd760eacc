"""Retention, applied periodically by the fleet server (``fleet serve --retain-days …``).

The store does the deleting (``store/retention.py``: bounded batches, one transaction each, so
ingest goes on between them); this runs it at start and then every ``every_s`` on its own
thread. Every fleet process on a store may run it: deleting what is already gone is a no-op.
"""

from __future__ import annotations

import logging
import threading
import time

from .store import SqlStore
from .store.retention import RetentionPolicy

__all__ = ["RETENTION_EVERY_S", "RetentionWorker"]

RETENTION_EVERY_S = 3600.0

log = logging.getLogger(__name__)


class RetentionWorker:
    def __init__(
        self, store: SqlStore, policy: RetentionPolicy, *, every_s: float = RETENTION_EVERY_S
    ) -> None:
        self.store = store
        self.policy = policy
        self.every_s = every_s
        self.deleted = {"results": 0, "alerts": 0, "dead_letters": 0}  # since this process began
        self.last_error = ""

    def run(self, stop: threading.Event) -> None:
        while True:
            try:
                deleted = self.store.apply_retention(self.policy, time.time())
                for kind, n in deleted.items():
                    self.deleted[kind] += n
                if any(deleted.values()):
                    log.info("retention deleted %s", deleted)
                self.last_error = ""
            except Exception as exc:  # a store outage must not end the worker: next period
                self.last_error = str(exc)[:300]
                log.exception("retention failed")
            if stop.wait(self.every_s):
                return
