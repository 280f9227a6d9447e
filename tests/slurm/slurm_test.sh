#!/usr/bin/env bash
# ropedist under a real one-node SLURM (Debian's slurmctld/slurmd/munge, started here in a
# scratch folder and stopped on every exit path). The same tiny random model and greedy prompt
# must give the same ids:
#   1. mpirun -np 2 ropedist ...                                       (the reference)
#   2. sbatch --wait launch/slurm/ropedist.sbatch, 2 tasks, cpu backend (wrapper -> srun --mpi=pmix)
#   3. the same batch script with ROPEDIST_LAUNCHER=mpirun              (mpirun inside an allocation)
#   4. srun --mpi=pmix -n 2 ropedist ...                                (direct launch)
# Exits 77 (skipped) when SLURM is not installed or we are not root. Each step has its own
# 120 s limit so the whole stays under CTest's 600 s and the EXIT trap always gets to run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${RD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
source "$here/slurm_lib.sh"
rd_slurm_require

bin_dir=${RD_BIN_DIR:-$src/build}
ropedist=${ROPEDIST_BIN:-$bin_dir/ropedist}
convert=${ROPEDIST_CONVERT_BIN:-$bin_dir/ropedist-convert}
mpirun=${RD_MPIRUN:-$(command -v mpirun)}
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$ropedist" ] || fail "no ropedist binary at $ropedist (build first)"
[ -x "$convert" ] || fail "no ropedist-convert binary at $convert"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rd_slurm.XXXXXX")
cleanup() {
    local rc=$?
    rd_slurm_stop
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        for f in "$scratch"/*.err "$scratch"/*.out; do
            [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
        done
        rd_slurm_logs
    fi
    rm -rf "$scratch"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat > "$scratch/tiny.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
JSON
"$convert" --random --config "$scratch/tiny.json" --seed 3 -o "$scratch/tiny.h5" > "$scratch/convert.out" 2>&1 ||
    fail "ropedist-convert failed"
args=(--device cpu --config "$scratch/tiny.json" --checkpoint "$scratch/tiny.h5"
      --prompt-ids 1,5,9,17,33 --max-new-tokens 24 --ignore-eos --output ids)

# 1. reference, outside SLURM
timeout 120 "$mpirun" --allow-run-as-root --oversubscribe -np 2 "$ropedist" "${args[@]}" \
    > "$scratch/ref.out" 2> "$scratch/ref.err" || fail "mpirun -np 2 failed"
[ "$(wc -w < "$scratch/ref.out")" = 24 ] || fail "mpirun -np 2 did not print 24 ids"
echo "mpirun -np 2:          $(cat "$scratch/ref.out")"

rd_slurm_start "$scratch/slurm" || fail "could not start SLURM"

same() { # name file
    cmp -s "$scratch/ref.out" "$2" || { diff "$scratch/ref.out" "$2" | head; fail "$1 differs from mpirun -np 2"; }
    echo "$1 $(printf '%*s' $((22 - ${#1})) '') $(cat "$2")  (same)"
}

# 2. and 3. the project's batch script, cpu backend, 2 tasks; stdout is the job's output file
n=0
for launcher in srun mpirun; do
    n=$((n + 1))
    t0=$(date +%s)
    env ROPEDIST_BIN="$ropedist" ROPEDIST_RUN="$src/launch/ropedist-run" ROPEDIST_DEVICE=cpu \
        ROPEDIST_LAUNCHER="$launcher" ROPEDIST_ARGS="$(printf '%q ' "${args[@]:2}")" \
        timeout 120 sbatch --wait --job-name="rd_test_$launcher" --nodes=1 --ntasks-per-node=2 \
        --gpus-per-node=0 --cpus-per-task=1 --time=10 --chdir="$scratch" \
        -o "$scratch/job$n.out" -e "$scratch/job$n.err" \
        "$src/launch/slurm/ropedist.sbatch" > "$scratch/sbatch$n.log" 2>&1 ||
        { cat "$scratch/sbatch$n.log"; fail "sbatch --wait (wrapper launcher $launcher) failed"; }
    same "sbatch ($launcher, $(($(date +%s) - t0))s):" "$scratch/job$n.out"
done

# 4. direct launch
timeout 120 srun --mpi=pmix -n 2 "$ropedist" "${args[@]}" > "$scratch/srun.out" 2> "$scratch/srun.err" ||
    fail "srun --mpi=pmix -n 2 failed"
same "srun --mpi=pmix -n 2:" "$scratch/srun.out"

echo "PASS: sbatch, mpirun in an allocation and srun give mpirun's ids"
