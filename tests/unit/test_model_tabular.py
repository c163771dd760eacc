"""The bundled tabular models (wdbc-malignancy-mlp, diabetes-progression): golden rows on both
runtimes, cross-validation claims re-run, out-of-range flags, bad input, batch == single."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import edgemed
from edgemed import digest
from edgemed.hardware import cpu_family
from edgemed.results import (
    Result,
    TabularClassification,
    TabularClassificationTable,
    TabularRegression,
)
from edgemed.results.base import check_contract
from edgemed.wire import decode_result, encode_result

CLS, REG = "wdbc-malignancy-mlp", "diabetes-progression"
BACKENDS = ("onnxruntime", "openvino")


@pytest.fixture(scope="module", params=[(m, b) for m in (CLS, REG) for b in BACKENDS], ids=str)
def pipeline(request: pytest.FixtureRequest) -> Iterator[edgemed.Pipeline]:
    model, backend = request.param
    # load() itself runs the golden rows and refuses to serve on drift.
    with edgemed.load(model, backend=backend, threads=1) as p:
        yield p


@pytest.fixture(scope="module")
def cls() -> Iterator[edgemed.Pipeline]:
    with edgemed.load(CLS, backend="onnxruntime", threads=1) as p:
        yield p


@pytest.fixture(scope="module")
def reg() -> Iterator[edgemed.Pipeline]:
    with edgemed.load(REG, backend="onnxruntime", threads=1) as p:
        yield p


def _golden(p: edgemed.Pipeline) -> tuple[list[dict[str, float]], np.ndarray]:
    rows = json.loads(p.manifest.path("golden_inputs").read_text())
    return rows, np.load(p.manifest.path("golden_outputs")).astype(np.float64)


def _value(result: object) -> float:
    if isinstance(result, TabularClassification):
        return result.probability
    assert isinstance(result, TabularRegression)
    return result.value


def _data(model: str) -> tuple[np.ndarray, np.ndarray]:
    if model == CLS:
        X, t = load_breast_cancer(return_X_y=True)
        return X, (t == 0).astype(int)  # 1 = malignant
    X, y = load_diabetes(return_X_y=True, scaled=False)
    return X, y


# ---------------------------------------------------------------- golden rows, both runtimes


def test_golden_rows_reproduced(pipeline: edgemed.Pipeline) -> None:
    m = pipeline.manifest
    assert pipeline.backend.name in BACKENDS and pipeline.backend.device == "cpu"
    rows, expected = _golden(pipeline)
    assert len(rows) == len(expected) >= 8
    got = np.array([_value(pipeline(row)) for row in rows])
    assert np.abs(got - expected).max() <= m.golden.max_abs_diff
    assert pipeline.check_golden() == []
    if m.task == "tabular-classification":
        labels = [pipeline(row).label for row in rows]
        assert labels == ["malignant" if e >= 0.5 else "benign" for e in expected]
        assert set(labels) == {"benign", "malignant"}  # golden rows cover both classes


def test_golden_check_catches_drift(pipeline: edgemed.Pipeline) -> None:
    rows, _ = _golden(pipeline)
    results = pipeline.batch(rows)
    assert pipeline._task.golden_check(pipeline.manifest, results, cpu_family()) == []
    shift = 10 * pipeline.manifest.golden.max_abs_diff
    field = "probability" if isinstance(results[0], TabularClassification) else "value"
    drifted = [dataclasses.replace(r, **{field: _value(r) + shift}) for r in results]  # type: ignore[type-var]
    problems = pipeline._task.golden_check(pipeline.manifest, drifted, cpu_family())
    assert problems and "golden" in problems[0]
    if isinstance(results[0], TabularClassification):  # a flipped decision alone is caught too
        flipped = [
            dataclasses.replace(r, label="benign" if r.label == "malignant" else "malignant")
            if i == 0
            else r
            for i, r in enumerate(results)
        ]
        problems = pipeline._task.golden_check(pipeline.manifest, flipped, cpu_family())
        assert problems == [f"golden: label agreement {1 - 1 / len(results):.3f} < 1.0"]


@pytest.mark.parametrize("model", [CLS, REG])
def test_golden_rows_are_real_dataset_rows(model: str) -> None:
    with edgemed.load(model, threads=1) as p:
        rows, _ = _golden(p)
        names = [f["name"] for f in p.manifest.preprocess["features"]]
    X, _ = _data(model)
    for row in rows:
        assert list(row) == names
        assert np.any(np.all(np.isclose(X, [row[n] for n in names], rtol=0, atol=1e-9), axis=1))


def test_ort_and_openvino_agree_on_all_rows() -> None:
    for model in (CLS, REG):
        X, _ = _data(model)
        with (
            edgemed.load(model, backend="onnxruntime", threads=1) as a,
            edgemed.load(model, backend="openvino", threads=1) as b,
        ):
            va = np.array([_value(r) for r in a.batch(list(X))])
            vb = np.array([_value(r) for r in b.batch(list(X))])
            assert np.abs(va - vb).max() <= a.manifest.golden.max_abs_diff


# ---------------------------------------------------------------- metric claims


def test_classifier_cv_claim_rerun() -> None:
    """Re-run the first repeat of the recipe's CV (same splits, same model): its out-of-fold
    AUC must fall inside the manifest's 95 % CI and close to the 5-repeat estimate."""
    with edgemed.load(CLS, threads=1) as p:
        m = p.manifest.metrics
    X, y = _data(CLS)
    cv = RepeatedStratifiedKFold(n_splits=5, n_repeats=1, random_state=0)
    oof = np.zeros(len(y))
    for tr, te in cv.split(X, y):
        model = make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(16,), alpha=1.0, solver="adam", max_iter=2000, random_state=0
            ),
        )
        oof[te] = model.fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    auc = roc_auc_score(y, oof)
    assert float(m["cv_roc_auc_fp32_ci95_low"]) <= auc <= float(m["cv_roc_auc_fp32_ci95_high"])
    assert abs(auc - float(m["cv_roc_auc_fp32"])) <= 0.003
    sensitivity = float((oof[y == 1] >= 0.5).mean())
    assert abs(sensitivity - float(m["cv_sensitivity_fp32"])) <= 0.02


