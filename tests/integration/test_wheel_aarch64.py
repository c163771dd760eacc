"""The Jetson wheel: scripts/build_wheel_aarch64.sh builds a manylinux aarch64 wheel on x86_64
and tests it under qemu-user (docs/jetson.md has the last run's figures).

The full run takes ~40-60 minutes on 2 cores, so it is ``slow`` (CI runs ``-m "not slow"``):
``sudo .venv/bin/python -m pytest -m slow tests/integration/test_wheel_aarch64.py``. The fast
tests keep the script, its helpers and the cibuildwheel configuration consistent.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [
    ROOT / "scripts" / "build_wheel_aarch64.sh",
    ROOT / "scripts" / "test_wheel_aarch64.sh",
    ROOT / "scripts" / "aarch64" / "common.sh",
    ROOT / "scripts" / "aarch64" / "in_root_build.sh",
    ROOT / "scripts" / "aarch64" / "in_root_test.sh",
    ROOT / "scripts" / "aarch64" / "in_root_pytest.sh",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(script)], check=True)


def test_tag_matches_cibuildwheel_image() -> None:
    """The local build claims the glibc of cibuildwheel's aarch64 image: one tag for one wheel."""
    found = re.search(
        r'^manylinux-aarch64-image = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    assert found, "pyproject.toml [tool.cibuildwheel] names no aarch64 image"
    image = found.group(1)
    common = (ROOT / "scripts" / "aarch64" / "common.sh").read_text()
    assert f'PLAT="${{EDGEMED_AARCH64_PLAT:-{image}_aarch64}}"' in common
    glibc = image.removeprefix("manylinux_").replace("_", ".")
    assert f'GLIBC="${{EDGEMED_AARCH64_GLIBC:-{glibc}}}"' in common


def test_documented_test_files_exist() -> None:
    """Every unit test file the emulated run lists is still there."""
    text = (ROOT / "scripts" / "test_wheel_aarch64.sh").read_text()
    block = text.split("DEFAULT_TESTS=(", 1)[1].split(")", 1)[0]
    files = block.split()
    assert len(files) >= 10
    for name in files:
        assert (ROOT / "tests" / name).is_file(), name


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine() != "x86_64" or sys.platform != "linux" or os.geteuid() != 0,
    reason="builds on Linux x86_64 as root (debootstrap, chroot, binfmt_misc)",
)
def test_build_and_test_aarch64_wheel(tmp_path: Path) -> None:
    work = Path(os.environ.get("EDGEMED_AARCH64_DIR", "/var/tmp/edgemed-aarch64"))
    env = {**os.environ, "EDGEMED_AARCH64_DIR": str(work)}
    assert shutil.which("git")
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build_wheel_aarch64.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=3 * 3600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    wheels = sorted((work / "wheelhouse").glob("edgemed-*-manylinux_2_28_aarch64.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert any(n.startswith("edgemed/_kernels") and "aarch64" in n for n in names)
    assert "aarch64 wheel checks passed" in proc.stdout
    show = (work / "report" / "auditwheel-show.txt").read_text()
    assert "manylinux_2_" in show
