#!/usr/bin/env python3
"""Plots bench_scaling -J outputs: speed-up per tp (with the ideal line) and ms per step, one
line per model/batch/ctx. Uses matplotlib when installed; otherwise draws the same two panels
with a small built-in PNG writer (lines and points, no text: the legend goes to stdout).

  python3 bench/plot_scaling.py scaling_8b.json scaling_70b.json -o scaling.png
"""
import argparse
import json
import struct
import zlib

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75)]


def series(paths):
    out = []
    for p in paths:
        doc = json.load(open(p))
        for t in doc.get("tables", []):
            groups = {}
            for r in t.get("rows", []):
                if r.get("step") is None:
                    continue
                key = (doc.get("model"), r["batch"], r["ctx"])
                groups.setdefault(key, []).append((r["tp"], r["step"], r.get("speedup")))
            for (model, b, c), pts in groups.items():
                pts.sort()
                out.append(("%s b%d ctx%d" % (model, b, c), pts))
    return out


def png(path, w, h, pixels):
    raw = b"".join(b"\x00" + bytes(pixels[y * w * 3:(y + 1) * w * 3]) for y in range(h))
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def fallback(ser, out):
    W, H, pad = 900, 400, 40
    px = bytearray([255] * W * H * 3)
    def put(x, y, c):
        if 0 <= x < W and 0 <= y < H:
            i = (y * W + x) * 3
            px[i:i + 3] = bytes(c)
    def line(x0, y0, x1, y1, c):
        n = int(max(abs(x1 - x0), abs(y1 - y0), 1))
        for i in range(n + 1):
            put(round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n), c)
    tps = sorted({p[0] for _, pts in ser for p in pts}) or [1]
    panels = [(0, "speedup"), (1, "ms")]
    for k, what in panels:
        x0, x1 = k * W // 2 + pad, (k + 1) * W // 2 - pad // 2
        y0, y1 = H - pad, pad // 2
        vals = [(p[2] if what == "speedup" else p[1]) for _, pts in ser for p in pts]
        vals = [v for v in vals if v is not None]
        top = max(vals + ([tps[-1] / tps[0]] if what == "speedup" else [])) * 1.1 if vals else 1
        line(x0, y0, x1, y0, (0, 0, 0))
        line(x0, y0, x0, y1, (0, 0, 0))
        def X(tp):
            return x0 + (x1 - x0) * (tps.index(tp) / max(len(tps) - 1, 1))
        def Y(v):
            return y0 - (y0 - y1) * v / top
        if what == "speedup":
            for a, b in zip(tps, tps[1:]):
                line(X(a), Y(a / tps[0]), X(b), Y(b / tps[0]), (150, 150, 150))
        for i, (_, pts) in enumerate(ser):
            c = COLORS[i % len(COLORS)]
            pp = [(X(p[0]), Y(p[2] if what == "speedup" else p[1])) for p in pts
                  if (p[2] if what == "speedup" else p[1]) is not None]
            for (a, b), (cx, cy) in zip(pp, pp[1:]):
                line(a, b, cx, cy, c)
            for x, y in pp:
                for dx in range(-3, 4):
                    for dy in range(-3, 4):
                        put(round(x) + dx, round(y) + dy, c)
    png(out, W, H, px)
    print("plot_scaling: matplotlib not found; wrote a plain plot (left: speed-up vs tp %s, grey ="
          " ideal; right: ms per step). Colours:" % tps)
    for i, (name, _) in enumerate(ser):
        print("  rgb%s  %s" % (COLORS[i % len(COLORS)], name))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("json", nargs="+", help="bench_scaling -J files")
    p.add_argument("-o", "--out", default="scaling.png")
    a = p.parse_args()
    ser = series(a.json)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fallback(ser, a.out)
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    tps = sorted({pt[0] for _, pts in ser for pt in pts})
    ax1.plot(tps, [t / tps[0] for t in tps], "k--", lw=1, label="ideal")
    for name, pts in ser:
        ax1.plot([q[0] for q in pts], [q[2] for q in pts], "o-", label=name)
        ax2.plot([q[0] for q in pts], [q[1] for q in pts], "o-", label=name)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(tps, [str(t) for t in tps])
        ax.set_xlabel("tensor-parallel ranks (projected: per-rank compute measured, "
                      "all-reduce modelled)", fontsize=7)
        ax.grid(alpha=0.3)
    ax1.set_ylabel("speed-up")
    ax2.set_ylabel("ms per decode step")
    ax2.set_yscale("log")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print("plot_scaling: wrote", a.out)


if __name__ == "__main__":
    main()
