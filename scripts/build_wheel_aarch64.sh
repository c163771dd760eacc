#!/usr/bin/env bash
# The Jetson wheel: build a manylinux aarch64 wheel of edgemed on an x86_64 Debian machine,
# repair it with auditwheel, and (unless --no-test) install it into an aarch64 Python under
# qemu-user emulation and test it there (scripts/test_wheel_aarch64.sh). docs/jetson.md has the
# figures of the last run. Not in CI: it takes ~40-60 minutes on 2 cores (emulation).
#
#   sudo scripts/build_wheel_aarch64.sh [--no-test] [REF]    # REF: git revision, default HEAD
#
# How (docs/jetson.md, "Building the aarch64 wheel"):
#  1. A clean checkout: `git archive REF` (uncommitted changes are not in the wheel).
#  2. A Debian arm64 root (debootstrap; qemu-user-static through binfmt_misc) provides the
#     aarch64 CPython 3.11 and its headers; setuptools runs there, as `pip wheel` does natively.
#  3. The compiler is zig (PyPI `ziglang`, clang + libc++) targeting aarch64-linux-gnu glibc
#     $EDGEMED_AARCH64_GLIBC (2.28): Debian 12's own glibc is 2.36, newer than JetPack 6's 2.35,
#     so linking against it could not honestly claim a tag that JetPack accepts; zig links
#     against glibc 2.28's symbol set instead, and libc++ statically (no libstdc++ needed).
#  4. auditwheel repair --plat manylinux_2_28_aarch64 (the tag cibuildwheel's manylinux_2_28
#     image gives), then `auditwheel show`.
# Environment: EDGEMED_AARCH64_DIR (work folder, default /var/tmp/edgemed-aarch64; the arm64
# root, zig cache, wheels, reports), EDGEMED_AARCH64_GLIBC, EDGEMED_AARCH64_PLAT, QEMU_CPU.
source "$(dirname "$0")/aarch64/common.sh"
TEST=1
REF=HEAD
for arg in "$@"; do
    case "$arg" in
        --no-test) TEST=0 ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) REF="$arg" ;;
    esac
done
need_root
START=$SECONDS
mkdir -p "$WORK/report"
REPORT="$WORK/report"

host_packages
host_venv
make_rootfs
T_ROOT=$SECONDS

say "clean source of $REF ($(git -C "$ROOT" rev-parse --short "$REF"))"
rm -rf "$WORK/build/src" "$WORK/dist" "$WORK/wheelhouse"
mkdir -p "$WORK/build/src" "$WORK/dist" "$WORK/wheelhouse" "$WORK/zig-cache"
git -C "$ROOT" archive "$REF" | tar -x -C "$WORK/build/src"
git -C "$ROOT" rev-parse "$REF" >"$WORK/build/src.ref"

mount_root
bind_rw "$WORK/build" /build
bind_rw "$WORK/zig-cache" /build/zig-cache
bind_ro "$ZIG_DIR" /opt/zig
cp "$ROOT/scripts/aarch64/in_root_build.sh" "$WORK/build/in_root_build.sh"
say "building in the arm64 root: aarch64 CPython drives setup.py, zig targets glibc $GLIBC"
T0=$SECONDS
in_root /bin/sh /build/in_root_build.sh "$GLIBC" "$PLAT"
BUILD_S=$((SECONDS - T0))
umount_root
trap - EXIT
cp "$WORK"/build/dist/edgemed-*.whl "$WORK/dist/"
cp "$WORK"/build/wheelhouse/edgemed-*.whl "$WORK/wheelhouse/"
WHEEL="$(ls "$WORK"/wheelhouse/edgemed-*.whl)"
cp "$WORK/build/auditwheel-show.txt" "$REPORT/auditwheel-show.txt"
cat "$REPORT/auditwheel-show.txt"
"$HOST_VENV/bin/python" - "$WHEEL" "$REPORT" <<'PY'
import subprocess, sys, tempfile, zipfile
from pathlib import Path

wheel, report = Path(sys.argv[1]), Path(sys.argv[2])
names = zipfile.ZipFile(wheel).namelist()
so = [n for n in names if n.startswith("edgemed/_kernels") and n.endswith(".so")]
assert len(so) == 1 and "aarch64" in so[0], so
assert any(n.startswith("edgemed/models/") for n in names), "no models in the wheel"
with tempfile.TemporaryDirectory() as tmp:
    path = zipfile.ZipFile(wheel).extract(so[0], tmp)
    info = subprocess.run(["file", path], capture_output=True, text=True).stdout
    dyn = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True).stdout
    ver = subprocess.run(["readelf", "-VW", path], capture_output=True, text=True).stdout
    needed = [l.split("[")[1].rstrip("]") for l in dyn.splitlines() if "(NEEDED)" in l]
    glibc = sorted({w for w in ver.split() if w.startswith(("GLIBC_", "GLIBCXX_", "CXXABI_"))},
                   key=lambda s: [int(x) for x in s.split("_")[1].split(".")])
    size = Path(path).stat().st_size
lines = [
    f"wheel: {wheel.name} ({wheel.stat().st_size / 2**20:.1f} MiB, {len(names)} files)",
    f"module: {so[0]} ({size / 2**20:.2f} MiB): {info.split(':', 1)[1].strip()}",
    f"NEEDED: {', '.join(needed)}",
    f"symbol versions required: {', '.join(glibc)}",
]
(report / "wheel.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
TOTAL_BUILD=$((SECONDS - START))
{
    echo "ref: $(git -C "$ROOT" rev-parse "$REF")"
    echo "rootfs (debootstrap, 0 if reused): $((T_ROOT - START)) s"
    echo "wheel build in the arm64 root: $BUILD_S s"
    echo "build total (tools, root, build, repair): $TOTAL_BUILD s"
} | tee "$REPORT/build-times.txt"
say "aarch64 wheel: $WHEEL"
if [ "$TEST" = 1 ]; then
    "$ROOT/scripts/test_wheel_aarch64.sh" "$WHEEL" "$REF"
fi
