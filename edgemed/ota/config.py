"""The device's rollout settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..trust import TrustPolicy
from .download import Downloader

__all__ = ["OtaConfig"]


@dataclass(frozen=True, kw_only=True)
class OtaConfig:
    """Where the agent keeps versions (``root``), the fleet it downloads from, the trust
    policy every version must pass, and the bundle it serves on first start."""

    root: Path
    fleet_url: str
    trust: TrustPolicy
    initial_bundle: Path | None = None
    ca_file: Path | None = None
    chunk_bytes: int = 1 << 20
    max_download_bytes_per_s: float | None = None
    max_attempts: int = 3  # starts of one rollout before it is a crash loop
    # Results the new version serves after the switch before the switch is committed: a crash
    # meanwhile (a process that dies on the new version) puts the previous version back.
    probation_results: int = 10
    shadow_timeout_s: float = 24 * 3600.0  # too few live inputs in this long: failed
    threads: int | None = None  # runtime threads of each loaded version

    def downloader(self) -> Downloader:
        return Downloader(
            fleet_url=self.fleet_url,
            ca_file=self.ca_file,
            chunk_bytes=self.chunk_bytes,
            max_bytes_per_s=self.max_download_bytes_per_s,
        )
