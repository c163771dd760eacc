"""Export workers: push stored results to a FHIR server or an HL7 v2 (MLLP) endpoint.

Each worker settles every result once per target in ``export_log`` (fleet/exports/ledger.py):
``acked`` once the target confirmed it (never sent again), ``rejected`` when the target
refused it for good (AE/AR ACK, HTTP 4xx: kept, with the reason, for a person to look at),
``skipped`` when there is nothing to send (with the reason). Anything else (connection refused,
timeout, 5xx, no ACK) leaves the result pending: it is retried, with backoff, until settled.

- FHIR: a transaction Bundle per batch; every resource is a conditional create on its stable
  identifier (``ifNoneExist``), so a batch resent after a lost reply duplicates nothing.
- HL7 v2: one ORU^R01 per result, the next only after the previous one's ACK. The ACK is
  recorded at once; a crash between the ACK and that commit is the only way a result goes
  twice, and its MSH-10 (stable per result) lets the receiver recognise it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from ..store import SqlStore
from .fhir import ResultExport, bundle, export_result
from .hl7 import build_oru, parse_ack
from .mllp import MllpError, send_mllp

__all__ = ["Exporter", "FhirPusher", "Hl7Sender"]

log = logging.getLogger(__name__)
LATE_S = 300.0  # a result may commit this long after its received_at (a slow transaction)


class Exporter:
    """Shared loop: read pending results, send, settle; back off while the target is down."""

    target = ""
    batch = 50

    def __init__(self, store: SqlStore, *, retry_s: float = 1.0, max_retry_s: float = 60.0) -> None:
        self.store = store
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self._floor = 0.0  # received_at below which everything is settled (minus LATE_S)
        self.failures = 0
        self.last_error = ""

    def _pending(self) -> list[dict[str, Any]]:
        rows = self.store.pending_exports(self.target, after=self._floor, limit=self.batch)
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def _encounters(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        refs = {r["payload"].get("encounter") for r in rows}
        return self.store.encounter_map({r for r in refs if isinstance(r, str)})

    def run_once(self) -> int:
        """Send one batch; returns how many results it settled (0: nothing pending). Raises
        what a down target raises (the result stays pending)."""
        rows = self._pending()
        if not rows:
            self._floor = max(self._floor, time.time() - LATE_S)
            return 0
        settled = self._send(rows, self._encounters(rows))
        return settled

    def _send(self, rows: list[dict[str, Any]], mapping: dict[str, dict[str, Any]]) -> int:
        raise NotImplementedError

    def drain(self, *, deadline_s: float = 60.0) -> int:
        """Retry until nothing is pending or the deadline passes; returns results settled."""
        total, delay, end = 0, self.retry_s, time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                done = self.run_once()
            except Exception as exc:  # target down: back off, keep the results pending
                self.failures += 1
                self.last_error = str(exc)[:300]
                log.warning("export to %s failed (will retry): %s", self.target, self.last_error)
                time.sleep(min(delay, max(0.0, end - time.monotonic())))
                delay = min(delay * 2, self.max_retry_s)
                continue
            if done == 0:
                return total
            total, delay = total + done, self.retry_s
        return total

    def run(self, stop: threading.Event, *, idle_s: float = 2.0) -> None:
        """Until ``stop``: drain, then wait for new results."""
        while not stop.is_set():
            self.drain(deadline_s=idle_s * 10)
            stop.wait(idle_s)


class FhirPusher(Exporter):
    """POST transaction Bundles to ``base_url`` (a FHIR R4 server's base)."""

    batch = 20

    def __init__(self, store: SqlStore, base_url: str, *, bearer: str | None = None,
                 timeout: float = 30.0, **kw: Any) -> None:  # fmt: skip
        super().__init__(store, **kw)
        self.base_url = base_url.rstrip("/")
        self.target = f"fhir:{self.base_url}"
        self.bearer, self.timeout = bearer, timeout

    def _send(self, rows: list[dict[str, Any]], mapping: dict[str, dict[str, Any]]) -> int:
        keys = [(r["device_id"], r["epoch"], int(r["seq"])) for r in rows]
        exports: list[tuple[tuple[str, str, int], ResultExport]] = [
            (k, export_result(r, mapping.get(str(r["payload"].get("encounter")))))
            for k, r in zip(keys, rows, strict=True)
        ]
        for key, export in exports:
            if export.skipped:
                self.store.settle_exports(self.target, [key], "skipped", export.skipped)
        sending = [(k, e) for k, e in exports if not e.skipped]
        if sending:
            status, detail = self._post(bundle([e for _, e in sending]))
            if status >= 500 or status == 429:
                raise OSError(f"FHIR server answered {status}: {detail}")
            verdict = "acked" if 200 <= status < 300 else "rejected"
            self.store.settle_exports(self.target, [k for k, _ in sending], verdict,
                                      None if verdict == "acked" else f"HTTP {status}: {detail}")  # fmt: skip
        return len(rows)

    def _post(self, body: dict[str, Any]) -> tuple[int, str]:
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        request = urllib.request.Request(
            self.base_url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read() or b"{}")
                bad = [
                    e.get("response", {}).get("status", "")
                    for e in reply.get("entry", [])
                    if not str(e.get("response", {}).get("status", "")).startswith("2")
                ]
                if bad:  # a transaction is all or nothing: a server saying otherwise is broken
                    return 502, f"entries not created: {bad[:5]}"
                return int(response.status), ""
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()[:300].decode("utf-8", errors="replace")


class Hl7Sender(Exporter):
    """Send ORU^R01 over MLLP to ``host:port``; the next result only after an ACK."""

    batch = 50

    def __init__(self, store: SqlStore, host: str, port: int, *, timeout: float = 10.0,
                 receiving: tuple[str, str] = ("EHR", "HOSPITAL"), **kw: Any) -> None:  # fmt: skip
        super().__init__(store, **kw)
        self.host, self.port, self.timeout, self.receiving = host, port, timeout, receiving
        self.target = f"hl7:{host}:{port}"
        self.sent = 0  # messages written to the socket (for tests and /api/health)

    def _send(self, rows: list[dict[str, Any]], mapping: dict[str, dict[str, Any]]) -> int:
        done = 0
        for row in rows:
            key = (row["device_id"], row["epoch"], int(row["seq"]))
            msg = build_oru(row, mapping.get(str(row["payload"].get("encounter"))),
                            receiving=self.receiving)  # fmt: skip
            if msg.skipped:
                self.store.settle_exports(self.target, [key], "skipped", msg.skipped)
                done += 1
                continue
            self.sent += 1
            reply = send_mllp(self.host, self.port, msg.er7, timeout=self.timeout)
            try:
                code, control, text = parse_ack(reply)
            except Exception as exc:
                raise MllpError(f"unreadable ACK: {str(exc)[:200]}") from exc
            if control != msg.control:
                raise MllpError(f"ACK for {control!r}, expected {msg.control!r}")
            if code in ("AA", "CA"):
                self.store.settle_exports(self.target, [key], "acked")
            elif code in ("AE", "AR", "CE", "CR"):
                self.store.settle_exports(self.target, [key], "rejected", f"{code}: {text}")
            else:
                raise MllpError(f"unknown acknowledgement code {code!r}")
            done += 1
        return done
