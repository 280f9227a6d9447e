#!/usr/bin/env bash
# The one script for the GPU machine: configure with CUDA (sm_90) into build-gpu, build, run
# the gpu-labelled CTest suite (cuda-vs-cpu ops, golden models, tp consistency, stories260K),
# run the cuda-vs-cpu op test under compute-sanitizer (memcheck, racecheck) on a small subset
# (RD_TEST_QUICK=1), run ropedist on several ranks sharing the GPU (NCCL over loopback) and
# compare its tokens with one rank, run one ropedist end-to-end under compute-sanitizer
# memcheck, and print a summary table last.
#
#   bash tests/gpu/run.sh                 # from anywhere; logs go to $OUT (the device tool's
#                                         # result folder) when set, else build-gpu/gpu-logs
#
# Shared test data: the GPU machine receives only the checkout, not ../shared. Run
# `bash tests/gpu/pack_shared.sh` here first; it copies the golden models and stories260K into
# gpu_shared/ (ignored by git) which the device tool must carry:
#   run(command="bash tests/gpu/run.sh", carry=["gpu_shared"])
# Without it the golden and stories tests skip (exit 77, shown as "skipped" by CTest).
#
# Environment: BUILD_DIR (default <repo>/build-gpu), JOBS (default nproc),
#              RD_SHARED_DIR (default <repo>/gpu_shared when present, else <repo>/../shared),
#              STEPS (comma list of build,ctest,sanitizer,multirank; default all of them: the
#              device tool allows 600 s per call, so on a cold machine split the run into two
#              calls, e.g. STEPS=build,ctest then STEPS=sanitizer,multirank; build is implied
#              and is incremental on a warm machine),
#              CTEST_JOBS (default 4: the gpu tests share the GPU fine),
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
STEPS=${STEPS:-build,ctest,sanitizer,multirank}
want() { [[ ",$STEPS," == *",$1,"* ]]; }

if [ -z "${RD_SHARED_DIR:-}" ]; then
    if [ -d "$ROOT/gpu_shared/golden" ]; then
        RD_SHARED_DIR=$ROOT/gpu_shared
    else
        RD_SHARED_DIR=$(cd "$ROOT/.." && pwd)/shared
    fi
fi
export RD_SHARED_DIR
# several ranks on the one GPU: NCCL over its socket transport on loopback (device README)
export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
if [ -d "$RD_SHARED_DIR/golden" ]; then
    echo "shared test data: $RD_SHARED_DIR"
else
    echo "shared test data: none at $RD_SHARED_DIR (golden and stories tests will skip;" \
        "run tests/gpu/pack_shared.sh and carry gpu_shared)"
fi

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
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DRD_SHARED_DIR=$RD_SHARED_DIR" &&
    step build cmake --build "$BUILD" -j "$JOBS"; then

    # the gpu label: test_cuda_ops, test_cuda_golden, test_cuda_tp, test_cuda_stories
    # (the two scripts of tests/gpu are drivers, not tests)
    if want ctest; then
        step ctest_gpu ctest --test-dir "$BUILD" -L gpu -E '^gpu_(run|pack_shared)$' \
            --output-on-failure -j "${CTEST_JOBS:-4}"
    fi

    TEST_BIN=$BUILD/tests/test_cuda_ops
    if want sanitizer && [ -z "${SKIP_SANITIZER:-}" ] && [ -x "$TEST_BIN" ]; then
        step memcheck env RD_TEST_QUICK=1 "$SANITIZER" --tool memcheck --error-exitcode 1 \
            "$TEST_BIN"
        step racecheck env RD_TEST_QUICK=1 "$SANITIZER" --tool racecheck --error-exitcode 1 \
            "$TEST_BIN"
    fi

    # ---- multi-rank end-to-end runs (NCCL, several ranks sharing the GPU) ----
    # A random model (GQA 8/2, so tp 4 replicates kv heads) with a 70-token prompt (prefill
    # kernel) and 24 generated tokens (decode kernel): -np 4 --share-gpu must print the tokens
    # of -np 1, fp32 and bf16 alike (the all-reduce is exact on the same GPU's arithmetic only
    # up to rounding, so bf16 is reported, fp32 checked).
    E2E=$BUILD/gpu-e2e
    mkdir -p "$E2E"
    E2E_PROMPT=$(seq 1 70 | awk '{printf "%s%d", (NR > 1 ? "," : ""), (NR == 1 ? 1 : 3 + (NR * 37) % 200)}')
    e2e_model() {
        cat >"$E2E/config.json" <<'JSON'
{"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,
 "head_dim": 32, "intermediate_size": 512, "vocab_size": 1000, "num_hidden_layers": 3,
 "tie_word_embeddings": false, "rms_norm_eps": 1e-5, "max_position_embeddings": 512,
 "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2}
JSON
        "$BUILD/ropedist-convert" --random --config "$E2E/config.json" --seed 5 --force \
            -o "$E2E/model.h5"
    }
    # e2e_ids NP DTYPE [more flags]: greedy ids of ropedist on the cuda backend into
    # $E2E/ids_NP_DTYPE.txt
    e2e_ids() {
        local np=$1 dtype=$2
        shift 2
        local share=()
        [ "$np" -gt 1 ] && share=(--share-gpu)
        timeout 300 "${MPIRUN[@]}" -np "$np" "$BUILD/ropedist" --device cuda --dtype "$dtype" \
            "${share[@]}" --config "$E2E/config.json" --checkpoint "$E2E/model.h5" \
            --prompt-ids "$E2E_PROMPT" --max-new-tokens 24 --ignore-eos --temperature 0 \
            --output ids "$@" >"$E2E/ids_${np}_${dtype}.txt" &&
            echo "np=$np $dtype: $(cat "$E2E/ids_${np}_${dtype}.txt")"
    }
    # e2e_compare DTYPE CHECK: np 4 vs np 1; CHECK=1 fails on a difference
    e2e_compare() {
        local a=$E2E/ids_1_$1.txt b=$E2E/ids_4_$1.txt
        if [ -s "$a" ] && cmp -s "$a" "$b"; then
            echo "$1: -np 4 --share-gpu gives the tokens of -np 1"
        elif [ "$2" = 1 ]; then
            echo "$1: -np 4 differs from -np 1"; diff "$a" "$b"; return 1
        else
            echo "$1: -np 4 differs from -np 1 (reported only)"; diff "$a" "$b"; return 0
        fi
    }
    e2e_bf16() { e2e_ids 1 bf16 && e2e_ids 4 bf16 && e2e_compare bf16 0; }
    if want multirank; then
        if step e2e_model e2e_model; then
            step e2e_np1 e2e_ids 1 fp32
            step e2e_np4 e2e_ids 4 fp32
            step e2e_np4_eq e2e_compare fp32 1
            step e2e_bf16 e2e_bf16
            # one end-to-end run (prefill, decode, sampling, NCCL on one rank) under memcheck
            if [ -z "${SKIP_SANITIZER:-}" ]; then
                step e2e_memcheck timeout 500 "${MPIRUN[@]}" -np 1 "$SANITIZER" --tool memcheck \
                    --error-exitcode 1 "$BUILD/ropedist" --device cuda --dtype bf16 \
                    --config "$E2E/config.json" --checkpoint "$E2E/model.h5" \
                    --prompt-ids "$E2E_PROMPT" --max-new-tokens 8 --ignore-eos \
                    --temperature 0.8 --top-k 20 --seed 3 --output ids
            fi
        fi
    fi
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