def test_regression_cv_claim_rerun() -> None:
    """The whole 5 x 5 repeated CV of the ridge model takes < 1 s: re-run it exactly."""
    with edgemed.load(REG, threads=1) as p:
        m = p.manifest.metrics
    X, y = _data(REG)
    oof = np.zeros((5, len(y)))
    cv = RepeatedKFold(n_splits=5, n_repeats=5, random_state=0)
    for k, (tr, te) in enumerate(cv.split(X)):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        oof[k // 5, te] = model.fit(X[tr], y[tr]).predict(X[te])
    assert abs(np.mean([r2_score(y, r) for r in oof]) - float(m["cv_r2"])) <= 1e-3
    assert abs(np.mean([mean_absolute_error(y, r) for r in oof]) - float(m["cv_mae"])) <= 0.02
    assert float(m["cv_r2_ci95_low"]) < float(m["cv_r2"]) < float(m["cv_r2_ci95_high"])


def test_int8_gate_recorded_and_consistent(cls: edgemed.Pipeline) -> None:
    m = cls.manifest.metrics
    shipped = str(m["shipped_precision"])
    assert shipped == cls.manifest.precision
    gate = str(m["int8_gate"])
    assert gate.startswith(f"shipped {shipped.upper()}")
    accuracy_ok = (
        float(m["cv_roc_auc_fp32"]) - float(m["cv_roc_auc_int8"]) <= 0.01
        and float(m["cv_int8_vs_fp32_decision_agreement"]) >= 0.99
    )
    assert ("accuracy passed" in gate) == accuracy_ok
    if shipped == "int8":
        assert accuracy_ok and "speed passed" in gate
    else:  # FP32 shipped: the card says why
        assert "FAILED" in gate


@pytest.mark.parametrize("model", [CLS, REG])
def test_model_card_matches_manifest(model: str) -> None:
    with edgemed.load(model, threads=1) as p:
        m, card = p.manifest, p.manifest.path("model_card").read_text()
    for required in (
        "Not a medical device",
        "Intended use",
        "provenance",
        "Licence",
        "Metrics",
        "fitted on **all",
        "bootstrap",
    ):
        assert required.lower() in card.lower(), required
    assert m.medical_device is False and m.license == "BSD-3-Clause"
    assert m.rows_independent is True
    keys = ["cv_roc_auc_fp32", "cv_roc_auc_int8"] if model == CLS else ["cv_r2", "cv_mae"]
    for key in keys:
        row = f"{m.metrics[key]} [{m.metrics[key + '_ci95_low']}, {m.metrics[key + '_ci95_high']}]"
        assert row in card, key
    if model == CLS:
        assert str(m.metrics["int8_gate"]) in card
        assert float(m.metrics["onnx_vs_sklearn_max_abs_prob"]) <= 1e-5


# ---------------------------------------------------------------- inputs and results


def test_mapping_sequence_and_array_inputs_agree(cls: edgemed.Pipeline) -> None:
    rows, _ = _golden(cls)
    row = rows[0]
    names = [f["name"] for f in cls.manifest.preprocess["features"]]
    reordered = dict(reversed(list(row.items())))  # order of a mapping does not matter
    seq = [row[n] for n in names]
    results = [cls(row), cls(reordered), cls(seq), cls(np.array(seq)), cls(tuple(seq))]
    assert len({r.probability for r in results}) == 1
    assert len({r.provenance.input_sha256 for r in results}) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", results[0].provenance.input_sha256)
    assert results[0].provenance.input_kind == "tabular"


def test_out_of_range_flagged_not_rejected(cls: edgemed.Pipeline, reg: edgemed.Pipeline) -> None:
    rows, _ = _golden(cls)
    assert all(cls(r).out_of_range == () for r in rows)
    spec = {f["name"]: f for f in cls.manifest.preprocess["features"]}
    row = {**rows[0], "area_mean": spec["area_mean"]["max"] * 3, "symmetry_se": 0.0}
    assert spec["symmetry_se"]["min"] > 0.0
    result = cls(row)
    assert result.out_of_range == ("area_mean", "symmetry_se")  # manifest order
    assert 0.0 <= result.probability <= 1.0 and result.label in ("benign", "malignant")
    assert result.body()["out_of_range"] == ["area_mean", "symmetry_se"]
    # exactly on the bound is in range
    edge = {**rows[0], "area_mean": spec["area_mean"]["max"]}
    assert cls(edge).out_of_range == ()

    reg_rows, _ = _golden(reg)
    odd = {**reg_rows[0], "sex": 3.0, "age": 120.0}
    assert reg(odd).out_of_range == ("age", "sex")
    assert reg(reg_rows[0]).out_of_range == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "radius_mean"}, "missing.*radius_mean"),
        (lambda r: {**r, "tumour_size": 1.0}, "unknown.*tumour_size"),
        (
            lambda r: {**{k: v for k, v in r.items() if k != "area_se"}, "area_SE": 1.0},
            r"missing feature\(s\) \['area_se'\]; unknown feature\(s\) \['area_SE'\]",
        ),
        (lambda r: {**r, "texture_se": np.float32(np.nan)}, "texture_se.*NaN"),
        (lambda r: {**r, "texture_se": np.bool_(True)}, "texture_se.*number"),
        (lambda r: {**r, "texture_se": float("nan")}, "texture_se.*NaN"),
        (lambda r: {**r, "area_worst": float("inf")}, "area_worst.*infinite"),
        (lambda r: {**r, "area_worst": -math.inf}, "area_worst"),
        (lambda r: {**r, "area_worst": 1e39, "area_se": 1e300}, r"\['area_se', 'area_worst'\]"),
        (lambda r: {**r, "area_worst": 10**400}, "area_worst.*beyond the float32 range"),
        (lambda r: {**r, "radius_mean": "12.3"}, "radius_mean.*number"),
        (lambda r: {**r, "radius_mean": None}, "radius_mean.*number"),
        (lambda r: {**r, "radius_mean": True}, "radius_mean.*number"),
        (lambda r: list(r.values())[:-1], "expected 30 features"),
        (lambda r: np.array([list(r.values())]), "1-D array of 30"),
        (lambda r: np.array(list(r.values()), dtype=object), "numeric array"),
        (lambda r: "radius_mean=12", "mapping"),
        (lambda r: 42.0, "mapping"),
        (lambda r: None, "mapping"),
    ],
)
def test_bad_input_is_an_input_error(cls: edgemed.Pipeline, change: object, message: str) -> None:
    rows, _ = _golden(cls)
    with pytest.raises(edgemed.InputError, match=message):
        cls(change(dict(rows[0])))  # type: ignore[operator]
    with pytest.raises(edgemed.InputError, match=message):  # a batch checks its rows at once
        cls.batch([rows[1], change(dict(rows[0])), rows[2]])  # type: ignore[operator]
    with pytest.raises(edgemed.InputError, match="row 1: .*" + message):  # a table names the row
        cls.table([rows[1], change(dict(rows[0])), rows[2]])  # type: ignore[operator]


