#!/usr/bin/env bash
# The unit and mpi tests under AddressSanitizer + UndefinedBehaviorSanitizer: configures its own
# build folder (CUDA off, -DROPEDIST_SANITIZE=ON), builds, and runs
#   - the unit tests with leak detection (detect_leaks=1), no suppressions;
#   - the mpi tests (ropedist under mpirun, 2-4 ranks) for memory errors and undefined behaviour,
#     without leak detection: Open MPI leaves its start-up state allocated at exit, in plugins
#     it has unloaded by then, which only whole stacks (a slow unwinder on every malloc) tell apart;
#   - so one run of ropedist at np 2 (prompt, generation, text out) checks ropedist's own leaks,
#     with whole stacks and lsan_mpi.supp, which names only Open MPI's and libevent's libraries.
# Open MPI's memory hooks are off (OMPI_MCA_memory=^patcher): they fight ASan's allocator and
# serve only RDMA registration caches.
# Every sanitizer report is written to $BUILD/sanitize-logs/ (one file per process that found
# something, child processes of the tests included) and the summary counts them: any report, or
# any failing test, fails the run. clang is preferred (CC overrides): gcc's runtime prints
# UBSan reports only to stderr, where a test that expects its child to fail could swallow one.
#
#   tests/sanitize/run.sh [build folder, default build-sanitize]
set -uo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
build=${1:-build-sanitize}
jobs=$(nproc 2>/dev/null || echo 2)
t0=$(date +%s)
cc=${CC:-$(command -v clang || command -v clang-14 || command -v cc)}
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DROPEDIST_CUDA=OFF -DROPEDIST_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" >"$build/build.log" 2>&1 || { tail -n 40 "$build/build.log"; exit 1; }
t1=$(date +%s)
logs=$(cd "$build" && pwd)/sanitize-logs
rm -rf "$logs" && mkdir -p "$logs"

common="abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
export OMPI_MCA_memory=^patcher

status=0
ASAN_OPTIONS="$common:detect_leaks=1:log_path=$logs/unit" \
    ctest --test-dir "$build" -L unit --output-on-failure -j "$jobs" >"$build/sanitize-unit.log" 2>&1 ||
    status=1
grep -E "tests passed|tests failed|\*\*\*" "$build/sanitize-unit.log" | sed 's/^/unit: /'
t2=$(date +%s)
ASAN_OPTIONS="$common:detect_leaks=0:log_path=$logs/mpi" \
    ctest --test-dir "$build" -L mpi --output-on-failure -j "$jobs" >"$build/sanitize-mpi.log" 2>&1 ||
    status=1
grep -E "tests passed|tests failed|\*\*\*" "$build/sanitize-mpi.log" | sed 's/^/mpi: /'
t3=$(date +%s)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ASAN_OPTIONS="$common:detect_leaks=1:fast_unwind_on_malloc=0:log_path=$logs/leaks" \
    LSAN_OPTIONS="suppressions=$src/tests/sanitize/lsan_mpi.supp:print_suppressions=0" \
    timeout 300 mpirun --oversubscribe -np 2 "$build/ropedist" --device cpu \
    --config configs/default/config.json --prompt "It is a truth" --max-new-tokens 16 \
    --temperature 0.7 --seed 1 >"$build/sanitize-leaks.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] || status=1
echo "leaks: ropedist at np 2 (prompt, 16 tokens, text out) exited $rc"

# report files, and reports printed to a test's output (gcc's UBSan)
reports=$(find "$logs" -type f | wc -l)
printed=$(cat "$build"/sanitize-*.log | grep -cE "runtime error:|ERROR: (Address|Leak)Sanitizer")
reports=$((reports + printed))
t4=$(date +%s)
echo "sanitizer summary ($(basename "$cc")): $reports report(s) in $logs; build $((t1 - t0)) s, unit tests" \
     "$((t2 - t1)) s, mpi tests $((t3 - t2)) s, leak run $((t4 - t3)) s"
for f in $(find "$logs" -type f | head -n 5); do
    echo "---- $f"
    head -n 40 "$f"
done
[ "$reports" -eq 0 ] || status=1
[ "$status" -eq 0 ] && echo "PASS: ASan + UBSan, 0 findings" || echo "FAIL: see above and $build/sanitize-*.log"
exit "$status"
