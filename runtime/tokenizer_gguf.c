/* Building a tokenizer from raw vocabulary arrays, as a GGUF file stores them under
 * tokenizer.ggml.* (and as rd_tokenizer_load_gguf reads them).
 *
 * "llama" is SentencePiece BPE by score: pieces with "▁" for spaces, scores, token types
 * (control and unknown pieces become special added tokens, user-defined pieces plain added
 * tokens), <0xNN> byte pieces for what the vocabulary lacks; decoding is Hugging Face's Llama 2
 * decoder (▁ -> space, byte fallback, one leading space stripped). "gpt2" is byte-level BPE with
 * merges by rank and the pre-tokenizer regex named by tokenizer.ggml.pre. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "runtime/gguf.h"
#include "runtime/tokenizer_impl.h"

static char *dup(const char *s)
{
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

static rd_status add_added(struct rd_tokenizer *t, int32_t id, const char *s, size_t n,
                           bool special)
{
    struct added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return RD_ERR_OOM;
    t->added = a;
    a = &t->added[t->n_added];
    memset(a, 0, sizeof *a);
    a->content = malloc(n + 1);
    if (!a->content) return RD_ERR_OOM;
    memcpy(a->content, s, n);
    a->content[n] = 0;
    a->len = n;
    a->id = id;
    a->special = special;
    t->n_added++;
    return RD_OK;
}

static rd_status setup_gpt2(struct rd_tokenizer *t, const struct rd_tokenizer_vocab *v, char *err,
                            int err_len)
{
    t->model = MODEL_BPE_RANK;
    struct bytebuf both = {0};
    for (int r = 0; r < v->n_merges; r++) {
        const char *m = v->merges[r];
        size_t ml = !m ? 0 : v->merge_lens ? v->merge_lens[r] : strlen(m);
        const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL;
        if (!sp) {
            free(both.p);
            tok_err(err, err_len, "tokenizer: merge %d is not \"left right\"", r);
            return RD_ERR_FORMAT;
        }
        size_t la = (size_t)(sp - m), lb = ml - la - 1;
        both.n = 0;
        rd_status st = bb_put(&both, m, la);
        if (st == RD_OK) st = bb_put(&both, sp + 1, lb);
        int32_t ia = strmap_get(&t->vocab, m, la), ib = strmap_get(&t->vocab, sp + 1, lb);
        int32_t in = st == RD_OK ? strmap_get(&t->vocab, both.p, both.n) : -1;
        if (st == RD_OK && (ia < 0 || ib < 0 || in < 0)) {
            tok_err(err, err_len, "tokenizer: merge %d (%.*s) uses a token not in the vocab", r,
                    (int)ml, m);
            st = RD_ERR_FORMAT;
        }
        if (st == RD_OK) st = pairmap_put(&t->merges, ia, ib, r, in);
        if (st != RD_OK) {
            free(both.p);
            return st;
        }
    }
    free(both.p);
    const char *pre = v->pre ? v->pre : "gpt2";
    const char *regex = tok_regex_gpt2;
    if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-v3") == 0) {
        regex = tok_regex_llama3;
        t->ignore_merges = true;
    } else if (strcmp(pre, "gpt2") != 0 && strcmp(pre, "default") != 0) {
        RD_LOG_WARN("tokenizer: pre-tokenizer \"%s\" is not known; using GPT-2's regex", pre);
    }
    t->pre = calloc(2, sizeof *t->pre);
    if (!t->pre) return RD_ERR_OOM;
    t->n_pre = 2;
    t->pre[0].kind = PRE_SPLIT;
    t->pre[0].behavior = SPLIT_ISOLATED;
    t->pre[0].re = tok_compile_regex(regex, err, err_len);
    if (!t->pre[0].re) return RD_ERR_FORMAT;
    t->pre[1].kind = PRE_BYTELEVEL;
    t->dec = DEC_BYTELEVEL;
    return RD_OK;
}

rd_status rd_tokenizer_from_vocab(const struct rd_tokenizer_vocab *v, struct rd_tokenizer **out,
                                  char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!v || !out || !v->model || v->n_tokens <= 0 || !v->tokens) return RD_ERR_INVALID_ARG;
    *out = NULL;
    bool spm = strcmp(v->model, "llama") == 0;
    if (!spm && strcmp(v->model, "gpt2") != 0) {
        tok_err(err, err_len, "tokenizer: model \"%s\" is not supported (llama or gpt2)", v->model);
        return RD_ERR_UNSUPPORTED;
    }
    if (spm && !v->scores) {
        tok_err(err, err_len, "tokenizer: a llama (SentencePiece) vocabulary needs scores");
        return RD_ERR_FORMAT;
    }
    struct rd_tokenizer *t = tok_alloc();
    if (!t) return RD_ERR_OOM;
    rd_status st = RD_OK;
    for (int i = 0; i < v->n_tokens && st == RD_OK; i++) {
        const char *s = v->tokens[i] ? v->tokens[i] : "";
        size_t n = !v->tokens[i] ? 0 : v->token_lens ? v->token_lens[i] : strlen(s);
        st = tok_set_piece(t, i, s, n);
        if (st == RD_OK) st = strmap_put(&t->vocab, s, (uint32_t)n, i);
        int32_t type = v->types ? v->types[i] : RD_TOKEN_TYPE_NORMAL;
        if (st == RD_OK && n > 0 && (type == RD_TOKEN_TYPE_CONTROL || type == RD_TOKEN_TYPE_UNKNOWN))
            st = add_added(t, i, s, n, true);
        else if (st == RD_OK && n > 0 && type == RD_TOKEN_TYPE_USER_DEFINED)
            st = add_added(t, i, s, n, false);
    }
    if (st != RD_OK) goto fail;
    if (spm) {
        t->model = MODEL_SPM_SCORE;
        t->score = malloc((size_t)v->n_tokens * sizeof *t->score);
        if (!t->score) {
            st = RD_ERR_OOM;
            goto fail;
        }
        memcpy(t->score, v->scores, (size_t)v->n_tokens * sizeof *t->score);
        t->spm_prefix_space = v->add_space_prefix;
        t->dec = DEC_PIECES;
        t->dec_byte_fallback = true;
        t->dec_from = calloc(1, sizeof(char *));
        t->dec_to = calloc(1, sizeof(char *));
        if (!t->dec_from || !t->dec_to) {
            st = RD_ERR_OOM;
            goto fail;
        }
        t->n_dec_replace = 1;
        t->dec_from[0] = dup("\xE2\x96\x81");
        t->dec_to[0] = dup(" ");
        if (v->add_space_prefix) {
            t->dec_strip_content = dup(" ");
            t->dec_strip_start = 1;
        }
    } else {
        st = setup_gpt2(t, v, err, err_len);
        if (st != RD_OK) goto fail;
    }
    t->unk_id = (v->unk_id >= 0 && v->unk_id < v->n_tokens) ? v->unk_id : -1;
    t->bos_id = (v->bos_id >= 0 && v->bos_id < v->n_tokens) ? v->bos_id : -1;
    t->eos_id = (v->eos_id >= 0 && v->eos_id < v->n_tokens) ? v->eos_id : -1;
    if (v->add_bos && t->bos_id >= 0) {
        t->post_pre = malloc(sizeof(int32_t));
        if (!t->post_pre) { st = RD_ERR_OOM; goto fail; }
        t->post_pre[0] = t->bos_id;
        t->n_post_pre = 1;
    }
    if (v->add_eos && t->eos_id >= 0) {
        t->post_post = malloc(sizeof(int32_t));
        if (!t->post_post) { st = RD_ERR_OOM; goto fail; }
        t->post_post[0] = t->eos_id;
        t->n_post_post = 1;
    }
    st = tok_finish(t, err, err_len);
    if (st != RD_OK) goto fail;
    *out = t;
    return RD_OK;
fail:
    if (st == RD_ERR_OOM) tok_err(err, err_len, "tokenizer: out of memory");
    rd_tokenizer_free(t);
    return st;
}

static int32_t get_id(const struct rd_gguf *g, const char *key, int32_t def)
{
    int64_t v;
    if (rd_gguf_get_int(g, key, &v) != RD_OK || v < -1 || v > INT32_MAX) return def;
    return (int32_t)v;
}

static bool get_flag(const struct rd_gguf *g, const char *key, bool def)
{
    bool b;
    return rd_gguf_get_bool(g, key, &b) == RD_OK ? b : def;
}

rd_status rd_tokenizer_load_gguf(const struct rd_gguf *g, struct rd_tokenizer **out, char *err,
                                 int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!g || !out) return RD_ERR_INVALID_ARG;
    *out = NULL;
    struct rd_tokenizer_vocab v = {0};
    enum rd_gguf_type at;
    uint64_t n, nm;
    const void *toks, *data;
    if (rd_gguf_get_str(g, "tokenizer.ggml.model", &v.model, NULL) != RD_OK) {
        tok_err(err, err_len, "gguf: no tokenizer.ggml.model (the file has no tokenizer)");
        return RD_ERR_FORMAT;
    }
    if (rd_gguf_get_arr(g, "tokenizer.ggml.tokens", &at, &n, &toks) != RD_OK ||
        at != RD_GGUF_TYPE_STRING || n == 0 || n > INT32_MAX) {
        tok_err(err, err_len, "gguf: tokenizer.ggml.tokens missing or not an array of strings");
        return RD_ERR_FORMAT;
    }
    v.n_tokens = (int)n;
    if (rd_gguf_get_str(g, "tokenizer.ggml.pre", &v.pre, NULL) != RD_OK) v.pre = NULL;
    if (rd_gguf_get_arr(g, "tokenizer.ggml.scores", &at, &nm, &data) == RD_OK) {
        if (at != RD_GGUF_TYPE_FLOAT32 || nm != n) {
            tok_err(err, err_len, "gguf: tokenizer.ggml.scores must be float32[%llu]", (unsigned long long)n);
            return RD_ERR_FORMAT;
        }
        v.scores = data;
    }
    if (rd_gguf_get_arr(g, "tokenizer.ggml.token_type", &at, &nm, &data) == RD_OK) {
        if (at != RD_GGUF_TYPE_INT32 || nm != n) {
            tok_err(err, err_len, "gguf: tokenizer.ggml.token_type must be int32[%llu]", (unsigned long long)n);
            return RD_ERR_FORMAT;
        }
        v.types = data;
    }
    /* GGUF strings carry their length: pieces keep their exact bytes, NUL bytes included */
    const char **tokens = malloc((size_t)n * sizeof *tokens);
    size_t *lens = malloc((size_t)n * sizeof *lens), *merge_lens = NULL;
    const char **merges = NULL;
    if (!tokens || !lens) {
        free(tokens);
        free(lens);
        return RD_ERR_OOM;
    }
    const struct rd_gguf_str *ts = toks;
    for (uint64_t i = 0; i < n; i++) tokens[i] = ts[i].data, lens[i] = (size_t)ts[i].len;
    v.tokens = tokens;
    v.token_lens = lens;
    if (rd_gguf_get_arr(g, "tokenizer.ggml.merges", &at, &nm, &data) == RD_OK) {
        if (at != RD_GGUF_TYPE_STRING || nm > INT32_MAX) {
            free(tokens);
            free(lens);
            tok_err(err, err_len, "gguf: tokenizer.ggml.merges must be an array of strings");
            return RD_ERR_FORMAT;
        }
        merges = malloc((nm ? (size_t)nm : 1) * sizeof *merges);
        merge_lens = malloc((nm ? (size_t)nm : 1) * sizeof *merge_lens);
        if (!merges || !merge_lens) {
            free(tokens);
            free(lens);
            free(merges);
            free(merge_lens);
            return RD_ERR_OOM;
        }
        const struct rd_gguf_str *ms = data;
        for (uint64_t i = 0; i < nm; i++) merges[i] = ms[i].data, merge_lens[i] = (size_t)ms[i].len;
        v.merges = merges;
        v.merge_lens = merge_lens;
        v.n_merges = (int)nm;
    }
    bool spm = strcmp(v.model, "llama") == 0;
    v.bos_id = get_id(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1);
    v.eos_id = get_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1);
    v.unk_id = get_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    v.pad_id = get_id(g, "tokenizer.ggml.padding_token_id", -1);
    v.add_bos = get_flag(g, "tokenizer.ggml.add_bos_token", spm);
    v.add_eos = get_flag(g, "tokenizer.ggml.add_eos_token", false);
    v.add_space_prefix = get_flag(g, "tokenizer.ggml.add_space_prefix", spm);
    rd_status st = rd_tokenizer_from_vocab(&v, out, err, err_len);
    free(tokens);
    free(lens);
    free(merges);
    free(merge_lens);
    return st;
}
