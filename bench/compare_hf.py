#!/usr/bin/env python3
"""The peer: transformers' LlamaForCausalLM of the same shape, random bf16 weights, timed on
the same decode problems as bench_decode (batch sequences, each adding one token at position
ctx - 1 and attending to ctx cache entries), in two modes:

  eager     DynamicCache filled with ctx - 1 random entries per layer (cropped back after
            every step), SDPA attention, no compilation;
  compiled  StaticCache of ctx entries + torch.compile(mode="reduce-overhead", fullgraph=True),
            the setup transformers documents for fast decoding (CUDA graphs).

It prints ms/token per (batch, ctx, mode) in the bench tables' format, and with --ropedist
FILE.json (bench_decode -J) joins the two into ropedist/HF ratios. --sdpa times
torch.nn.functional.scaled_dot_product_attention on bench_attention's problems instead.

  python3 bench/compare_hf.py --model llama-3-8b --batch 1,8,64 --ctx 128,2048 \
      --ropedist decode.json -J hf.json
"""
import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_list(s):
    out = []
    for x in s.split(","):
        x = x.strip().lower()
        out.append(int(x[:-1]) * 1024 if x.endswith("k") else int(x))
    return out


def load_config(name):
    path = name if (os.sep in name or name.endswith(".json")) else \
        os.path.join(HERE, "..", "configs", name + ".json")
    with open(path) as f:
        d = json.load(f)
    d.pop("ropedist", None)
    return d


def table(title, cols, rows, notes=()):
    """cols: (name, unit, width, fmt); rows: lists of values (None prints '-')."""
    print("#\n# " + title)
    print("#" + "".join(" %*s" % (w, n) for n, _, w, _ in cols))
    print("#" + "".join(" %*s" % (w, u) for _, u, w, _ in cols))
    for r in rows:
        cells = []
        for (n, u, w, fmt), v in zip(cols, r):
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append(" %*s" % (w, "-"))
            elif isinstance(v, str):
                cells.append(" %*s" % (w, v))
            else:
                cells.append(" %*s" % (w, fmt % v))
        print(" " + "".join(cells))
    for n in notes:
        print("# " + n)
    sys.stdout.flush()


class Timer:
    def __init__(self, dev):
        import torch
        self.torch, self.cuda = torch, dev.type == "cuda"

    def time_ms(self, fn, warmup, iters):
        torch = self.torch
        for _ in range(warmup):
            fn()
        v = []
        for _ in range(iters):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                v.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                v.append((time.perf_counter() - t0) * 1e3)
        v.sort()
        n = len(v)
        return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]), v[0], v[-1]


