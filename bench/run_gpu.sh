#!/usr/bin/env bash
# The one benchmark script for the GPU machine (one H100): builds with CUDA for sm_90 into
# build-bench, runs every benchmark on the Llama-3-8B shape (and the 70B shape for scaling),
# then transformers' peer (compare_hf.py), joins the tables and prints a short summary last.
#
#   bash bench/run_gpu.sh                # all phases
#   bash bench/run_gpu.sh build ours     # phases: build ours hf summary (a device call is at
#   bash bench/run_gpu.sh hf summary     #   most 10 minutes: split them over two calls)
#   bash bench/run_gpu.sh build serve    # `ropedist serve` under 1, 8, 32, 128 concurrent clients
#
# Results (tables as .txt, -J JSON, scaling.png) go to $OUT when set (the device tool's result
# folder), else build-bench/bench-results. Environment: BUILD_DIR, JOBS, MODEL (llama-3-8b),
# BIG (llama-70b), QUICK=1 (fewer iterations and rows, for a first look).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
RES=${OUT:-$BUILD/bench-results}
MODEL=${MODEL:-llama-3-8b}
BIG=${BIG:-llama-70b}
mkdir -p "$RES"
phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build ours hf summary)
ITERS=20
[ "${QUICK:-0}" = 1 ] && ITERS=5
B=$BUILD/bench
failed=0

run() { # run NAME CMD...: output to $RES/NAME.txt, shown as it goes
    local name=$1 t0=$(date +%s)
    shift
    echo "=== $name: $*"
    "$@" 2>&1 | tee "$RES/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: rc $rc, $(($(date +%s) - t0)) s"
    [ $rc -ne 0 ] && failed=1
    return 0
}

for phase in "${phases[@]}"; do
    case $phase in
    build)
        nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm \
            --format=csv | tee "$RES/gpu.txt"
        gen=()
        command -v ninja >/dev/null && gen=(-G Ninja)
        run configure cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DROPEDIST_CUDA=ON \
            -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release
        run build cmake --build "$BUILD" -j "$JOBS" --target bench_decode bench_prefill \
            bench_attention bench_breakdown bench_scaling ropedist ropedist-convert
        ;;
    ours)
        common=(--device cuda -n "$ITERS")
        run decode "$B/bench_decode" -m "$MODEL" "${common[@]}" -b 1,8,64 -c 128,2k,32k \
            -J "$RES/decode.json"
        run prefill "$B/bench_prefill" -m "$MODEL" "${common[@]}" -p 128,512,2048 -n 10 \
            -J "$RES/prefill.json"
        run attention "$B/bench_attention" -m "$MODEL" "${common[@]}" -b 1,8,16,64 \
            -c 512,2k,8k,16k,32k -p 2k,8k -J "$RES/attention.json"
        run breakdown "$B/bench_breakdown" -m "$MODEL" "${common[@]}" -b 1 -c 2k \
            -J "$RES/breakdown.json"
        run breakdown_b64 "$B/bench_breakdown" -m "$MODEL" "${common[@]}" -b 64 -c 2k \
            -J "$RES/breakdown_b64.json"
        run scaling_8b "$B/bench_scaling" -m "$MODEL" "${common[@]}" --tp 1,2,4,8 -b 1,64 \
            -c 2k --layers 8 -J "$RES/scaling_8b.json"
        run scaling_70b "$B/bench_scaling" -m "$BIG" "${common[@]}" --tp 1,2,4,8 -b 1,64 \
            -c 2k --layers 4 -J "$RES/scaling_70b.json"
        run plot python3 "$ROOT/bench/plot_scaling.py" "$RES/scaling_8b.json" \
            "$RES/scaling_70b.json" -o "$RES/scaling.png"
        ;;
    hf)
        join=()
        [ -f "$RES/decode.json" ] && join=(--ropedist "$RES/decode.json")
        run hf_sdpa python3 "$ROOT/bench/compare_hf.py" -m "$MODEL" --sdpa -b 1,8,16,64 \
            -c 2k,8k,16k,32k -n "$ITERS" -J "$RES/hf_sdpa.json"
        run hf_decode python3 "$ROOT/bench/compare_hf.py" -m "$MODEL" -b 1,8,64 -c 128,2k \
            -n "$ITERS" --budget-s 420 "${join[@]}" -J "$RES/hf_decode.json"
        ;;
    serve)
        # synthetic weights of the 8B shape (no checkpoint on the machine), 1 rank, bf16
        [ -f "$BUILD/serve-8b.h5" ] || run convert "$BUILD/ropedist-convert" --random \
            --config "$ROOT/configs/$MODEL.json" --dtype bf16 -o "$BUILD/serve-8b.h5"
        run serve python3 "$ROOT/bench/bench_serve.py" --bin "$BUILD/ropedist" --np 1 \
            --device cuda --config "$ROOT/configs/$MODEL.json" -c 1,8,32,128 -n 256 \
            --input-len 128:1024 --output-len 64:256 --max-seq-len 2048 -J "$RES/serve.json" \
            --server-args --checkpoint "$BUILD/serve-8b.h5" --batch 128
        ;;
    summary)
        python3 - "$RES" <<'PY'
