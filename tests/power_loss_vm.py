"""Power cuts under the outbox: the device's outbox runs in a small KVM virtual machine and the
machine is switched off (its qemu process SIGKILLed) mid-commit, so the guest kernel's page
cache and whatever the guest had not yet written to its disk are lost, as at a power cut; a
SIGKILLed process, by contrast, leaves the OS page cache to be written later.

The machine is built from Debian packages by this module, once, into a cache folder: the
Debian kernel (linux-image-<version>-amd64, for its virtio and 9p modules) and an initramfs
holding busybox-static, those modules and an init script. The guest mounts this host's root
read-only over 9p (so it runs the same Python and edgemed as the test) and the outbox's own
disk, an ext4 image file, as /dev/vda, at /mnt/disk (a guest-only tmpfs covers /mnt: the
checkout and its venv may be anywhere else, /tmp included). tests/power_loss_guest.py is the device: it commits
results and prints each seq once ``put`` has returned.

    python tests/power_loss_vm.py CYCLES     # the soak (scripts/soak.sh power-loss)

Needs /dev/kvm, qemu-system-x86, busybox-static, e2fsprogs and apt-get access to the Debian
kernel package (scripts/test.sh installs the first two).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST = HERE / "power_loss_guest.py"
CACHE = Path(os.environ.get("EDGEMED_POWER_LOSS_CACHE", Path.home() / ".cache/edgemed/power-loss"))
# TCG (qemu's own CPU emulation) by default: on this project's machines /dev/kvm exists but a
# nested KVM guest hangs before its first console line. EDGEMED_POWER_LOSS_ACCEL=kvm where it works.
ACCEL = ["-accel", os.environ.get("EDGEMED_POWER_LOSS_ACCEL", "tcg"), "-cpu", "max"]
MODULES = ("virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "crc32c_generic", "ext4")

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod "/modules/$m" || echo "insmod $m failed"; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t tmpfs scratch /host/mnt
mkdir -p /host/mnt/disk
mount -t ext4 /dev/vda /host/mnt/disk || echo "GUEST-ERROR mount"
echo GUEST-UP
chroot /host /usr/bin/env -i PATH=/usr/bin:/bin HOME=/mnt TMPDIR=/mnt PYTHONDONTWRITEBYTECODE=1 \\
    EDGEMED_AUTOTUNE=0 "$pl_python" "$pl_guest" /mnt/disk "$pl_count"
echo GUEST-DONE
poweroff -f
"""


def _newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio archive in the kernel's "newc" format: (path, mode, data) per entry."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        raw = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += b"\0" * (-len(out) % 4)  # the name ends 4-aligned, counting from the archive's start
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def _deb(package: str, into: Path) -> Path:
    """Download a Debian package and unpack it into ``into`` (once)."""
    if not into.exists():
        work = Path(tempfile.mkdtemp(dir=CACHE))
        subprocess.run(["apt-get", "download", package], cwd=work, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        (deb,) = work.glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True, timeout=300)
        (work / "root").rename(into)
        shutil.rmtree(work)
    return into


def _module_order(root: Path, wanted: tuple[str, ...]) -> list[Path]:
    """Modules with their dependencies first (each .ko names its own in .modinfo)."""
    paths = {p.name.split(".ko")[0].replace("-", "_"): p for p in root.rglob("*.ko")}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        found = re.search(rb"\0depends=([^\0]*)\0", paths[name].read_bytes())
        for dep in found.group(1).split(b",") if found and found.group(1) else []:
            visit(dep.decode().replace("-", "_"))
        order.append(paths[name])

    for name in wanted:
        visit(name)
    return order


def kernel_version() -> str:
    """The running Debian release's generic amd64 kernel (what linux-image-amd64 depends on)."""
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                         text=True, check=True, timeout=60).stdout  # fmt: skip
    found = re.search(r"Depends: linux-image-(\S+-amd64)", out)
    assert found, out
    return found.group(1)


def build() -> tuple[Path, Path]:
    """(vmlinuz, initramfs), built once into the cache folder."""
    CACHE.mkdir(parents=True, exist_ok=True)
    version = kernel_version()
    recipe = hashlib.sha256((INIT + ",".join(MODULES)).encode()).hexdigest()[:12]
    initrd = CACHE / f"initrd-{version}-{recipe}.cpio.gz"  # rebuilt when the recipe changes
    kernel_root = _deb(f"linux-image-{version}", CACHE / f"linux-{version}")
    vmlinuz = kernel_root / "boot" / f"vmlinuz-{version}"
    if not initrd.exists():
        modules = _module_order(kernel_root / "lib/modules" / version, MODULES)
        busybox = Path("/bin/busybox").read_bytes()  # busybox-static: no shared libraries
        entries = [(d, 0o40755, b"") for d in ("bin", "dev", "proc", "sys", "host", "modules")]
        entries += [("bin/busybox", 0o100755, busybox), ("init", 0o100755, INIT.encode())]
        entries += [(f"modules/{m.name}", 0o100644, m.read_bytes()) for m in modules]
        listing = "\n".join(m.name for m in modules).encode()
        entries.append(("modules.list", 0o100644, listing))
        partial = initrd.with_suffix(".partial")
        partial.write_bytes(gzip.compress(_newc(entries), compresslevel=1))
        partial.rename(initrd)
    return vmlinuz, initrd


@dataclass
class Cut:
    """One boot of the device ending in a power cut (or in the guest's own exit)."""

    opened: dict[str, int] = field(default_factory=dict)  # the OPEN line: next_seq, depth...
    put: list[int] = field(default_factory=list)  # seqs whose put() returned, in order
    acking: int = 0  # the highest ack_through() begun: rows up to it may be gone
    console: list[str] = field(default_factory=list)
    cut_after_s: float = 0.0


