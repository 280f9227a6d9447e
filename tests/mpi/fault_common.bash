# Helpers for the fault tests (sourced by tests/mpi/fault_*.sh and tests/slurm/slurm_fault_kill.sh;
# the .bash name keeps CTest's *.sh glob from taking it for a test).
#
# A fault test starts a long generation (a tiny random model, --ignore-eos, thousands of tokens)
# under a launcher, waits until every rank has loaded its weights and generation is under way,
# does something bad to one process, and measures how long it takes until no rank is left.
# Everything it started is found again by the scratch folder's path in the command line, and
# killed by pid on every exit path.
#
# Environment: RD_BIN_DIR (build folder, from CTest), ROPEDIST_BIN (override the binary under
# test), RD_MPIRUN (mpirun from CMake), RD_FAULT_LIMIT_S (default 30), RD_FAULT_DEVICE (cpu,
# default, or cuda: the NCCL variant, run from a gpu-labelled test; ranks may share a GPU).

RD_FAULT_LIMIT_S=${RD_FAULT_LIMIT_S:-30}
RD_FAULT_DEVICE=${RD_FAULT_DEVICE:-cpu}
RD_BIN_DIR=${RD_BIN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build" 2>/dev/null && pwd)}
RD_ROPEDIST=${ROPEDIST_BIN:-$RD_BIN_DIR/ropedist}
RD_CONVERT=${ROPEDIST_CONVERT_BIN:-$RD_BIN_DIR/ropedist-convert}
RD_MPIRUN=${RD_MPIRUN:-$(command -v mpirun)}
RD_SCRATCH=""
RD_LAUNCH_PID=""
RD_RANK_ERR="" # where the ranks' stderr goes (default: the launcher's, $RD_SCRATCH/err.txt)

rd_fault_fail() {
    echo "FAIL: $*"
    exit 1
}

# pids of this test's ropedist ranks (their command line names the scratch folder)
rd_rank_pids() {
    local pid comm
    for pid in $(pgrep -f -- "$RD_SCRATCH/" 2>/dev/null); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        case "$comm" in ropedist*) echo "$pid" ;; esac
    done
}

# the world rank of ropedist process $1, from the variables its launcher set
rd_rank_of_pid() {
    tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null |
        sed -n -e 's/^OMPI_COMM_WORLD_RANK=//p' -e 's/^PMIX_RANK=//p' -e 's/^SLURM_PROCID=//p' |
        head -1
}

rd_pid_of_rank() {
    local pid
    for pid in $(rd_rank_pids); do
        [ "$(rd_rank_of_pid "$pid")" = "$1" ] && { echo "$pid"; return 0; }
    done
    return 1
}

