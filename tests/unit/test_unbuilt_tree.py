"""Importing a source tree whose C++ kernels were never built says so and what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import edgemed

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


def test_missing_kernels_error_says_to_build(tmp_path: Path) -> None:
    source = Path(edgemed.__file__).parent
    shutil.copytree(
        source,
        tmp_path / "edgemed",
        ignore=shutil.ignore_patterns("_kernels*.so", "_kernels*.pyd", "__pycache__", "models"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert f"imported {tmp_path / 'edgemed' / '__init__.py'}" in proc.stdout, proc.stderr
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: edgemed's compiled kernels (edgemed._kernels) are not")
    assert f"built in {tmp_path / 'edgemed'}" in last and "`pip install -e .`" in last
    assert "circular import" not in proc.stderr
