#!/usr/bin/env bash
# Installs what ropedist needs on Debian/Ubuntu (when missing) and builds it into build/.
#   launch/setup.sh [--with-tests] [cmake options...]
# Packages: compiler, CMake, Open MPI, HDF5 (serial), jansson, PCRE2, libmicrohttpd (the
# server); with --with-tests also what the tests use: curl and a Python venv (the serve tests'
# clients), clang with libFuzzer (tests/fuzz, tests/sanitize), xz, and a SLURM controller/daemon
# with munge for the slurm-labelled tests. CUDA is built when nvcc is found (ROPEDIST_CUDA=AUTO);
# pass -DROPEDIST_CUDA=OFF to skip it.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config git openmpi-bin libopenmpi-dev libhdf5-dev libjansson-dev
      libpcre2-dev libmicrohttpd-dev libopenblas-openmp-dev)
if [[ "${1:-}" == "--with-tests" || "${1:-}" == "--with-slurm" ]]; then
    shift
    pkgs+=(curl python3-venv clang libclang-rt-dev xz-utils slurmctld slurmd slurm-client munge
           libpmix2 procps)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    echo "setup: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
echo "setup: built build/ropedist, build/ropedist-convert, build/ropedist-tokenize"
