"""The rollout controller: which devices get the install command when, and when a rollout
stops.

A rollout's devices are cut into waves: wave 0 is the canary (``canary`` devices), the rest
are split into ``waves`` waves of near-equal size, in the order given. A wave is commanded
(its devices' retained ``install`` command published on their cmd topics) once every device of
the waves before it is done. A device is done when it reports ``switched`` (success),
``failed``/``rolled-back`` (failure, with the device's reason) or ``aborted``, or when the
fleet gives up on it after ``wave_timeout_s`` (``timed-out``, a failure). More than
``max_failures`` failures halt the rollout: devices not yet commanded are ``skipped`` (they
never see the bundle), devices in progress get an ``abort``. Pause stops new waves; devices
already commanded carry on. Abort is a halt on request.

Every step is a conditional update of the store, and publishing again what was published
is harmless (devices recognise a rollout they have seen): several fleet processes on one store
may all run it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from ...delivery import AbortCommand, Criteria, InstallCommand, RolloutReport, encode_command
from ...errors import PayloadError
from ...wire import topic
from .store import DEVICE_DONE, RolloutStore

__all__ = [
    "FAILED",
    "Publish",
    "RolloutEngine",
    "parse_rollout_key",
    "plan_waves",
    "record_report",
    "rollout_key",
]

log = logging.getLogger(__name__)

FAILED = ("failed", "rolled-back", "timed-out")
Publish = Callable[[str, bytes], bool]  # (topic, payload) -> published (retained, QoS1)


def rollout_key(store_id: str, rollout_id: int) -> str:
    """The rollout's id on the wire: unique across fleet stores."""
    return f"{store_id}.{rollout_id}"


def parse_rollout_key(store_id: str, key: str) -> int | None:
    """The store's rollout id of a wire id, or None if it belongs to another store."""
    store, _, number = key.rpartition(".")
    if store != store_id or not number.isdigit() or len(number) > 18:
        return None
    return int(number)


def record_report(store: RolloutStore, device_id: str, field: Any) -> bool:
    """Apply the ``rollout`` field of a device's status (checked by status-1.json already);
    False if it names a rollout of another store, or is not newer than what is held."""
    try:
        report = RolloutReport.from_body(field)
    except PayloadError as exc:
        log.warning("device %s: ignoring its rollout report: %s", device_id, exc)
        return False
    rollout_id = parse_rollout_key(store.store_id, report.rollout_id)
    if rollout_id is None:
        return False
    return store.record_rollout_report(device_id, rollout_id, report)


def plan_waves(devices: list[str], canary: int, waves: int) -> list[list[str]]:
    """Wave 0: the first ``canary`` devices; then the rest in ``waves`` near-equal waves."""
    head, rest = devices[:canary], devices[canary:]
    planned = [head] if head else []
    count = min(waves, len(rest))
    for i in range(count):
        planned.append(rest[len(rest) * i // count : len(rest) * (i + 1) // count])
    return planned


class RolloutEngine:
    """Drives every running or paused rollout of ``store``; ``publish`` sends a command."""

    def __init__(self, store: RolloutStore, store_id: str, publish: Publish) -> None:
        self.store = store
        self.store_id = store_id
        self.publish = publish

    def create(self, spec: dict[str, Any], devices: list[str]) -> int:
        """Insert a rollout of ``spec`` (already checked by the API) over ``devices``."""
        rollout = {**spec, "token": secrets.token_urlsafe(24)}
        waves = plan_waves(devices, spec["canary"], spec["waves"])
        rollout_id = self.store.create_rollout(rollout, waves, time.time())
        log.info("rollout %d of %s@%s over %d device(s) in %d wave(s)", rollout_id,
                 spec["model_id"], spec["version"], len(devices), len(waves))  # fmt: skip
        self.step(rollout_id)
        return rollout_id

    def tick(self) -> None:
        for rollout in self.store.rollouts(states=("running", "paused")):
            try:
                self.step(int(rollout["id"]))
            except Exception:  # one rollout's trouble must not stop the others
                log.exception("rollout %s: step failed", rollout["id"])

    def step(self, rollout_id: int) -> None:
        rollout = self.store.rollout(rollout_id, secret=True)
        if rollout is None or rollout["state"] not in ("running", "paused"):
            return
        devices = self.store.rollout_devices(rollout_id)
        failed = [d for d in devices if d["state"] in FAILED]
        if len(failed) > rollout["max_failures"]:
            shown = "; ".join(f"{d['device_id']}: {d['reason'] or d['state']}" for d in failed[:3])
            self.halt(rollout_id, "halted", f"{len(failed)} device(s) failed ({shown})")
            return
        for wave in sorted({d["wave"] for d in devices}):
            members = [d for d in devices if d["wave"] == wave]
            pending = [d["device_id"] for d in members if d["state"] == "pending"]
            if pending:
                if rollout["state"] == "running":
                    self._command(rollout, pending)
                return
            unfinished = [d for d in members if d["state"] not in DEVICE_DONE]
            if unfinished:
                if self._time_out(rollout, unfinished):
                    self.step(rollout_id)  # at once: halt, or the next wave
                return
        switched = sum(1 for d in devices if d["state"] == "switched")
        self.store.set_rollout_state(
            rollout_id, "completed", allowed_from=("running", "paused"),
            reason=f"{switched} of {len(devices)} device(s) switched, {len(failed)} failed",
        )  # fmt: skip

    def halt(self, rollout_id: int, state: str, reason: str) -> bool:
        """Stop a rollout (``halted`` or ``aborted``): skip the devices never commanded, send
        ``abort`` to those in progress. False if it was not running or paused."""
        if not self.store.halt_rollout(
            rollout_id, state, allowed_from=("running", "paused"), reason=reason
        ):
            return False
        log.warning("rollout %d %s: %s", rollout_id, state, reason)
        devices = self.store.rollout_devices(rollout_id)
        key = rollout_key(self.store_id, rollout_id)
        for d in devices:
            if d["state"] not in (*DEVICE_DONE, "pending"):
                self.publish(
                    topic(d["device_id"], "cmd"), encode_command(AbortCommand(rollout_id=key))
                )
        return True

    def _command(self, rollout: dict[str, Any], devices: list[str]) -> None:
        bundle = self.store.bundle(rollout["bundle_sha256"])
        size = int(bundle["size"]) if bundle else 0
        command = encode_command(
            InstallCommand(
                rollout_id=rollout_key(self.store_id, int(rollout["id"])),
                model_id=rollout["model_id"],
                version=rollout["version"],
                sha256=rollout["bundle_sha256"],
                size=size,
                path=f"/ota/bundles/{rollout['bundle_sha256']}",
                token=rollout["token"],
                criteria=Criteria(**rollout["criteria"]),
            )
        )
        sent = [d for d in devices if self.publish(topic(d, "cmd"), command)]
        self.store.set_device_states(int(rollout["id"]), sent, "commanded", commanded=True)

    def _time_out(self, rollout: dict[str, Any], unfinished: list[dict[str, Any]]) -> bool:
        limit = time.time() - float(rollout["wave_timeout_s"])
        late = [
            d["device_id"] for d in unfinished if d["commanded_at"] and d["commanded_at"] < limit
        ]
        if not late:
            return False
        moved = self.store.set_device_states(
            int(rollout["id"]), late, "timed-out",
            reason=f"no result within {rollout['wave_timeout_s']:g} s",
            only_from=("commanded", "downloading", "verifying", "golden", "shadow", "switching"),
        )  # fmt: skip
        return moved > 0
