#!/usr/bin/env python3
"""Writes a synthetic tokenizer.json the size and shape of Llama 3's (for timing loads).

Byte-level BPE with the Llama 3 pre-tokenizer (and ignore_merges, as Llama 3 has), 128,000 vocab
entries (the 256 byte symbols, then pieces of the words of a made-up syllable language), every
split of a token into two vocab tokens as a merge (as the tiktoken conversion lists them), up
to 280,000, and Llama 3's 256 special tokens as added tokens: about 9 MB pretty-printed, like
the real file. Deterministic for a seed.

    python3 bench/make_tokenizer_json.py OUT.json [--vocab 128000] [--merges 280000] [--seed 0]
"""
import argparse
import json
import random


def bytes_to_unicode():
    """GPT-2's printable stand-in for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
         " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=128000)
    ap.add_argument("--merges", type=int, default=280000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    alphabet = bytes_to_unicode()
    space = alphabet[ord(" ")]
    # a syllable language: words of 2-5 syllables, frequent syllables first; the vocab holds
    # the bytes, the syllables and the prefixes (and inner pieces) of words, with and without
    # the space marker, as a trained byte-level BPE holds word pieces
    cons = list("bcdfghjklmnprstvwz") + ["th", "ch", "sh", "st", "tr", "pl", "gr"]
    vows = list("aeiou") + ["ea", "ou", "ai"]
    sylls = [c + v for c in cons for v in vows] + \
        [c + v + k for c in cons[:10] for v in vows[:5] for k in "nrstl"]
    rng.shuffle(sylls)
    vocab = {}

    def add(t):
        if t not in vocab and len(vocab) < a.vocab:
            vocab[t] = len(vocab)

    for ch in alphabet:
        add(ch)
    for syl in sylls:
        add(syl)
        add(space + syl)
    while len(vocab) < a.vocab:
        n = rng.choice([2, 2, 3, 3, 4, 5])
        w = [sylls[int(len(sylls) * rng.random() ** 2)] for _ in range(n)]
        for k in range(2, n + 1):
            add(space + "".join(w[:k]))
            add("".join(w[:k]))
            if k > 2:
                add("".join(w[1:k]))
    # every split of a token into two vocab tokens is a merge (as the tiktoken conversion
    # lists them), ranked by the token it makes
    merges = []
    for t in vocab:
        for i in range(1, len(t)):
            if len(merges) < a.merges and t[:i] in vocab and t[i:] in vocab:
                merges.append((t[:i], t[i:]))
    tokens = list(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + \
        ["<|reserved_special_token_%d|>" % i for i in range(254)]
    added = [{"id": len(tokens) + i, "content": s, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, s in enumerate(specials)]
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": REGEX}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<|begin_of_text|>": {
                               "id": "<|begin_of_text|>", "ids": [len(tokens)],
                               "tokens": ["<|begin_of_text|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": ["%s %s" % m for m in merges]},
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
    print("%s: %d vocab, %d merges, %d added" % (a.out, len(vocab), len(merges), len(added)))


if __name__ == "__main__":
    main()
