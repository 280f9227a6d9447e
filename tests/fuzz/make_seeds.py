#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz harnesses into tests/fuzz/seeds/<harness>/.

Small, valid inputs of every kind each reader takes (the fuzzers mutate from them; the replay
tests run them): configs in both rope styles, a safetensors file of three dtypes, GGUF files
with a llama config and SentencePiece / byte-level tokenizers, tokenizer.json files of both
families (one with NUL bytes in its tokens), JSONL prompts. run.sh adds the larger files of
../shared and configs/ at run time.

    python3 tests/fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(harness, name, data):
    d = os.path.join(HERE, "seeds", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def configs():
    base = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 256, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
            "bos_token_id": 1, "eos_token_id": [2, 3], "tie_word_embeddings": True}
    put("config", "hub_llama3.json", json.dumps(dict(base, rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}, torch_dtype="bfloat16")))
    put("config", "params_yarn.json", json.dumps(dict(base, rope_parameters={
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
        "original_max_position_embeddings": 16, "beta_fast": 32, "beta_slow": 1},
        partial_rotary_factor=0.5, ropedist={"rope_style": "gptj", "dtype": "fp16"})))
    put("config", "longrope.json", json.dumps(dict(base, head_dim=8, rope_scaling={
        "type": "longrope", "short_factor": [1.0, 1.1, 1.2, 1.3],
        "long_factor": [2.0, 2.1, 2.2, 2.3], "original_max_position_embeddings": 16})))
    put("config", "dynamic.json", json.dumps(dict(base, rope_scaling={"type": "dynamic",
                                                                        "factor": 2.0})))


def safetensors():
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]},
              "c": {"dtype": "F16", "shape": [2, 2], "data_offsets": [32, 40]},
              "e": {"dtype": "F32", "shape": [0, 5], "data_offsets": [40, 40]}}
    h = json.dumps(header, separators=(",", ":")).encode()
    data = struct.pack("<6f", *range(6)) + bytes(range(16))
    put("safetensors", "three_dtypes.safetensors", struct.pack("<Q", len(h)) + h + data)


# ---- GGUF v3 ----
U32, I32, F32, BOOL, STR, ARR, U64 = 4, 5, 6, 7, 8, 9, 10


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == U32:
        return struct.pack("<I", v)
    if t == I32:
        return struct.pack("<i", v)
    if t == F32:
        return struct.pack("<f", v)
    if t == BOOL:
        return struct.pack("<B", v)
    if t == STR:
        return gstr(v)
    if t == U64:
        return struct.pack("<Q", v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)


def gguf(kvs, tensors):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    off = 0
    datas = []
    for name, ne, data in tensors:  # F32 tensors
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", 0, off)
        datas.append((off, data))
        off += (len(data) + 31) // 32 * 32
    out += b"\0" * ((-len(out)) % 32)
    body = bytearray(off)
    for o, d in datas:
        body[o:o + len(d)] = d
    return out + bytes(body)


def gguf_seeds():
    llama = [("general.architecture", STR, "llama"), ("llama.embedding_length", U32, 8),
             ("llama.feed_forward_length", U32, 16), ("llama.block_count", U32, 1),
             ("llama.attention.head_count", U32, 2), ("llama.attention.head_count_kv", U32, 1),
             ("llama.context_length", U32, 32), ("llama.rope.freq_base", F32, 10000.0),
             ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)]
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + \
        ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab", "\u2581b"]
    types = [2, 3, 3] + [6] * 256 + [1] * 7
    spm = [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
           ("tokenizer.ggml.scores", ARR, (F32, [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -5.0,
                                                               -6.0, -7.0])),
           ("tokenizer.ggml.token_type", ARR, (I32, types)),
           ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
           ("tokenizer.ggml.unknown_token_id", U32, 0)]
    n = len(pieces)
    emb = struct.pack("<%df" % (8 * n), *([0.5] * (8 * n)))
    put("gguf", "llama_spm.gguf", gguf(llama + spm, [("token_embd.weight", [8, n], emb)]))
    byte_syms = [chr(c) for c in range(ord("!"), ord("~") + 1)]
    toks = ["<|begin_of_text|>", "<|end_of_text|>"] + byte_syms + ["he", "ll", "hell", "hello"]
    bpe = [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "llama-bpe"),
           ("tokenizer.ggml.tokens", ARR, (STR, toks)),
           ("tokenizer.ggml.token_type", ARR, (I32, [3, 3] + [1] * (len(toks) - 2))),
           ("tokenizer.ggml.merges", ARR, (STR, ["h e", "l l", "he ll", "hell o"])),
           ("tokenizer.ggml.bos_token_id", U32, 0), ("tokenizer.ggml.eos_token_id", U32, 1),
           ("tokenizer.ggml.add_bos_token", BOOL, 1)]
    put("gguf", "gpt2_bpe_no_tensors.gguf", gguf(bpe, []))


