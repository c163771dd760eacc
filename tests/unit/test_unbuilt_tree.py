"""Importing a source tree whose C++ kernels were never built says so and what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import edgemed
from edgemed.registry import find_model_dir

# An editable install's finder would serve edgemed._kernels from the built checkout as a
# fallback: drop it, as a user's interpreter (wheel install or none) has no such finder.
CHILD = textwrap.dedent("""
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path.insert(0, sys.argv[1])
    import edgemed, edgemed.fleet.broker  # the fleet side needs no kernels
    print("imported", edgemed.__file__)
    import edgemed.kernels
""")


def _copy_source(tmp_path: Path) -> None:
    """The installed package's files, less the compiled kernels: a source tree never built."""
    shutil.copytree(
        Path(edgemed.__file__).parent,
        tmp_path / "edgemed",
        ignore=shutil.ignore_patterns("_kernels*.so", "_kernels*.pyd", "__pycache__", "models"),
    )


def test_missing_kernels_error_says_to_build(tmp_path: Path) -> None:
    _copy_source(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert f"imported {tmp_path / 'edgemed' / '__init__.py'}" in proc.stdout, proc.stderr
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: edgemed's compiled kernels (edgemed._kernels) are not")
    assert f"built in {tmp_path / 'edgemed'}" in last and "`pip install -e .`" in last
    assert "circular import" not in proc.stderr


def test_cli_in_an_unbuilt_tree_exits_1_saying_what_to_do(tmp_path: Path) -> None:
    """Commands that need no kernels work; `run` exits 1 (installation) with the advice."""
    _copy_source(tmp_path)
    cli = CHILD.replace("import edgemed, edgemed.fleet.broker", "import edgemed.cli as c", 1)
    cli = cli[: cli.index("print(")] + "sys.exit(c.main(sys.argv[2:]))\n"
    models = str(find_model_dir("wdbc-malignancy-mlp").parent)  # the copy has no models/

    def edgemed_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", cli, str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "EDGEMED_MODELS_PATH": models},
        )

    listed = edgemed_cli("models", "list", "--json")
    assert listed.returncode == 0 and "wdbc-malignancy-mlp" in listed.stdout, listed.stderr
    run = edgemed_cli("run", "wdbc-malignancy-mlp", "[1]")
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("edgemed: ImportError: edgemed's compiled kernels"), run.stderr
    assert f"not built in {tmp_path / 'edgemed'}" in run.stderr and "Traceback" not in run.stderr
