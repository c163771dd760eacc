"""The tests a pytest JUnit report marks skipped, as node ids of the source checkout (an xfail,
which JUnit reports as skipped too, is not listed: it ran).

scripts/test_wheel.sh runs tests/unit against the installed wheel from a copy named ``unit``;
the tests that need the source tree (docs/, deploy/, benchmarks/, recipe data) skip there, and
scripts/test.sh runs what this lists on the checkout. Usage: junit_skipped.py REPORT.xml OUT
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def node_id(classname: str, name: str) -> str:
    """``classname`` "unit.test_x" or "unit.test_x.Class" with ``name`` "test_y[param]"; a
    module skipped whole at collection has classname "" and name "unit.test_x"."""
    parts = (classname or name).split(".")
    parts = parts if parts[0] == "unit" else ["unit", *parts]
    depth = next((i + 1 for i, p in enumerate(parts) if p.startswith("test_")), len(parts))
    path = "tests/" + "/".join(parts[:depth]) + ".py"
    return "::".join([path, *parts[depth:], name]) if classname else path


def skipped(report: str) -> list[str]:
    return [
        node_id(case.get("classname", ""), case.get("name", ""))
        for case in ET.parse(report).iter("testcase")
        if (skip := case.find("skipped")) is not None and skip.get("type") != "pytest.xfail"
    ]


if __name__ == "__main__":
    ids = skipped(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        out.writelines(f"{i}\n" for i in ids)
    print(f"{len(ids)} unit tests skipped outside the source tree: scripts/test.sh runs them in it")
