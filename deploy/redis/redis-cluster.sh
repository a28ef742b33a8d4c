#!/bin/sh
# Joins docker-compose.yml's six redis-node services into one Redis Cluster, three primaries
# with a replica each (the scaled profile). Each node announces its service name, so clients
# are sent to names that resolve inside the compose network; `--cluster create` takes
# addresses, resolved here. A cluster already formed (a later `up`) is left as it is.
set -eu
if redis-cli -h redis-node-1 cluster info | grep -q '^cluster_state:ok'; then
  echo "Redis Cluster already formed"
  exit 0
fi
nodes=""
for n in 1 2 3 4 5 6; do
  nodes="$nodes $(getent hosts "redis-node-$n" | awk '{ print $1 }'):6379"
done
# shellcheck disable=SC2086 # one argument per node
redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes
