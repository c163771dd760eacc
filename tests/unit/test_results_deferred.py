"""``deferred`` and ``finish_batch``: results built without the frozen dataclass ``__init__``
behave exactly like results built with it (equality, immutability, defaults) and refuse what
``__init__`` refuses; each batch row gets its own provenance."""

from __future__ import annotations

import dataclasses

import pytest

from edgemed.results import (
    Provenance,
    Result,
    TabularClassification,
    TabularRegression,
    Timings,
    deferred,
    finish_batch,
)

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


@dataclasses.dataclass(frozen=True)
class Row:
    input_sha256: str
    input_kind: str


def regression(value: float) -> TabularRegression:
    return TabularRegression(
        value=value, name="y", unit="u", out_of_range=(), provenance=PROVENANCE
    )


def test_finish_batch_gives_each_row_its_own_input_and_the_shared_rest() -> None:
    rows = [Row(f"{i:064x}", "tabular") for i in range(3)]
    builders = [
        deferred(TabularRegression, value=float(i), name="y", unit="u", out_of_range=())
        for i in range(3)
    ]
    results = finish_batch(builders, PROVENANCE, rows)
    for i, (result, row) in enumerate(zip(results, rows, strict=True)):
        want = dataclasses.replace(PROVENANCE, input_sha256=row.input_sha256)
        assert result == dataclasses.replace(regression(float(i)), provenance=want)
        assert result.provenance.timings is PROVENANCE.timings
    assert len({id(r.provenance) for r in results}) == 3  # no row shares another's
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].provenance.input_sha256 = "x"  # type: ignore[misc]
    assert PROVENANCE.input_sha256 == "1" * 64  # the shared provenance is left as it was


def test_finish_batch_uses_builders_up() -> None:
    builder = deferred(TabularRegression, value=1.0, name="y", unit="u", out_of_range=())
    finish_batch([builder], PROVENANCE, [Row("a" * 64, "tabular")])
    with pytest.raises(RuntimeError, match="used up"):
        builder(provenance=PROVENANCE)
    with pytest.raises(RuntimeError, match="used up"):
        finish_batch([builder], PROVENANCE, [Row("a" * 64, "tabular")])


def test_finish_batch_calls_other_builders_their_own_way() -> None:
    seen: list[Provenance] = []

    def builder(*, provenance: Provenance) -> Result:
        seen.append(provenance)
        return regression(2.0)

    (result,) = finish_batch([builder], PROVENANCE, [Row("b" * 64, "text")])
    assert result == regression(2.0)
    assert seen == [dataclasses.replace(PROVENANCE, input_sha256="b" * 64, input_kind="text")]


def test_finish_batch_refuses_a_length_mismatch() -> None:
    builder = deferred(TabularRegression, value=1.0, name="y", unit="u", out_of_range=())
    with pytest.raises(ValueError, match="1 results for 2 inputs"):
        finish_batch([builder], PROVENANCE, [Row("a" * 64, "t"), Row("b" * 64, "t")])
