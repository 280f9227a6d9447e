/* Loading a Hugging Face tokenizer.json: the BPE model (vocab, merges, byte_fallback, unk,
 * ignore_merges), added tokens, normalizer, pre-tokenizer, post-processor and decoder. What
 * ropedist does not implement (another model type, NFC normalizers, WordPiece decoders, ...) is
 * refused at load time with RD_ERR_UNSUPPORTED naming the component, rather than encoding
 * differently from Hugging Face later.
 *
 * Tokens keep their exact bytes: vocab keys, merges, added tokens and unk_token are read with
 * their lengths, so a token holding a NUL byte ("\u0000") is a token like any other (vocab keys
 * too, which jansson cannot hold with a NUL byte: see tokenizer_json_keys.c). The other strings
 * (types, patterns, replacements) are used as C strings: one holding a NUL byte is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "runtime/tokenizer_impl.h"

struct ctx {
    struct rd_tokenizer *t;
    char *err;
    int err_len;
    bool nul_keys;       /* keys had "\u0000" rewritten (tok_json_mark_nul_keys) */
    const char *nul_str; /* the first non-token string found holding a NUL byte */
};

#define FAIL(c, st, ...)                                                                       \
    do {                                                                                       \
        tok_err((c)->err, (c)->err_len, "tokenizer.json: " __VA_ARGS__);                      \
        return (st);                                                                           \
    } while (0)

/* A string member used as a C string; one with a NUL byte counts as absent and is reported
 * when loading ends (rd_tokenizer_load_json checks c->nul_str whatever else happened). */
static const char *jstr(struct ctx *c, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) return NULL;
    if (rd_json_has_nul(v)) {
        if (!c->nul_str) c->nul_str = key;
        return NULL;
    }
    return json_string_value(v);
}

static bool jbool(const json_t *o, const char *key, bool def)
{
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* An id: a non-negative integer below RD_TOK_MAX_ID. */
static bool jid(const json_t *v, int32_t *out)
{
    int64_t x;
    if (!rd_json_int(v, 0, RD_TOK_MAX_ID - 1, &x)) return false;
    *out = (int32_t)x;
    return true;
}

static char *dup(const char *s)
{
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

/* {"String": s} or {"Regex": r} */
static rd_status pattern_of(struct ctx *c, const json_t *o, const char **str, const char **regex)
{
    const json_t *pat = json_object_get(o, "pattern");
    *str = jstr(c, pat, "String");
    *regex = jstr(c, pat, "Regex");
    if (!*str && !*regex) FAIL(c, RD_ERR_FORMAT, "pattern must be {\"String\"} or {\"Regex\"}");
    return RD_OK;
}

/* ---------------------------------------------------------------- model */

/* One merge: "left right" (split at the first space after the first byte) or ["left", "right"]. */
static rd_status merge_parts(struct ctx *c, const json_t *e, int32_t rank, const char **a,
                             size_t *la, const char **b, size_t *lb)
{
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        size_t n = json_string_length(e);
        const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp) FAIL(c, RD_ERR_FORMAT, "merge %d (\"%s\") is not \"left right\"", rank, s);
        *a = s, *la = (size_t)(sp - s);
        *b = sp + 1, *lb = n - *la - 1;
        return RD_OK;
    }
    const json_t *l = json_array_get(e, 0), *r = json_array_get(e, 1);
    if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(l) || !json_is_string(r))
        FAIL(c, RD_ERR_FORMAT, "merge %d is neither a string nor a pair of strings", rank);
    *a = json_string_value(l), *la = json_string_length(l);
    *b = json_string_value(r), *lb = json_string_length(r);
    return RD_OK;
}

