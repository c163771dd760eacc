#!/bin/sh
# One edgemed fleet process with the settings of fleet.env: what edgemed-fleet@.service runs
# (systemd reads fleet.env), and what tests/integration/test_fleet_deploy_files.py starts (it
# reads the same file). Several processes on one PostgreSQL split the ingest (one $share group
# per store) and each serves the API and dashboard on its own port.
#   set -a; . /etc/edgemed/fleet.env; set +a; run-fleet.sh 8081
set -eu
port=${1:?usage: run-fleet.sh API_PORT}
: "${EDGEMED_FLEET_DB:?fleet.env must set EDGEMED_FLEET_DB (postgresql://...)}"
: "${EDGEMED_FLEET_CONFIG:?fleet.env must set EDGEMED_FLEET_CONFIG (its [broker] table)}"
set -- fleet serve --config "$EDGEMED_FLEET_CONFIG" --db "$EDGEMED_FLEET_DB" \
  --host "${EDGEMED_FLEET_HOST:-127.0.0.1}" --port "$port" \
  --workers "${EDGEMED_FLEET_WORKERS:-1}" --bundle-dir "${EDGEMED_FLEET_BUNDLE_DIR:-/var/lib/edgemed/bundles}"
[ -z "${EDGEMED_FLEET_RETAIN_DAYS:-}" ] || set -- "$@" --retain-days "$EDGEMED_FLEET_RETAIN_DAYS"
[ -z "${EDGEMED_FLEET_TIMEZONE:-}" ] || set -- "$@" --timezone "$EDGEMED_FLEET_TIMEZONE"
[ -z "${EDGEMED_FLEET_TRUST:-}" ] || set -- "$@" --trust "$EDGEMED_FLEET_TRUST"
if [ -n "${EDGEMED_FLEET_API_CERT:-}" ]; then
  set -- "$@" --api-cert "$EDGEMED_FLEET_API_CERT" --api-key "${EDGEMED_FLEET_API_KEY:?with EDGEMED_FLEET_API_CERT}"
fi
# The API token and the broker password come from the environment (EDGEMED_FLEET_TOKEN,
# EDGEMED_BROKER_PASSWORD) or files, never from this command line (ps shows it to every user).
exec "${EDGEMED_BIN:-edgemed}" "$@"
