"""``deferred``: results built without the frozen dataclass ``__init__`` behave exactly like
results built with it (equality, immutability, defaults) and refuse what ``__init__`` refuses."""

from __future__ import annotations

import dataclasses

import pytest

from edgemed.results import Provenance, TabularClassification, TabularRegression, Timings, deferred

PROVENANCE = Provenance(
    model_id="m",
    model_version="1",
    model_sha256="0" * 64,
    backend="onnxruntime",
    device="cpu",
    precision="int8",
    input_sha256="1" * 64,
    input_kind="tabular",
    timings=Timings(preprocess_ms=0.1, inference_ms=0.2, postprocess_ms=0.3),
    edgemed_version="0",
    created_at=1.0,
)
FIELDS = {
    "label": "malignant",
    "probability": 0.75,
    "threshold": 0.5,
    "labels": ("benign", "malignant"),
    "positive_label": "malignant",
    "out_of_range": ("radius",),
}


def test_same_as_init() -> None:
    built = deferred(TabularClassification, **FIELDS)(provenance=PROVENANCE)
    normal = TabularClassification(**FIELDS, provenance=PROVENANCE)  # type: ignore[arg-type]
    assert built == normal and repr(built) == repr(normal)
    assert built.kind == "tabular-classification" and built.body() == normal.body()
    assert dataclasses.asdict(built) == dataclasses.asdict(normal)
    assert dataclasses.replace(built, probability=0.1).probability == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.probability = 0.0  # type: ignore[misc]


def test_each_call_is_a_new_result() -> None:
    builder = deferred(TabularRegression, value=1.5, name="y", unit="u", out_of_range=())
    a, b = builder(provenance=PROVENANCE), builder(provenance=PROVENANCE)
    assert a == b and a is not b


def test_missing_or_unknown_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="probability"):
        deferred(TabularClassification, **{k: v for k, v in FIELDS.items() if k != "label"})
    with pytest.raises(TypeError, match="surprise"):
        deferred(TabularClassification, **FIELDS, surprise=1)


def test_post_init_types_are_refused() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Checked:
        value: float
        provenance: Provenance

        def __post_init__(self) -> None:  # pragma: no cover - never run by deferred
            assert self.value >= 0

    with pytest.raises(TypeError, match="__post_init__"):
        deferred(Checked, value=1.0)  # type: ignore[type-var]
