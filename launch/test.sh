#!/usr/bin/env bash
# Sets up (launch/setup.sh) and runs the test suite: unit, mpi, golden and slurm labels on the
# cpu backend; gpu-labelled tests report themselves skipped where there is no GPU.
#   launch/test.sh [ctest options...]     e.g. launch/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
launch/setup.sh --with-slurm
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd build
ctest --output-on-failure --timeout 900 "$@"
