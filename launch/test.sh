#!/usr/bin/env bash
# Sets up (launch/setup.sh) and runs ropedist's tests; with no options, everything CI runs:
#   1. build/: every CTest label (unit, mpi, golden, serve, slurm; gpu tests report themselves
#      skipped where there is no GPU). The serve tests' Python packages go into a virtual
#      environment (build/pyenv); without network they skip visibly.
#   2. build-emu/ (the SIMT emulation of the CUDA backend, tests/simt, when the CUDA toolkit's
#      headers are present): labels gpu and simt, under the forward schedule and a random one
#      (RD_SIMT_SEED, default 20261130).
#   3. build-emu-asan/: the emulated op test (quick subset) and the emulator's own checks under
#      AddressSanitizer and UndefinedBehaviorSanitizer.
#   4. tests/sanitize/run.sh and tests/fuzz/run.sh when present (ASan+UBSan build of the unit and
#      mpi tests; the fuzzers, 60 s each).
# A summary table (step, result, seconds) comes last; the exit status is nonzero when a step
# failed.
#   launch/test.sh                  all of it (about 20 minutes on 2 cores)
#   launch/test.sh --quick          step 1 only
#   launch/test.sh [ctest options]  step 1 only, with those options (e.g. -L unit)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
quick=0
if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi
(($#)) && quick=1
launch/setup.sh --with-tests || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOBS=$(nproc 2>/dev/null || echo 2)

names=() results=() secs=()
failed=0
step() { # step NAME CMD...
    local name=$1 t0 rc
    shift
    echo "=== $name"
    t0=$(date +%s)
    "$@"
    rc=$?
    names+=("$name")
    secs+=($(($(date +%s) - t0)))
    if [ $rc -eq 0 ]; then
        results+=(ok)
    elif [ $rc -eq 77 ]; then
        results+=(skipped)
    else
        results+=("FAILED ($rc)")
        failed=1
    fi
}
summary() {
    echo
    echo "# ropedist tests: summary"
    printf '%-28s %-14s %8s\n' step result seconds
    for i in "${!names[@]}"; do
        printf '%-28s %-14s %8s\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"
    done
    exit $failed
}

# the serve tests' clients, in a virtual environment of the build (never the system Python)
pyenv() {
    local venv=$ROOT/build/pyenv
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || { echo "SKIP: no python3 venv (serve tests will skip)"; return 77; }
    fi
    "$venv/bin/python" -m pip install -q -r tests/serve/requirements.txt ||
        echo "warning: pip could not install tests/serve/requirements.txt (serve tests will skip)"
    cmake -S . -B build -DPython3_EXECUTABLE="$venv/bin/python" >/dev/null
}
step python_env pyenv

# serially: the fault and SLURM tests bound how fast every rank ends
main_tests() { (cd build && ctest --output-on-failure --timeout 900 "$@"); }
step "ctest ${*:-(all labels)}" main_tests "$@"
((quick)) && summary

cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
if [ ! -f "$cuda_include/cuda_runtime.h" ]; then
    echo "SKIP: the SIMT emulation needs the CUDA toolkit's headers ($cuda_include)"
    names+=("simt emulation") results+=(skipped) secs+=(0)
else
    emu_build() { # emu_build DIR [cmake options]
        local dir=$1
        shift
        cmake -S . -B "$dir" -DROPEDIST_CUDA_EMU=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" \
            >/dev/null && cmake --build "$dir" -j "$JOBS" >/dev/null
    }
    emu_ctest() { # emu_ctest SCHEDULE
        RD_SIMT_SCHEDULE=$1 ctest --test-dir build-emu -L 'gpu|simt' --output-on-failure \
            --timeout 1200 -j "$JOBS"
    }
    step "build-emu" emu_build build-emu
    step "emulated gpu, forward" emu_ctest forward
    seed=${RD_SIMT_SEED:-20261130}
    step "emulated gpu, random:$seed" emu_ctest "random:$seed"

    asan_emu() {
        cmake -S . -B build-emu-asan -DROPEDIST_CUDA_EMU=ON -DROPEDIST_SANITIZE=ON \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
            cmake --build build-emu-asan -j "$JOBS" --target test_cuda_ops test_simt_checks \
                >/dev/null || return 1
        # MPI and HDF5 keep allocations until exit: leaks are not what this run looks for
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
            RD_TEST_QUICK=1 RD_SIMT_SCHEDULE="random:$seed" \
            bash -c 'build-emu-asan/tests/test_simt_checks && build-emu-asan/tests/test_cuda_ops'
    }
    step "emulated gpu under ASan" asan_emu
fi

if [ -f tests/sanitize/run.sh ]; then step "sanitizers (unit, mpi)" bash tests/sanitize/run.sh; fi
if [ -f tests/fuzz/run.sh ]; then step "fuzzers" bash tests/fuzz/run.sh 60; fi
summary
