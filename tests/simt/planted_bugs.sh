#!/usr/bin/env bash
# Plants one bug of each kind the SIMT emulation is meant to catch in the real kernels of
# kernels/cuda, one at a time, in a scratch copy of the tree, rebuilds the emulation build
# there and runs the cuda-vs-cpu op test on it: every planted bug must make the test fail.
# Prints a table (bug, how it showed, the first lines of evidence). Not part of CI (it builds
# eight times); run it after changing the emulator:
#
#   bash tests/simt/planted_bugs.sh [SCHEDULE]      # SCHEDULE: RD_SIMT_SCHEDULE, default forward
#
# The bugs:
#   missing_barrier   the barrier after the decode kernel's q rows and kv store is removed
#   smem_oob_write    the prefill kernel's K/V tile load writes one row past the V tile
#   divergent_shfl    the decode kernel's dot-product shuffles run only in lanes with a valid key
#   smem_no_optin     the prefill kernel is launched without opting in to > 48 KB
#   unwritten_smem    block_sum (rmsnorm) reads every lane's partial, written or not
#   cp_async_no_wait  the tensor-core prefill kernel uses a K/V tile without waiting for its
#                     cp.async copies
#   wmma_layout       the tensor-core prefill kernel assumes NVIDIA's accumulator layout
#                     instead of learning each element's row
#   staging_no_wait   upload_async rewrites its page-locked staging without waiting for the
#                     copies that read it
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCHEDULE=${1:-forward}
TMP=$(mktemp -d /tmp/rd-planted.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
git -C "$ROOT" archive HEAD | tar -x -C "$TMP"
cmake -S "$TMP" -B "$TMP/build" -G Ninja -DROPEDIST_CUDA_EMU=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRD_SHARED_DIR="$ROOT/../shared" >/dev/null || exit 1
cmake --build "$TMP/build" --target test_cuda_ops >/dev/null || exit 1

# plant NAME FILE OLD NEW: replaces OLD (exactly once) by NEW in FILE
plant() {
    python3 - "$TMP/$2" "$3" "$4" <<'EOF'
import sys
path, old, new = sys.argv[1:4]
s = open(path).read()
if s.count(old) != 1:
    sys.exit("planted_bugs: the text to replace is not in %s exactly once" % path)
open(path, "w").write(s.replace(old, new))
EOF
}

results=()
run_bug() {
    local name=$1 file=$2
    cp "$TMP/$file" "$TMP/$file.orig"
    plant "$name" "$file" "$3" "$4" || exit 1
    local log=$TMP/$name.log
    if ! cmake --build "$TMP/build" --target test_cuda_ops >"$log" 2>&1; then
        results+=("$name|does not compile|$(grep -m1 error "$log")")
    else
        RD_SIMT_SCHEDULE=$SCHEDULE RD_TEST_QUICK=1 timeout 900 "$TMP/build/tests/test_cuda_ops" \
            >"$log" 2>&1
        local rc=$?
        local evidence
        evidence=$(grep -a -m1 -E 'simt: (FAULT|launch|SIGSEGV|the host)|FAIL' "$log" | cut -c1-300)
        if [ $rc -eq 0 ]; then
            results+=("$name|NOT CAUGHT (test passed)|")
        else
            results+=("$name|caught (exit $rc)|$evidence")
        fi
    fi
    mv "$TMP/$file.orig" "$TMP/$file"
    touch "$TMP/$file" # newer than the objects built with the bug, so the next build drops it
}

run_bug missing_barrier kernels/cuda/attn_decode_kernel.cuh \
    '            vc[off + d] = v_in[d];
        }
    }
    __syncthreads();' \
    '            vc[off + d] = v_in[d];
        }
    }'
run_bug smem_oob_write kernels/cuda/attn_prefill.cu \
    'for (int idx = threadIdx.x; idx < ATTN_TILE * nvec; idx += blockDim.x) {' \
    'for (int idx = threadIdx.x; idx < (ATTN_TILE + 1) * nvec; idx += blockDim.x) {'
run_bug divergent_shfl kernels/cuda/attn_decode_kernel.cuh \
    'for (int o = L / 2; o > 0; o >>= 1) s[u][r] += __shfl_xor_sync(full, s[u][r], o);' \
    'for (int o = L / 2; o > 0; o >>= 1) if (valid[u]) s[u][r] += __shfl_xor_sync(full, s[u][r], o);'
run_bug smem_no_optin kernels/cuda/attn_prefill.cu \
    'if (smem > 48 * 1024) {' \
    'if (false) {'
run_bug unwritten_smem kernels/cuda/cuda_common.h \
    'float s = lane < n_warps ? red[lane] : 0.0f;' \
    'float s = red[lane];'
run_bug cp_async_no_wait kernels/cuda/attn_prefill_mma.cu \
    '            __pipeline_wait_prior(1);' \
    ''
run_bug wmma_layout kernels/cuda/attn_prefill_mma.cu \
    'row_of[i] = (int)where.x[i];' \
    'row_of[i] = (lane >> 2) + 8 * ((i >> 1) & 1);'
run_bug staging_no_wait kernels/cuda/backend.cu \
    'if (s->pending && (overlap || i == impl->staged_next)) {' \
    'if (false) {'

echo
echo "# planted bugs, schedule $SCHEDULE (RD_TEST_QUICK=1 test_cuda_ops)"
printf '%-16s | %-24s | %s\n' bug result evidence
caught=0
for r in "${results[@]}"; do
    IFS='|' read -r n res ev <<<"$r"
    printf '%-16s | %-24s | %s\n' "$n" "$res" "$ev"
    [[ $res == caught* ]] && caught=$((caught + 1))
done
echo "$caught of ${#results[@]} caught"
[ "$caught" -eq "${#results[@]}" ]
