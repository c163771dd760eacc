#!/bin/bash
# Runs INSIDE the arm64 root: the unit test files given, one pytest run per file, each with a
# time limit (emulation is ~10-40x slower than native; one slow file must not sink the rest).
# Tests come from /build/src (a clean checkout), run from a folder without the source tree.
# Appends "<file> <summary> <seconds>" lines to /build/report/pytest-files.txt.
set -uo pipefail
LIMIT="${EDGEMED_AARCH64_FILE_TIMEOUT:-900}"
R=/build/report
rm -rf /build/run && mkdir -p /build/run "$R"
cp -r /build/src/tests/unit /build/src/tests/fixtures /build/src/tests/conftest.py \
    /build/src/tests/payloads.py /build/src/tests/bridge_vectors.py /build/run/
cd /build/run
: >"$R/pytest-files.txt"
: >"$R/pytest.txt"
rc=0
for f in "$@"; do
    T0=$(date +%s)
    EDGEMED_FIRMWARE_BRIDGE=/build/src/firmware_bridge timeout "$LIMIT" \
        /opt/test-venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow" --tb=short "$f" \
        >"$R/pytest-one.txt" 2>&1
    code=$?
    grep -v 'MIDR_EL1' "$R/pytest-one.txt" >>"$R/pytest.txt"
    summary="$(grep -E '^(FAILED|ERROR) |[0-9]+ (passed|failed)' "$R/pytest-one.txt" | tail -1)"
    [ "$code" = 124 ] && summary="TIMEOUT after ${LIMIT}s"
    line="$f: ${summary:-exit $code} ($(($(date +%s) - T0)) s)"
    echo "$line" | tee -a "$R/pytest-files.txt"
    grep -E '^FAILED ' "$R/pytest-one.txt" | sed 's/^/    /' | tee -a "$R/pytest-files.txt"
    [ "$code" = 0 ] || rc=1
done
exit "$rc"
