"""CI runs the unit tests once, against the wheel, and then on the source tree only those that
skipped there (scripts/test.sh). This checks the list of skipped tests is read right from a
real pytest JUnit report: every kind of skip becomes a node id of the checkout."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "junit_skipped.py"

pytestmark = pytest.mark.skipif(
    not SCRIPT.exists(), reason="needs the source tree's scripts/ (absent against a wheel)"
)

SKIPS = """
import pytest

@pytest.mark.parametrize("n", [1, 2.5])
def test_param(n):
    pytest.skip("needs docs/")

def test_runs():
    pass

class TestGroup:
    def test_inside(self):
        pytest.skip("needs deploy/")

@pytest.mark.xfail(reason="a known bug: it ran, JUnit still calls it skipped")
def test_known_bug():
    assert False
"""


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("junit_skipped", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_kind_of_skip_becomes_a_node_id_of_the_checkout(tmp_path: Path) -> None:
    unit = tmp_path / "unit"
    unit.mkdir()
    (unit / "test_some.py").write_text(SKIPS)
    (unit / "test_whole.py").write_text(
        'import pytest\npytest.skip("no benchmarks/", allow_module_level=True)\n'
    )
    (tmp_path / "conftest.py").write_text("")  # as scripts/test_wheel.sh copies tests/*.py
    report = tmp_path / "unit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "unit"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    assert sorted(_module().skipped(str(report))) == [
        "tests/unit/test_some.py::TestGroup::test_inside",
        "tests/unit/test_some.py::test_param[1]",
        "tests/unit/test_some.py::test_param[2.5]",
        "tests/unit/test_whole.py",
    ]
