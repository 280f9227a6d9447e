#!/usr/bin/env bash
# The one script for the GPU machine: configure with CUDA (sm_90) into build-gpu, build, run
# the gpu-labelled CTest suite, run the cuda-vs-cpu op test under compute-sanitizer
# (memcheck, racecheck) on a small subset (RD_TEST_QUICK=1), and print a summary table last.
#
#   bash tests/gpu/run.sh                 # from anywhere; logs go to $OUT (the device tool's
#                                         # result folder) when set, else build-gpu/gpu-logs
# Environment: BUILD_DIR (default <repo>/build-gpu), JOBS (default nproc),
#              SKIP_SANITIZER=1 to leave out the compute-sanitizer steps.
#
# CTest also picks this file up (tests/<label>/*.sh) as "gpu_run"; run inside CTest it skips
# (exit 77) so it does not call CTest recursively.
set -u

if [ -n "${RD_BIN_DIR:-}" ]; then
    echo "SKIP: tests/gpu/run.sh drives the whole GPU run; call it directly, not through ctest"
    exit 77
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
LOGS=${OUT:-$BUILD/gpu-logs}
mkdir -p "$LOGS"
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

names=()
results=()
times=()
failed=0

# step NAME CMD...: runs CMD with its output in $LOGS/NAME.log (and the tail on failure)
step() {
    local name=$1
    shift
    local log="$LOGS/$name.log" t0 rc
    t0=$(date +%s)
    echo "=== $name: $*"
    "$@" >"$log" 2>&1
    rc=$?
    local dt=$(($(date +%s) - t0))
    names+=("$name")
    times+=("$dt")
    if [ $rc -eq 0 ]; then
        results+=("ok")
        tail -n 3 "$log"
    elif [ $rc -eq 77 ]; then
        results+=("skipped")
        tail -n 3 "$log"
    else
        results+=("FAILED (rc $rc)")
        failed=1
        echo "--- last 60 lines of $log"
        tail -n 60 "$log"
    fi
    return $rc
}

step gpu_info nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv

GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
if [ -f "$BUILD/CMakeCache.txt" ]; then GEN=(); fi # keep the generator of an existing build
if step configure cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DROPEDIST_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    step build cmake --build "$BUILD" -j "$JOBS"; then

    step ctest_gpu ctest --test-dir "$BUILD" -L gpu -E '^gpu_run$' --output-on-failure

    TEST_BIN=$BUILD/tests/test_cuda_ops
    if [ -z "${SKIP_SANITIZER:-}" ] && [ -x "$TEST_BIN" ]; then
        step memcheck env RD_TEST_QUICK=1 "$SANITIZER" --tool memcheck --error-exitcode 1 \
            "$TEST_BIN"
        step racecheck env RD_TEST_QUICK=1 "$SANITIZER" --tool racecheck --error-exitcode 1 \
            "$TEST_BIN"
    fi

    # ---- multi-rank end-to-end runs (NCCL, several ranks sharing the GPU): added by the lead ----
    # step e2e_np2 ...
    # ---- end of multi-rank section ----
fi

echo
echo "# ropedist GPU run summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), logs in $LOGS)"
printf '%-14s %-20s %8s\n' step result seconds
printf '%-14s %-20s %8s\n' -------------- -------------------- --------
for i in "${!names[@]}"; do
    printf '%-14s %-20s %8s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
exit $failed
