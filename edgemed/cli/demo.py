"""``edgemed demo``: one bedside device and one fleet server on this machine, end to end.

Starts an embedded loopback broker (unless ``--broker`` is given), a fleet ingest + REST API
over SQLite, runs the bundled text model on sample notes as device ``demo-bed-01``, syncs the
results through the durable outbox and prints what the fleet stored. Cleans up everything.
:class:`~edgemed.fleet.local.LocalFleet` (broker + fleet server + token on this machine) is what
the demo and the scenarios in ``examples/`` start.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from ..config import BrokerConfig, OutboxConfig
from ..errors import FleetConflictError
from ..fleet.local import LocalFleet
from ..pipeline import load
from ..results import EmbeddingResult

__all__ = ["DEMO_NOTES", "run_demo"]

MODEL_ID = "clinical-text-minilm"
DEVICE_ID = "demo-bed-01"
# Synthetic notes written for the demo; they describe no real patient.
DEMO_NOTES = (
    "Chest pain radiating to the left arm, sweating, onset 40 minutes ago.",
    "Productive cough, fever 38.7 C and crackles at the right base.",
    "Fell at home, pain and shortening of the left leg.",
    "Burning on urination and frequency for three days.",
    "New confusion overnight, blood glucose 2.1 mmol/L.",
)


def _demo_device(
    broker: BrokerConfig, work: Path, echo: Callable[[str], None]
) -> tuple[bool, int, float]:
    """The demo's bedside device: notes -> text model -> outbox -> broker, until acked.
    Returns (drained, results left in the outbox, seconds)."""
    from ..sync import Outbox, Publisher

    with ExitStack() as stack:
        pipeline = stack.enter_context(load(MODEL_ID))
        echo(f"device   {DEVICE_ID} runs {pipeline!r}")
        outbox = Outbox(OutboxConfig(path=work / "device-outbox.sqlite3", device_id=DEVICE_ID))
        stack.callback(outbox.close)
        started = time.monotonic()
        with Publisher(outbox, broker, models=[f"{MODEL_ID}@{pipeline.manifest.version}"]) as pub:
            for note in DEMO_NOTES:
                result = pipeline(note)
                assert isinstance(result, EmbeddingResult)
                seq = pub.submit(result)
                top = result.suggestion
                said = (
                    f"{top.code} (p {result.confidence:.2f}) {top.text[:44]}"
                    if top is not None and result.confidence is not None
                    else f"no confident code: {(result.abstain_reason or '')[:56]}"
                )
                echo(f"  seq {seq}  {result.provenance.timings.total_ms:5.1f} ms  -> {said}")
            drained = pub.wait_drained(30)
        return drained, outbox.stats().depth, time.monotonic() - started


def _demo_with_existing_fleet(
    broker_url: str, workdir: Path | None, conflict: str, echo: Callable[[str], None]
) -> int:
    """--broker names a broker another fleet already serves: send the demo's results to THAT
    fleet (a second store would split them) and say where they went. Acked = committed there."""
    echo(f"fleet    not started here: {conflict}")
    echo("fleet    the demo's results go to that fleet instead (its store, its API token)")
    with tempfile.TemporaryDirectory(prefix="edgemed-demo-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        drained, left, elapsed = _demo_device(BrokerConfig.from_url(broker_url), work, echo)
    sent = len(DEMO_NOTES)
    if drained and left == 0:
        echo(f"the existing fleet acknowledged all {sent} result(s) in {elapsed:.2f} s: each is")
        echo("committed once in its store (see its /api/results for device demo-bed-01)")
        echo("demo OK")
        return 0
    echo(f"demo FAILED: {left} of {sent} result(s) not acknowledged by the existing fleet")
    return 1


def run_demo(
    broker_url: str | None = None, workdir: Path | None = None, echo: Callable[[str], None] = print
) -> int:
    with ExitStack() as stack:
        try:
            fleet = stack.enter_context(LocalFleet(broker_url, workdir, echo=echo))
        except FleetConflictError as exc:
            if broker_url is None:
                raise
            return _demo_with_existing_fleet(broker_url, workdir, str(exc.__cause__), echo)
        drained, left, elapsed = _demo_device(fleet.broker, fleet.workdir, echo)

        results = fleet.get("/api/results?limit=100")["items"]
        devices = fleet.get("/api/devices")
        echo(f"fleet received {len(results)} result(s) in {elapsed:.2f} s:")
        for row in sorted(results, key=lambda r: r["seq"]):
            body = row["payload"]
            top = body["result"].get("suggestion")  # None: no confident code (the reason)
            code = top["code"] if top else f"- ({body['result'].get('abstain_reason', '')[:40]})"
            echo(
                f"  {row['device_id']} seq {row['seq']}  {row['model_id']}@{row['model_version']} "
                f"[{body['model']['backend']}/{body['model']['precision']}]  {code}"
            )
        for dev in devices:
            echo(
                f"  device {dev['device_id']}: acked through seq {dev['acked_seq']}, state {dev['state']}"
            )
        echo(f"device outbox now holds {left} unacknowledged result(s)")
        ok = drained and left == 0 and len(results) == len(DEMO_NOTES)
        echo("demo OK" if ok else "demo FAILED: not every result reached the fleet")
        return 0 if ok else 1
    return 1  # unreachable; keeps mypy's return analysis simple