static rd_status load_merges(struct ctx *c, const json_t *merges)
{
    struct rd_tokenizer *t = c->t;
    struct bytebuf both = {0};
    rd_status st = RD_OK;
    size_t i;
    const json_t *e;
    json_array_foreach(merges, i, e)
    {
        const char *a, *b;
        size_t la, lb;
        int32_t rank = (int32_t)i;
        if (i >= RD_TOK_MAX_ID) {
            tok_err(c->err, c->err_len, "tokenizer.json: more than %d merges", RD_TOK_MAX_ID);
            st = RD_ERR_FORMAT;
        }
        if (st == RD_OK) st = merge_parts(c, e, rank, &a, &la, &b, &lb);
        both.n = 0;
        if (st == RD_OK) st = bb_put(&both, a, la);
        if (st == RD_OK) st = bb_put(&both, b, lb);
        if (st != RD_OK) break;
        int32_t ia = strmap_get(&t->vocab, a, la), ib = strmap_get(&t->vocab, b, lb);
        int32_t in = strmap_get(&t->vocab, both.p, both.n);
        if (ia < 0 || ib < 0 || in < 0) {
            tok_err(c->err, c->err_len, "tokenizer.json: merge %d (%.*s %.*s) uses a token not in "
                    "the vocab", rank, (int)la, a, (int)lb, b);
            st = RD_ERR_FORMAT;
            break;
        }
        if ((st = pairmap_put(&t->merges, ia, ib, rank, in)) != RD_OK) break;
    }
    free(both.p);
    return st;
}

static rd_status load_model(struct ctx *c, const json_t *m)
{
    struct rd_tokenizer *t = c->t;
    const char *type = jstr(c, m, "type");
    if (type && strcmp(type, "BPE") != 0) FAIL(c, RD_ERR_UNSUPPORTED, "model type %s is not supported (BPE only)", type);
    const json_t *vocab = json_object_get(m, "vocab");
    const json_t *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges)) FAIL(c, RD_ERR_FORMAT, "model needs vocab and merges");
    if (jstr(c, m, "continuing_subword_prefix") || jstr(c, m, "end_of_word_suffix"))
        FAIL(c, RD_ERR_UNSUPPORTED, "BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    struct bytebuf kb = {0};
    const char *key;
    const json_t *e;
    rd_status st = RD_OK;
    size_t n;
    json_object_keylen_foreach((json_t *)vocab, key, n, e)
    {
        int32_t id;
        const char *k = c->nul_keys ? tok_json_real_key(key, &n, &kb) : key;
        if (!k) {
            st = RD_ERR_OOM;
            break;
        }
        if (!jid(e, &id)) {
            tok_err(c->err, c->err_len, "tokenizer.json: vocab id of %s is not a valid id (an "
                    "integer 0..%d)", key, RD_TOK_MAX_ID - 1);
            st = RD_ERR_FORMAT;
            break;
        }
        if ((st = tok_set_piece(t, id, k, n)) != RD_OK) break;
        if ((st = strmap_put(&t->vocab, k, (uint32_t)n, id)) != RD_OK) break;
    }
    free(kb.p);
    RD_TRY(st);
    RD_TRY(load_merges(c, merges));
    t->byte_fallback = jbool(m, "byte_fallback", false);
    t->fuse_unk = jbool(m, "fuse_unk", false);
    t->ignore_merges = jbool(m, "ignore_merges", false);
    const json_t *unk = json_object_get(m, "unk_token");
    if (json_is_string(unk)) {
        t->unk_id = strmap_get(&t->vocab, json_string_value(unk), json_string_length(unk));
        if (t->unk_id < 0) FAIL(c, RD_ERR_FORMAT, "unk_token %s is not in the vocab", json_string_value(unk));
    }
    return RD_OK;
}

