"""The layout rules of docs/architecture.md, checked on the code's own imports.

Data flows one way: input (io, bridge) -> task preprocessing -> backend -> task
postprocessing -> result -> outbox (sync) -> MQTT -> fleet. No stage imports a later one; the
fleet imports only leaves, so it runs without the device stack; a task imports only leaves
(kernels included), the task contract and the shared task toolkit, never another task;
nothing imports a composition root; there is no import cycle; modules stay small enough to
read.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
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
    "trust",  # signature checks and trust policies: devices need them without the builder
    "delivery",  # bundle archives and rollout messages, shared by the fleet and the device
    "_version",
    "_kernels",
    "log_json",  # the CLI's JSON log lines (stdlib only)
    "failpoints",  # crash-test kill points, off unless EDGEMED_FAILPOINTS is set (stdlib only)
    "extras",  # which optional dependency (extra) provides what; imports only errors
    "digest",  # sha256 of input arrays, shared by tasks and results (hashlib and NumPy only)
}
# Stage number of each top-level module/package.
STAGE = {"io": 1, "bridge": 1, "tasks": 2, "hardware": 3, "backends": 3, "sync": 6, "fleet": 8}
# composition roots: may import anything (ota: the device's rollout agent drives the pipeline,
# the trust checks and the sync publisher)
ROOTS = {"__init__", "pipeline", "cli", "bundle", "ota"}
# The modules directly in edgemed/tasks/ that every task may import: the task contract (spec,
# prepared, golden) and the shared task toolkit (what several tasks do alike: image input,
# class scores, build folders, label results). The rest of tasks/ is one package per task.
TASK_CONTRACT_AND_TOOLKIT = {
    "spec",
    "prepared",
    "golden",
    "image_input",
    "class_scores",
    "build_folders",
    "label_build",
}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60  # longer only with a "# long: <why>" comment on or above the def


def _modules() -> Iterator[Path]:
    yield from sorted(PKG.rglob("*.py"))


def _name(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PKG).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _resolve(parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """The edgemed module (as path parts) that ``parts`` names, or its nearest package."""
    while parts:
        base = PKG.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return parts
        if base.with_suffix(".pyi").is_file() or any(PKG.glob(f"{'/'.join(parts)}.*.so")):
            return parts
        parts = parts[:-1]
    return None


def _imports(path: Path) -> set[tuple[str, ...]]:
    """Every edgemed module ``path`` imports (anywhere in it), as path parts below edgemed."""
    tree = ast.parse(path.read_text())
    package = _name(path) if path.name == "__init__.py" else _name(path)[:-1]
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        targets: list[tuple[str, ...]] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = tuple(node.module.split(".")) if node.module else ()
                targets = [(*base, *mod, alias.name) for alias in node.names]
            elif node.module and node.module.startswith("edgemed."):
                mod = tuple(node.module.split(".")[1:])
                targets = [(*mod, alias.name) for alias in node.names]
            elif node.module == "edgemed":
                targets = [(alias.name,) for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [
                tuple(a.name.split(".")[1:]) for a in node.names if a.name.startswith("edgemed.")
            ]
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None:
                found.add(resolved)
    return found


def _graph() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    return {_name(p): _imports(p) - {_name(p)} for p in _modules()}


def _top(parts: tuple[str, ...]) -> str:
    return parts[0] if parts else "__init__"


def test_stages_import_only_leaves_and_earlier_stages() -> None:
    problems = []
    for me, imported in _graph().items():
        mine = _top(me)
        if mine in ROOTS:
            continue
        for other in {_top(o) for o in imported} - {mine}:
            where = "/".join(me)
            if mine in LEAVES and other not in LEAVES:
                problems.append(f"leaf {where} imports {other}")
            elif mine in ("fleet", "tasks") and other not in LEAVES:
                problems.append(f"{where} ({mine}) imports {other}, not a leaf")
            elif mine in STAGE and other in STAGE and STAGE[other] > STAGE[mine]:
                problems.append(f"{where} imports later stage {other}")
            elif other in ROOTS:
                problems.append(f"{where} imports composition root {other}")
    assert not problems, "\n".join(problems)


def test_a_task_imports_only_itself_the_task_contract_and_the_toolkit() -> None:
    problems = []
    for me, imported in _graph().items():
        if len(me) < 2 or me[0] != "tasks" or me[1] in TASK_CONTRACT_AND_TOOLKIT:
            continue
        for other in imported:
            if (
                other[0] == "tasks"
                and other[:2] != me[:2]
                and (other[1:2] and other[1] not in TASK_CONTRACT_AND_TOOLKIT)
            ):
                problems.append(f"{'/'.join(me)} imports {'/'.join(other)}")
            if other == ("tasks",) and len(me) > 1:
                problems.append(f"{'/'.join(me)} imports the task registry (edgemed.tasks)")
    assert not problems, "\n".join(problems)


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over module imports (lazy ones included: a
    cycle hidden in a function is still two modules that cannot be read apart)."""
    graph = _graph()
    index: dict[tuple[str, ...], int] = {}
    low: dict[tuple[str, ...], int] = {}
    stack: list[tuple[str, ...]] = []
    cycles: list[list[str]] = []

    def visit(node: tuple[str, ...]) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            # A package importing its own submodule (re-exports) is not a cycle of design.
            if nxt[: len(node)] == node and nxt != node:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                top = stack.pop()
                members.append("/".join(top) or "__init__")
                if top == node:
                    break
            if len(members) > 1:
                cycles.append(sorted(members))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_modules_and_functions_stay_readable() -> None:
    problems = []
    for path in _modules():
        lines = path.read_text().splitlines()
        where = path.relative_to(PKG)
        if len(lines) > MAX_MODULE_LINES:
            problems.append(f"{where}: {len(lines)} lines > {MAX_MODULE_LINES}")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            said = any("# long:" in lines[i - 1] for i in (first - 1, node.lineno) if i >= 1)
            if length > MAX_FUNCTION_LINES and not said:
                problems.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert not problems, "\n".join(problems)


def test_every_module_is_classified() -> None:
    tops = {_top(_name(p)) for p in _modules()} | {"_kernels"}
    unknown = tops - LEAVES - set(STAGE) - ROOTS
    assert not unknown, f"classify these modules in the architecture test: {unknown}"
