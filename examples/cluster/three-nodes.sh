#!/usr/bin/env bash
# Starts three Taskyard nodes on this machine, sharing one PostgreSQL database, on ports
# 8701-8703; examples/cluster/nginx.conf balances them on 8080. Stop them with Ctrl-C (each
# hands its workspaces over as it stops).
#
#   TASKYARD_DATABASE_URL=postgres://user@host:5432/db examples/cluster/three-nodes.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${TASKYARD_DATABASE_URL:?set TASKYARD_DATABASE_URL to the shared PostgreSQL database}"
export TASKYARD_DATABASE_URL
# The same account and the same public URL (the load balancer's) on every node.
export TASKYARD_ACCOUNT_SID=${TASKYARD_ACCOUNT_SID:-AC00000000000000000000000000000001}
export TASKYARD_AUTH_TOKEN=${TASKYARD_AUTH_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export TASKYARD_PUBLIC_URL=${TASKYARD_PUBLIC_URL:-http://127.0.0.1:8080}
cargo build --release --quiet --bin taskyard
echo "account: TASKYARD_ACCOUNT_SID=$TASKYARD_ACCOUNT_SID TASKYARD_AUTH_TOKEN=$TASKYARD_AUTH_TOKEN"
pids=()
for i in 1 2 3; do
    TASKYARD_NODE_ID="node-$i" TASKYARD_LISTEN="127.0.0.1:870$i" TASKYARD_DATA_DIR="./taskyard-data/node-$i" \
        target/release/taskyard serve &
    pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM
wait
