#!/usr/bin/env bash
# The one script for the GPU machine (one H200, lent rarely and briefly: 15 minutes of machine
# time in all, its start included, at most 10 minutes a call). It verifies the cuda backend and
# measures it, in two calls of at most ~6 minutes each:
#
#   bash tests/gpu/run.sh a       probe the machine, libraries (system or carried), configure
#                                 (Ninja, all cores), build only what the steps run, the gpu
#                                 CTest label, -np 1 / 2 / 4 --share-gpu tokens
#   bash tests/gpu/run.sh b       compute-sanitizer memcheck + racecheck on the quick op test,
#                                 then the benchmarks at Llama-3-8B shape with their floors
#   bash tests/gpu/run.sh a b     both (one call, when the time allows)
#   STEPS=probe,build,ctest bash tests/gpu/run.sh    any steps by name
#   RD_GPU_DRYRUN=1 bash tests/gpu/run.sh a b        here, without a GPU: see "Dry run"
#
# First, here: `bash tests/gpu/pack.sh --prebuilt` (shared test data, the library packages of
# tests/gpu/deps.txt, binaries built for sm_90), then
#   run(command="bash tests/gpu/run.sh a", carry=["gpu_pack"], timeout_s=420)
#
# Steps (limit in seconds): a = probe 20, deps 40, configure 90, build 300 (the prebuilt op test
# runs beside it), ctest 240, multirank 150; b = probe, deps, configure, build (skipped when the
# prebuilt binaries load), memcheck 150, racecheck 180, bench_decode 120, bench_prefill 90,
# bench_attention 90. A call starts no step once BUDGET_S (default 350) seconds are spent, and
# no step runs past what is left; inside the window an NCCL wait gives up after 90 s
# (RD_NCCL_TIMEOUT_S) and a test after 180 s, so one hang cannot eat the call. The summary
# table (step, result, seconds) is always printed last.
#
# Output, under $OUT (the device tool's result folder; else build-gpu/out), four files (at most
# 8 come back, none deeper than two folders): run.log (everything printed), logs.tar.gz (one
# log per step), results.json (steps, probe, benchmark tables) and summary.md (the tables to
# commit as bench/results/h200-DATE.md).
#
# Libraries: for each dependency of tests/gpu/deps.txt the system's copy is used when present,
# else the carried .deb files are unpacked (dpkg -x) into a private prefix that CMake,
# pkg-config and the loader are pointed at; the deps step says which. RD_GPU_FORCE_CARRIED=1
# uses the carried packages even where the system has them (to check that path).
#
# Dry run (RD_GPU_DRYRUN=1): every step runs what it can without a GPU, with the same commands:
# the CUDA configure and build; the gpu tests on the SIMT emulation build (build-gpu-emu,
# tests/simt) instead of the GPU; the multi-rank token comparisons on the cpu backend; the
# sanitizer steps check compute-sanitizer and the op test's quick mode under the emulation;
# the benchmarks on the cpu backend at a tiny shape. So a typo cannot waste the window.
#
# Environment: BUILD_DIR (build-gpu), JOBS (nproc), BUDGET_S (350), RD_GPU_DRYRUN,
# RD_GPU_FORCE_CARRIED, MODEL (llama-3-8b). CTest sees this file (tests/gpu/*.sh) and skips it.
set -u

if [ -n "${RD_BIN_DIR:-}" ]; then
    echo "SKIP: tests/gpu/run.sh drives the GPU machine's run; call it directly, not via ctest"
    exit 77
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
DRY=${RD_GPU_DRYRUN:-0}
BUDGET=${BUDGET_S:-350}
MODEL=${MODEL:-llama-3-8b}
PACK=$ROOT/gpu_pack
OUTDIR=${OUT:-$BUILD/out}
LOGS=$BUILD/step-logs
T_START=$(date +%s)
mkdir -p "$OUTDIR" "$LOGS" "$BUILD"
STEP_MODE=0
if [ "${1:-}" = "--step" ]; then
    STEP_MODE=1 # one step, run by the main invocation under `timeout` (see step below)
    [ -f "$BUILD/deps.env" ] && . "$BUILD/deps.env"
    IFS=, read -r -a steps <<<"$RD_GPU_STEPS"
else
    exec > >(tee "$OUTDIR/run.log") 2>&1
fi

# the steps of each call
groups=("$@")
if [ $STEP_MODE = 1 ]; then
    :
