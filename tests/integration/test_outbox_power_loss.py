"""Power cuts, not only SIGKILL (issue 27): the outbox in a small virtual machine switched off
mid-commit (tests/power_loss_vm.py), its disk then read as the next boot reads it. Every result
whose ``submit`` returned must be there, the outbox must open without being judged corrupt,
and no seq may be handed out twice.

The suite runs one cut (about 20 s under qemu's CPU emulation); ``scripts/soak.sh power-loss``
runs many, each followed by a boot of the device (``EDGEMED_POWER_LOSS_CUTS``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import power_loss_vm
import pytest

CUTS = int(os.environ.get("EDGEMED_POWER_LOSS_CUTS", "1"))


def test_power_cut_mid_commit_loses_no_returned_result(tmp_path: Path) -> None:
    for tool in ("qemu-system-x86_64", "mkfs.ext4", "e2fsck", "debugfs", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/test.sh installs what it needs)")
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")
    if not Path("/mnt").is_dir():
        pytest.skip("the guest mounts its disk under this host's /mnt, which does not exist")
    try:
        power_loss_vm.build()
    except subprocess.CalledProcessError as exc:  # no Debian mirror reachable
        pytest.skip(f"the Debian kernel package could not be fetched: {exc.stderr!r}")
    tally = power_loss_vm.run(CUTS, tmp_path, seed=CUTS, reboot=CUTS > 1)
    print(tally)
    assert tally["lost"] == 0 and tally["returned_puts"] > 0
