"""Resumable bundle downloads over HTTP(S), checked by size and sha256.

The archive grows in ``downloads/<sha256>.part``; every request asks for the rest
(``Range: bytes=<have>-``), so a download cut by a lost link or a power cut goes on where it
stopped. Only when the whole file has the expected size and sha256 is it renamed to
``<sha256>.tar``; a complete file with the wrong hash is deleted and fetched once more from
the start, then the download fails (SyncError). The URL is the device's configured fleet URL
joined with the command's path: a command never names a host.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..delivery import InstallCommand
from ..errors import SyncError

__all__ = ["Downloader"]


@dataclass(frozen=True, kw_only=True)
class Downloader:
    """Fetch archives from ``fleet_url`` (http or https; ``ca_file`` to trust a private CA)."""

    fleet_url: str
    ca_file: Path | None = None
    chunk_bytes: int = 1 << 20
    max_bytes_per_s: float | None = None  # None: as fast as the link goes
    timeout_s: float = 30.0
    retries: int = 5  # requests that fail in a row before the download fails

    def fetch(
        self,
        command: InstallCommand,
        folder: Path,
        *,
        stop: threading.Event,
        progress: Callable[[int], None] = lambda _n: None,
    ) -> Path:
        """The archive ``folder/<sha256>.tar``, downloaded or resumed (SyncError if it cannot
        be had, InterruptedError if ``stop`` is set)."""
        done = folder / f"{command.sha256}.tar"
        if done.is_file():
            return done
        part = folder / f"{command.sha256}.part"
        for attempt in (1, 2):
            self._resume(command, part, stop, progress)
            digest = _sha256(part)
            if digest == command.sha256:
                os.replace(part, done)
                return done
            part.unlink()
            if attempt == 2:
                raise SyncError(
                    f"bundle archive {command.sha256[:12]}…: downloaded twice, sha256 "
                    f"{digest[:12]}… both times; refusing it"
                )
        raise AssertionError("unreachable")

    def _resume(
        self, command: InstallCommand, part: Path, stop: threading.Event,
        progress: Callable[[int], None],
    ) -> None:  # fmt: skip
        failures = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if have > command.size:
                part.unlink()
                have = 0
            if have == command.size:
                return
            if stop.is_set():
                raise InterruptedError("download stopped")
            try:
                self._request(command, part, have, stop, progress)
                failures = 0
            except (urllib.error.URLError, OSError, SyncError) as exc:
                failures += 1
                if failures > self.retries:
                    raise SyncError(f"bundle download from {self.fleet_url} failed: {exc}") from exc
                stop.wait(min(30.0, 0.5 * 2**failures))

    def _request(
        self, command: InstallCommand, part: Path, have: int, stop: threading.Event,
        progress: Callable[[int], None],
    ) -> None:  # fmt: skip
        request = urllib.request.Request(
            self.fleet_url.rstrip("/") + command.path,
            headers={"Authorization": f"Bearer {command.token}", "Range": f"bytes={have}-"},
        )
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout_s, context=context)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):  # no second chance: the rollout is gone or wrong
                raise SyncError(f"the fleet refused the download: HTTP {exc.code}") from None
            raise
        with response:
            start = 0 if response.status == 200 else _range_start(response.headers)
            if start != have and response.status == 206:
                raise SyncError(f"asked for bytes from {have}, the fleet sent from {start}")
            with part.open("r+b" if part.exists() and start else "wb") as out:
                out.seek(start)
                out.truncate()
                self._copy(response, out, start, stop, progress)

    def _copy(self, response: Any, out: BinaryIO, at: int, stop: threading.Event,
              progress: Callable[[int], None]) -> None:  # fmt: skip
        started = time.monotonic()
        sent = 0
        while chunk := response.read(self.chunk_bytes):
            out.write(chunk)
            out.flush()
            at += len(chunk)
            sent += len(chunk)
            progress(at)
            if stop.is_set():
                raise InterruptedError("download stopped")
            if self.max_bytes_per_s:  # stay under the bandwidth the site allows
                ahead = sent / self.max_bytes_per_s - (time.monotonic() - started)
                if ahead > 0:
                    stop.wait(ahead)
        os.fsync(out.fileno())


def _range_start(headers: Any) -> int:
    value = str(headers.get("Content-Range") or "")
    try:
        return int(value.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        raise SyncError(f"the fleet's Content-Range {value[:60]!r} cannot be read") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