def test_a_batch_with_two_bad_rows_names_the_first(cls: edgemed.Pipeline) -> None:
    """The batch's checks run on the whole table, but its error is the one calling the
    pipeline row by row gives: the first bad row's."""
    rows, _ = _golden(cls)
    nan_row = {**rows[0], "texture_se": float("nan")}
    missing = {k: v for k, v in rows[1].items() if k != "area_se"}
    with pytest.raises(edgemed.InputError, match=r"texture_se.*NaN"):
        cls.batch([rows[2], nan_row, missing])
    with pytest.raises(edgemed.InputError, match="missing feature"):
        cls.batch([rows[2], missing, nan_row])
    overflow = {**rows[3], "area_worst": 1e39}
    with pytest.raises(edgemed.InputError, match=r"\['area_worst'\]"):
        cls.batch([rows[2], rows[4], overflow, nan_row])


def test_a_row_of_python_numbers_prepares_as_the_array_path_does(reg: edgemed.Pipeline) -> None:
    """One row of plain numbers takes a path without NumPy's per-call costs (``_plain_row``);
    an ndarray row takes the array path. The row path takes every row the array path accepts,
    with the same tensor bytes, hash and range flags, and hands every other row over (None),
    whose refusal is then the array path's: also at float32's edge (FLT_MAX plus half a last
    place rounds to infinity), for ints that float64 rounds and for an int beyond float64."""
    pre = reg._pre  # type: ignore[attr-defined]
    base = [float(v) for v in _golden(reg)[0][0].values()]
    limit = float(np.finfo(np.float32).max) + 2.0**103
    rng = np.random.default_rng(28)
    edges: list[object] = [
        np.nextafter(limit, 0.0), -np.nextafter(limit, 0.0), limit, -limit, 2**128 - 2**103 - 1,
        2**128 - 2**103 + 1, 2**53 + 1, 10**30, -(10**30), 0, -0.0, 5e-324, 1e308, -1e308,
        float("nan"), math.inf, 10**400,
    ]  # fmt: skip
    cases = [base, [int(v) for v in base], [1e308] * len(base)]
    for i, edge in enumerate(edges):
        cases.append([*base[: i % len(base)], edge, *base[i % len(base) + 1 :]])
    cases += [list(rng.normal(0, 10.0 ** rng.integers(-3, 40), len(base))) for _ in range(200)]
    checked = refused = 0
    for values in cases:
        plain = pre._plain_row(values)
        try:
            slow = pre(np.array([float(v) for v in values]))
        except OverflowError:  # 10**400: no float64 either
            assert plain is None
            with pytest.raises(edgemed.InputError, match="beyond the float32 range"):
                pre(values)
            refused += 1
            continue
        except edgemed.InputError as exc:
            assert plain is None, values
            with pytest.raises(edgemed.InputError, match=re.escape(str(exc))):
                pre(values)
            refused += 1
            continue
        assert plain is not None, values  # the row path takes what the array path accepts
        for fast in (plain, pre(values)):
            (a,), (b,) = fast.tensors.values(), slow.tensors.values()
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (1, len(base))
            assert a.tobytes() == b.tobytes() and fast.input_sha256 == slow.input_sha256
            assert fast.context == slow.context
        assert plain.input_sha256 == digest.array_sha256(slow.tensors[pre._input])  # type: ignore[attr-defined]
        checked += 1
    assert checked > 100 and refused >= 10  # both outcomes exercised


