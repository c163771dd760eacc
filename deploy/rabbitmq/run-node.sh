#!/bin/sh
# Start one node of the edgemed RabbitMQ cluster: render edgemed-rabbitmq.conf.in with the
# node's settings (its node-N.env already in the environment, EDGEMED_RMQ_*) into DATA_DIR/<name>
# and run rabbitmq-server there. The Erlang cookie the nodes and rabbitmqctl share is
# $EDGEMED_RMQ_COOKIE_FILE (default DATA_DIR/.erlang.cookie, made once).
#   (set -a; . deploy/rabbitmq/node-1.env; deploy/rabbitmq/run-node.sh ./rabbitmq-data)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${1:?usage: run-node.sh DATA_DIR}
mkdir -p "$data"
data=$(cd "$data" && pwd)
node_dir="$data/${EDGEMED_RMQ_NAME%@*}"
mkdir -p "$node_dir/home"
cookie=${EDGEMED_RMQ_COOKIE_FILE:-$data/.erlang.cookie}
if [ ! -s "$cookie" ]; then  # made whole, then moved into place: a reader never sees half
  (umask 077; head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$cookie.$$" && mv "$cookie.$$" "$cookie")
fi
cp "$cookie" "$node_dir/home/.erlang.cookie"
chmod 400 "$node_dir/home/.erlang.cookie"
sed -e "s|@HOST@|$EDGEMED_RMQ_HOST|g" -e "s|@AMQP_PORT@|$EDGEMED_RMQ_AMQP_PORT|g" \
    -e "s|@MQTT_PORT@|$EDGEMED_RMQ_MQTT_PORT|g" -e "s|@NODE_1@|$EDGEMED_RMQ_NODE_1|g" \
    -e "s|@NODE_2@|$EDGEMED_RMQ_NODE_2|g" -e "s|@NODE_3@|$EDGEMED_RMQ_NODE_3|g" \
    "$here/edgemed-rabbitmq.conf.in" >"$node_dir/rabbitmq.conf"
export HOME="$node_dir/home" RABBITMQ_NODENAME="$EDGEMED_RMQ_NAME" \
  RABBITMQ_DIST_PORT="$EDGEMED_RMQ_DIST_PORT" RABBITMQ_CONFIG_FILE="$node_dir/rabbitmq.conf" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$here/enabled_plugins" RABBITMQ_MNESIA_BASE="$node_dir/mnesia" \
  RABBITMQ_LOG_BASE="$node_dir/log" RABBITMQ_PID_FILE="$node_dir/pid" \
  ERL_CRASH_DUMP="$node_dir/log/erl_crash.dump"
exec "${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}"
