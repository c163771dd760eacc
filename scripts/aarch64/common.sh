# Shared by scripts/build_wheel_aarch64.sh and scripts/test_wheel_aarch64.sh: the Debian arm64
# root the aarch64 wheel is built and tested in (run under qemu-user via binfmt_misc), and the
# host tools (zig as the cross compiler, auditwheel).
#
# Everything large lives in $EDGEMED_AARCH64_DIR (default /var/tmp/edgemed-aarch64), never in
# the repository: the root filesystem (~3.3 GB once the test dependencies are in), zig's cache,
# the wheels and the reports. Needs root (debootstrap, chroot, mount, binfmt_misc).
source "$(dirname "${BASH_SOURCE[0]}")/../_common.sh"

WORK="${EDGEMED_AARCH64_DIR:-/var/tmp/edgemed-aarch64}"
SUITE="${EDGEMED_AARCH64_SUITE:-bookworm}"          # Debian arm64 root: its Python (3.11) is the one built for
RFS="$WORK/$SUITE-arm64"
MIRROR="${EDGEMED_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
GLIBC="${EDGEMED_AARCH64_GLIBC:-2.28}"               # the glibc the kernels are compiled and linked against
PLAT="${EDGEMED_AARCH64_PLAT:-manylinux_2_28_aarch64}"
HOST_VENV="$WORK/host-venv"                          # x86_64: ziglang (the cross compiler)
NICE=(nice -n "${EDGEMED_NICE:-10}")
# The emulated CPU: qemu 7.2's nearest model to a Jetson Orin's Cortex-A78AE (ARMv8.2-A with the
# dot-product instructions, no SVE, no I8MM); its default "max" has every feature qemu knows.
export QEMU_CPU="${QEMU_CPU:-cortex-a76}"

need_root() {
    [ "$(id -u)" = 0 ] || { echo "run as root: debootstrap, chroot and binfmt_misc need it"; exit 1; }
}

host_packages() {  # debootstrap + qemu-user-static (its binfmt entries carry the F flag: works in a chroot)
    local apt=()
    command -v debootstrap >/dev/null || apt+=(debootstrap)
    [ -x /usr/bin/qemu-aarch64-static ] || apt+=(qemu-user-static)
    command -v update-binfmts >/dev/null || apt+=(binfmt-support)
    if [ ${#apt[@]} -gt 0 ]; then
        say "installing Debian packages: ${apt[*]} (arm64 root filesystem under emulation)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt[@]}"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
        || { echo "binfmt_misc: qemu-aarch64 is not enabled"; exit 1; }
}

host_venv() {
    make_venv "$HOST_VENV"
    "$HOST_VENV/bin/python" -m pip install --quiet "ziglang==0.17.*"
    ZIG_DIR="$("$HOST_VENV/bin/python" -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')"
}

# The arm64 root: Debian minbase + Python (with headers, for the build) + venv. Made once, reused.
make_rootfs() {
    if [ -f "$RFS/.edgemed-rootfs-ok" ]; then
        return
    fi
    say "debootstrap $SUITE arm64 into $RFS (second stage runs under qemu: ~10-15 min)"
    rm -rf "$RFS"
    "${NICE[@]}" debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-dev,ca-certificates \
        "$SUITE" "$RFS" "$MIRROR"
    touch "$RFS/.edgemed-rootfs-ok"
}

MOUNTED=()
mount_root() {  # proc/sys/dev for the emulated processes; DNS and the host's CAs for pip
    cp /etc/resolv.conf "$RFS/etc/resolv.conf"
    # The host's CA bundle (it may hold a TLS-intercepting proxy's CA the root lacks).
    cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$RFS/etc/ssl/certs/host-ca-bundle.crt"
    local d
    for d in proc sys dev dev/pts; do
        mountpoint -q "$RFS/$d" && continue
        case "$d" in
            proc) mount -t proc proc "$RFS/proc" ;;
            sys) mount -t sysfs sysfs "$RFS/sys" ;;
            *) mount --bind "/$d" "$RFS/$d" ;;
        esac
        MOUNTED=("$RFS/$d" "${MOUNTED[@]}")
    done
    trap umount_root EXIT
}

# qemu-user 7.2 passes the HOST's /proc/cpuinfo (x86) through to aarch64 programs. ONNX Runtime
# 1.32 then dies on import ("qemu: uncaught target signal 11 (Segmentation fault)"), and
# edgemed's cpu_family() sees no aarch64 features. Bind a cpuinfo describing the emulated
# Cortex-A76 (the features qemu's cortex-a76 model has; the tests' aarch64-cpu fixture) over it.
fake_cpuinfo() {
    [ "$QEMU_CPU" = cortex-a76 ] || { echo "QEMU_CPU=$QEMU_CPU: only cortex-a76 has a cpuinfo here"; exit 1; }
    local f="$WORK/cpuinfo-cortex-a76" i
    : >"$f"
    for ((i = 0; i < $(nproc); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 62.50\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' \
            "$i" "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" >>"$f"
    done
    mount --bind "$f" "$RFS/proc/cpuinfo"
    MOUNTED=("$RFS/proc/cpuinfo" "${MOUNTED[@]}")
}

bind_ro() {  # bind_ro HOST_DIR ROOT_PATH
    mkdir -p "$RFS$2"
    mountpoint -q "$RFS$2" || { mount --bind "$1" "$RFS$2" && mount -o remount,bind,ro "$RFS$2"; }
    MOUNTED=("$RFS$2" "${MOUNTED[@]}")
}

bind_rw() {
    mkdir -p "$1" "$RFS$2"
    mountpoint -q "$RFS$2" || mount --bind "$1" "$RFS$2"
    MOUNTED=("$RFS$2" "${MOUNTED[@]}")
}

umount_root() {
    local m
    for m in "${MOUNTED[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    MOUNTED=()
}

in_root() {  # in_root CMD...: run in the arm64 root (qemu-aarch64 through binfmt_misc), clean env
    "${NICE[@]}" chroot "$RFS" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
        PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt \
        PIP_DEFAULT_TIMEOUT=180 QEMU_CPU="$QEMU_CPU" "$@"
}
