#!/bin/bash
# Three edgemed RabbitMQ nodes on this host, from edgemed-rabbitmq.conf.in and node-1.env ..
# node-3.env, their data under DATA_DIR: a trial of the cluster, and what
# tests/integration/test_fleet_rabbitmq.py starts. In production each node runs on its own host
# (edgemed-rabbitmq@.service). Stops the three nodes on Ctrl-C or SIGTERM.
#   deploy/rabbitmq/run-local-cluster.sh ./rabbitmq-data
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${1:?usage: run-local-cluster.sh DATA_DIR}
mkdir -p "$data"
# One cookie for the three nodes, made before any starts (each would otherwise make its own).
if [ ! -s "$data/.erlang.cookie" ]; then
  (umask 077; head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data/.erlang.cookie")
fi
# One node after another, each once it listens: RabbitMQ 3.10's MQTT plugin keeps its client
# ids in a Raft cluster of its own, and nodes booting at the same moment can each start one
# (MQTT connects on one node then fail: "client ID registration timed out").
for n in 1 2 3; do
  (
    set -a
    . "$here/node-$n.env"
    exec "$here/run-node.sh" "$data"
  ) &
  host=$(sed -n 's/^EDGEMED_RMQ_HOST=//p' "$here/node-$n.env")
  port=$(sed -n 's/^EDGEMED_RMQ_MQTT_PORT=//p' "$here/node-$n.env")
  for _ in $(seq 240); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
    sleep 0.5
  done
done
trap 'kill $(jobs -p) 2>/dev/null; wait' INT TERM
wait