elif [ -n "${STEPS:-}" ]; then
    IFS=, read -r -a steps <<<"$STEPS"
else
    [ ${#groups[@]} -eq 0 ] && groups=(a)
    steps=()
    for g in "${groups[@]}"; do
        case $g in
        a) steps+=(probe deps configure build ctest multirank) ;;
        b) steps+=(probe deps configure build memcheck racecheck bench_decode bench_prefill
            bench_attention) ;;
        *) echo "run.sh: unknown call '$g' (a or b)"; exit 2 ;;
        esac
    done
    # once each, in order (a b: the shared steps run once)
    mapfile -t steps < <(printf '%s\n' "${steps[@]}" | awk '!seen[$0]++')
fi
want() { [[ " ${steps[*]} " == *" $1 "* ]]; }
export RD_GPU_STEPS=$(IFS=,; echo "${steps[*]}")

export RD_NCCL_TIMEOUT_S=${RD_NCCL_TIMEOUT_S:-90}
export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
if [ -d "$PACK/shared/golden" ]; then
    export RD_SHARED_DIR=$PACK/shared
elif [ -d "$ROOT/../shared/golden" ]; then
    export RD_SHARED_DIR=$(cd "$ROOT/../shared" && pwd)
fi

names=() results=() secs=() done_steps=""
failed=0
left() { echo $((BUDGET - ($(date +%s) - T_START))); }

# step NAME LIMIT FUNCTION [ARGS...]: runs this script again as `run.sh --step FUNCTION ARGS`
# within min(LIMIT, budget left) (so `timeout` can end it, children included), its output in
# the step's log (and run.log); exit 77 counts as skipped
step() {
    local name=$1 limit=$2 t0 rc remain
    shift 2
    remain=$(left)
    if [ "$remain" -lt 15 ]; then
        echo "=== $name: not started, the call's budget of ${BUDGET}s is spent"
        names+=("$name") results+=("not run (budget)") secs+=(0)
        return 1
    fi
    [ "$limit" -gt "$remain" ] && limit=$remain
    echo "=== $name (limit ${limit}s): $*"
    t0=$(date +%s)
    timeout -k 10 "$limit" bash "$ROOT/tests/gpu/run.sh" --step "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    names+=("$name") secs+=($(($(date +%s) - t0)))
    case $rc in
    0) results+=(ok) done_steps+=" $name" ;;
    77) results+=(skipped) ;;
    124 | 137) results+=("TIMEOUT (${limit}s)") failed=1 ;;
    *) results+=("FAILED (rc $rc)") failed=1 ;;
    esac
    return $rc
}

# ---- probe: what the machine has ----
probe() {
    echo "host: $(uname -srm), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
    if [ "$DRY" = 1 ]; then echo "dry run: no GPU used"; fi
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.max.sm \
        --format=csv,noheader 2>/dev/null || echo "nvidia-smi: no GPU visible"
    local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
    [ -x "$nvcc" ] && echo "nvcc: $("$nvcc" --version | tail -n2 | head -n1)" || echo "nvcc: not found"
    for f in /usr/include/nccl.h /usr/local/cuda/include/nccl.h; do
        [ -f "$f" ] && echo "nccl: $f ($(grep -m1 'define NCCL_VERSION_CODE' "$f" | awk '{print $3}'))"
    done
    echo "mpirun: $(mpirun --version 2>/dev/null | head -n1 || echo 'not found')"
    echo "cmake: $(cmake --version | head -n1); ninja: $(ninja --version 2>/dev/null || echo none)"
    echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo none)"
    echo "python3: $(python3 -c 'import sys; print(sys.version.split()[0])' 2>/dev/null) torch: $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none) transformers: $(python3 -c 'import transformers; print(transformers.__version__)' 2>/dev/null || echo none)"
    while read -r kind name probe; do
        [ "$kind" = dep ] || continue
        if have_dep "$probe"; then echo "lib $name: present ($probe)"; else echo "lib $name: MISSING ($probe)"; fi
    done <"$ROOT/tests/gpu/deps.txt"
    [ -d "$PACK" ] && cat "$PACK/MANIFEST" 2>/dev/null || echo "gpu_pack: not carried"
    return 0
}
have_dep() {
    case $1 in
    pkg:*) pkg-config --exists "${1#pkg:}" 2>/dev/null ;;
    file:*) [ -e "${1#file:}" ] ;;
    esac
}

