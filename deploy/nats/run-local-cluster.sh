#!/bin/sh
# Three edgemed NATS nodes on this host, from edgemed-nats.conf and node-1.env .. node-3.env,
# their JetStream stores under DATA_DIR: a trial of the cluster, and what
# tests/integration/test_fleet_jetstream.py starts. In production each node runs on its own host
# (edgemed-nats@.service). Stops the three nodes on Ctrl-C or SIGTERM.
#   deploy/nats/run-local-cluster.sh ./nats-data
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${1:?usage: run-local-cluster.sh DATA_DIR}
server=${NATS_SERVER:-nats-server}
for n in 1 2 3; do
  (
    set -a
    . "$here/node-$n.env"
    EDGEMED_NATS_STORE="$data/node-$n"
    exec "$server" -c "$here/edgemed-nats.conf"
  ) &
done
trap 'kill $(jobs -p) 2>/dev/null; wait' INT TERM
wait