static rd_status load_added(struct ctx *c, const json_t *arr)
{
    struct rd_tokenizer *t = c->t;
    if (!arr || json_is_null(arr)) return RD_OK;
    if (!json_is_array(arr)) FAIL(c, RD_ERR_FORMAT, "added_tokens must be an array");
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return RD_ERR_OOM;
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        const json_t *content = json_object_get(e, "content");
        int32_t id;
        if (!jid(json_object_get(e, "id"), &id) || !json_is_string(content))
            FAIL(c, RD_ERR_FORMAT, "added token %zu without an id (0..%d) or content", i,
                 RD_TOK_MAX_ID - 1);
        struct added_token *a = &t->added[t->n_added];
        a->len = json_string_length(content);
        a->content = malloc(a->len + 1);
        if (!a->content) return RD_ERR_OOM;
        memcpy(a->content, json_string_value(content), a->len + 1);
        t->n_added++;
        a->id = id;
        a->special = jbool(e, "special", false);
        a->lstrip = jbool(e, "lstrip", false);
        a->rstrip = jbool(e, "rstrip", false);
        a->single_word = jbool(e, "single_word", false);
        a->normalized = jbool(e, "normalized", !a->special);
        RD_TRY(tok_set_piece(t, a->id, a->content, a->len));
    }
    return RD_OK;
}

/* ---------------------------------------------------------------- normalizer, pre-tokenizer */

static rd_status add_norm(struct ctx *c, enum norm_kind k, const char *a, const char *b)
{
    struct rd_tokenizer *t = c->t;
    struct normalizer *z = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *z);
    if (!z) return RD_ERR_OOM;
    t->norm = z;
    z = &t->norm[t->n_norm++];
    z->kind = k;
    z->a = dup(a);
    z->b = b ? dup(b) : NULL;
    if (!z->a || (b && !z->b)) return RD_ERR_OOM;
    return RD_OK;
}

static rd_status load_normalizer(struct ctx *c, const json_t *o)
{
    if (!o || json_is_null(o)) return RD_OK;
    const char *type = jstr(c, o, "type");
    if (!type) FAIL(c, RD_ERR_FORMAT, "normalizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        size_t i_;
        const json_t *e;
        json_array_foreach(json_object_get(o, "normalizers"), i_, e) RD_TRY(load_normalizer(c, e));
        return RD_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(c, o, "prepend");
        if (!p) FAIL(c, RD_ERR_FORMAT, "Prepend normalizer without prepend");
        return add_norm(c, NORM_PREPEND, p, NULL);
    }
    if (strcmp(type, "Replace") == 0) {
        const char *s, *r, *content = jstr(c, o, "content");
        RD_TRY(pattern_of(c, o, &s, &r));
        if (!s) FAIL(c, RD_ERR_UNSUPPORTED, "Replace normalizer with a Regex pattern is not supported");
        if (!content) FAIL(c, RD_ERR_FORMAT, "Replace normalizer without content");
        return add_norm(c, NORM_REPLACE, s, content);
    }
    FAIL(c, RD_ERR_UNSUPPORTED, "normalizer %s is not supported", type);
}

static rd_status add_pre(struct ctx *c, struct pretok **out)
{
    struct rd_tokenizer *t = c->t;
    struct pretok *p = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *p);
    if (!p) return RD_ERR_OOM;
    t->pre = p;
    *out = &t->pre[t->n_pre++];
    memset(*out, 0, sizeof **out);
    return RD_OK;
}

static rd_status compile_into(struct ctx *c, struct pretok *p, const char *regex)
{
    p->re = tok_compile_regex(regex, c->err, c->err_len);
    return p->re ? RD_OK : RD_ERR_FORMAT;
}

static rd_status load_metaspace(struct ctx *c, const json_t *o, const char **rep,
                                enum prepend_scheme *scheme)
{
    *rep = jstr(c, o, "replacement");
    if (!*rep) *rep = "\xE2\x96\x81";
    const char *ps = jstr(c, o, "prepend_scheme");
    if (ps) {
        if (strcmp(ps, "always") == 0) *scheme = PREPEND_ALWAYS;
        else if (strcmp(ps, "first") == 0) *scheme = PREPEND_FIRST;
        else if (strcmp(ps, "never") == 0) *scheme = PREPEND_NEVER;
        else FAIL(c, RD_ERR_FORMAT, "Metaspace prepend_scheme %s", ps);
    } else {
        *scheme = jbool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
    }
    return RD_OK;
}