def tokenizers():
    added = [{"id": 0, "content": "<|begin_of_text|>", "special": True},
             {"id": 1, "content": "<|end_of_text|>", "special": True}]
    syms = [chr(c) for c in range(ord("!"), ord("~") + 1)] + ["\u0120"]
    vocab = {a["content"]: a["id"] for a in added}
    for s in syms + ["\u0120t", "he", "\u0120the", "ll", "llo"]:
        vocab[s] = len(vocab)
    bl = {"added_tokens": added, "normalizer": None,
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)| ?\\p{L}+| ?\\p{N}{1,3}|\\s+"},
               "behavior": "Isolated", "invert": False},
              {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}},
                                        {"Sequence": {"id": "A"}}],
                             "special_tokens": {"<|begin_of_text|>": {"ids": [0]}}},
          "decoder": {"type": "ByteLevel"},
          "model": {"type": "BPE", "vocab": vocab, "ignore_merges": True,
                    "merges": [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"], ["l", "l"],
                               "ll o"]}}
    put("tokenizer", "bytelevel.json", json.dumps(bl, ensure_ascii=False))
    sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sp_vocab["<0x%02X>" % b] = len(sp_vocab)
    for s in ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab"]:
        sp_vocab[s] = len(sp_vocab)
    sp = {"added_tokens": [{"id": i, "content": c, "special": True}
                           for i, c in enumerate(["<unk>", "<s>", "</s>"])],
          "normalizer": {"type": "Sequence", "normalizers": [
              {"type": "Prepend", "prepend": "\u2581"},
              {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
          "pre_tokenizer": None,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
                             "special_tokens": {"<s>": {"ids": [1]}}},
          "decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
              {"type": "ByteFallback"}, {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                    "vocab": sp_vocab, "merges": ["a b", "\u2581 a", "\u2581a b"]}}
    put("tokenizer", "sentencepiece.json", json.dumps(sp, ensure_ascii=False))
    meta = {"model": {"type": "BPE", "vocab": {"a": 0, "\u2581": 1, "\u2581a": 2},
                      "merges": ["\u2581 a"]},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                              "prepend_scheme": "first", "split": True},
            "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"}}
    put("tokenizer", "metaspace.json", json.dumps(meta, ensure_ascii=False))
    put("tokenizer", "nul_tokens.json",
        '{"added_tokens": [{"id": 4, "content": "<x\\u0000>", "special": true}],'
        ' "model": {"type": "BPE", "unk_token": "\\u0000u", "vocab": {"a": 0, "\\u0000": 1,'
        ' "a\\u0000": 2, "\\u0000u": 3}, "merges": [["a", "\\u0000"]]}}')


def prompts():
    put("prompts", "mixed.jsonl",
        '{"prompt": "It is a truth universally acknowledged"}\n'
        '{"prompt_ids": [1, 2, 3]}\n\n'
        '  {"prompt": "Once\\u0000upon \\u00e9t\\u00e9 \\ud83c\\udf89"}\n'
        '{"prompt": ""}\n')


if __name__ == "__main__":
    configs()
    safetensors()
    gguf_seeds()
    tokenizers()
    prompts()