# ---- deps: system libraries, or the carried packages in a private prefix ----
PFX=$BUILD/prefix
CMAKE_DEP_ARGS=(${RD_GPU_CMAKE_DEP_ARGS:-})
deps() {
    local used=() carried=() name probe kind rest
    rm -rf "$PFX"
    mkdir -p "$PFX"
    while read -r kind rest; do
        case $kind in
        dep) read -r name probe <<<"$rest" ;;
        deb)
            if [ "${RD_GPU_FORCE_CARRIED:-0}" != 1 ] && have_dep "$probe"; then
                used+=("$name: system")
                continue
            fi
            local ok=1
            for p in $rest; do
                local f
                f=$(ls "$PACK"/debs/"${p}"_*.deb 2>/dev/null | head -n1)
                if [ -z "$f" ]; then
                    echo "deps: $name is missing and $p was not carried (tests/gpu/pack.sh)"
                    ok=0
                    continue
                fi
                dpkg -x "$f" "$PFX"
            done
            [ $ok = 1 ] && carried+=("$name") && used+=("$name: carried")
            ;;
        esac
    done <"$ROOT/tests/gpu/deps.txt"
    if [ ${#carried[@]} -gt 0 ]; then
        # the .pc files and libraries name /usr: point them at the prefix
        find "$PFX" -name '*.pc' -exec sed -i "s|^prefix=/usr|prefix=$PFX/usr|" {} +
        local lib=$PFX/usr/lib/x86_64-linux-gnu
        export PKG_CONFIG_PATH=$lib/pkgconfig:$PFX/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
        export LD_LIBRARY_PATH=$lib:$lib/openblas-openmp:$lib/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        export CMAKE_PREFIX_PATH=$PFX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
        if [[ " ${carried[*]} " == *" openblas "* ]]; then
            CMAKE_DEP_ARGS+=(-DOPENBLAS_INCLUDE_DIR="$PFX/usr/include/x86_64-linux-gnu/openblas-openmp"
                -DOPENBLAS_LIBRARY="$lib/openblas-openmp/libopenblas.so")
            export RD_OPENBLAS_LIB=$lib/openblas-openmp/libopenblas.so.0
        fi
        if [[ " ${carried[*]} " == *" hdf5 "* ]]; then
            CMAKE_DEP_ARGS+=(-DHDF5_C_INCLUDE_DIR="$PFX/usr/include/hdf5/serial"
                -DHDF5_C_LIBRARY_hdf5="$lib/hdf5/serial/libhdf5.so")
        fi
    fi
    printf 'deps: %s\n' "${used[@]}"
    # what the later steps (separate processes) take over
    {
        for v in PKG_CONFIG_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH RD_OPENBLAS_LIB; do
            [ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
        done
        printf 'export RD_GPU_CMAKE_DEP_ARGS=%q\n' "${CMAKE_DEP_ARGS[*]}"
    } >"$BUILD/deps.env"
    return 0
}

# ---- configure and build ----
TARGETS_A=(ropedist ropedist-convert test_cuda_ops test_cuda_golden test_cuda_tp test_cuda_stories
    test_cuda_graphs)
TARGETS_B=(test_cuda_ops bench_decode bench_prefill bench_attention ropedist ropedist-convert)
configure() {
    local gen=()
    # libraries from another place than the last configure (system / carried): start afresh
    local sig
    sig=$(cat "$BUILD/deps.env" 2>/dev/null | md5sum | cut -c1-12)
    if [ -f "$BUILD/CMakeCache.txt" ] && [ "$(cat "$BUILD/deps.sig" 2>/dev/null)" != "$sig" ]; then
        echo "the libraries' places changed since the last configure: a fresh CMake cache"
        rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
    fi
    echo "$sig" >"$BUILD/deps.sig"
    command -v ninja >/dev/null && [ ! -f "$BUILD/CMakeCache.txt" ] && gen=(-G Ninja)
    [ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
    cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DROPEDIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRD_SHARED_DIR="${RD_SHARED_DIR:-$ROOT/../shared}" \
        "${CMAKE_DEP_ARGS[@]}"
}
# prebuilt BIN: the carried binary for BIN when it loads here, else nothing
PRE=$BUILD/prebuilt
prebuilt() {
    local f=$PACK/prebuilt/$1.xz
    [ -f "$f" ] || return 1
    mkdir -p "$PRE"
    # the shared library that holds the device code, found beside the programs ($ORIGIN)
    local lib=$PACK/prebuilt/libropedist_core.so.xz
    [ ! -f "$lib" ] || [ -f "$PRE/libropedist_core.so" ] ||
        xz -dc "$lib" >"$PRE/libropedist_core.so" || return 1
    [ -x "$PRE/$1" ] || { xz -dc "$f" >"$PRE/$1" && chmod +x "$PRE/$1"; } || return 1
    if ldd "$PRE/$1" | grep -q 'not found'; then
        echo "prebuilt $1 does not load here:"
        ldd "$PRE/$1" | grep 'not found'
        return 1
    fi
    echo "$PRE/$1"
}
# the prebuilt op test, beside the build: the most valuable check before anything is built
prebuilt_ops() {
    local bin
    bin=$(prebuilt test_cuda_ops | tail -n1) && [ -x "$bin" ] || {
        echo "no prebuilt test_cuda_ops that loads here: the built one runs in ctest"
        return 77
    }
    echo "prebuilt $(cat "$PACK/prebuilt/COMMIT" 2>/dev/null)"
    "$bin"
}
build() {
    local targets=()
    want ctest && targets+=("${TARGETS_A[@]}")
    want multirank && targets+=(ropedist ropedist-convert)
    if want memcheck || want racecheck || want bench_decode; then
        for t in "${TARGETS_B[@]}"; do
            prebuilt "$t" >/dev/null 2>&1 || targets+=("$t")
        done
    fi
    : >"$BUILD/built-targets"
    [ ${#targets[@]} -eq 0 ] && { echo "nothing to build: the prebuilt binaries load"; return 0; }
    mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
    printf '%s\n' "${targets[@]}" >"$BUILD/built-targets"
    echo "building: ${targets[*]}"
    if want ctest && [ "$DRY" != 1 ]; then
        # the prebuilt op test runs on the GPU while the CPU cores compile
        (prebuilt_ops >"$LOGS/prebuilt_ops.log" 2>&1; echo $? >"$LOGS/prebuilt_ops.rc") &
        local bg=$!
        cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
        local rc=$?
        wait $bg
        echo "--- prebuilt op test (rc $(cat "$LOGS/prebuilt_ops.rc")):"
        tail -n 5 "$LOGS/prebuilt_ops.log"
        return $rc
    fi
    cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
}
bin_of() { # the binary this run built, else the prebuilt one, else one an earlier run built
    local f p
    f=$(find "$BUILD" -path "$PRE" -prune -o -type f -name "$1" -perm -u+x -print 2>/dev/null | head -n1)
    if [ -n "$f" ] && grep -qx "$1" "$BUILD/built-targets" 2>/dev/null; then echo "$f"; return; fi
    p=$(prebuilt "$1" 2>/dev/null | tail -n1)
    if [ -x "$p" ]; then echo "$p"; return; fi
    [ -n "$f" ] && echo "$f"
}

# ---- the gpu tests (on the GPU; in a dry run on the SIMT emulation) ----
EMU=$BUILD-emu
ctest_gpu() {
    if [ "$DRY" = 1 ]; then
        echo "dry run: the gpu label on the SIMT emulation build $EMU (RD_TEST_QUICK=1)"
        cmake -S "$ROOT" -B "$EMU" -DROPEDIST_CUDA_EMU=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            "${CMAKE_DEP_ARGS[@]}" >/dev/null && cmake --build "$EMU" -j "$JOBS" >/dev/null || return 1
        RD_TEST_QUICK=1 ctest --test-dir "$EMU" -L gpu -R 'test_cuda_(ops|tp)' --output-on-failure \
            --timeout 900
        return
    fi
    ctest --test-dir "$BUILD" -L gpu -E '^gpu_(run|pack)' --output-on-failure -j 4 --timeout 180
}

# ---- multi-rank tokens: -np 2 and -np 4 --share-gpu must give -np 1's ----
multirank() {
    local dev=cuda share=(--share-gpu) E=$BUILD/e2e rop conv
    [ "$DRY" = 1 ] && dev=cpu share=() && echo "dry run: on the cpu backend"
    rop=$(bin_of ropedist) conv=$(bin_of ropedist-convert)
    mkdir -p "$E"
    cat >"$E/config.json" <<'JSON'
{"model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,
 "head_dim": 32, "intermediate_size": 512, "vocab_size": 1000, "num_hidden_layers": 3,
 "tie_word_embeddings": false, "rms_norm_eps": 1e-5, "max_position_embeddings": 512,
 "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2}
JSON
    "$conv" --random --config "$E/config.json" --seed 5 --force -o "$E/model.h5" || return 1
    # a 70-token prompt (prefill kernel) and 24 generated tokens (decode kernel)
    local prompt rc=0 dtypes=(fp32 bf16)
    [ "$DRY" = 1 ] && dtypes=(fp32) # the cpu backend computes in fp32 only
    prompt=$(seq 1 70 | awk '{printf "%s%d", (NR > 1 ? "," : ""), (NR == 1 ? 1 : 3 + (NR * 37) % 200)}')
    for dtype in "${dtypes[@]}"; do
        for np in 1 2 4; do
            local sh=()
            [ "$np" -gt 1 ] && sh=("${share[@]}")
            timeout 60 "${MPIRUN[@]}" -np "$np" "$rop" --device "$dev" --dtype "$dtype" "${sh[@]}" \
                --config "$E/config.json" --checkpoint "$E/model.h5" --prompt-ids "$prompt" \
                --max-new-tokens 24 --ignore-eos --temperature 0 --output ids \
                >"$E/ids_${np}_$dtype.txt" || { echo "np $np $dtype failed"; rc=1; continue; }
            echo "np $np $dtype: $(cat "$E/ids_${np}_$dtype.txt")"
        done
        for np in 2 4; do
            if [ ! -s "$E/ids_1_$dtype.txt" ] || [ ! -s "$E/ids_${np}_$dtype.txt" ]; then
                echo "$dtype: -np $np not compared (a run failed)"
                rc=1
            elif cmp -s "$E/ids_1_$dtype.txt" "$E/ids_${np}_$dtype.txt"; then
                echo "$dtype: -np $np gives the tokens of -np 1"
            elif [ $dtype = fp32 ]; then
                echo "$dtype: -np $np DIFFERS from -np 1"
                rc=1
            else
                echo "$dtype: -np $np differs from -np 1 (bf16 rounding of the all-reduce: reported only)"
            fi
        done
    done
    return $rc
}

# ---- compute-sanitizer on the quick op test ----
sanitizer() { # sanitizer TOOL
    local cs
    cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    if [ "$DRY" = 1 ]; then
        [ -x "$cs" ] && "$cs" --version | head -n2 || echo "compute-sanitizer: not here"
        echo "dry run: the op test's quick mode on the emulation instead"
        [ -x "$EMU/tests/test_cuda_ops" ] || { echo "no emulation build (run ctest first)"; return 77; }
        RD_TEST_QUICK=1 "$EMU/tests/test_cuda_ops" | tail -n1
        return
    fi
    local ops
    ops=$(bin_of test_cuda_ops)
    # test_cuda_ops asks for 2^50 bytes on purpose (the OOM path): not an error here
    RD_TEST_QUICK=1 "$cs" --tool "$1" --error-exitcode 1 --report-api-errors no \
        --print-limit 20 "$ops"
}

# ---- benchmarks (floors measured in the same run by each program) ----
RES=$BUILD/bench-json
bench() { # bench NAME ARGS...
    local name=$1 b dev=(--device cuda) shape=(-m "$MODEL")
    shift
    b=$(bin_of "$name")
    [ -x "$b" ] || { echo "no $name binary"; return 1; }
    mkdir -p "$RES"
    if [ "$DRY" = 1 ]; then
        echo "dry run: cpu backend, tiny shape, the same flags otherwise"
        dev=(--device cpu) shape=(-m tiny)
    fi
    "$b" "${shape[@]}" "${dev[@]}" "$@" -J "$RES/$name.json"
}

if [ $STEP_MODE = 1 ]; then
    shift
    "$@"
    exit $?
fi

rm -f "$BUILD/deps.env"
want probe && step probe 20 probe
want deps && step deps 40 deps
want configure && step configure 90 configure
want build && step build 300 build
want ctest && step ctest 240 ctest_gpu
want multirank && step multirank 150 multirank
want memcheck && step memcheck 150 sanitizer memcheck
want racecheck && step racecheck 180 sanitizer racecheck
if [ "$DRY" = 1 ]; then
    # the benchmarks' flags, at a shape the cpu runs in seconds
    want bench_decode && step bench_decode 120 bench bench_decode -n 2 -b 1,16,64 -c 128,512
    want bench_prefill && step bench_prefill 90 bench bench_prefill -n 2 -p 128
    want bench_attention && step bench_attention 90 bench bench_attention -n 2 -b 1,16 -c 512 -p 128
else
    want bench_decode && step bench_decode 120 bench bench_decode -n 10 -b 1,16,64 -c 2k
    want bench_prefill && step bench_prefill 90 bench bench_prefill -n 5 -p 2048
    want bench_attention && step bench_attention 90 bench bench_attention -n 10 -b 1,16,64 -c 4k,32k -p 2k,8k
fi
[ -f "$LOGS/prebuilt_ops.log" ] && names+=(prebuilt_ops) secs+=(0) &&
    case $(cat "$LOGS/prebuilt_ops.rc" 2>/dev/null) in
    0) results+=(ok) ;;
    77) results+=(skipped) ;;
    *) results+=("FAILED (rc $(cat "$LOGS/prebuilt_ops.rc" 2>/dev/null))") failed=1 ;;
    esac

# ---- results: logs.tar.gz, results.json, summary.md; the summary table last ----
tar -czf "$OUTDIR/logs.tar.gz" -C "$BUILD" step-logs $( [ -d "$RES" ] && echo bench-json ) 2>/dev/null
{
    for i in "${!names[@]}"; do printf '%s\t%s\t%s\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"; done
} >"$BUILD/steps.tsv"
python3 - "$BUILD/steps.tsv" "$LOGS" "$RES" "$OUTDIR" "$DRY" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null)" <<'PY' || echo "results.json: python3 failed"
import json, os, sys
tsv, logs, res, out, dry, when, commit = sys.argv[1:8]
steps = []
for line in open(tsv):
    n, r, s = line.rstrip("\n").split("\t")
    steps.append({"step": n, "result": r, "seconds": int(s)})
def text(n):
    p = os.path.join(logs, n + ".log")
    return open(p, errors="replace").read() if os.path.exists(p) else ""
bench = {}
if os.path.isdir(res):
    for f in sorted(os.listdir(res)):
        if f.endswith(".json"):
            try:
                bench[f[:-5]] = json.load(open(os.path.join(res, f)))
            except ValueError:
                pass
doc = {"when": when, "commit": commit, "dry_run": dry == "1", "steps": steps,
       "probe": text("probe").splitlines(), "deps": text("deps").splitlines(),
       "multirank": [l for l in text("multirank").splitlines() if l.startswith(("np ", "fp32", "bf16"))],
       "benchmarks": bench}
json.dump(doc, open(os.path.join(out, "results.json"), "w"), indent=1)
def num(v):
    if isinstance(v, float):
        return "%d" % v if v.is_integer() and abs(v) < 1e15 else "%.4g" % v
    return str(v)
md = ["# ropedist on the GPU machine, %s%s" % (when, " (DRY RUN, no GPU)" if dry == "1" else ""),
      "", "commit %s" % commit, "", "| step | result | seconds |", "| --- | --- | --- |"]
md += ["| %s | %s | %d |" % (s["step"], s["result"], s["seconds"]) for s in steps]
ct = [l for l in text("ctest").splitlines() if "Test #" in l or "tests passed" in l]
if ct:
    md += ["", "## gpu tests", "", "```"] + ct + ["```"]
if doc["multirank"]:
    md += ["", "## multi-rank tokens", "", "```"] + doc["multirank"] + ["```"]
for tool in ("memcheck", "racecheck"):
    t = [l for l in text(tool).splitlines() if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
    if t:
        md += ["", "## compute-sanitizer %s" % tool, "", "```"] + t + ["```"]
for name, d in bench.items():
    md += ["", "## %s" % name, ""]
    fl = d.get("floors") or {}
    if fl:
        md.append("floors measured in the same run: %s" % ", ".join("%s %s" % (k, num(v)) for k, v in fl.items()))
        md.append("")
    for t in d.get("tables", []):
        rows = t.get("rows", [])
        if not rows:
            continue
        cols = list(rows[0].keys())
        md += ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
        md += ["| " + " | ".join(num(r.get(c, "")) for c in cols) + " |" for r in rows]
        md.append("")
open(os.path.join(out, "summary.md"), "w").write("\n".join(md) + "\n")
PY

echo
echo "# ropedist GPU run summary ($(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$DRY" = 1 ] && echo ', DRY RUN: no GPU'), $(( $(date +%s) - T_START ))s of ${BUDGET}s; files in $OUTDIR)"
printf '%-16s %-22s %8s\n' step result seconds
printf '%-16s %-22s %8s\n' ---------------- ---------------------- --------
for i in "${!names[@]}"; do
    printf '%-16s %-22s %8s\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"
done
exit $failed
