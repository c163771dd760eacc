"""Run the unit tests against the installed edgemed (cibuildwheel's test-command).

The tests are copied to a temporary folder first, so that `import edgemed` can only find the
installed wheel, never the source tree: `python scripts/run_wheel_tests.py PROJECT_DIR`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

COPY = ["unit", "fixtures", "conftest.py", "payloads.py", "bridge_vectors.py"]


def main() -> int:
    project = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        for name in COPY:
            src = project / "tests" / name
            if src.is_dir():
                shutil.copytree(src, run / name)
            else:
                shutil.copy2(src, run / name)
        env = {
            **os.environ,
            "EDGEMED_FIRMWARE_BRIDGE": str(project / "firmware_bridge"),
            "EDGEMED_EXAMPLES": str(project / "examples"),
        }
        check = "import edgemed, sys; sys.exit('site-packages' not in edgemed.__file__)"
        if subprocess.run([sys.executable, "-c", check], cwd=run, env=env).returncode:
            print("edgemed is not imported from the installed wheel", file=sys.stderr)
            return 1
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "unit"]
        return subprocess.run(cmd, cwd=run, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
