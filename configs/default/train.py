#!/usr/bin/env python3
"""Trains ropedist's embedded default model: a small Llama on Jane Austen's six novels.

Everything comes from Debian and PyPI; nothing is downloaded from a model hub.

  corpus     Debian package r-cran-janeaustenr (the texts of Jane Austen's six completed
             novels as R data). The .deb is fetched with `apt-get download` and unpacked with
             `dpkg-deb -x`; R is not needed: the R lazy-load database is read by the small
             reader below (`read_r_lazyload`).
  tokenizer  byte-level BPE trained with `tokenizers`, saved as tokenizer.json with a
             TemplateProcessing post-processor that puts <s> (BOS) first.
  model      transformers.LlamaForCausalLM trained from scratch on the CPU.

Outputs:
  OUT (default /tmp/default_hf)   the Hugging Face folder: config.json, model.safetensors
                                   (fp32 values that are exact in bf16), tokenizer files
  HERE (this script's folder)     tokenizer.json, config.json (+ "ropedist" section),
                                   expected.json (transformers' greedy continuations), and,
                                   if --convert is given, model.h5 via ropedist-convert

Reproduce (about 25 minutes on 2 CPU threads):
  pip install torch transformers tokenizers safetensors
  python3 configs/default/train.py --convert build/ropedist-convert
"""
import argparse
import bz2
import gzip
import json
import lzma
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "r-cran-janeaustenr"
BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
         "persuasion"]

# ----------------------------------------------------------------------------- model shape
MODEL = dict(
    vocab_size=4096,
    hidden_size=192,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=512,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    hidden_act="silu",
    attention_bias=False,
    mlp_bias=False,
)
SPECIALS = ["<s>", "</s>"]  # ids 0 and 1
BOS_ID, EOS_ID = 0, 1

PROMPTS = ["It is a truth universally acknowledged, that",
           "Mr. Darcy looked at Elizabeth and said"]


# ----------------------------------------------------------------------------- corpus
class _RReader:
    """Just enough of R's XDR serialization (format 2 and 3) for character vectors, lists,
    pairlists, symbols and numbers: what a LazyData database of text holds."""

    def __init__(self, b):
        self.b, self.p, self.refs = b, 0, []

    def _i(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def _raw(self, n):
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def read(self):
        if self._raw(2) != b"X\n":
            raise ValueError("not an R XDR serialization")
        version = self._i()
        self._i(), self._i()
        if version == 3:
            self._raw(self._i())  # native encoding name
        return self._item()

    def _item(self):
        flags = self._i()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 253, 242, 251):  # NILVALUE, GLOBALENV, EMPTYENV, MISSINGARG
            return None
        if t == 255:  # REFSXP
            return self.refs[(flags >> 8) - 1]
        if t == 1:  # SYMSXP
            v = self._item()
            self.refs.append(v)
            return v
        if t == 2:  # LISTSXP (pairlist) -> dict
            out = {}
            while True:
                if has_attr:
                    self._item()
                tag = self._item() if has_tag else None
                out[tag] = self._item()
                flags = self._i()
                t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
                if t != 2:
                    self.p -= 4
                    self._item()
                    return out
        if t == 9:  # CHARSXP
            n = self._i()
            return None if n == -1 else self._raw(n).decode("utf-8")
        if t in (10, 13):  # LGLSXP, INTSXP
            n = self._i()
            v = list(struct.unpack(">%di" % n, self._raw(4 * n)))
        elif t == 14:  # REALSXP
            n = self._i()
            v = list(struct.unpack(">%dd" % n, self._raw(8 * n)))
        elif t in (16, 19, 20):  # STRSXP, VECSXP, EXPRSXP
            v = [self._item() for _ in range(self._i())]
        else:
            raise ValueError("unsupported R type %d" % t)
        if has_attr:
            return {"value": v, "attributes": self._item()}
        return v


def _value(o):
    return o["value"] if isinstance(o, dict) and "value" in o else o


