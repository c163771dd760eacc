#!/usr/bin/env bash
# The long fault soaks, which the normal suite runs only in CI-sized variants. Each prints its
# tally (results, backlog at the kill, lost, duplicate); record the last figures in
# benchmarks/README.md ("Fault soaks"). Needs what scripts/test.sh installs (run it once first),
# PostgreSQL ($EDGEMED_TEST_POSTGRES), mosquitto, nats-server and rabbitmq-server.
#
#   scripts/soak.sh            # every soak, ~20-40 min on 2 cores
#   scripts/soak.sh rabbitmq   # one of: slow, scale, jetstream, rabbitmq, rollouts, power-loss, fuzz
set -euo pipefail
source "$(dirname "$0")/_common.sh"
cd "$ROOT"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "run scripts/test.sh first (it makes $VENV)"; exit 1; }
run() {  # run NAME ENV... -- PYTEST ARGS...
    local name="$1"; shift
    local env=()
    while [ "$1" != "--" ]; do env+=("$1"); shift; done
    shift
    say "soak $name"
    local t0=$SECONDS log rc=0
    log="$(mktemp)"
    env "${env[@]}" "$PY" -m pytest -q -s -p no:cacheprovider "$@" >"$log" 2>&1 || rc=$?
    grep -E "lost|missing|duplicate|passed|failed|error" "$log" || true
    rm -f "$log"
    echo "soak $name: $((SECONDS - t0)) s, exit status $rc"
    [ "$rc" -eq 0 ] || FAILED+=("$name")
}
FAILED=()
ALL=("$@")
pick() { [ ${#ALL[@]} -eq 0 ] || [[ " ${ALL[*]} " == *" $1 "* ]]; }
pick slow && run slow -- -m slow tests/integration/test_sync_faults.py \
    tests/integration/test_fleet_integrity.py
pick scale && run scale EDGEMED_SCALE_PER_DEVICE=100 -- tests/integration/test_fleet_scale.py
pick jetstream && run jetstream EDGEMED_JETSTREAM_SOAK=1 -- tests/integration/test_fleet_jetstream.py
pick rabbitmq && run rabbitmq EDGEMED_RABBITMQ_SOAK=1 -- tests/integration/test_fleet_rabbitmq.py
pick rollouts && run rollouts EDGEMED_ROLLOUT_SOAK=30 -- tests/integration/test_rollouts_mosquitto.py
# 20 power cuts of the outbox's VM, each followed by a boot (~20 s each under qemu's emulation)
pick power-loss && run power-loss EDGEMED_POWER_LOSS_CUTS=20 -- \
    tests/integration/test_outbox_power_loss.py
# The fuzzers and the monitor reader's metamorphic check at their full sizes (the suite runs
# 2,000 result and 500 status payloads, 20 API examples per operation and mode, 12 screens).
pick fuzz && run fuzz EDGEMED_FUZZ_RESULTS=20000 EDGEMED_FUZZ_STATUSES=5000 \
    EDGEMED_API_FUZZ_EXAMPLES=200 EDGEMED_METAMORPHIC_SCREENS=24 -- tests/unit/test_ingest_fuzz.py \
    tests/unit/test_fleet_api_hardening.py tests/unit/test_metamorphic_monitor.py
# The exit status says whether every soak that ran passed (not only whether the last one ran).
[ ${#FAILED[@]} -eq 0 ] || { echo "soaks that failed: ${FAILED[*]}"; exit 1; }
