#!/usr/bin/env python3
"""ropedist's cpu backend side by side with llama.cpp's CPU build, on the same GGUF files.

Models: stories260K (../shared/models/stories260K, skipped when absent) and a random Llama F32
GGUF of ~110M parameters (dim 768, 12 layers, ffn 2048, vocab 32000, tied output) written by
bench_make_gguf into --work. Tests: decode of 128 tokens after one (llama-bench tg128) and a
512-token prefill (pp512), each at one thread and at two: ropedist as 1 rank x 2 threads and
as 2 ranks x 1 thread, llama.cpp with -t 2. Every (model, threads, test) is timed in --pairs
paired runs, the two programs alternating which goes first; the table gives each side's median
tokens/s, the median of the per-pair ratios ropedist / llama.cpp and their min-max, and the
load average seen. The machine's copy bandwidth (bench_floors, read + write counted, at 1 and 2
threads) is measured in the same run, and the read bandwidth (a plain sum over as many bytes);
decode is also given against both floors, the bytes of weights a token reads (every layer and
the LM head) over that bandwidth.

llama.cpp is not part of ropedist and nothing of it is kept here: give --llama-bench PATH (a
CPU build of llama.cpp's llama-bench), or --llama-src DIR to configure and build one from a
llama.cpp source tree into --llama-build (cmake, -DGGML_NATIVE=ON, CPU only). Without either,
llama-bench is looked for on PATH; when there is none, ropedist runs alone and the script says so.

  python3 bench/compare_llamacpp.py --build build --llama-bench /path/to/llama-bench -J out.json
"""
import argparse
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import time

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def gguf_weight_bytes(path):
    """Bytes of weights one decoded token reads: every tensor but the token embedding (one row
    of it is read), plus the embedding again when it is also the output layer (tied)."""
    sizes = {0: 4, 1: 2, 30: 2}  # F32, F16, BF16; anything else is not expected here
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version, n_t, n_kv = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            raise ValueError(f"{path}: GGUF v{version} is not supported")

        def rd(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def skip_value(t):
            scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
            if t in scalar:
                f.seek(scalar[t], 1)
            elif t == 8:
                f.seek(rd("Q"), 1)
            elif t == 9:
                at, n = rd("I"), rd("Q")
                for _ in range(n):
                    skip_value(at)
            else:
                raise ValueError(f"{path}: unknown metadata type {t}")

        for _ in range(n_kv):
            f.seek(rd("Q"), 1)
            skip_value(rd("I"))
        tensors = {}
        for _ in range(n_t):
            name = f.read(rd("Q")).decode()
            nd = rd("I")
            n = 1
            for _ in range(nd):
                n *= rd("Q")
            t = rd("I")
            rd("Q")
            tensors[name] = n * sizes.get(t, 0)
    total = sum(v for k, v in tensors.items() if k != "token_embd.weight")
    if "output.weight" not in tensors:
        total += tensors.get("token_embd.weight", 0)
    return total


def loadavg():
    return os.getloadavg()[0]


def cpu_busy(seconds=1.0):
    """Share of the machine's CPU time spent busy over the next `seconds` (from /proc/stat);
    between runs of ours, that is other people's work."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(args):
    """With --max-load / --max-busy, waits (up to --max-wait seconds) until the 1-minute load
    average / the busy share of the CPUs over one second is at most that: on a shared machine
    other work skews one side of a pair."""
    if args.max_load is None and args.max_busy is None:
        return
    t0 = time.time()
    while time.time() - t0 < args.max_wait:
        if (args.max_load is None or loadavg() <= args.max_load) and \
                (args.max_busy is None or cpu_busy() <= args.max_busy):
            return
        time.sleep(2)


class Runner:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.bin = os.path.join(self.build, "ropedist")
        self.mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
        self.env = dict(os.environ, **MPI_ENV)
        self.env.pop("OMP_NUM_THREADS", None)  # each run says its threads
        self.loads = []

    def run(self, cmd, env=None):
        self.loads.append(loadavg())
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env or self.env, timeout=self.args.timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({p.returncode}):\n{p.stderr[-2000:]}")
        return p.stdout

    # ---- ropedist ----
    def ropedist(self, model, ranks, threads, test, vocab):
        cmd = [self.mpirun, "-np", str(ranks)]
        if ranks == 1:
            cmd += ["--bind-to", "none"]  # mpirun -np 1 binds to one core otherwise
        cmd += [self.bin, "--config", model, "--device", "cpu", "--threads", str(threads),
                "--output", "json", "--temperature", "0", "--ignore-eos"]
        if test == "pp512":
            rng = random.Random(512)
            ids = ",".join(str(rng.randrange(3, vocab)) for _ in range(512))
            cmd += ["--prompt-ids", ids, "--max-new-tokens", "1"]
        else:
            cmd += ["--prompt-ids", "1", "--max-new-tokens", "129"]
        out = json.loads(self.run(cmd).strip().splitlines()[-1])
        t = out["timing"]
        if test == "pp512":
            return 512 / (t["prefill_ms"] / 1e3)
        return t["decode_tokens_per_s"]  # 128 steps after the prompt's token

    # ---- llama.cpp ----
    def llama(self, model, threads, test):
        p, n = ("512", "0") if test == "pp512" else ("0", "128")
        cmd = [self.args.llama_bench, "-m", model, "-t", str(threads), "-p", p, "-n", n,
               "-r", "1", "-o", "json"]
        rows = json.loads(self.run(cmd))
        return float(rows[0]["avg_ts"])

    def floors(self, threads):
        env = dict(self.env, OMP_NUM_THREADS=str(threads))
        out = self.run([os.path.join(self.build, "bench", "bench_floors"), "--device", "cpu",
                        "--copy-mb", str(self.args.copy_mb), "--gemm-n", "1024", "-n", "10"], env)
        vals = dict(line.split() for line in out.splitlines() if line and not line.startswith("#"))
        return float(vals["copy_GBps"]), float(vals["gemm_GFLOPps"]), float(vals["read_GBps"])


def find_llama_bench(args):
    if args.llama_bench:
        if not os.access(args.llama_bench, os.X_OK):
            sys.exit(f"--llama-bench {args.llama_bench}: not an executable")
        return os.path.abspath(args.llama_bench)
    if args.llama_src:
        bdir = os.path.abspath(args.llama_build)
        log(f"building llama-bench from {args.llama_src} into {bdir} (CPU only, GGML_NATIVE=ON)")
        subprocess.run(["cmake", "-S", args.llama_src, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
                        "-DGGML_NATIVE=ON", "-DGGML_CUDA=OFF", "-DLLAMA_CURL=OFF",
                        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                        "-DLLAMA_BUILD_SERVER=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", bdir, "--target", "llama-bench", "-j",
                        str(os.cpu_count() or 2)], check=True, stdout=subprocess.DEVNULL)
        return os.path.join(bdir, "bin", "llama-bench")
    return shutil.which("llama-bench")


def models(args, runner):
    out = []
    shared = os.environ.get("RD_SHARED_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
    stories = os.path.join(shared, "models", "stories260K", "stories260K.gguf")
    if "stories260K" in args.models:
        if os.path.exists(stories):
            out.append(("stories260K", stories, 512))
        else:
            log(f"SKIP stories260K: {stories} is absent (RD_SHARED_DIR points elsewhere)")
    if "random" in args.models:
        dim, layers, ffn, vocab = (int(x) for x in args.random_shape.split(","))
        heads = max(2, dim // 64)  # at least two, so that two ranks can split them
        os.makedirs(args.work, exist_ok=True)
        path = os.path.join(args.work, f"random-llama-d{dim}-l{layers}-f{ffn}-v{vocab}.gguf")
        if not os.path.exists(path):
            log(f"writing {path}")
            runner.run([os.path.join(runner.build, "bench", "bench_make_gguf"), "-o", path,
                        "--dim", str(dim), "--layers", str(layers), "--heads", str(heads),
                        "--kv-heads", str(heads), "--ffn", str(ffn), "--vocab", str(vocab)])
        params = layers * (4 * dim * dim + 3 * dim * ffn) + vocab * dim
        out.append((f"random{params / 1e6:.3g}M", path, vocab))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="ropedist build folder (default build)")
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench (a CPU build)")
    ap.add_argument("--llama-src", help="a llama.cpp source tree to build llama-bench from")
    ap.add_argument("--llama-build", default="/tmp/llamacpp-build",
                    help="where --llama-src is built (default /tmp/llamacpp-build)")
    ap.add_argument("--work", default="/tmp/ropedist-bench", help="generated models go here")
    ap.add_argument("--models", default="stories260K,random",
                    help="stories260K and/or random (default both)")
    ap.add_argument("--random-shape", default="768,12,2048,32000",
                    help="the random model: dim,layers,ffn,vocab (heads of 64, at least 2; default "
                         "768,12,2048,32000, 110M parameters)")
    ap.add_argument("--configs", default="1x1,1x2,2x1",
                    help="ropedist RANKSxTHREADS to run (llama.cpp: -t RANKS*THREADS)")
    ap.add_argument("--tests", default="tg128,pp512")
    ap.add_argument("--pairs", type=int, default=5, help="paired runs per row (default 5)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run")
    ap.add_argument("--max-load", type=float,
                    help="before each pair, wait until the 1-minute load average is at most this")
    ap.add_argument("--max-busy", type=float,
                    help="before each pair, wait until at most this share of the CPUs was busy "
                         "over one second (e.g. 0.2)")
    ap.add_argument("--max-wait", type=int, default=300,
                    help="seconds to wait for --max-load / --max-busy before running anyway "
                         "(default 300)")
    ap.add_argument("--copy-mb", type=int, default=512,
                    help="bytes of the bandwidth floor's copy (default 512 MB, past the caches)")
    ap.add_argument("-J", "--json", help="write the rows as JSON")
    args = ap.parse_args()
    args.models = args.models.split(",")

    runner = Runner(args)
    if not os.access(runner.bin, os.X_OK) or not runner.mpirun:
        sys.exit(f"{runner.bin} (built?) and mpirun are needed")
    args.llama_bench = find_llama_bench(args)
    if not args.llama_bench:
        log("llama.cpp's llama-bench was not given (--llama-bench, --llama-src) nor found on "
            "PATH: running ropedist alone, without ratios")
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    tests = args.tests.split(",")

    bw = {}
    for threads in sorted({r * t for r, t in configs}):
        bw[threads] = runner.floors(threads)
        log(f"floors at {threads} thread(s): copy {bw[threads][0]:.1f} GB/s (read+write), "
            f"read {bw[threads][2]:.1f} GB/s, GEMM {bw[threads][1]:.0f} GFLOP/s")

    rows = []
    for name, path, vocab in models(args, runner):
        wbytes = gguf_weight_bytes(path)
        for ranks, threads in configs:
            total = ranks * threads
            for test in tests:
                ours, theirs, ratios, loads, busy = [], [], [], [], []
                for i in range(args.pairs):
                    first_ours = i % 2 == 0
                    wait_for_quiet(args)
                    busy.append(cpu_busy(0.5))
                    l0 = loadavg()
                    for side in ("ours", "theirs") if first_ours else ("theirs", "ours"):
                        if side == "ours":
                            ours.append(runner.ropedist(path, ranks, threads, test, vocab))
                        elif args.llama_bench:
                            theirs.append(runner.llama(path, total, test))
                    loads.append(max(l0, loadavg()))
                    if args.llama_bench:
                        ratios.append(ours[-1] / theirs[-1])
                row = {"model": name, "test": test, "ranks": ranks, "threads": threads,
                       "ropedist_tps": statistics.median(ours), "ropedist_all": ours,
                       "load_min": min(loads), "load_max": max(loads),
                       "busy_min": min(busy), "busy_max": max(busy)}
                if ratios:
                    row.update(llama_tps=statistics.median(theirs), llama_all=theirs,
                               ratio=statistics.median(ratios), ratio_min=min(ratios),
                               ratio_max=max(ratios))
                if test == "tg128":
                    floor_tps = bw[total][0] * 1e9 / wbytes
                    read_tps = bw[total][2] * 1e9 / wbytes
                    row.update(weight_MB=wbytes / 1e6, copy_GBps=bw[total][0],
                               read_GBps=bw[total][2], floor_tps=floor_tps,
                               of_floor=row["ropedist_tps"] / floor_tps,
                               of_read_floor=row["ropedist_tps"] / read_tps)
                rows.append(row)
                log(f"{name} {test} {ranks}x{threads}: ropedist {row['ropedist_tps']:.1f} tok/s"
                    + (f", llama.cpp {row['llama_tps']:.1f}, ratio {row['ratio']:.2f} "
                       f"[{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]" if ratios else ""))

    print(f"# ropedist cpu backend vs llama.cpp ({args.llama_bench or 'llama.cpp absent'}), "
          f"{args.pairs} paired runs per row, {time.strftime('%Y-%m-%d %H:%M')}")
    for t, (gbs, gf, rgbs) in sorted(bw.items()):
        print(f"# floors at {t} thread(s): copy {gbs:.1f} GB/s (read+write counted), read "
              f"{rgbs:.1f} GB/s, GEMM {gf:.0f} GFLOP/s (n=1024)")
    print("| model | test | ropedist ranks x threads | ropedist tok/s | llama.cpp tok/s "
          "(-t) | ratio median | ratio min-max | decode of copy / read floor | load avg | "
          "CPUs busy before |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |")
    for r in rows:
        llama = (f"{r['llama_tps']:.1f} ({r['ranks'] * r['threads']})" if "llama_tps" in r
                 else "-")
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        rng = f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}" if "ratio" in r else "-"
        floor = (f"{100 * r['of_floor']:.0f} % / {100 * r['of_read_floor']:.0f} %"
                 if "of_floor" in r else "-")
        print(f"| {r['model']} | {r['test']} | {r['ranks']} x {r['threads']} | "
              f"{r['ropedist_tps']:.1f} | {llama} | {ratio} | {rng} | {floor} | "
              f"{r['load_min']:.2f}-{r['load_max']:.2f} | "
              f"{100 * r['busy_min']:.0f}-{100 * r['busy_max']:.0f} % |")
    print("# decode of copy / read floor: measured tok/s / (copy or read GB/s / weight bytes per "
          "token); "
          "load avg: 1-minute, around the pairs; CPUs busy: the machine's busy share over the "
          "half second before each pair (other work)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"llama_bench": args.llama_bench, "pairs": args.pairs,
                       "floors": {str(k): {"copy_GBps": v[0], "gemm_GFLOPps": v[1], "read_GBps": v[2]}
                                  for k, v in bw.items()}, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
