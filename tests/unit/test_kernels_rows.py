"""kernels.dict_rows: a tabular batch's plain dicts read into one float64 table, or None."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from edgemed import kernels

NAMES = ("age", "sex", "bmi")


def test_plain_rows_read_in_names_order_exactly() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1e3, (50, 3))
    rows = [{"bmi": float(v[2]), "age": float(v[0]), "sex": float(v[1])} for v in values]
    table = kernels.dict_rows(rows, NAMES)
    assert table is not None and table.dtype == np.float64 and table.shape == (50, 3)
    assert np.array_equal(table, values)  # bit for bit: no rounding on the way
    ints = kernels.dict_rows(({"age": 70, "sex": 2, "bmi": 2**53},), NAMES)  # a tuple of rows
    assert ints is not None and ints.tolist() == [[70.0, 2.0, 2.0**53]]


@pytest.mark.parametrize(
    "odd",
    [
        {"age": True, "sex": 1.0, "bmi": 20.0},  # a bool is not a number here
        {"age": np.float64(70.0), "sex": 1.0, "bmi": 20.0},  # nor a NumPy scalar (checked later)
        {"age": "70", "sex": 1.0, "bmi": 20.0},
        {"age": None, "sex": 1.0, "bmi": 20.0},
        {"age": 10**400, "sex": 1.0, "bmi": 20.0},  # an int beyond float64
        {"age": 70.0, "sex": 1.0},  # a name missing
        {"age": 70.0, "sex": 1.0, "bmi": 20.0, "height": 1.8},  # a name unknown
        {"age": 70.0, "sex": 1.0, "BMI": 20.0},  # same count, one name wrong
        OrderedDict(age=70.0, sex=1.0, bmi=20.0),  # not exactly a dict
        [70.0, 1.0, 20.0],  # not a mapping at all
    ],
)
def test_anything_off_the_plain_path_gives_none(odd: object) -> None:
    plain = {"age": 70.0, "sex": 1.0, "bmi": 20.0}
    assert kernels.dict_rows([plain, odd, plain], NAMES) is None


def test_empty_or_not_a_list_gives_none() -> None:
    assert kernels.dict_rows([], NAMES) is None
    assert kernels.dict_rows(iter([{"age": 1.0, "sex": 1.0, "bmi": 1.0}]), NAMES) is None
    assert kernels.dict_rows([{}], ()) is None


def test_nan_and_inf_pass_through_for_the_callers_checks() -> None:
    table = kernels.dict_rows([{"age": float("nan"), "sex": float("inf"), "bmi": 1.0}], NAMES)
    assert table is not None and np.isnan(table[0, 0]) and np.isinf(table[0, 1])


def test_all_finite_finds_a_non_finite_float_at_any_depth() -> None:
    nested: dict[str, object] = {"a": [1, "x", None, {"b": (2.5, [True, 0.0])}]}
    assert (
        kernels.all_finite(nested)
        and kernels.all_finite([])
        and kernels.all_finite("nan")
        and kernels.all_finite(None)
    )
    for bad in (float("nan"), float("inf"), -float("inf"), np.float64("inf")):
        assert not kernels.all_finite({"a": [1, {"b": (2.5, [bad])}]})
        assert not kernels.all_finite(bad)
    deep: list[object] = [float("nan")]
    for _ in range(5000):  # deeper than the walk goes: left to the encoders, never a crash
        deep = [deep]
    assert kernels.all_finite(deep)
    assert not kernels.all_finite([[float("nan")]] * 3)