import json, os, sys
res = sys.argv[1]
def load(n):
    p = os.path.join(res, n)
    return json.load(open(p)) if os.path.exists(p) else None
def rows(doc):
    return [r for t in (doc or {}).get("tables", []) for r in t["rows"]]
print("\n# summary (%s)" % res)
d = load("decode.json")
if d:
    f = d.get("floors", {})
    print("# floors: copy %.0f GB/s, GEMM %.0f TFLOP/s" % (f.get("copy_GBps", 0), f.get("gemm_TFLOPps", 0)))
hf = {(r["batch"], r["ctx"]): r for r in (load("hf_decode.json") or {}).get("joined", [])}
print("# %-22s %10s %9s %9s %11s" % ("decode (batch, ctx)", "ms/step", "of_floor", "hf_eager", "hf_compiled"))
for r in rows(d):
    if r.get("ms/step") is None: continue
    h = hf.get((r["batch"], r["ctx"]), {})
    f = lambda v: "%9.3f" % v if v else "%9s" % "-"
    print("  %-22s %10.3f %8.1f%% %s %s" % ("b%d ctx%d" % (r["batch"], r["ctx"]), r["ms/step"], r["of_floor"], f(h.get("hf_eager_ms")), "  " + f(h.get("hf_compiled_ms"))))
for r in rows(load("prefill.json")):
    if r.get("ttft") is not None:
        print("  prefill %-14d %10.3f %8.1f%%  (ms to first token)" % (r["prompt"], r["ttft"], r["of_floor"]))
att = [r for r in rows(load("attention.json")) if r.get("bw")]
if att:
    best = max(att, key=lambda r: r["bw"])
    print("  attention: best %.0f GB/s (b%d ctx%d), worst %.0f GB/s" % (best["bw"], best["batch"], best["ctx"], min(r["bw"] for r in att)))
# the goals of the GPU speed work, each as measured / goal
goals = []
for r in att:
    if r["batch"] in (1, 16, 64) and r["ctx"] in (512, 2048, 32768):
        g = 85.0 if (r["batch"], r["ctx"]) == (1, 32768) else 92.0 if r["batch"] == 16 and r["ctx"] == 32768 else None
        goals.append(("decode attention b%d ctx%d, %% of copy bw" % (r["batch"], r["ctx"]), r["of_floor"], g))
for r in rows(load("attention.json")):
    if r.get("prompt") and r.get("rate") is not None:
        goals.append(("prefill attention %d, TFLOP/s" % r["prompt"], r["rate"], 300.0 if r["prompt"] in (2048, 8192) else None))
for r in rows(d):
    if r.get("batch") == 1 and r.get("of_floor") is not None:
        goals.append(("decode step b1 ctx%d, %% of weight-read floor" % r["ctx"], r["of_floor"], 92.0))
for (b, c), h in sorted(hf.items()):
    if b == 1 and h.get("compiled_over_ropedist"):
        goals.append(("decode b1 ctx%d, torch.compile ms / ropedist ms" % c, h["compiled_over_ropedist"], 1.4))
for r in rows(load("prefill.json")):
    if r.get("prompt") == 2048 and r.get("of_floor"):
        goals.append(("prefill 2048, % of GEMM-rate floor", r["of_floor"], 100 / 1.2))
if goals:
    print("# goals (measured, goal, met)")
    for name, v, g in goals:
        print("  %-50s %9.2f %8s %s" % (name, v, "-" if g is None else "%.1f" % g, "" if g is None else "yes" if v >= g else "NO"))
for n in ("scaling_8b.json", "scaling_70b.json"):
    for r in rows(load(n)):
        if r.get("step") is not None and r["tp"] == 8:
            print("  %s tp8 b%d: %.3f ms/step, speedup %.2f, eff %.0f%% (projected)" % (n[8:-5], r["batch"], r["step"], r["speedup"] or 0, r["eff"] or 0))
PY
        ;;
    *) echo "unknown phase $phase (build ours hf serve summary)"; exit 2 ;;
    esac
done
exit $failed
