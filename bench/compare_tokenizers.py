#!/usr/bin/env python3
"""Encode speed of Hugging Face `tokenizers` against ropedist's native tokenizer, same text,
same tokenizer.json, same unit of work (one line per call, one thread), in one run.

    python3 bench/compare_tokenizers.py --bench build/bench/bench_tokenize \
        --tokenizer ../shared/golden/tokenizers/bytelevel_bpe/tokenizer.json [--mb 8]

Also times `encode_batch` (the library's multi-threaded path) for reference, and counts the
lines whose ids differ between the two (#wrong). Needs `pip install tokenizers`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path to bench_tokenize")
    ap.add_argument("--tokenizer", required=True, action="append")
    ap.add_argument("--mb", type=float, default=8)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("-J", dest="json_out")
    a = ap.parse_args()
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("# tokenizers is not installed: pip install tokenizers")
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tpath in a.tokenizer:
            ids_path = os.path.join(tmp, "ids.txt")
            jpath = os.path.join(tmp, "rd.json")
            text_path = os.path.join(tmp, "text.txt")
            # ropedist first: it also builds the text when none is given; reuse it below
            subprocess.run([a.bench, "--tokenizer", tpath, "--mb", str(a.mb), "--iters",
                            str(a.iters), "-J", jpath, "--ids", ids_path], check=True,
                           stdout=subprocess.DEVNULL)
            rd = json.load(open(jpath))
            # rebuild the same text as the C program does (licence files repeated)
            files = ["GPL-3", "LGPL-3", "Apache-2.0", "MPL-2.0", "Artistic", "GFDL-1.3", "BSD",
                     "CC0-1.0"]
            blobs = []
            for f in files:
                try:
                    blobs.append(open("/usr/share/common-licenses/" + f, "rb").read())
                except OSError:
                    pass
            text, cap = b"", int(a.mb * 1e6) + (1 << 20)
            while len(text) < a.mb * 1e6:
                added = 0
                for b in blobs:
                    if len(text) + len(b) + 1 >= cap:
                        break
                    text += b
                    added += len(b)
                if not added:
                    break
            assert len(text) == rd["bytes"], (len(text), rd["bytes"])
            lines = text.decode("utf-8").split("\n")
            if lines and lines[-1] == "":  # the C program stops at the final newline
                lines.pop()
            tok = Tokenizer.from_file(tpath)
            best = 1e30
            for _ in range(a.iters):
                t0 = time.perf_counter()
                out = [tok.encode(l, add_special_tokens=False).ids for l in lines]
                best = min(best, time.perf_counter() - t0)
            t0 = time.perf_counter()
            tok.encode_batch(lines, add_special_tokens=False)
            batch_s = time.perf_counter() - t0
            ours = [list(map(int, l.split())) for l in open(ids_path).read().split("\n")[:-1]]
            wrong = sum(1 for x, y in zip(out, ours) if x != y) + abs(len(out) - len(ours))
            rows.append(dict(tokenizer=os.path.basename(os.path.dirname(tpath)) or tpath,
                             mb=len(text) / 1e6, lines=len(lines),
                             ropedist_mbs=rd["mb_per_s"], hf_mbs=len(text) / 1e6 / best,
                             hf_batch_mbs=len(text) / 1e6 / batch_s, wrong=wrong))
    print("%-18s %8s %8s %12s %12s %14s %7s %7s" % ("tokenizer", "text", "lines", "ropedist",
          "tokenizers", "encode_batch", "ratio", "#wrong"))
    print("%-18s %8s %8s %12s %12s %14s %7s %7s" % ("", "MB", "", "MB/s", "MB/s", "MB/s", "rd/hf", ""))
    for r in rows:
        print("%-18s %8.2f %8d %12.2f %12.2f %14.2f %7.2f %7d" % (
            r["tokenizer"], r["mb"], r["lines"], r["ropedist_mbs"], r["hf_mbs"],
            r["hf_batch_mbs"], r["ropedist_mbs"] / r["hf_mbs"], r["wrong"]))
    print("# one thread, one line per call for both; encode_batch uses the library's threads")
    if a.json_out:
        json.dump(rows, open(a.json_out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