def build_model(args, dev, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    d = load_config(args.model)
    if args.layers:
        d["num_hidden_layers"] = min(args.layers, d["num_hidden_layers"])
    cfg = LlamaConfig(**d)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(dev):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(prev)
    return model.eval(), cfg


def make_dynamic_cache(model, cfg, B, C, dev, dtype):
    import torch
    from transformers import DynamicCache
    try:
        cache = DynamicCache(config=cfg)
    except TypeError:
        cache = DynamicCache()
    hkv = cfg.num_key_value_heads
    dh = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    for layer in range(cfg.num_hidden_layers):
        k = torch.randn(B, hkv, C - 1, dh, device=dev, dtype=dtype) * 0.5
        v = torch.randn(B, hkv, C - 1, dh, device=dev, dtype=dtype) * 0.5
        cache.update(k, v, layer)
    return cache


def crop(cache, n):
    """back to n entries (newer transformers take only a negative count to remove)"""
    cur = cache.get_seq_length()
    if cur > n:
        try:
            cache.crop(n - cur)
        except ValueError:
            cache.crop(n)


def make_static_cache(model, cfg, B, C, dev, dtype):
    from transformers import StaticCache
    tries = [dict(config=cfg, max_batch_size=B, max_cache_len=C, device=dev, dtype=dtype),
             dict(config=cfg, max_cache_len=C),
             dict(config=cfg, batch_size=B, max_cache_len=C, device=dev, dtype=dtype)]
    last = None
    for kw in tries:
        try:
            return StaticCache(**kw)
        except TypeError as e:
            last = e
    raise last


def bench_decode(args, dev, dtype):
    import torch
    model, cfg = build_model(args, dev, dtype)
    timer = Timer(dev)
    rows, results = [], []
    t_start = time.time()
    for C in args.ctx:
        for B in args.batch:
            ids = torch.randint(0, cfg.vocab_size, (B, 1), device=dev)
            pos = torch.full((B, 1), C - 1, device=dev, dtype=torch.long)
            cpos = torch.tensor([C - 1], device=dev, dtype=torch.long)
            for mode in args.modes:
                rec = {"batch": B, "ctx": C, "mode": mode, "ms": None}
                if time.time() - t_start > args.budget_s:
                    rec["skipped"] = "budget"
                    results.append(rec)
                    rows.append([B, C, mode, None, None, None, None, "budget"])
                    continue
                try:
                    with torch.inference_mode():
                        if mode == "eager":
                            cache = make_dynamic_cache(model, cfg, B, C, dev, dtype)

                            def step():
                                model(input_ids=ids, position_ids=pos, cache_position=cpos,
                                      past_key_values=cache, use_cache=True, logits_to_keep=1)
                                crop(cache, C - 1)
                        else:
                            cache = make_static_cache(model, cfg, B, C, dev, dtype)
                            fwd = torch.compile(model.forward, mode="reduce-overhead",
                                                fullgraph=True)

                            def step():
                                fwd(input_ids=ids, position_ids=pos, cache_position=cpos,
                                    past_key_values=cache, use_cache=True, logits_to_keep=1)
                        t0 = time.time()
                        step()  # compile / first call, not timed
                        first = time.time() - t0
                        med, lo, hi = timer.time_ms(step, args.warmup, args.iters)
                    rec.update(ms=med, min=lo, max=hi, first_call_s=first)
                    rows.append([B, C, mode, med, lo, hi, B / med * 1e3, "%.1f" % first])
                except Exception as e:  # out of memory, an API this transformers lacks, ...
                    msg = type(e).__name__
                    rec["error"] = "%s: %s" % (msg, str(e)[:200])
                    rows.append([B, C, mode, None, None, None, None, msg[:12]])
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                results.append(rec)
                del cache
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
    cols = [("batch", "seqs", 6, "%d"), ("ctx", "tokens", 7, "%d"), ("mode", "", 9, "%s"),
            ("ms/step", "ms", 9, "%.3f"), ("min", "ms", 9, "%.3f"), ("max", "ms", 9, "%.3f"),
            ("tok/s", "tok/s", 10, "%.1f"), ("first", "s", 12, "%s")]
    table("transformers %s LlamaForCausalLM decode step (%s, %d layers, %s)" % (
        __import__("transformers").__version__, args.model, cfg.num_hidden_layers,
        str(dtype).replace("torch.", "")), cols, rows,
        ["median of %d steps after %d warm-up (CUDA events); first = first call incl. "
         "compilation" % (args.iters, args.warmup),
         "eager: DynamicCache of ctx-1 random entries, cropped after each step; compiled: "
         "StaticCache(ctx) + torch.compile(mode=reduce-overhead, fullgraph=True)"])
    return results, cfg


def bench_sdpa(args, dev, dtype):
    import torch
    import torch.nn.functional as F
    d = load_config(args.model)
    H, Hkv = d["num_attention_heads"], d["num_key_value_heads"]
    Dh = d.get("head_dim") or d["hidden_size"] // H
    timer = Timer(dev)
    es = torch.tensor([], dtype=dtype).element_size()
    rows, results = [], []
    for C in args.ctx:
        for B in args.batch:
            try:
                q = torch.randn(B, H, 1, Dh, device=dev, dtype=dtype)
                k = torch.randn(B, Hkv, C, Dh, device=dev, dtype=dtype)
                v = torch.randn(B, Hkv, C, Dh, device=dev, dtype=dtype)
                with torch.inference_mode():
                    med, lo, _ = timer.time_ms(
                        lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                        args.warmup, args.iters)
                nbytes = 2.0 * B * C * Hkv * Dh * es + 2.0 * B * H * Dh * es
                rows.append([B, C, H, Hkv, med * 1e3, lo * 1e3, nbytes / 1e6,
                             nbytes / (med * 1e-3) / 1e9])
                results.append({"batch": B, "ctx": C, "us": med * 1e3,
                                "GBps": nbytes / (med * 1e-3) / 1e9})
                del q, k, v
            except Exception as e:
                rows.append([B, C, H, Hkv, None, None, None, type(e).__name__[:8]])
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    cols = [("batch", "seqs", 6, "%d"), ("ctx", "tokens", 7, "%d"), ("H", "heads", 5, "%d"),
            ("Hkv", "heads", 5, "%d"), ("time", "us", 10, "%.1f"), ("min", "us", 10, "%.1f"),
            ("read", "MB", 9, "%.2f"), ("bw", "GB/s", 8, "%.1f")]
    table("torch %s scaled_dot_product_attention, decode (q len 1, GQA via enable_gqa)" %
          torch.__version__, cols, rows,
          ["median of %d calls after %d warm-up; no RoPE and no cache append (ours does both)" %
           (args.iters, args.warmup)])
    return results


def join(ropedist_json, hf_results):
    with open(ropedist_json) as f:
        doc = json.load(f)
    ours = {}
    for t in doc.get("tables", []):
        for r in t.get("rows", []):
            if r.get("batch") is not None and r.get("ms/step") is not None:
                ours[(int(r["batch"]), int(r["ctx"]))] = r["ms/step"]
    hf = {}
    for r in hf_results:
        if r.get("ms"):
            hf[(r["batch"], r["ctx"], r["mode"])] = r["ms"]
    keys = sorted(set(ours) | {(b, c) for b, c, _ in hf})
    rows, out = [], []
    for b, c in keys:
        o, e, k = ours.get((b, c)), hf.get((b, c, "eager")), hf.get((b, c, "compiled"))
        re = e / o if o and e else None
        rc = k / o if o and k else None
        rows.append([b, c, o, e, k, re, rc])
        out.append({"batch": b, "ctx": c, "ropedist_ms": o, "hf_eager_ms": e,
                    "hf_compiled_ms": k, "eager_over_ropedist": re,
                    "compiled_over_ropedist": rc})
    cols = [("batch", "seqs", 6, "%d"), ("ctx", "tokens", 7, "%d"), ("ropedist", "ms", 9, "%.3f"),
            ("hf_eager", "ms", 9, "%.3f"), ("hf_compiled", "ms", 11, "%.3f"),
            ("eager/rd", "x", 9, "%.2f"), ("compiled/rd", "x", 11, "%.2f")]
    table("ropedist vs transformers, ms per decode step (x > 1: ropedist is faster)", cols, rows,
          ["ropedist: %s (%s, %s)" % (ropedist_json, doc.get("device"), doc.get("dtype"))])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--model", default="llama-3-8b", help="configs/NAME.json or a path")
    p.add_argument("-l", "--layers", type=int, default=0, help="build only N layers")
    p.add_argument("-b", "--batch", type=parse_list, default=[1, 8, 64])
    p.add_argument("-c", "--ctx", type=parse_list, default=[128, 2048])
    p.add_argument("--modes", default="eager,compiled")
    p.add_argument("-w", "--warmup", type=int, default=3)
    p.add_argument("-n", "--iters", type=int, default=20)
    p.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "x") != ""
                   else "cpu")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--budget-s", type=float, default=480, help="skip rows past this time")
    p.add_argument("--sdpa", action="store_true", help="time SDPA decode attention instead")
    p.add_argument("--ropedist", help="bench_decode -J output to join with")
    p.add_argument("-J", "--json", help="write the results as JSON")
    args = p.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        args.device = "cpu"
    dev = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    print("# compare_hf  model %s  device %s  dtype %s  torch %s" % (
        args.model, torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", args.dtype,
        torch.__version__))
    doc = {"benchmark": "compare_hf", "model": args.model, "device": str(dev),
           "dtype": args.dtype, "torch": torch.__version__}
    if args.sdpa:
        doc["sdpa"] = bench_sdpa(args, dev, dtype)
    else:
        doc["decode"], _ = bench_decode(args, dev, dtype)
        if args.ropedist:
            doc["joined"] = join(args.ropedist, doc["decode"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
