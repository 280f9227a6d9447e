#!/usr/bin/env python3
"""Throughput and latency of `ropedist serve` under N concurrent clients (the shape of vLLM's
benchmark_serving, closed loop): prompts of random token ids and output lengths drawn from a
seeded distribution, every request streamed (ignore_eos, so each produces exactly its length),
and for each concurrency: requests/s, output tokens/s, time to first token and inter-token
latency (median, p99). The same prompts are then run one at a time offline (`ropedist --prompts
--batch 1`) for the baseline. Standard library only.

    python3 bench/bench_serve.py --np 1 --config configs/default/config.json -c 1,8,32
    python3 bench/bench_serve.py --url http://127.0.0.1:8000 -c 1,8,32 --no-offline
    python3 bench/bench_serve.py --np 1 --device cuda --config configs/llama-3-8b.json ...

With --config the server is started (mpirun -np NP build/ropedist serve ... --port 0) and ended
afterwards; extra server flags go after --server-args. -J FILE writes the table as JSON."""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def make_requests(n, seed, vocab, in_range, out_range):
    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        n_in = rng.randint(*in_range)
        reqs.append(([rng.randrange(2, vocab) for _ in range(n_in)], rng.randint(*out_range)))
    return reqs


def stream_one(url, model, ids, max_tokens, api_key):
    """Sends one streamed completion; returns (ttft_s, [inter-token s], tokens, total_s)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3600)
    body = json.dumps({"model": model, "prompt": ids, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, headers)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError("HTTP %d: %s" % (r.status, r.read()[:300]))
    times = []
    buf = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                continue
            d = json.loads(ev[6:])
            # a chunk per step's tokens (its text may be empty: a token without text yet)
            if d.get("choices") and d["choices"][0].get("finish_reason") is None:
                times.append(time.perf_counter())
    conn.close()
    end = time.perf_counter()
    if not times:
        return float("nan"), [], 0, end - t0
    return times[0] - t0, [b - a for a, b in zip(times, times[1:])], max_tokens, end - t0


def run_concurrency(url, model, reqs, conc, api_key):
    lock = threading.Lock()
    nxt = [0]
    res = []

    def worker():
        while True:
            with lock:
                if nxt[0] >= len(reqs):
                    return
                i = nxt[0]
                nxt[0] += 1
            res.append(stream_one(url, model, reqs[i][0], reqs[i][1], api_key))

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    ttft = [r[0] for r in res]
    itl = [x for r in res for x in r[1]]
    toks = sum(r[2] for r in res)
    return {"concurrency": conc, "requests": len(res), "wall_s": wall, "req_per_s": len(res) / wall,
            "out_tok_per_s": toks / wall, "ttft_ms_p50": 1e3 * statistics.median(ttft),
            "ttft_ms_p99": 1e3 * pct(ttft, 99), "itl_ms_p50": 1e3 * statistics.median(itl) if itl else float("nan"),
            "itl_ms_p99": 1e3 * pct(itl, 99)}


def mpirun_cmd(np_):
    mpirun = os.environ.get("RD_MPIRUN") or shutil.which("mpirun")
    cmd = [mpirun, "-np", str(np_), "--bind-to", "none", "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    return cmd


def offline(args, reqs):
    """The same prompts one at a time through `ropedist --prompts --batch 1`."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for ids, m in reqs:
            f.write(json.dumps({"prompt_ids": ids, "max_new_tokens": m}) + "\n")
    cmd = mpirun_cmd(args.np) + [args.bin, "--device", args.device, "--config", args.config, "--prompts", f.name,
                                 "--output", "json", "--batch", "1", "--temperature", "0", "--ignore-eos"]
    cmd += ["--max-seq-len", str(args.max_seq_len)] if args.max_seq_len else []
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    os.unlink(f.name)
    if out.returncode:
        sys.exit("offline run failed:\n" + out.stderr[-3000:])
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    gen = sum(len(r["output_ids"]) for r in rows)
    busy = sum(r["timing"]["prefill_ms"] + r["timing"]["decode_ms"] for r in rows) / 1e3
    ttft = [r["timing"]["prefill_ms"] for r in rows]
    itl = [r["timing"]["decode_ms"] / (len(r["output_ids"]) - 1) for r in rows if len(r["output_ids"]) > 1]
    return {"concurrency": "offline", "requests": len(rows), "wall_s": busy, "req_per_s": len(rows) / busy,
            "out_tok_per_s": gen / busy, "ttft_ms_p50": statistics.median(ttft), "ttft_ms_p99": pct(ttft, 99),
            "itl_ms_p50": statistics.median(itl), "itl_ms_p99": pct(itl, 99), "process_wall_s": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an already running server")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs/default/config.json"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/ropedist"))
    ap.add_argument("--np", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", help="model name (default: what /v1/models says)")
    ap.add_argument("--api-key", default=os.environ.get("RD_API_KEY"))
    ap.add_argument("-c", "--concurrency", default="1,8,32")
    ap.add_argument("-n", "--num-prompts", type=int, default=64)
    ap.add_argument("--input-len", default="16:128", help="uniform range of prompt lengths, MIN:MAX")
    ap.add_argument("--output-len", default="16:96", help="uniform range of output lengths, MIN:MAX")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seq-len", type=int, default=0)
    ap.add_argument("--no-offline", action="store_true", help="skip the one-at-a-time offline baseline")
    ap.add_argument("-J", "--json", help="write the results here")
    ap.add_argument("--server-args", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args()
    rng_in = tuple(map(int, args.input_len.split(":")))
    rng_out = tuple(map(int, args.output_len.split(":")))
    srv = None
    url = args.url
    if not url:
        cmd = mpirun_cmd(args.np) + [args.bin, "serve", "--device", args.device, "--config", args.config,
                                     "--port", "0", "--batch", str(max(64, max(map(int, args.concurrency.split(",")))))]
        cmd += ["--max-seq-len", str(args.max_seq_len)] if args.max_seq_len else []
        log = tempfile.NamedTemporaryFile(prefix="rd_bench_serve_", suffix=".log", delete=False)
        srv = subprocess.Popen(cmd + args.server_args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        while not url and time.time() - t0 < 600:
            m = re.search(r"serving \S+ on (http://[^/]+)/v1", open(log.name, errors="replace").read())
            if m:
                url = m.group(1)
            elif srv.poll() is not None:
                sys.exit("the server ended:\n" + open(log.name, errors="replace").read()[-3000:])
            time.sleep(0.2)
    try:
        u = urllib.parse.urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port)
        conn.request("GET", "/v1/models", headers={"Authorization": "Bearer %s" % args.api_key} if args.api_key else {})
        info = json.loads(conn.getresponse().read())["data"][0]
        model = args.model or info["id"]
        vocab = json.load(open(args.config)).get("vocab_size", 32000) if os.path.exists(args.config) else 32000
        reqs = make_requests(args.num_prompts, args.seed, vocab, rng_in, rng_out)
        stream_one(url, model, reqs[0][0], 4, args.api_key)  # warm-up
        rows = [run_concurrency(url, model, reqs, c, args.api_key) for c in map(int, args.concurrency.split(","))]
    finally:
        if srv:
            os.killpg(srv.pid, signal.SIGTERM)
            try:
                srv.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(srv.pid, signal.SIGKILL)
    if not args.no_offline and not args.url:
        rows.append(offline(args, reqs))
    print("# ropedist serve: %s, np %d, %s; %d prompts, input %s tokens, output %s tokens (seed %d)"
          % (model, args.np, args.device, args.num_prompts, args.input_len, args.output_len, args.seed))
    print("%-12s %8s %10s %12s %10s %10s %10s %10s" % ("concurrency", "req/s", "out_tok/s", "wall_s",
                                                        "ttft_p50", "ttft_p99", "itl_p50", "itl_p99"))
    print("%-12s %8s %10s %12s %10s %10s %10s %10s" % ("", "", "", "s", "ms", "ms", "ms", "ms"))
    for r in rows:
        print("%-12s %8.2f %10.1f %12.2f %10.1f %10.1f %10.2f %10.2f" % (
            r["concurrency"], r["req_per_s"], r["out_tok_per_s"], r["wall_s"], r["ttft_ms_p50"],
            r["ttft_ms_p99"], r["itl_ms_p50"], r["itl_ms_p99"]))
    if any(r["concurrency"] == "offline" for r in rows):
        print("# offline: the same prompts one at a time in one process (--batch 1); its wall_s is the sum of"
              " the requests' prefill + decode time (start-up excluded)")
    if args.json:
        json.dump({"model": model, "np": args.np, "device": args.device, "num_prompts": args.num_prompts,
                   "input_len": args.input_len, "output_len": args.output_len, "seed": args.seed, "rows": rows},
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
