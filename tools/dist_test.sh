#!/usr/bin/env bash
# Distributed testing with torchrun.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
set -e
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT GPUS [tools/test.py options]" >&2
    exit 1
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

# torchrun dies with a long traceback when the port is taken. Only node 0
# listens on it; the other nodes connect to MASTER_ADDR:PORT.
if [ "$NODE_RANK" = "0" ]; then
    python "$(dirname "$0")/check_port.py" "$PORT" "$0" "$NNODES" || exit 1
fi

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec python "$(dirname "$0")/torchrun.py" \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
