#!/usr/bin/env bash
# Quickstart 2: install test dependencies and run every check CI runs:
#   ruff + mypy, native C++ tests (ASan/UBSan), the unit tests against a wheel installed in a
#   fresh venv, then pytest on the source tree (integration and browser tests against a real
#   mosquitto, and the unit tests that need files the wheel does not ship).
# With arguments: the same installs, then only `pytest -m "not slow" ARGS` on the source tree.
# System packages: mosquitto (the MQTT broker the integration tests start on free loopback
# ports), g++-aarch64-linux-gnu + qemu-user (the aarch64/Jetson build of the C++ kernel tests)
# chromium (the dashboard's browser tests drive it with Playwright; Playwright never
# downloads a browser) and gcc-arm-none-eabi + clang (the firmware bridge's Cortex-M4 build
# and libFuzzer run), qemu-system-x86 + busybox-static (the outbox's power-cut VM). Each is
# installed with apt-get only if missing, and this script says so.
# PostgreSQL: tests marked `postgres` use $EDGEMED_TEST_POSTGRES (default
# postgresql://postgres@127.0.0.1:5432/test); a local cluster that is installed but stopped is
# started. Run `pytest -m "not postgres"` where no PostgreSQL server is available.
source "$(dirname "$0")/_common.sh"
check_python

APT=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || APT+=(mosquitto)
# The 3-node NATS JetStream cluster of tests/integration/test_fleet_jetstream.py (deploy/nats/).
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || APT+=(nats-server)
# The 3-node RabbitMQ cluster (MQTT plugin, quorum queue) of tests/integration/test_fleet_rabbitmq.py.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || APT+=(rabbitmq-server)
# The Jetson check: kernel tests cross-compiled for aarch64 and run under qemu-user.
command -v aarch64-linux-gnu-g++ >/dev/null || APT+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || APT+=(qemu-user)
[ -x "${EDGEMED_CHROMIUM:-/usr/bin/chromium}" ] || APT+=(chromium)
# The firmware bridge: Cortex-M4 build of the C library, and clang's libFuzzer for its decoder.
command -v arm-none-eabi-gcc >/dev/null || APT+=(gcc-arm-none-eabi)
command -v clang >/dev/null || APT+=(clang)
# The outbox's power-cut test (tests/power_loss_vm.py): a small VM under qemu, busybox inside.
# Without recommends: the VM needs no firmware images, GUI or tools beyond the emulator.
APT_BARE=()
command -v qemu-system-x86_64 >/dev/null || APT_BARE+=(qemu-system-x86)
[ -x /bin/busybox ] || APT_BARE+=(busybox-static)
command -v debugfs >/dev/null || APT_BARE+=(e2fsprogs)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ${#APT[@]} -gt 0 ] || [ ${#APT_BARE[@]} -gt 0 ]; then
    say "installing Debian packages: ${APT[*]} ${APT_BARE[*]} (test-only: MQTT broker, browser for dashboard tests, MCU toolchain, fuzzer, power-cut VM)"
    $SUDO apt-get update -qq
    [ ${#APT[@]} -eq 0 ] || $SUDO apt-get install -y -qq "${APT[@]}"
    [ ${#APT_BARE[@]} -eq 0 ] || $SUDO apt-get install -y -qq --no-install-recommends "${APT_BARE[@]}"
fi

if [ -z "${EDGEMED_TEST_POSTGRES:-}" ] && command -v pg_isready >/dev/null \
    && ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null; then
    say "starting the local PostgreSQL cluster for the postgres-marked tests"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi

# The FHIR push against Medplum's FHIR R4 engine (tests/integration/test_fhir_real_server.py):
# npm @medplum/fhir-router 5.2.13 (its dependencies are pinned exactly) into a cache outside the
# checkout, ~5 s. Without npm, or if the install fails, that test is skipped and says why.
MEDPLUM_DIR="${EDGEMED_MEDPLUM_DIR:-$HOME/.cache/edgemed/medplum-fhir-router-5.2.13}"
if command -v npm >/dev/null && [ ! -f "$MEDPLUM_DIR/node_modules/@medplum/fhir-router/package.json" ]; then
    say "installing Medplum's FHIR engine (npm @medplum/fhir-router 5.2.13) in $MEDPLUM_DIR (test-only)"
    mkdir -p "$MEDPLUM_DIR"
    npm install --prefix "$MEDPLUM_DIR" --no-audit --no-fund --loglevel=error \
        @medplum/fhir-router@5.2.13 || say "npm install failed: the Medplum FHIR test will be skipped"
fi

make_venv "$VENV"
say "installing edgemed in editable mode with [dev] extras"
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"

cd "$ROOT"
if [ $# -gt 0 ]; then  # a selection, e.g. `scripts/test.sh tests/unit/test_wire.py -x`
    say "pytest $* (on the source tree only: no lint, C++, firmware or wheel checks)"
    exec "$VENV/bin/python" -m pytest -m "not slow" "$@"
fi
say "ruff"
"$VENV/bin/ruff" check edgemed tests models/recipes benchmarks examples
"$VENV/bin/ruff" format --check edgemed tests benchmarks examples
say "mypy (strict)"
"$VENV/bin/mypy"
say "C++ kernel tests (ASan/UBSan)"
make -s -C csrc/tests
say "C++ kernel tests cross-compiled for aarch64 (Jetson), run under qemu-aarch64"
make -s -C csrc/tests cross
say "C++ kernel tests without GCC vector extensions (the code path MSVC builds for Windows wheels)"
make -s -C csrc/tests portable
say "firmware bridge: C tests (ASan/UBSan), Cortex-M4 build (-Werror), 20 s of libFuzzer"
make -s -C firmware_bridge test
# The unit tests run once, against the wheel users install (their run of record); the source
# tree then runs the integration and browser tests, and the unit tests that need files the
# wheel does not ship (docs/, deploy/, benchmarks/, recipe data), which skip in the wheel run.
say "wheel: build, install in a fresh venv, run the unit tests outside the source tree"
SKIPPED_IN_WHEEL="$(mktemp /tmp/edgemed-skipped.XXXXXX)"
trap 'rm -f "$SKIPPED_IN_WHEEL"' EXIT
EDGEMED_WHEEL_SKIPPED="$SKIPPED_IN_WHEEL" "$ROOT/scripts/test_wheel.sh"
mapfile -t AGAIN < "$SKIPPED_IN_WHEEL"
say "pytest against the source tree: integration and browser tests, and ${#AGAIN[@]} unit tests the wheel run skipped"
mapfile -t SUITES < <(find tests -mindepth 1 -maxdepth 1 -type d ! -name unit ! -name fixtures \
    ! -name __pycache__ | sort)  # tests/integration, tests/browser, ...
"$VENV/bin/python" -m pytest -m "not slow" "${SUITES[@]}" "${AGAIN[@]}"
say "all checks passed"
