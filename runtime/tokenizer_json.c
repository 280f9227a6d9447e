/* Loading a Hugging Face tokenizer.json: the BPE model (vocab, merges, byte_fallback, unk,
 * ignore_merges), added tokens, normalizer, pre-tokenizer, post-processor and decoder. What
 * ropedist does not implement (another model type, NFC normalizers, WordPiece decoders, ...) is
 * refused at load time with RD_ERR_UNSUPPORTED naming the component, rather than encoding
 * differently from Hugging Face later. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/tokenizer_impl.h"

struct ctx {
    struct rd_tokenizer *t;
    char *err;
    int err_len;
};

#define FAIL(c, st, ...)                                                                       \
    do {                                                                                       \
        tok_err((c)->err, (c)->err_len, "tokenizer.json: " __VA_ARGS__);                      \
        return (st);                                                                           \
    } while (0)

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *key, bool def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static char *dup(const char *s)
{
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

/* {"String": s} or {"Regex": r} */
static rd_status pattern_of(struct ctx *c, const cJSON *o, const char **str, const char **regex)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    *str = jstr(pat, "String");
    *regex = jstr(pat, "Regex");
    if (!*str && !*regex) FAIL(c, RD_ERR_FORMAT, "pattern must be {\"String\"} or {\"Regex\"}");
    return RD_OK;
}

/* ---------------------------------------------------------------- model */

static rd_status load_model(struct ctx *c, const cJSON *m)
{
    struct rd_tokenizer *t = c->t;
    const char *type = jstr(m, "type");
    if (type && strcmp(type, "BPE") != 0) FAIL(c, RD_ERR_UNSUPPORTED, "model type %s is not supported (BPE only)", type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) FAIL(c, RD_ERR_FORMAT, "model needs vocab and merges");
    if (jstr(m, "continuing_subword_prefix") || jstr(m, "end_of_word_suffix"))
        FAIL(c, RD_ERR_UNSUPPORTED, "BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8)
            FAIL(c, RD_ERR_FORMAT, "vocab id of %s is not a valid id", e->string);
        int32_t id = (int32_t)e->valuedouble;
        size_t n = strlen(e->string);
        RD_TRY(tok_set_piece(t, id, e->string, n));
        RD_TRY(strmap_put(&t->vocab, e->string, (uint32_t)n, id));
    }
    int32_t rank = 0;
    struct bytebuf both = {0};
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        char *split = NULL;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring + (e->valuestring[0] ? 1 : 0), ' ');
            if (!sp) {
                free(both.p);
                FAIL(c, RD_ERR_FORMAT, "merge \"%s\" is not \"left right\"", e->valuestring);
            }
            split = dup(e->valuestring);
            if (!split) return RD_ERR_OOM;
            split[sp - e->valuestring] = 0;
            a = split;
            b = split + (sp - e->valuestring) + 1;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
        } else {
            free(both.p);
            FAIL(c, RD_ERR_FORMAT, "merge %d is neither a string nor a pair", rank);
        }
        both.n = 0;
        rd_status st = bb_put(&both, a, strlen(a));
        if (st == RD_OK) st = bb_put(&both, b, strlen(b));
        int32_t ia = strmap_get(&t->vocab, a, strlen(a)), ib = strmap_get(&t->vocab, b, strlen(b));
        int32_t in = st == RD_OK ? strmap_get(&t->vocab, both.p, both.n) : -1;
        if (st == RD_OK && (ia < 0 || ib < 0 || in < 0)) {
            tok_err(c->err, c->err_len, "tokenizer.json: merge %d (%s %s) uses a token not in the vocab", rank, a, b);
            st = RD_ERR_FORMAT;
        }
        if (st == RD_OK) st = pairmap_put(&t->merges, ia, ib, rank, in);
        free(split);
        if (st != RD_OK) {
            free(both.p);
            return st;
        }
        rank++;
    }
    free(both.p);
    t->byte_fallback = jbool(m, "byte_fallback", false);
    t->fuse_unk = jbool(m, "fuse_unk", false);
    t->ignore_merges = jbool(m, "ignore_merges", false);
    const char *unk = jstr(m, "unk_token");
    if (unk) {
        t->unk_id = strmap_get(&t->vocab, unk, strlen(unk));
        if (t->unk_id < 0) FAIL(c, RD_ERR_FORMAT, "unk_token %s is not in the vocab", unk);
    }
    return RD_OK;
}