def test_nan_in_array_names_the_feature(reg: edgemed.Pipeline) -> None:
    rows, _ = _golden(reg)
    values = np.array(list(rows[0].values()))
    values[2] = np.nan
    with pytest.raises(edgemed.InputError, match=r"\['bmi'\]"):
        reg(values)


def test_batch_equals_single(pipeline: edgemed.Pipeline) -> None:
    X, _ = _data(pipeline.manifest.id)
    rows = [dict(zip(pipeline._pre.names, x, strict=True)) for x in X[:64]]  # type: ignore[attr-defined]
    rows[5] = {**rows[5], pipeline._pre.names[0]: 1e6}  # type: ignore[attr-defined]
    batched = pipeline.batch(rows)
    single = [pipeline(r) for r in rows]
    assert len(batched) == 64
    for b, s in zip(batched, single, strict=True):
        assert abs(_value(b) - _value(s)) <= 1e-6
        assert b.out_of_range == s.out_of_range
        assert b.body()["kind"] == s.body()["kind"]
        assert b.provenance.input_sha256 == s.provenance.input_sha256
        if isinstance(b, TabularClassification):
            assert isinstance(s, TabularClassification) and b.label == s.label
    assert batched[5].out_of_range and not batched[4].out_of_range
    # Plain dicts of Python floats take the native table path (NumPy scalars do not): the same
    plain = [{k: float(v) for k, v in r.items()} for r in rows]
    for p, b in zip(pipeline.batch(plain), batched, strict=True):
        assert p.body() == b.body() and p.provenance.input_sha256 == b.provenance.input_sha256


