"""The device's rollout agent: serves the installed version and carries out the fleet's
commands (docs/rollouts.md).

``OtaAgent`` owns the serving pipeline: call it on each live input (``agent(item)``) and submit
what it returns; the result's provenance names the version that computed it. An ``install``
command runs on the agent's own thread, one step after the other, each announced in the
device's status (``delivery.RolloutReport``):

1. ``downloading``: the archive, resumable, checked by size and sha256 (``download.py``);
2. ``verifying``: unpacked into staging, then every check ``edgemed.load`` makes under the
   device's trust policy (signature, unlisted files, artifacts, anti-rollback), and the model
   id and version the command named; moved into ``versions/`` by one rename;
3. ``golden``: loaded beside the serving version; its golden vectors must pass here;
4. ``shadow``: run on the next live inputs beside the serving version, its results compared and
   dropped (``shadow.py``) until the rollout's criteria are met or cannot be;
5. ``switching``: the pointer is replaced atomically (unconfirmed) and the new version serves;
   after ``probation_results`` results the pointer is confirmed (the commit) and
   anti-rollback records the version; ``switched``.

Any failure leaves the serving version serving and reports ``failed`` with the step and reason.
A start that finds the switch uncommitted (the pointer written but not confirmed) puts the
previous version back; a start that finds a rollout in progress resumes it (the download where
it stopped), unless it has already started ``max_attempts`` times: a crash loop, ``failed`` (or
``rolled-back`` when the last cut was during the switch).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from ..delivery import (
    IN_PROGRESS_STATES,
    AbortCommand,
    Criteria,
    InstallCommand,
    RolloutReport,
    decode_command,
)
from ..errors import EdgemedError, ModelError
from ..pipeline import Pipeline
from ..results import Result
from .config import OtaConfig
from .layout import Layout, Pointer, RolloutState
from .shadow import Shadow
from .steps import Steps

__all__ = ["OtaAgent", "OtaConfig"]

log = logging.getLogger(__name__)


class _Probation:
    """The first results a new version serves after the switch, before it is committed."""

    def __init__(self, pipeline: Pipeline, results: int) -> None:
        self.pipeline = pipeline
        self.left = results
        self.served = threading.Event()
        if results <= 0:
            self.served.set()
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.left -= 1
            if self.left <= 0:
                self.served.set()


class OtaAgent:
    """Serve the installed version; install, shadow-test and switch to what the fleet sends."""

    def __init__(self, config: OtaConfig) -> None:
        self.config = config
        self.layout = Layout(config.root)
        self.steps = Steps(config, self.layout)
        self.state: RolloutState = self.layout.state()
        self.on_report: Callable[[], None] = lambda: None  # Publisher.announce, by attach()
        self.on_phase: Callable[[str], None] = lambda _phase: None  # for logs and tests
        self.pointer: Pointer | None = None
        self._serving: Pipeline | None = None
        self._shadow: Shadow | None = None
        self._probation: _Probation | None = None
        self._retired: list[Pipeline] = []
        self._lock = threading.Lock()
        self._commands: queue.Queue[InstallCommand | AbortCommand | None] = queue.Queue()
        self._abort = threading.Event()  # set: the running step stops (abort, or stop())
        self._stopping = False
        self._aborted_ids: set[str] = set()  # rollouts the fleet aborted (this boot)
        self._publisher: Any = None
        self._thread = threading.Thread(target=self._work, name="edgemed-ota", daemon=True)

    # -- serving ----------------------------------------------------------------------------
    @property
    def serving(self) -> Pipeline:
        if self._serving is None:
            raise ModelError("the OTA agent is not started: no version serves yet")
        return self._serving

    def __call__(self, item: object) -> Result:
        """The serving version's result for ``item`` (during a shadow period the new version
        runs on it too, after, and its result is only compared)."""
        with self._lock:
            serving, shadow, probation = self.serving, self._shadow, self._probation
        result = serving(item)
        if shadow is not None:
            shadow.offer(item, result)
        if probation is not None and probation.pipeline is serving:
            probation.count()
        return result

    # -- life -------------------------------------------------------------------------------
    def attach(self, publisher: Any) -> None:
        """Report through a ``sync.Publisher`` made with ``on_command=agent.on_command``: the
        rollout field rides on its retained status, re-sent with every heartbeat."""
        publisher.status_fields = self.status_fields
        self.on_report = publisher.announce
        self._publisher = publisher
        self._set_models()

    def start(self) -> OtaAgent:
        """Load the serving version (recovering from whatever a power cut interrupted), then
        resume an interrupted rollout on the agent's thread."""
        self._recover()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. A rollout in progress stays so: the next start resumes it."""
        self._stopping = True
        self._abort.set()
        self._commands.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        with self._lock:
            pipelines = [p for p in (self._serving, *self._retired) if p is not None]
            shadow, self._serving, self._retired = self._shadow, None, []
        if shadow is not None:
            pipelines.append(shadow.candidate)
        for pipeline in pipelines:
            pipeline.close()

    def __enter__(self) -> OtaAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on_command(self, raw: bytes) -> None:
        """A message on the device's cmd topic (called on the MQTT network thread)."""
        try:
            command = decode_command(raw)
        except EdgemedError as exc:
            log.error("ignoring a command the device cannot read: %s", exc)
            return
        current = self.state.command
        if isinstance(command, AbortCommand):
            self._aborted_ids.add(command.rollout_id)  # even if its install is still queued
        if (
            isinstance(command, AbortCommand)
            and current is not None
            and current["rollout_id"] == command.rollout_id
            and self.state.phase in IN_PROGRESS_STATES
        ):
            self._abort.set()  # the running step stops at its next check
        self._commands.put(command)

    # -- reports ----------------------------------------------------------------------------
    def report(self) -> RolloutReport | None:
        state, command = self.state, self.state.command
        if command is None or state.phase is None:
            return None
        return RolloutReport(
            rollout_id=command["rollout_id"],
            state=state.phase,  # type: ignore[arg-type]
            seq=state.report_seq,
            at=round(time.time(), 3),
            model_id=command["model_id"],
            version=command["version"],
            serving=self._serving_name(),
            reason=state.reason,
            downloaded=state.downloaded,
            size=int(command["size"]),
            shadow_done=state.shadow.get("done", 0),
            shadow_agree=state.shadow.get("agree", 0),
            shadow_needed=state.shadow.get("needed", 0),
        )

    def status_fields(self) -> dict[str, Any]:
        """The status's ``rollout`` field (called by the publisher's threads: never raises,
        so a damaged state can never keep the device's status, or its link, from going out)."""
        try:
            report = self.report()
        except Exception:  # logged; the status goes out without the field
            log.exception("cannot build the rollout report")
            return {}
        return {} if report is None else {"rollout": report.body()}

    def _serving_name(self) -> str | None:
        p = self.pointer
        return None if p is None else f"{p.model_id}@{p.version}"

    def _set_models(self) -> None:
        name = self._serving_name()
        if self._publisher is not None and name is not None:
            self._publisher.models = [name]

    def _save(self, phase: str | None = None, reason: str | None = None) -> None:
        """Record (and announce) a step: every report is saved first, so its seq only grows."""
        if phase is not None:
            self.state.phase, self.state.reason = phase, reason
        self.state.report_seq += 1
        self.layout.save_state(self.state)
        self._set_models()
        self.on_phase(self.state.phase or "")
        self.on_report()

    # -- recovery at start ------------------------------------------------------------------
    def _recover(self) -> None:
        """Serve what the pointer names; a switch the power cut interrupted is undone (the
        previous version serves) and its rollout resumes, like one cut at any other step."""
        pointer = self.layout.pointer()
        if pointer is None:
            pointer = self.steps.install_initial()
        reverted = not pointer.confirmed and pointer.previous is not None
        if reverted:
            assert pointer.previous is not None
            pointer = pointer.previous
            self.layout.set_pointer(pointer)
        self._serve(pointer, self.steps.load_serving(pointer))
        state, command = self.state, self.state.command
        if command is None or state.phase not in IN_PROGRESS_STATES:
            return
        if (pointer.model_id, pointer.version) == (command["model_id"], command["version"]):
            self.steps.forget_archive(_install(command))  # cut after the switch was committed
            self._save("switched", None)
            return
        state.attempts += 1
        if state.attempts > self.config.max_attempts:
            self.steps.discard(_install(command), pointer)
            self._save(
                "rolled-back" if reverted else "failed",
                f"crash loop: {state.attempts - 1} restarts during the rollout (last during "
                f"{state.phase})",
            )
        else:
            self._save()
            self._commands.put(_install(command))

    def _serve(self, pointer: Pointer, pipeline: Pipeline) -> None:
        with self._lock:
            old, self._serving, self._shadow, self.pointer = self._serving, pipeline, None, pointer
            self._probation = None
        if old is not None:
            self._retire(old)

    def _retire(self, pipeline: Pipeline) -> None:
        """Close ``pipeline`` later, not now (a call may still be running on it): at the next
        retirement, a whole shadow period later at least, or at stop."""
        with self._lock:
            done, self._retired = self._retired, [pipeline]
        for old in done:
            old.close()

    def _commit(self, pointer: Pointer, verified: Any) -> None:
        """Confirm the pointer (the switch's commit: a start before it goes back to the
        previous version), then record the version for anti-rollback (a start between the two
        loads the confirmed version, and that load records it)."""
        confirmed = replace(pointer, confirmed=True)
        self.layout.set_pointer(confirmed)
        with self._lock:
            self.pointer, self._probation = confirmed, None
        self.steps.record(verified)  # anti-rollback: this version has now served
        self.steps.tidy(confirmed)
        self._save("switched", None)

    def _undo_switch(self) -> bool:
        """A failure before the commit: the previous version serves again (True if it had
        to be put back)."""
        pointer = self.pointer
        if pointer is None or pointer.confirmed or pointer.previous is None:
            return False
        self.layout.set_pointer(pointer.previous)
        self._serve(pointer.previous, self.steps.load_serving(pointer.previous))
        return True

    # -- the agent's thread -----------------------------------------------------------------
    def _work(self) -> None:
        while (command := self._commands.get()) is not None:
            try:
                if isinstance(command, AbortCommand):
                    self._aborted(command)
                else:
                    self._carry_out(command)
            except Exception:  # never silent: logged; the state says what was reached
                log.exception("rollout step failed unexpectedly")

    def _aborted(self, command: AbortCommand) -> None:
        current = self.state.command
        if current is None or current["rollout_id"] != command.rollout_id:
            return
        if self.state.phase not in IN_PROGRESS_STATES and self.state.phase != "aborted":
            self.on_report()  # finished already (a switched device keeps its version)

    def _carry_out(self, command: InstallCommand) -> None:
        state = self.state
        if state.command is not None and state.command["rollout_id"] == command.rollout_id:
            if state.phase not in IN_PROGRESS_STATES:
                self.on_report()  # seen before (a retained command again): say where it ended
                return
        else:
            self.state = RolloutState(report_seq=state.report_seq, attempts=1,
                                      command=_command_body(command))  # fmt: skip
        self._abort.clear()
        try:
            if command.rollout_id in self._aborted_ids:  # aborted before it began here
                raise InterruptedError("aborted")
            self._steps(command)
        except InterruptedError:
            self._drop_shadow()
            if self._stopping:  # a shutdown, not an abort: resumed at the next start
                return
            self._undo_switch()
            self.steps.discard(command, self.pointer)
            self._save("aborted", "aborted by the fleet")
        except (EdgemedError, OSError) as exc:  # OSError: a full or failing disk
            self._drop_shadow()
            undone = self._undo_switch()
            self.steps.discard(command, self.pointer)
            step = self.state.phase or "install"
            self._save("rolled-back" if undone else "failed", f"{step}: {exc}"[:500])
            log.error("rollout %s failed: %s", command.rollout_id, self.state.reason)

    def _steps(self, command: InstallCommand) -> None:
        self.state.shadow = {}
        serving = self.pointer.model_id if self.pointer else None
        if command.model_id != serving:  # a new version of what serves, never another model
            raise ModelError(
                f"this device serves {serving}, the rollout installs {command.model_id}: "
                "a rollout replaces a model with a newer version of itself"
            )
        if self.pointer is not None and self.pointer.path.endswith(f"-{command.sha256[:12]}"):
            self._save("switched", "this device already serves this bundle")
            return
        self._save("downloading")
        archive = self.steps.download(command, self._abort, self._downloaded)
        self._save("verifying")
        folder, verified = self.steps.verify_and_install(command, archive)
        self._save("golden")
        candidate, verified = self.steps.load_candidate(folder)
        shadow = Shadow(candidate, command.criteria)
        self.state.shadow = {"done": 0, "agree": 0, "needed": command.criteria.shadow_results}
        self._save("shadow")
        with self._lock:
            self._shadow = shadow
        self._wait_for(shadow)
        self._save("switching")
        assert self.pointer is not None
        old = replace(self.pointer, previous=None)
        pointer = Pointer(path=str(folder.relative_to(self.layout.root)),
                          model_id=command.model_id, version=command.version,
                          confirmed=False, previous=old)  # fmt: skip
        self.layout.set_pointer(pointer)
        self._serve(pointer, candidate)  # the new version serves, not yet committed
        probation = _Probation(candidate, self.config.probation_results)
        with self._lock:
            self._probation = probation
        self._wait(probation.served, "served results after the switch")
        self._commit(pointer, verified)
        self.steps.forget_archive(command)

    def _wait_for(self, shadow: Shadow) -> None:
        deadline = time.monotonic() + self.config.shadow_timeout_s
        reported = 0
        while not shadow.finished.wait(0.5):
            if self._abort.is_set():
                raise InterruptedError("aborted")
            if time.monotonic() > deadline:
                raise ModelError(f"only {shadow.done} live results in the shadow period")
            if shadow.done - reported >= max(1, shadow.criteria.shadow_results // 4):
                reported = shadow.done
                self.state.shadow.update(done=shadow.done, agree=shadow.agreed)
                self._save()
        self.state.shadow.update(done=shadow.done, agree=shadow.agreed)
        if shadow.failure is not None:
            raise ModelError(shadow.failure)
        if self._abort.is_set():  # an abort that came while the last inputs were compared
            raise InterruptedError("aborted")

    def _wait(self, event: threading.Event, what: str) -> None:
        """Until ``event`` (InterruptedError on abort or stop, ModelError past the timeout)."""
        deadline = time.monotonic() + self.config.shadow_timeout_s
        while not event.wait(0.2):
            if self._abort.is_set():
                raise InterruptedError("aborted")
            if time.monotonic() > deadline:
                raise ModelError(f"too few {what} within {self.config.shadow_timeout_s:g} s")
        if self._abort.is_set():
            raise InterruptedError("aborted")

    def _drop_shadow(self) -> None:
        with self._lock:
            shadow, self._shadow = self._shadow, None
        if shadow is not None:
            self._retire(shadow.candidate)

    def _downloaded(self, size: int) -> None:
        self.state.downloaded = size


def _command_body(command: InstallCommand) -> dict[str, Any]:
    return {**asdict(command), "criteria": asdict(command.criteria)}


def _install(body: dict[str, Any]) -> InstallCommand:
    """The install command kept in state.json, as it came."""
    return InstallCommand(**{**body, "criteria": Criteria(**body["criteria"])})