static rd_status load_pretok(struct ctx *c, const json_t *o)
{
    if (!o || json_is_null(o)) return RD_OK;
    const char *type = jstr(c, o, "type");
    struct pretok *p;
    if (!type) FAIL(c, RD_ERR_FORMAT, "pre_tokenizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        size_t i_;
        const json_t *e;
        json_array_foreach(json_object_get(o, "pretokenizers"), i_, e) RD_TRY(load_pretok(c, e));
        return RD_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *s, *r, *beh = jstr(c, o, "behavior");
        RD_TRY(pattern_of(c, o, &s, &r));
        RD_TRY(add_pre(c, &p));
        p->kind = PRE_SPLIT;
        p->invert = jbool(o, "invert", false);
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        int k = -1;
        for (int i = 0; i < 5 && beh; i++)
            if (strcmp(beh, names[i]) == 0) k = i;
        if (k < 0) FAIL(c, RD_ERR_FORMAT, "Split behavior %s", beh ? beh : "(missing)");
        p->behavior = (enum split_behavior)k;
        if (s) {
            p->literal = dup(s);
            return p->literal ? RD_OK : RD_ERR_OOM;
        }
        return compile_into(c, p, r);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        RD_TRY(add_pre(c, &p));
        p->kind = PRE_BYTELEVEL;
        p->add_prefix_space = jbool(o, "add_prefix_space", true);
        if (jbool(o, "use_regex", true)) return compile_into(c, p, tok_regex_gpt2);
        return RD_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep;
        enum prepend_scheme sc;
        RD_TRY(load_metaspace(c, o, &rep, &sc));
        RD_TRY(add_pre(c, &p));
        p->kind = PRE_METASPACE;
        p->scheme = sc;
        p->split = jbool(o, "split", true);
        p->replacement = dup(rep);
        return p->replacement ? RD_OK : RD_ERR_OOM;
    }
    if (strcmp(type, "Digits") == 0) {
        RD_TRY(add_pre(c, &p));
        p->kind = PRE_SPLIT;
        p->behavior = jbool(o, "individual_digits", false) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        return compile_into(c, p, "\\p{N}");
    }
    FAIL(c, RD_ERR_UNSUPPORTED, "pre_tokenizer %s is not supported", type);
}

/* ---------------------------------------------------------------- post-processor, decoder */

static rd_status push_ids(int32_t **arr, int *n, int32_t id)
{
    int32_t *p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (!p) return RD_ERR_OOM;
    *arr = p;
    p[(*n)++] = id;
    return RD_OK;
}

static rd_status load_post(struct ctx *c, const json_t *o)
{
    struct rd_tokenizer *t = c->t;
    if (!o || json_is_null(o)) return RD_OK;
    const char *type = jstr(c, o, "type");
    if (!type) FAIL(c, RD_ERR_FORMAT, "post_processor without a type");
    if (strcmp(type, "Sequence") == 0) {
        size_t i_;
        const json_t *e;
        json_array_foreach(json_object_get(o, "processors"), i_, e) RD_TRY(load_post(c, e));
        return RD_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return RD_OK; /* offsets only */
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        const json_t *cls = json_object_get(o, "cls");
        const json_t *sep = json_object_get(o, "sep");
        int32_t ci, si;
        if (!jid(json_array_get(cls, 1), &ci) || !jid(json_array_get(sep, 1), &si))
            FAIL(c, RD_ERR_FORMAT, "%s without cls/sep ids", type);
        RD_TRY(push_ids(&t->post_pre, &t->n_post_pre, ci));
        return push_ids(&t->post_post, &t->n_post_post, si);
    }
    if (strcmp(type, "TemplateProcessing") != 0) FAIL(c, RD_ERR_UNSUPPORTED, "post_processor %s is not supported", type);
    const json_t *single = json_object_get(o, "single");
    const json_t *specials = json_object_get(o, "special_tokens");
    bool after = false;
    size_t i;
    const json_t *e;
    json_array_foreach(single, i, e) {
        const json_t *sp = json_object_get(e, "SpecialToken");
        if (json_object_get(e, "Sequence")) {
            after = true;
            continue;
        }
        const char *name = jstr(c, sp, "id");
        if (!name) FAIL(c, RD_ERR_FORMAT, "TemplateProcessing item is neither Sequence nor SpecialToken");
        const json_t *ids = json_object_get(json_object_get(specials, name), "ids");
        if (!json_is_array(ids)) FAIL(c, RD_ERR_FORMAT, "TemplateProcessing special token %s has no ids", name);
        size_t k;
        const json_t *idv;
        json_array_foreach(ids, k, idv) {
            int32_t id;
            if (!jid(idv, &id)) FAIL(c, RD_ERR_FORMAT, "TemplateProcessing id of %s", name);
            if (after) RD_TRY(push_ids(&t->post_post, &t->n_post_post, id));
            else RD_TRY(push_ids(&t->post_pre, &t->n_post_pre, id));
        }
    }
    return RD_OK;
}