rd_fault_cleanup() {
    local rc=$? pid
    if [ -n "$RD_LAUNCH_PID" ] && kill -0 "$RD_LAUNCH_PID" 2>/dev/null; then
        kill -9 "$RD_LAUNCH_PID" 2>/dev/null
    fi
    if [ -n "$RD_SCRATCH" ]; then
        for pid in $(rd_rank_pids); do kill -9 "$pid" 2>/dev/null; done
    fi
    [ "$(type -t rd_slurm_stop)" = function ] && rd_slurm_stop
    if [ -n "$RD_SCRATCH" ] && [ -d "$RD_SCRATCH" ]; then
        if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
            local f
            for f in "$RD_SCRATCH"/*.err "$RD_SCRATCH/err.txt"; do
                [ -f "$f" ] && { echo "---- $f (last 40 lines)"; tail -n 40 "$f"; }
            done
        fi
        rm -rf "$RD_SCRATCH"
    fi
    exit "$rc"
}

# makes the scratch folder, the EXIT trap, and a tiny model that tp 1, 2, 3 and 6 can split
rd_fault_setup() {
    [ -x "$RD_ROPEDIST" ] || rd_fault_fail "no ropedist binary at $RD_ROPEDIST (build first)"
    [ -x "$RD_CONVERT" ] || rd_fault_fail "no ropedist-convert binary at $RD_CONVERT"
    RD_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/rd_fault.XXXXXX")
    RD_RANK_ERR=$RD_SCRATCH/err.txt
    trap rd_fault_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # on a GPU each token is so fast that more layers are needed for a run of many seconds
    local layers=2
    [ "$RD_FAULT_DEVICE" = cuda ] && layers=32
    cat > "$RD_SCRATCH/tiny.json" <<EOF
{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 "hidden_size": 96, "intermediate_size": 192, "num_hidden_layers": $layers,
 "num_attention_heads": 6, "num_key_value_heads": 6, "vocab_size": 256,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
EOF
    "$RD_CONVERT" --random --config "$RD_SCRATCH/tiny.json" --seed 11 -o "$RD_SCRATCH/tiny.h5" \
        > "$RD_SCRATCH/convert.log" 2>&1 || { cat "$RD_SCRATCH/convert.log"; rd_fault_fail "convert"; }
}

# the ropedist arguments of a generation that runs for many seconds
rd_long_args() {
    local extra=""
    [ "$RD_FAULT_DEVICE" = cuda ] && extra=--share-gpu
    echo --device "$RD_FAULT_DEVICE" $extra --config "$RD_SCRATCH/tiny.json" \
        --checkpoint "$RD_SCRATCH/tiny.h5" --prompt-ids 1,5,9 --max-new-tokens 8000 \
        --ignore-eos --output ids --verbose
}

# starts "$@" in the background (stdout/stderr to the scratch folder), RD_LAUNCH_PID its pid
rd_launch_bg() {
    "$@" > "$RD_SCRATCH/out.txt" 2> "$RD_SCRATCH/err.txt" &
    RD_LAUNCH_PID=$!
}

# waits until $1 ranks are running and have logged their shard (weights loaded; generation
# follows at once), then one more second so the kill lands in the middle of generation
rd_wait_generating() {
    local n=$1 i have
    for i in $(seq 600); do
        have=$(grep -c "INFO .*vocab rows" "$RD_RANK_ERR" 2>/dev/null)
        [ "${have:-0}" -ge "$n" ] && [ "$(rd_rank_pids | wc -l)" -ge "$n" ] && break
        kill -0 "$RD_LAUNCH_PID" 2>/dev/null || rd_fault_fail "the job ended before generating"
        sleep 0.1
    done
    [ "${have:-0}" -ge "$n" ] || rd_fault_fail "ranks did not start generating within 60 s"
    sleep 1
    kill -0 "$RD_LAUNCH_PID" 2>/dev/null || rd_fault_fail "the job ended too early to be interrupted"
}

# waits until the launcher and every rank are gone; fails past RD_FAULT_LIMIT_S. Sets
# RD_LAUNCH_RC (the launcher's exit status), RD_ELAPSED (seconds until all were gone) and
# RD_RANKS_ELAPSED (seconds until the last rank was gone).
rd_wait_all_gone() {
    local t0=$1 t1 elapsed ranks_gone=""
    while :; do
        if [ -z "$ranks_gone" ] && [ -z "$(rd_rank_pids)" ]; then ranks_gone=$(date +%s.%N); fi
        if [ -n "$ranks_gone" ] && ! kill -0 "$RD_LAUNCH_PID" 2>/dev/null; then break; fi
        t1=$(date +%s.%N)
        elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        if awk -v e="$elapsed" -v l="$RD_FAULT_LIMIT_S" 'BEGIN { exit !(e > l) }'; then
            echo "still running after ${elapsed}s:"; ps -o pid,stat,args -p "$(rd_rank_pids | paste -sd, -)" 2>/dev/null
            rd_fault_fail "ranks still alive ${RD_FAULT_LIMIT_S}s after the fault"
        fi
        sleep 0.05
    done
    wait "$RD_LAUNCH_PID"
    RD_LAUNCH_RC=$?
    RD_LAUNCH_PID=""
    t1=$(date +%s.%N)
    RD_ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    RD_RANKS_ELAPSED=$(awk -v a="$t0" -v b="$ranks_gone" 'BEGIN { printf "%.2f", b - a }')
}
