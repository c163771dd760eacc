"""Output contracts on the device: a model that emits a value outside its result type's ranges
(edgemed/contracts.py, the same definitions the fleet checks on ingest) raises ModelError where
the result is made, and such a result never reaches the outbox.

The faults are injected at the backend boundary (a model patched to emit garbage), the way a
corrupted engine, a bad quantisation or a runtime bug would show up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgemed
from edgemed.config import BrokerConfig, OutboxConfig
from edgemed.errors import ModelError
from edgemed.results import SeizureProbability
from edgemed.sync import Outbox, Publisher
from edgemed.tasks import task_spec

Patch = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[edgemed.Pipeline, Patch], None]]:
    originals: dict[int, Any] = {}

    def patch(pipeline: edgemed.Pipeline, corrupt: Patch) -> None:
        real = originals.setdefault(id(pipeline), pipeline.backend.run)  # never stacked

        def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return corrupt(dict(real(inputs)))

        monkeypatch.setattr(pipeline.backend, "run", run)

    yield patch


def _scaled(name: str, factor: float) -> Patch:
    def corrupt(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out[name] = out[name] * factor
        return out

    return corrupt


def test_seizure_probability_above_one_is_a_model_error(
    patched: Callable[[edgemed.Pipeline, Patch], None],
) -> None:
    with edgemed.load("eeg-seizure-watch", threads=1) as pipe:
        window = task_spec(pipe.manifest).golden_inputs(pipe.manifest)[0]
        assert 0.0 <= pipe(window).probability <= 1.0  # type: ignore[attr-defined]
        patched(pipe, lambda out: {k: np.full_like(v, 1.7) for k, v in out.items()})
        with pytest.raises(ModelError, match=r"outside its contract.*probability"):
            pipe(window)


def test_non_finite_embedding_is_a_model_error(
    patched: Callable[[edgemed.Pipeline, Patch], None],
) -> None:
    with edgemed.load("clinical-text-minilm", threads=1) as pipe:
        name = pipe.manifest.outputs[0].name
        patched(pipe, _scaled(name, math.nan))
        with pytest.raises(ModelError, match="NaN or infinity"):
            pipe("chest pain")
        patched(pipe, _scaled(name, 0.0))  # finite, but nothing to normalise: norm 0
        with pytest.raises(ModelError, match="outside its contract"):
            pipe("chest pain")


def test_tabular_probability_outside_0_1_is_a_model_error_in_batches_too(
    patched: Callable[[edgemed.Pipeline, Patch], None],
) -> None:
    with edgemed.load("wdbc-malignancy-mlp", threads=1) as pipe:
        rows = task_spec(pipe.manifest).golden_inputs(pipe.manifest)[:4]
        pipe.batch(rows)  # sound
        name = pipe.manifest.outputs[0].name
        patched(pipe, lambda out: {**out, name: out[name] * 0 + 1.5})
        with pytest.raises(ModelError, match="outside its contract"):
            pipe(rows[0])
        with pytest.raises(ModelError, match="outside its contract"):
            pipe.batch(rows)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_tabular_models_non_finite_output_is_a_model_error(
    patched: Callable[[edgemed.Pipeline, Patch], None], bad: float
) -> None:
    """A tabular model's output is one or two numbers, checked in Python rather than NumPy
    (``all_finite``'s small path): NaN and both infinities are still caught, for a single row
    and inside a batch, in float32 and float16 outputs."""
    with edgemed.load("diabetes-progression", threads=1) as pipe:
        rows = task_spec(pipe.manifest).golden_inputs(pipe.manifest)[:3]
        name = pipe.manifest.outputs[0].name
        for dtype in (np.float32, np.float16):

            def corrupt(out: dict[str, np.ndarray], dtype: Any = dtype) -> dict[str, np.ndarray]:
                value = out[name].astype(dtype)
                value.flat[-1] = bad
                return {**out, name: value}

            patched(pipe, corrupt)
            with pytest.raises(ModelError, match="NaN or infinity"):
                pipe(rows[0])
            with pytest.raises(ModelError, match="NaN or infinity"):
                pipe.batch(rows)


def test_provenance_built_on_the_fast_path_equals_the_dataclass() -> None:
    """The pipeline fills Provenance and Timings dicts directly (no frozen ``__init__``): the
    result must be the very object ``__init__`` would build, every field present."""
    with edgemed.load("diabetes-progression", threads=1) as pipe:
        row = task_spec(pipe.manifest).golden_inputs(pipe.manifest)[0]
        p = pipe(row).provenance
        rebuilt = edgemed.Provenance(
            **{f.name: getattr(p, f.name) for f in fields(edgemed.Provenance)}
        )
        assert p == rebuilt and vars(p).keys() == vars(rebuilt).keys()
        assert p.timings == edgemed.Timings(**vars(p.timings))
        assert vars(p.timings).keys() == {f.name for f in fields(edgemed.Timings)}
        assert (p.model_id, p.backend, p.input_kind) == (
            pipe.manifest.id,
            pipe.backend.name,
            "tabular",
        )


def test_an_out_of_range_result_never_reaches_the_outbox(tmp_path: Path) -> None:
    """Even a result built outside a Pipeline (a custom postprocessor, a bug) is refused at
    submit: nothing is stored, nothing is synced."""
    with edgemed.load("eeg-seizure-watch", threads=1) as pipe:
        window = task_spec(pipe.manifest).golden_inputs(pipe.manifest)[0]
        good = pipe(window)
    assert isinstance(good, SeizureProbability)
    bad = replace(good, probability=1.2)
    outbox = Outbox(OutboxConfig(path=tmp_path / "dev.db", device_id="bed-contract"))
    publisher = Publisher(outbox, BrokerConfig(port=1))  # never started: submit only stores
    with pytest.raises(ModelError, match="probability"):
        publisher.submit(bad)
    assert outbox.stats().depth == 0
    assert publisher.submit(good) == 1  # the sound one is accepted
    assert outbox.stats().depth == 1


@pytest.mark.parametrize(
    ("field", "value"), [("probability", -0.01), ("threshold", 2.0), ("probability", math.inf)]
)
def test_seizure_result_bounds(field: str, value: Any) -> None:
    with edgemed.load("eeg-seizure-watch", threads=1) as pipe:
        window = task_spec(pipe.manifest).golden_inputs(pipe.manifest)[0]
        good = pipe(window)
    from edgemed.results.base import check_contract

    check_contract(good)
    with pytest.raises(ModelError):
        check_contract(replace(good, **{field: value}))