def read_r_lazyload(base):
    """{name: object} from an R lazy-load database BASE.rdx / BASE.rdb."""
    index = _RReader(gzip.decompress(open(base + ".rdx", "rb").read())).read()
    variables = index["value"][0]
    names = variables["attributes"]["names"]
    db = open(base + ".rdb", "rb").read()
    out = {}
    for name, (off, length) in zip(names, variables["value"]):
        chunk = db[off:off + length]
        kind = chunk[4:5]
        if kind == b"2":
            raw = bz2.decompress(chunk[5:])
        elif kind == b"Z":
            raw = lzma.decompress(chunk[5:])
        elif kind == b"0":
            raw = chunk[5:]
        else:
            raw = zlib.decompress(chunk[4:])
        out[name] = _value(_RReader(raw).read())
    return out


def fetch_corpus(work):
    """Downloads and unpacks the Debian package; returns (version, {book: [lines]})."""
    os.makedirs(work, exist_ok=True)
    debs = [f for f in os.listdir(work) if f.startswith(PACKAGE + "_") and f.endswith(".deb")]
    if not debs:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=work, check=True)
        debs = [f for f in os.listdir(work) if f.startswith(PACKAGE + "_") and f.endswith(".deb")]
    deb = os.path.join(work, sorted(debs)[-1])
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    data = read_r_lazyload(os.path.join(root, "usr/lib/R/site-library/janeaustenr/data/Rdata"))
    return version, {b: data[b] for b in BOOKS}


def clean_book(lines):
    """Unwraps the Gutenberg line breaks into one line per paragraph, drops the italics
    underscores, and drops title, volume and chapter headings (lines with no lower case)."""
    paras, cur = [], []
    for line in list(lines) + [""]:
        line = (line or "").strip()
        if line:
            cur.append(line)
            continue
        if cur:
            p = " ".join(cur)
            cur = []
            p = p.replace("_", "")
            p = re.sub(r"\s+", " ", p).strip()
            if not re.search(r"[a-z]", p) or re.match(r"(?i)^chapter\b", p):
                continue
            paras.append(p)
    return paras


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(texts, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id("<s>") == BOS_ID and tok.token_to_id("</s>") == EOS_ID
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)])
    return tok


