#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined, its own build
# folder) and runs each for SECONDS (default 60), two at a time. Seeds: tests/fuzz/seeds/<h>,
# tests/fuzz/regressions/<h>, plus at run time the configs and tokenizers of configs/ and
# ../shared (when present). A crash, leak, sanitizer report or timeout fails the run; the input
# is kept in $BUILD/artifacts/<h>/ and the line to make it a regression case is printed.
#
#   tests/fuzz/run.sh [SECONDS] [build folder, default build-fuzz]
# Needs clang and libFuzzer (Debian: clang libclang-rt-dev).
set -uo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
secs=${1:-60}
build=${2:-build-fuzz}
shared=${RD_SHARED_DIR:-$src/../shared}
harnesses=(config safetensors gguf tokenizer prompts)
declare -A max_len=([config]=8192 [safetensors]=4096 [gguf]=65536 [tokenizer]=65536 [prompts]=4096)

cc=${CC:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$cc" ]; then
    echo "FAIL: no clang (Debian: apt-get install clang libclang-rt-dev)"
    exit 1
fi
t0=$(date +%s)
mkdir -p "$build"
if ! cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DROPEDIST_CUDA=OFF -DROPEDIST_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
    ! cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" \
        --target "${harnesses[@]/#/fuzz_}" >"$build/build.log" 2>&1; then
    tail -n 30 "$build/configure.log" "$build/build.log" 2>/dev/null
    echo "FAIL: could not build the harnesses (libFuzzer: apt-get install libclang-rt-dev)"
    exit 1
fi
t1=$(date +%s)

# the corpora: committed seeds and regressions, and the larger real files
for h in "${harnesses[@]}"; do
    rm -rf "$build/corpus/$h" "$build/artifacts/$h" && mkdir -p "$build/corpus/$h" "$build/artifacts/$h"
    cp "$src/tests/fuzz/seeds/$h/"* "$build/corpus/$h/" 2>/dev/null
    cp "$src/tests/fuzz/regressions/$h/"* "$build/corpus/$h/" 2>/dev/null
done
i=0
for f in "$src"/configs/*.json "$src"/configs/default/config.json "$shared"/golden/models/*/config.json; do
    [ -f "$f" ] && cp "$f" "$build/corpus/config/real_$((i++)).json"
done
for f in "$src"/configs/default/tokenizer.json "$shared"/golden/tokenizers/*/tokenizer.json; do
    [ -f "$f" ] && cp "$f" "$build/corpus/tokenizer/real_$((i++)).json"
done
[ -d "$shared" ] || echo "note: $shared absent; fuzzing from the committed seeds only"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_one() {
    local h=$1
    "$build/tests/fuzz/fuzz_$h" "$build/corpus/$h" -max_total_time="$secs" -timeout=20 \
        -rss_limit_mb=2048 -max_len="${max_len[$h]}" -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$h/" >"$build/fuzz_$h.log" 2>&1
    echo $? >"$build/fuzz_$h.rc"
}
# two at a time: the machines this runs on have two cores
for ((k = 0; k < ${#harnesses[@]}; k += 2)); do
    run_one "${harnesses[k]}" &
    [ $((k + 1)) -lt ${#harnesses[@]} ] && run_one "${harnesses[k + 1]}" &
    wait
done
t2=$(date +%s)

status=0
for h in "${harnesses[@]}"; do
    rc=$(cat "$build/fuzz_$h.rc")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz_$h.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$build/fuzz_$h.log" | tail -n 1)
    printf "fuzz_%-12s %8s execs in %ss, %s, exit %s\n" "$h" "${execs:-?}" "$secs" "${cov:-cov ?}" "$rc"
    if [ "$rc" != 0 ]; then
        status=1
        grep -m 5 -E "ERROR|SUMMARY|invariant|Test unit written" "$build/fuzz_$h.log" | sed 's/^/  | /'
        for a in "$build/artifacts/$h/"*; do
            [ -f "$a" ] || continue
            echo "  keep it: cp $a $src/tests/fuzz/regressions/$h/  (ctest -R fuzz_replay_$h replays it)"
        done
    fi
done
echo "fuzz: build $((t1 - t0)) s, fuzzing $((t2 - t1)) s"
[ "$status" -eq 0 ] && echo "PASS: no crash in ${#harnesses[@]} harnesses" || echo "FAIL: see above"
exit "$status"
