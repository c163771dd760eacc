#!/usr/bin/env bash
# Install an aarch64 edgemed wheel into the arm64 root's Python (qemu-user emulation) and check
# it there: import, `edgemed doctor` (also on the Jetson probe fixtures), `edgemed models
# verify`, golden drift per backend, and the unit tests below (a subset: emulation is ~10-40x
# slower than native). Figures go to $EDGEMED_AARCH64_DIR/report.
#
#   sudo scripts/test_wheel_aarch64.sh WHEEL [REF]        # REF: tests from this git revision
#   sudo EDGEMED_AARCH64_TESTS="unit/test_kernels.py" scripts/test_wheel_aarch64.sh WHEEL
#
# The emulated CPU is qemu's cortex-a76 (QEMU_CPU), the nearest qemu 7.2 model to a Jetson
# Orin's Cortex-A78AE (ARMv8.2-A + dot product, no SVE), and /proc/cpuinfo in the root is made to
# describe it (qemu-user passes the host's through: ONNX Runtime's import crashes on it).
source "$(dirname "$0")/aarch64/common.sh"
WHEEL="$(realpath "${1:?usage: test_wheel_aarch64.sh WHEEL [REF]}")"
REF="${2:-HEAD}"
# The documented subset (emulation runs Python ~10-40x slower; one pytest run per file, each
# limited to $EDGEMED_AARCH64_FILE_TIMEOUT s): the compiled kernels, manifests and golden limits,
# backend selection on the probe fixtures, the tabular and ECG models end to end, the public API.
# Every model's golden vectors are checked by `models verify` before. Also worth running when
# there is time (EDGEMED_AARCH64_TESTS=...): unit/test_kernels_ocr.py (runs PP-OCR: did not
# finish in 600 s emulated), unit/test_backends.py unit/test_text_model.py
# unit/test_model_eeg_seizure.py unit/test_model_monitor_reader.py unit/test_contracts.py
# unit/test_io.py unit/test_wire.py. Left out: fleet/sync/outbox/bridge (pure Python, no
# aarch64-specific code) and test_architecture/test_unbuilt_tree (need the source tree).
DEFAULT_TESTS=(
    unit/test_kernels.py unit/test_kernels_image.py unit/test_kernels_post.py
    unit/test_kernels_vitals.py
    unit/test_manifest.py unit/test_golden_tolerance.py unit/test_backend_selection.py
    unit/test_model_tabular.py unit/test_model_ecg_sleep.py unit/test_public_api.py
    unit/test_kernels_signal.py
)
read -r -a TESTS <<<"${EDGEMED_AARCH64_TESTS:-${DEFAULT_TESTS[*]}}"
need_root
host_packages
make_rootfs
mkdir -p "$WORK/build/report"
if [ ! -d "$WORK/build/src" ] || [ "$(cat "$WORK/build/src.ref" 2>/dev/null)" != "$(git -C "$ROOT" rev-parse "$REF")" ]; then
    rm -rf "$WORK/build/src" && mkdir -p "$WORK/build/src"
    git -C "$ROOT" archive "$REF" | tar -x -C "$WORK/build/src"
fi
git -C "$ROOT" rev-parse "$REF" >"$WORK/build/src.ref"
rm -f "$WORK/build/report/test-times.txt"
mkdir -p "$WORK/build/wheel"
rm -f "$WORK"/build/wheel/*.whl
cp "$WHEEL" "$WORK/build/wheel/"
cp "$ROOT/scripts/aarch64/in_root_test.sh" "$ROOT/scripts/aarch64/in_root_pytest.sh" "$WORK/build/"
mount_root
fake_cpuinfo
bind_rw "$WORK/build" /build
say "testing $(basename "$WHEEL") in the arm64 root (QEMU_CPU=$QEMU_CPU): ${TESTS[*]}"
T0=$SECONDS
rc=0
in_root /bin/bash /build/in_root_test.sh "/build/wheel/$(basename "$WHEEL")" "${TESTS[@]}" || rc=$?
echo "test total under emulation: $((SECONDS - T0)) s (QEMU_CPU=$QEMU_CPU)" \
    | tee -a "$WORK/build/report/test-times.txt"
mkdir -p "$WORK/report"
cp -r "$WORK"/build/report/. "$WORK/report/"
say "reports in $WORK/report"
exit "$rc"
