"""Data flows one way (DESIGN.md §1): no stage imports a later stage; fleet/ sees only leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import edgemed

PKG = Path(edgemed.__file__).parent
# Shared leaves any stage may import (they import only each other).
LEAVES = {
    "errors",
    "contracts",
    "config",
    "manifest",
    "results",
    "wire",
    "kernels",
    "mqtt_connection",
    "registry",
    "_version",
    "_kernels",
}
# Stage number of each top-level module/package.
STAGE = {
    "io": 1,
    "bridge": 1,
    "preprocess": 2,
    "hardware": 3,
    "backends": 3,
    "postprocess": 4,
    "sync": 6,
    "fleet": 8,
}
ROOTS = {
    "__init__",
    "pipeline",
    "tasks",
    "cli",
    "cli_inputs",
}  # composition roots: may import anything


def _top(module_file: Path) -> str:
    rel = module_file.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """Top-level edgemed modules imported by ``path`` (relative and absolute imports)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PKG).parts) - 1
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > depth:
                    continue
                prefix = list(path.relative_to(PKG).parts[: depth - (node.level - 1)])
                parts = prefix + (node.module.split(".") if node.module else [])
                if parts:
                    found.add(parts[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("edgemed."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("edgemed."):
                    found.add(alias.name.split(".")[1])
    return found


def test_stages_import_only_leaves_and_earlier_stages() -> None:
    problems = []
    for path in PKG.rglob("*.py"):
        me = _top(path)
        if me in ROOTS:
            continue
        for other in _imports(path) - {me}:
            if me in LEAVES and other not in LEAVES:
                problems.append(f"leaf {path.relative_to(PKG)} imports stage {other}")
            elif me == "fleet" and other not in LEAVES:
                problems.append(f"{path.relative_to(PKG)} (fleet) imports device-side {other}")
            elif me in STAGE and other in STAGE and STAGE[other] > STAGE[me]:
                problems.append(f"{path.relative_to(PKG)} imports later stage {other}")
            elif other in ROOTS:
                problems.append(f"{path.relative_to(PKG)} imports composition root {other}")
    assert not problems, "\n".join(problems)


def test_every_module_is_classified() -> None:
    tops = {_top(p) for p in PKG.rglob("*.py")} | {"_kernels"}
    unknown = tops - LEAVES - set(STAGE) - ROOTS
    assert not unknown, f"classify these modules in the architecture test: {unknown}"