def test_table_equals_batch(pipeline: edgemed.Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipeline.table gives batch()'s values, labels, flags and (expanded) row results, from
    dicts or from a 2-D array; one provenance for the table, hashing the model's input."""
    X, _ = _data(pipeline.manifest.id)
    names = pipeline._pre.names  # type: ignore[attr-defined]
    rows = [dict(zip(names, x.tolist(), strict=True)) for x in X[:64]]
    rows[5] = {**rows[5], names[0]: 1e6}
    batched = pipeline.batch(rows)
    table = pipeline.table(rows)
    assert len(table) == 64 and table.out_of_range == {5: (names[0],)}
    assert table.provenance.input_kind == "tabular-table"
    assert table.provenance.input_sha256 == digest.array_sha256(table.inputs)
    assert table.inputs.dtype == np.float32 and table.inputs.shape == (64, len(names))
    values = table.probability if isinstance(table, TabularClassificationTable) else table.value
    assert np.allclose(values, [_value(b) for b in batched], rtol=0, atol=1e-6)
    if isinstance(table, TabularClassificationTable):
        assert table.label == [b.label for b in batched]  # type: ignore[attr-defined]
    expanded = table.results()
    assert [r.body() for r in expanded] == [b.body() for b in batched]
    assert [r.provenance.input_sha256 for r in expanded] == [
        b.provenance.input_sha256 for b in batched
    ]
    assert {r.provenance.input_kind for r in expanded} == {"tabular"}
    as_array = pipeline.table(np.array([[r[n] for n in names] for r in rows]))
    assert as_array.provenance.input_sha256 == table.provenance.input_sha256
    assert np.array_equal(pipeline.table([list(r.values()) for r in rows]).inputs, table.inputs)
    # a model whose rows may not share a call runs them one by one, to the same values
    monkeypatch.setattr(
        pipeline, "manifest", dataclasses.replace(pipeline.manifest, rows_independent=False)
    )
    one_by_one = pipeline.table(rows)
    again = (
        one_by_one.probability
        if isinstance(one_by_one, TabularClassificationTable)
        else (one_by_one.value)
    )
    assert np.allclose(again, values, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no rows"),
        (np.zeros((0, 30)), "no rows"),
        (np.zeros((2, 29)), r"2-D array \(rows, 30 features\)"),
        (np.zeros(30), "2-D array"),
        (np.array([["a"] * 30]), "numeric array"),
        ("radius_mean=12", "sequence of rows"),
        (None, "sequence of rows"),
        ([{"radius_mean": 1.0}], "row 0: missing feature"),
    ],
)
def test_bad_table_is_an_input_error(cls: edgemed.Pipeline, rows: object, message: str) -> None:
    with pytest.raises(edgemed.InputError, match=message):
        cls.table(rows)


