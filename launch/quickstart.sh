#!/usr/bin/env bash
# Sets up ropedist (launch/setup.sh) and runs the embedded default model on two MPI ranks:
#   launch/quickstart.sh ["prompt text"] [more ropedist flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh
prompt="${1:-Once upon a time}"
shift || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --oversubscribe -np 2 build/ropedist --config configs/default/config.json \
    --prompt "$prompt" --max-new-tokens 96 --temperature 0.7 --top-p 0.9 --seed 1 "$@"