static rd_status load_added(struct ctx *c, const cJSON *arr)
{
    struct rd_tokenizer *t = c->t;
    if (!arr || cJSON_IsNull(arr)) return RD_OK;
    if (!cJSON_IsArray(arr)) FAIL(c, RD_ERR_FORMAT, "added_tokens must be an array");
    int n = cJSON_GetArraySize(arr);
    t->added = calloc(n ? (size_t)n : 1, sizeof *t->added);
    if (!t->added) return RD_ERR_OOM;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = jstr(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8 || !content)
            FAIL(c, RD_ERR_FORMAT, "added token without id or content");
        struct added_token *a = &t->added[t->n_added];
        a->content = dup(content);
        if (!a->content) return RD_ERR_OOM;
        t->n_added++;
        a->len = strlen(content);
        a->id = (int32_t)id->valuedouble;
        a->special = jbool(e, "special", false);
        a->lstrip = jbool(e, "lstrip", false);
        a->rstrip = jbool(e, "rstrip", false);
        a->single_word = jbool(e, "single_word", false);
        a->normalized = jbool(e, "normalized", !a->special);
        RD_TRY(tok_set_piece(t, a->id, content, a->len));
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

static rd_status load_normalizer(struct ctx *c, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) return RD_OK;
    const char *type = jstr(o, "type");
    if (!type) FAIL(c, RD_ERR_FORMAT, "normalizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "normalizers")) RD_TRY(load_normalizer(c, e));
        return RD_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(o, "prepend");
        if (!p) FAIL(c, RD_ERR_FORMAT, "Prepend normalizer without prepend");
        return add_norm(c, NORM_PREPEND, p, NULL);
    }
    if (strcmp(type, "Replace") == 0) {
        const char *s, *r, *content = jstr(o, "content");
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

static rd_status load_metaspace(struct ctx *c, const cJSON *o, const char **rep,
                                enum prepend_scheme *scheme)
{
    *rep = jstr(o, "replacement");
    if (!*rep) *rep = "\xE2\x96\x81";
    const char *ps = jstr(o, "prepend_scheme");
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

static rd_status load_pretok(struct ctx *c, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) return RD_OK;
    const char *type = jstr(o, "type");
    struct pretok *p;
    if (!type) FAIL(c, RD_ERR_FORMAT, "pre_tokenizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "pretokenizers")) RD_TRY(load_pretok(c, e));
        return RD_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *s, *r, *beh = jstr(o, "behavior");
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

static rd_status load_post(struct ctx *c, const cJSON *o)
{
    struct rd_tokenizer *t = c->t;
    if (!o || cJSON_IsNull(o)) return RD_OK;
    const char *type = jstr(o, "type");
    if (!type) FAIL(c, RD_ERR_FORMAT, "post_processor without a type");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "processors")) RD_TRY(load_post(c, e));
        return RD_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return RD_OK; /* offsets only */
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(o, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si)) FAIL(c, RD_ERR_FORMAT, "%s without cls/sep ids", type);
        RD_TRY(push_ids(&t->post_pre, &t->n_post_pre, (int32_t)ci->valuedouble));
        return push_ids(&t->post_post, &t->n_post_post, (int32_t)si->valuedouble);
    }
    if (strcmp(type, "TemplateProcessing") != 0) FAIL(c, RD_ERR_UNSUPPORTED, "post_processor %s is not supported", type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    bool after = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            after = true;
            continue;
        }
        const char *name = jstr(sp, "id");
        if (!name) FAIL(c, RD_ERR_FORMAT, "TemplateProcessing item is neither Sequence nor SpecialToken");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids");
        if (!cJSON_IsArray(ids)) FAIL(c, RD_ERR_FORMAT, "TemplateProcessing special token %s has no ids", name);
        const cJSON *id;
        cJSON_ArrayForEach(id, ids) {
            if (!cJSON_IsNumber(id)) FAIL(c, RD_ERR_FORMAT, "TemplateProcessing id of %s", name);
            if (after) RD_TRY(push_ids(&t->post_post, &t->n_post_post, (int32_t)id->valuedouble));
            else RD_TRY(push_ids(&t->post_pre, &t->n_post_pre, (int32_t)id->valuedouble));
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

static rd_status load_decoder_step(struct ctx *c, const cJSON *o)
{
    struct rd_tokenizer *t = c->t;
    const char *type = jstr(o, "type");
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
        const char *s, *r, *content = jstr(o, "content");
        RD_TRY(pattern_of(c, o, &s, &r));
        if (!s || !content) FAIL(c, RD_ERR_UNSUPPORTED, "Replace decoder needs a String pattern and content");
        return add_dec_replace(c, s, content);
    }
    if (strcmp(type, "Strip") == 0) {
        const char *content = jstr(o, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(o, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
        if (!content || !cJSON_IsNumber(start)) FAIL(c, RD_ERR_FORMAT, "Strip decoder needs content and start");
        if (cJSON_IsNumber(stop) && stop->valuedouble != 0)
            FAIL(c, RD_ERR_UNSUPPORTED, "Strip decoder with stop > 0 is not supported");
        free(t->dec_strip_content);
        t->dec_strip_content = dup(content);
        t->dec_strip_start = (int)start->valuedouble;
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

static rd_status load_decoder(struct ctx *c, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) {
        c->t->dec = DEC_NONE;
        return RD_OK;
    }
    const char *type = jstr(o, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "decoders")) RD_TRY(load_decoder_step(c, e));
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

rd_status rd_tokenizer_load_json(const char *json_text, struct rd_tokenizer **out, char *err,
                                 int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!json_text || !out) return RD_ERR_INVALID_ARG;
    *out = NULL;
    cJSON *j = cJSON_Parse(json_text);
    if (!j) {
        tok_err(err, err_len, "tokenizer.json: not valid JSON");
        return RD_ERR_FORMAT;
    }
    struct rd_tokenizer *t = tok_alloc();
    struct ctx c = {t, err, err_len};
    rd_status st = t ? RD_OK : RD_ERR_OOM;
    if (st == RD_OK) {
        t->model = MODEL_BPE_RANK;
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
        if (!cJSON_IsObject(model)) {
            tok_err(err, err_len, "tokenizer.json: no model");
            st = RD_ERR_FORMAT;
        }
        if (st == RD_OK) st = load_model(&c, model);
    }
    if (st == RD_OK) st = load_added(&c, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"));
    if (st == RD_OK) st = load_normalizer(&c, cJSON_GetObjectItemCaseSensitive(j, "normalizer"));
    if (st == RD_OK) st = load_pretok(&c, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
    if (st == RD_OK) st = load_post(&c, cJSON_GetObjectItemCaseSensitive(j, "post_processor"));
    if (st == RD_OK) st = load_decoder(&c, cJSON_GetObjectItemCaseSensitive(j, "decoder"));
    if (st == RD_OK) {
        static const char *const bos[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", NULL};
        static const char *const eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL};
        t->bos_id = t->n_post_pre ? t->post_pre[0] : find_added(t, bos);
        t->eos_id = t->n_post_post ? t->post_post[t->n_post_post - 1] : find_added(t, eos);
        st = tok_finish(t, err, err_len);
    }
    cJSON_Delete(j);
    if (st != RD_OK) {
        if (st == RD_ERR_OOM && err && err_len > 0 && !err[0]) tok_err(err, err_len, "tokenizer: out of memory");
        rd_tokenizer_free(t);
        return st;
    }
    *out = t;
    return RD_OK;
}