def test_table_contract_rows_bound_every_row() -> None:
    """A table's contract is checked at its rows of smallest and largest value; over random
    tables, those two fail exactly when some row's own result fails the same check."""
    rng = np.random.default_rng(7)
    provenance = edgemed.Provenance(
        model_id="m", model_version="1", model_sha256="0" * 64, backend="onnxruntime",
        device="cpu", precision="fp32", input_sha256="0" * 64, input_kind="tabular-table",
        timings=edgemed.Timings(preprocess_ms=0.0, inference_ms=0.0, postprocess_ms=0.0),
        edgemed_version="0", created_at=0.0,
    )  # fmt: skip
    disagreements = failing = 0
    for trial in range(300):
        n = int(rng.integers(1, 12))
        p = rng.uniform(-0.05, 1.05, n) if trial % 3 else rng.uniform(0.0, 1.0, n)
        if trial % 7 == 0:
            p[rng.integers(n)] = np.nan
        table = TabularClassificationTable(
            probability=p, positive=p >= 0.5, threshold=0.5, labels=("benign", "malignant"),
            positive_label="malignant", inputs=np.zeros((n, 2), np.float32),
            out_of_range={0: ("a",)}, provenance=provenance,
        )  # fmt: skip
        every = all(_passes(r) for r in table.results())
        bound = all(_passes(r) for r in table.contract_rows())
        disagreements += every != bound
        failing += not every
    assert disagreements == 0 and 50 < failing < 250


def _passes(result: Result) -> bool:
    try:
        check_contract(result)
    except edgemed.ModelError:
        return False
    return True


def test_table_is_for_tabular_models_only() -> None:
    with (
        edgemed.load("clinical-text-minilm", golden=False) as text,
        pytest.raises(edgemed.InputError, match="does not take tables"),
    ):
        text.table([{"a": 1.0}])


def test_body_is_json_and_survives_the_wire(cls: edgemed.Pipeline, reg: edgemed.Pipeline) -> None:
    for p in (cls, reg):
        rows, _ = _golden(p)
        result = p(rows[0])
        body = json.loads(json.dumps(result.body(), allow_nan=False))
        assert body["kind"] == p.manifest.task
        assert body["out_of_range"] == []
        json.dumps(result.summary())
        raw = encode_result(
            result, device_id="bed-07", seq=1, boot_id="b", lowest_unacked_seq=1, clock_synced=True
        )
        msg = decode_result(raw, topic_device_id="bed-07")
        assert msg.kind == p.manifest.task and msg.body["result"] == body
    c = cls(_golden(cls)[0][0])
    assert isinstance(c, TabularClassification)
    assert c.body()["labels"] == ["benign", "malignant"] and c.positive_label == "malignant"
    assert c.label == ("malignant" if c.probability >= c.threshold else "benign")
    r = reg(_golden(reg)[0][0])
    assert (
        isinstance(r, TabularRegression) and r.name == "progression_1y" and "progression" in r.unit
    )


def test_cli_run_takes_a_json_row(
    reg: edgemed.Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgemed.cli import main

    row = _golden(reg)[0][0]
    assert main(["run", REG, "--backend", "onnxruntime", "--threads", "1", json.dumps(row)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert abs(printed["progression_1y"] - reg(row).value) < 1e-3
    assert main(["run", REG, "{not json"]) == 3  # bad input (README exit codes)
    assert "JSON object or array" in capsys.readouterr().err