class Machine:
    """The device's VM: its outbox disk (an ext4 image file) survives every power cut."""

    def __init__(self, work: Path, disk_mb: int = 64) -> None:
        self.qemu = shutil.which("qemu-system-x86_64")
        if self.qemu is None:
            raise RuntimeError(
                "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
            )
        self.kernel, self.initrd = build()
        self.work = work
        self.disk = work / "outbox.img"
        with self.disk.open("wb") as f:
            f.truncate(disk_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.disk)], check=True, timeout=60)

    def boot_and_cut(self, cut_after_s: float | None, timeout: float = 180.0) -> Cut:
        """Boot, let the device commit for ``cut_after_s`` seconds after its outbox opened,
        then switch the machine off (None: the device only opens its outbox, and the machine
        powers itself off)."""
        cut = Cut(cut_after_s=cut_after_s or 0.0)
        count = "" if cut_after_s is not None else "0"
        append = f"console=ttyS0 quiet panic=-1 pl_python={sys.executable} pl_guest={GUEST}"
        append += f" pl_count={count}"
        proc = subprocess.Popen(
            [self.qemu, *ACCEL, "-nic", "none", "-m", "768", "-smp", "1", "-nographic",
             "-no-reboot", "-kernel", str(self.kernel), "-initrd", str(self.initrd),
             "-append", append,
             "-drive", f"file={self.disk},if=virtio,format=raw,cache=writeback",
             "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert proc.stdout is not None
        lines: list[str] = []
        opened_at: list[float] = []

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors="replace").strip()
                lines.append(line)
                if line.startswith("OPEN "):
                    opened_at.append(time.monotonic())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if (
                    cut_after_s is not None
                    and opened_at
                    and (time.monotonic() >= opened_at[0] + cut_after_s)
                ):
                    break
                time.sleep(0.01)
            else:
                if proc.poll() is None:
                    raise AssertionError("the device VM did not finish:\n" + "\n".join(lines[-40:]))
        finally:
            proc.kill()  # the power cut
            proc.wait()
        reader.join(5)
        cut.console = lines
        for line in lines:
            if line.startswith("OPEN "):
                cut.opened = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
            elif line.startswith("PUT "):
                cut.put.append(int(line.split()[1]))
            elif line.startswith("ACKING "):
                cut.acking = int(line.split()[1])
        return cut

    def files(self, into: Path) -> Iterator[Path]:
        """After a cut: the disk's journal replayed as at the next boot (e2fsck), then the
        outbox files copied out for inspection on this host."""
        subprocess.run(["e2fsck", "-fy", str(self.disk)], capture_output=True, timeout=120)
        into.mkdir(parents=True, exist_ok=True)
        listing = subprocess.run(["debugfs", "-R", "ls -p /", str(self.disk)],
                                 capture_output=True, text=True, timeout=60).stdout  # fmt: skip
        for name in re.findall(r"/\d+/\d+/\d+/\d+/([^/]+)/", listing):
            if name.startswith("outbox.db"):
                target = into / name
                subprocess.run(["debugfs", "-R", f"dump /{name} {target}", str(self.disk)],
                               capture_output=True, check=True, timeout=60)  # fmt: skip
                yield target


def run(cuts: int, work: Path, seed: int = 0, *, reboot: bool = True) -> dict[str, int]:
    """``cuts`` power cuts of one device at random moments, each followed by the checks below,
    then a last boot that only opens the outbox. Raises AssertionError on any loss; returns
    the tally. After each cut:

    - the disk's outbox opens on this host (journal replayed, WAL recovered) without being
      judged corrupt, and SQLite's integrity check passes;
    - every result whose ``put`` returned before the cut is in it, unless an ``ack_through``
      that began may have deleted it (acks may be undone by a cut: a replayed row is resent
      and the fleet stores it once);
    - it continues after every seq ever returned (no seq reused), on this host and at the
      next boot (``reboot``: each cut is followed by a boot; the last one only opens the
      outbox)."""
    from edgemed.config import OutboxConfig
    from edgemed.sync import Outbox

    rng = random.Random(seed)
    machine = Machine(work)
    highest = committed = 0
    for i in range(cuts + 1 if reboot else cuts):
        last = i == cuts
        cut = machine.boot_and_cut(None if last else rng.uniform(0.2, 1.5))
        console = "\n".join(cut.console[-30:])
        assert cut.opened, f"boot {i}: the device never opened its outbox:\n{console}"
        assert cut.opened["moved"] == 0, f"boot {i}: the outbox was judged corrupt:\n{console}"
        assert cut.opened["next_seq"] > highest, (i, cut.opened, highest)
        if last:
            break
        assert cut.put, f"cut {i}: nothing committed before the cut:\n{console}"
        highest = max(highest, *cut.put)
        committed += len(cut.put)
        copies = work / f"after-cut-{i}"
        files = list(machine.files(copies))
        assert any(f.name == "outbox.db" for f in files), files
        outbox = Outbox(OutboxConfig(path=copies / "outbox.db", device_id="bed-power-loss"))
        try:
            assert outbox.recovered_from is None, f"cut {i}: judged corrupt on this host"
            assert outbox.stats().next_seq > highest, (i, outbox.stats(), highest)
            stored = {row.seq for row in outbox.pending(10**7)}
        finally:
            outbox.close()
        lost = sorted(s for s in cut.put if s > cut.acking and s not in stored)
        assert not lost, f"cut {i} after {cut.cut_after_s:.2f} s lost returned seqs {lost[:10]}"
    return {"cuts": cuts, "returned_puts": committed, "highest_seq": highest, "lost": 0}


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        tally = run(count, Path(tmp), seed=count)
        print({**tally, "seconds": round(time.monotonic() - started)})