static rd_status add_dec_replace(struct ctx *c, const char *from, const char *to)
{
    struct rd_tokenizer *t = c->t;
    char **f = realloc(t->dec_from, (size_t)(t->n_dec_replace + 1) * sizeof *f);
    if (f) t->dec_from = f;
    char **g = realloc(t->dec_to, (size_t)(t->n_dec_replace + 1) * sizeof *g);
    if (g) t->dec_to = g;
    if (!f || !g) return RD_ERR_OOM;
    f[t->n_dec_replace] = dup(from);
    g[t->n_dec_replace] = dup(to);
    t->n_dec_replace++;
    return (f[t->n_dec_replace - 1] && g[t->n_dec_replace - 1]) ? RD_OK : RD_ERR_OOM;
}

static rd_status load_decoder_step(struct ctx *c, const json_t *o)
{
    struct rd_tokenizer *t = c->t;
    const char *type = jstr(c, o, "type");
    if (!type) FAIL(c, RD_ERR_FORMAT, "decoder without a type");
    if (strcmp(type, "ByteLevel") == 0) {
        if (t->dec == DEC_PIECES) FAIL(c, RD_ERR_UNSUPPORTED, "ByteLevel decoder mixed with others");
        t->dec = DEC_BYTELEVEL;
        return RD_OK;
    }
    if (t->dec == DEC_BYTELEVEL) FAIL(c, RD_ERR_UNSUPPORTED, "decoder %s after ByteLevel", type);
    t->dec = DEC_PIECES;
    if (strcmp(type, "Fuse") == 0) return RD_OK; /* decode joins pieces anyway */
    if (strcmp(type, "ByteFallback") == 0) {
        t->dec_byte_fallback = true;
        return RD_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const char *s, *r, *content = jstr(c, o, "content");
        RD_TRY(pattern_of(c, o, &s, &r));
        if (!s || !content) FAIL(c, RD_ERR_UNSUPPORTED, "Replace decoder needs a String pattern and content");
        return add_dec_replace(c, s, content);
    }
    if (strcmp(type, "Strip") == 0) {
        const char *content = jstr(c, o, "content");
        const json_t *stop = json_object_get(o, "stop");
        int64_t start;
        if (!content || !rd_json_int(json_object_get(o, "start"), 0, 1 << 20, &start))
            FAIL(c, RD_ERR_FORMAT, "Strip decoder needs content and start (0..%d)", 1 << 20);
        if (json_is_number(stop) && json_number_value(stop) != 0)
            FAIL(c, RD_ERR_UNSUPPORTED, "Strip decoder with stop > 0 is not supported");
        free(t->dec_strip_content);
        t->dec_strip_content = dup(content);
        t->dec_strip_start = (int)start;
        return t->dec_strip_content ? RD_OK : RD_ERR_OOM;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep;
        enum prepend_scheme sc;
        RD_TRY(load_metaspace(c, o, &rep, &sc));
        if (sc != PREPEND_NEVER) {
            t->dec_meta_first = dup(rep);
            if (!t->dec_meta_first) return RD_ERR_OOM;
        }
        return add_dec_replace(c, rep, " ");
    }
    FAIL(c, RD_ERR_UNSUPPORTED, "decoder %s is not supported", type);
}

