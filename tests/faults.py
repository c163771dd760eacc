"""Fault-injection tools for the sync tests: a throttling/pausable TCP proxy and a tally.

``tc netem`` does not work on the CI machines, so a slow consumer is made by
putting this proxy between the broker and the fleet: the broker then holds a real backlog of
PUBACKed-but-undelivered messages, which is what a broker crash must be tested against.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

from edgemed.fleet import SQLiteStore


class ThrottledProxy:
    """127.0.0.1:port -> 127.0.0.1:target, broker->client direction limited to ``rate`` B/s."""

    def __init__(self, target_port: int, rate_bytes_per_s: float | None = None) -> None:
        self.target_port = target_port
        self.rate = rate_bytes_per_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()  # broker down: the client sees a refused/closed connection
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.rate), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, rate: float | None) -> None:
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                self._open.wait()  # paused = a partition: bytes stop flowing both ways
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def pause(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.set()
        self._listener.close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@dataclass
class Tally:
    """What a fault test reports: pass = 0 missing and 0 duplicates stored."""

    produced: int
    stored: int
    missing: int
    duplicates_stored: int
    duplicates_absorbed: int
    conflicts: int

    @classmethod
    def of(cls, store: SQLiteStore, device_id: str, accepted: list[int], absorbed: int) -> Tally:
        rows = store.results(device_id=device_id, limit=10**9)
        seqs = [r["seq"] for r in rows]
        return cls(
            produced=len(accepted),
            stored=len(seqs),
            missing=len(set(accepted) - set(seqs)),
            duplicates_stored=len(seqs)
            - len(set(seqs))
            + len(rows)
            - len({r["result_id"] for r in rows}),
            duplicates_absorbed=absorbed,
            conflicts=len(store.alerts(rule="seq-conflict")),
        )

    def ok(self) -> bool:
        return self.missing == 0 and self.duplicates_stored == 0 and self.conflicts == 0