# ----------------------------------------------------------------------------- training
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/default_hf", help="Hugging Face output folder")
    ap.add_argument("--work", default="/tmp/default_corpus", help="download/unpack folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=24.0,
                    help="training time budget; the learning-rate schedule follows the "
                    "fraction of it used (ignored with --steps)")
    ap.add_argument("--steps", type=int, default=0,
                    help="train exactly this many steps, the schedule following steps instead")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--convert", metavar="ROPEDIST_CONVERT",
                    help="also write HERE/model.h5 (bf16) with this ropedist-convert binary")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t_start = time.time()

    # corpus
    version, books = fetch_corpus(args.work)
    paras = {b: clean_book(books[b]) for b in BOOKS}
    texts = ["\n".join(paras[b]) for b in BOOKS]
    n_chars = sum(len(t) for t in texts)
    print(f"corpus: {PACKAGE} {version}, {len(BOOKS)} novels, "
          f"{sum(len(p) for p in paras.values())} paragraphs, {n_chars} characters", flush=True)

    # tokenizer
    tok = train_tokenizer(texts, MODEL["vocab_size"])
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.out, "tokenizer.json"),
                                     bos_token="<s>", eos_token="</s>")
    hf_tok.save_pretrained(args.out)
    assert hf_tok("Emma")["input_ids"][0] == BOS_ID

    # token stream per book (no BOS: each training window gets its own BOS); the last 2% of
    # each book is held out for validation
    train_ids, val_ids = [], []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        cut = int(len(ids) * 0.98)
        train_ids.append(np.array(ids[:cut], dtype=np.int64))
        val_ids.append(np.array(ids[cut:], dtype=np.int64))
    n_train = sum(len(a) for a in train_ids)
    print(f"tokens: {n_train} train, {sum(len(a) for a in val_ids)} validation "
          f"({n_chars / (n_train / 0.98):.2f} chars/token)", flush=True)

    def batch(pool, n, rng):
        w = np.array([len(a) for a in pool], dtype=np.float64)
        out = np.empty((n, args.seq), dtype=np.int64)
        out[:, 0] = BOS_ID
        for r in range(n):
            a = pool[rng.choice(len(pool), p=w / w.sum())]
            s = rng.integers(0, len(a) - args.seq)
            out[r, 1:] = a[s:s + args.seq - 1]
        return torch.from_numpy(out)

    cfg = LlamaConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, **MODEL)
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    budget_s = args.minutes * 60.0

    def progress(step, elapsed):
        return step / args.steps if args.steps else elapsed / budget_s

    def lr_at(step, frac):
        if step < 30:  # linear warm-up over the first 30 steps
            return args.lr * (step + 1) / 30
        frac = min(1.0, frac)  # cosine decay to 10% of the peak
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    rng = np.random.default_rng(args.seed)
    val_rng = np.random.default_rng(args.seed + 1)
    val_batches = [batch(val_ids, 32, val_rng) for _ in range(4)]

    def evaluate():
        model.eval()
        with torch.no_grad():
            losses = [model(input_ids=x, labels=x).loss.item() for x in val_batches]
        model.train()
        return sum(losses) / len(losses)

    model.train()
    t_train = time.time()
    ema = None
    step = 0
    while True:
        elapsed = time.time() - t_train
        frac = progress(step, elapsed)
        if frac >= 1.0:
            break
        lr = lr_at(step, frac)
        for g in opt.param_groups:
            g["lr"] = lr
        x = batch(train_ids, args.batch, rng)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0:
            print(f"step {step:5d}  loss {loss.item():.3f}  ema {ema:.3f}  "
                  f"lr {lr:.2e}  {elapsed:6.0f}s", flush=True)
        if step % 500 == 499:
            print(f"  validation loss {evaluate():.3f}", flush=True)
        step += 1
    train_s = time.time() - t_train
    final_val = evaluate()
    print(f"trained {step} steps ({step * args.batch * args.seq} tokens) in {train_s:.0f}s; "
          f"final train loss (ema) {ema:.3f}, validation loss {final_val:.3f}", flush=True)

    # round every weight to bf16 so the bf16 checkpoint holds exactly these values
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    print(f"validation loss after bf16 rounding {evaluate():.3f}", flush=True)
    model.eval()
    model.generation_config.pad_token_id = EOS_ID
    model.save_pretrained(args.out, safe_serialization=True)

    # the files shipped next to the checkpoint
    shutil.copy(os.path.join(args.out, "tokenizer.json"), os.path.join(HERE, "tokenizer.json"))
    conf = json.load(open(os.path.join(args.out, "config.json")))
    # the checkpoint stores bf16, but the reference math (expected.json) is fp32: keep
    # "dtype": "float32" so the runtime computes rotary frequencies in fp32 as transformers did
    conf["dtype"] = "float32"
    conf["ropedist"] = {"checkpoint": "model.h5", "tokenizer": "tokenizer.json"}
    with open(os.path.join(HERE, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")

    # reference continuations from transformers
    expected = {"model": "configs/default", "note": "transformers greedy decoding (fp32 math "
                "on the bf16-exact weights); last_logits are the logits after the final "
                "generated token is fed back, i.e. at position len(prompt_ids)+31",
                "transformers": __import__("transformers").__version__,
                "torch": torch.__version__, "cases": []}
    for prompt in PROMPTS:
        ids = hf_tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=32, do_sample=False,
                                 pad_token_id=EOS_ID, eos_token_id=None)
            logits = model(gen).logits[0, -1]
            first = model(ids).logits[0, -1]
        new = gen[0, ids.shape[1]:].tolist()
        expected["cases"].append({
            "prompt": prompt,
            "prompt_ids": ids[0].tolist(),
            "new_ids": new,
            "new_text": hf_tok.decode(new),
            "first_logits": [round(v, 5) for v in first.tolist()],
            "last_logits": [round(v, 5) for v in logits.tolist()],
        })
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")

    # samples
    for prompt in PROMPTS + ["She", "The weather was"]:
        ids = hf_tok(prompt, return_tensors="pt")["input_ids"]
        torch.manual_seed(0)
        with torch.no_grad():
            g = model.generate(ids, max_new_tokens=60, do_sample=False, pad_token_id=EOS_ID)
            s = model.generate(ids, max_new_tokens=60, do_sample=True, temperature=0.8,
                               top_k=40, pad_token_id=EOS_ID)
        print(f"\n[greedy] {hf_tok.decode(g[0], skip_special_tokens=True)}")
        print(f"[t=0.8]  {hf_tok.decode(s[0], skip_special_tokens=True)}", flush=True)

    if args.convert:
        subprocess.run([args.convert, args.out, "-o", os.path.join(HERE, "model.h5"),
                        "--dtype", "bf16", "--force"], check=True)
    print(f"\ntotal {time.time() - t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
