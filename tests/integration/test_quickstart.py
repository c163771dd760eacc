"""The README quickstart is exactly two commands, and they are the ones CI and users run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README quickstart has no bash block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quickstart_is_two_commands_and_ci_runs_the_test_one() -> None:
    commands = _quickstart_commands()
    assert commands == ["./scripts/demo.sh", "./scripts/test.sh"]
    for cmd in commands:
        assert os.access(ROOT / cmd, os.X_OK), cmd
    assert "exec ./scripts/test.sh" in (ROOT / ".ci/run").read_text()


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the source checkout")
def test_demo_script_from_scratch(tmp_path: Path) -> None:
    """Run the first quickstart command as written, in a brand-new virtual environment."""
    env = {**os.environ, "EDGEMED_VENV": str(tmp_path / "venv")}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        [str(ROOT / "scripts/demo.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "demo OK" in proc.stdout and "fleet received 5 result(s)" in proc.stdout


def test_readme_first_python_example_runs_as_written() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme.split("## Using it", 1)[1], re.S)
    assert block, "README has no Python example under 'Using it'"
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.nearest[0].code.startswith("R07")  # type: ignore[attr-defined]  # chest pain