static rd_status load_decoder(struct ctx *c, const json_t *o)
{
    if (!o || json_is_null(o)) {
        c->t->dec = DEC_NONE;
        return RD_OK;
    }
    const char *type = jstr(c, o, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        size_t i_;
        const json_t *e;
        json_array_foreach(json_object_get(o, "decoders"), i_, e) RD_TRY(load_decoder_step(c, e));
        return RD_OK;
    }
    return load_decoder_step(c, o);
}

/* BOS / EOS when the post-processor does not say: the usual names among the added tokens. */
static int32_t find_added(const struct rd_tokenizer *t, const char *const *names)
{
    for (int k = 0; names[k]; k++)
        for (int i = 0; i < t->n_added; i++)
            if (strcmp(t->added[i].content, names[k]) == 0) return t->added[i].id;
    return -1;
}

rd_status rd_tokenizer_load_json(const char *json_text, size_t len, struct rd_tokenizer **out,
                                 char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!json_text || !out) return RD_ERR_INVALID_ARG;
    *out = NULL;
    struct rd_tokenizer *t = tok_alloc();
    if (!t) return RD_ERR_OOM;
    struct ctx c = {t, err, err_len, false, NULL};
    char *marked = NULL, why[256];
    json_t *j = NULL;
    rd_status st = tok_json_mark_nul_keys(json_text, len, &marked, err, err_len);
    c.nul_keys = marked != NULL;
    if (st == RD_OK) {
        j = rd_json_parse(marked ? marked : json_text, len, 0, why, sizeof why);
        free(marked);
        if (!j) {
            tok_err(err, err_len, "tokenizer.json: not valid JSON: %s", why);
            st = RD_ERR_FORMAT;
        }
    }
    if (st == RD_OK) {
        t->model = MODEL_BPE_RANK;
        const json_t *model = json_object_get(j, "model");
        if (!json_is_object(model)) {
            tok_err(err, err_len, "tokenizer.json: no model");
            st = RD_ERR_FORMAT;
        }
        if (st == RD_OK) st = load_model(&c, model);
    }
    if (st == RD_OK) st = load_added(&c, json_object_get(j, "added_tokens"));
    if (st == RD_OK) st = load_normalizer(&c, json_object_get(j, "normalizer"));
    if (st == RD_OK) st = load_pretok(&c, json_object_get(j, "pre_tokenizer"));
    if (st == RD_OK) st = load_post(&c, json_object_get(j, "post_processor"));
    if (st == RD_OK) st = load_decoder(&c, json_object_get(j, "decoder"));
    if (c.nul_str) { /* whatever the outcome, since such a string counted as absent */
        tok_err(err, err_len, "tokenizer.json: the \"%s\" string holds a NUL byte (\\u0000); "
                "ropedist takes NUL bytes in tokens only", c.nul_str);
        st = RD_ERR_UNSUPPORTED;
    }
    if (st == RD_OK) {
        static const char *const bos[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", NULL};
        static const char *const eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL};
        t->bos_id = t->n_post_pre ? t->post_pre[0] : find_added(t, bos);
        t->eos_id = t->n_post_post ? t->post_post[t->n_post_post - 1] : find_added(t, eos);
        st = tok_finish(t, err, err_len);
    }
    json_decref(j);
    if (st != RD_OK) {
        if (st == RD_ERR_OOM && err && err_len > 0 && !err[0]) tok_err(err, err_len, "tokenizer: out of memory");
        rd_tokenizer_free(t);
        return st;
    }
    *out = t;
    return RD_OK;
}
