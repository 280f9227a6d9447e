/* The tokenizer's core: construction helpers, loading by file type, encode (split the text on
 * added tokens, normalize, pre-tokenize, run the model, add the post-processor's ids) and the
 * accessors. Elsewhere: tokenizer.json in tokenizer_json.c, GGUF / raw vocab in
 * tokenizer_gguf.c, the BPE models and pre-tokenizers in tokenizer_model.c, decoding in
 * tokenizer_decode.c, shared containers and UTF-8 in tokenizer_util.c. */
#include "runtime/tokenizer_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "runtime/gguf.h"

/* ---------------------------------------------------------------- construction */

void tok_err(char *err, int err_len, const char *fmt, ...)
{
    if (!err || err_len <= 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)err_len, fmt, ap);
    va_end(ap);
}

/* Rust-regex / Oniguruma \s is Unicode White_Space; PCRE2's (with UCP) adds U+180E, so \s and
 * \S are spelled out. */
#define WS_CLASS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

pcre2_code *tok_compile_regex(const char *pattern, char *err, int err_len)
{
    struct bytebuf b = {0};
    bool in_class = false;
    size_t n = strlen(pattern);
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < n) {
            char d = pattern[++i];
            if (d == 's') {
                if (bb_put(&b, in_class ? WS_CLASS : "[" WS_CLASS "]", strlen(WS_CLASS) + (in_class ? 0 : 2)))
                    goto oom;
            } else if (d == 'S' && !in_class) {
                if (bb_put(&b, "[^" WS_CLASS "]", strlen(WS_CLASS) + 3)) goto oom;
            } else {
                char two[2] = {c, d};
                if (bb_put(&b, two, 2)) goto oom;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            if (bb_put(&b, &c, 1)) goto oom;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pattern[i + 1] == '^') {
                if (bb_put(&b, "^", 1)) goto oom;
                i++;
            }
            if (i + 1 < n && pattern[i + 1] == ']') {
                if (bb_put(&b, "]", 1)) goto oom;
                i++;
            }
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        if (bb_put(&b, &c, 1)) goto oom;
    }
    if (!b.p && bb_put(&b, "", 0)) goto oom;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.p, b.n, PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        tok_err(err, err_len, "tokenizer: cannot compile regex %s: %s at %zu", pattern,
                (const char *)msg, (size_t)off);
    } else {
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* faster when available; fine without */
    }
    free(b.p);
    return re;
oom:
    free(b.p);
    tok_err(err, err_len, "tokenizer: out of memory");
    return NULL;
}

struct rd_tokenizer *tok_alloc(void)
{
    struct rd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = t->bos_id = t->eos_id = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

/* Stores the piece of id, growing the id-indexed arrays as needed. */
rd_status tok_set_piece(struct rd_tokenizer *t, int32_t id, const char *s, size_t n)
{
    if (id < 0 || n > UINT32_MAX) return RD_ERR_RANGE;
    if (id >= t->n_vocab) {
        int nv = id + 1;
        char **p = realloc(t->piece, (size_t)nv * sizeof *p);
        if (p) t->piece = p;
        uint32_t *pl = realloc(t->piece_len, (size_t)nv * sizeof *pl);
        if (pl) t->piece_len = pl;
        uint8_t *sp = realloc(t->is_special, (size_t)nv);
        if (sp) t->is_special = sp;
        if (!p || !pl || !sp) return RD_ERR_OOM;
        for (int i = t->n_vocab; i < nv; i++) {
            t->piece[i] = NULL;
            t->piece_len[i] = 0;
            t->is_special[i] = 0;
        }
        t->n_vocab = nv;
    }
    char *c = malloc(n + 1);
    if (!c) return RD_ERR_OOM;
    memcpy(c, s, n);
    c[n] = 0;
    free(t->piece[id]);
    t->piece[id] = c;
    t->piece_len[id] = (uint32_t)n;
    return RD_OK;
}

rd_status tok_finish(struct rd_tokenizer *t, char *err, int err_len)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = strmap_get(&t->vocab, name, 6);
    }
    memset(t->added_first, 0, sizeof t->added_first);
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].special) t->is_special[t->added[i].id] = 1;
        if (t->added[i].len) t->added_first[(uint8_t)t->added[i].content[0]] = 1;
    }
    for (int i = 0; i < t->n_post_pre + t->n_post_post; i++) {
        int32_t id = i < t->n_post_pre ? t->post_pre[i] : t->post_post[i - t->n_post_pre];
        if (id < 0 || id >= t->n_vocab || !t->piece[id]) {
            tok_err(err, err_len, "tokenizer: post-processor id %d is not in the vocabulary", id);
            return RD_ERR_FORMAT;
        }
    }
    if (t->unk_id >= t->n_vocab) t->unk_id = -1;
    return RD_OK;
}

void rd_tokenizer_free(struct rd_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->piece[i]);
    free(t->piece);
    free(t->piece_len);
    free(t->is_special);
    strmap_free(&t->vocab);
    free(t->score);
    pairmap_free(&t->merges);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].literal);
        free(t->pre[i].replacement);
    }
    free(t->pre);
    free(t->post_pre);
    free(t->post_post);
    for (int i = 0; i < t->n_dec_replace; i++) {
        free(t->dec_from[i]);
        free(t->dec_to[i]);
    }
    free(t->dec_from);
    free(t->dec_to);
    free(t->dec_strip_content);
    free(t->dec_meta_first);
    free(t);
}

rd_status rd_tokenizer_load(const char *path, struct rd_tokenizer **out, char *err, int err_len)
{
    if (!path || !out) return RD_ERR_INVALID_ARG;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        tok_err(err, err_len, "tokenizer: cannot open %s", path);
        return RD_ERR_IO;
    }
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        fclose(f);
        struct rd_gguf *g = NULL;
        rd_status st = rd_gguf_open(path, &g, err, err_len);
        if (st == RD_OK) st = rd_tokenizer_load_gguf(g, out, err, err_len);
        rd_gguf_close(g);
        return st;
    }
    if (fseek(f, 0, SEEK_END) != 0) goto io;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto io;
    char *txt = malloc((size_t)n + 1);
    if (!txt) {
        fclose(f);
        return RD_ERR_OOM;
    }
    if (fread(txt, 1, (size_t)n, f) != (size_t)n) {
        free(txt);
        goto io;
    }
    txt[n] = 0;
    fclose(f);
    rd_status st = rd_tokenizer_load_json(txt, (size_t)n, out, err, err_len);
    free(txt);
    if (st != RD_OK && err && err_len > 0) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s: %s", path, err);
        snprintf(err, (size_t)err_len, "%s", tmp);
    }
    return st;
io:
    fclose(f);
    tok_err(err, err_len, "tokenizer: cannot read %s", path);
    return RD_ERR_IO;
}

/* ---------------------------------------------------------------- encode */

static bool is_ws(uint32_t cp)
{
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Word characters for single_word: ASCII alphanumerics, '_' and every non-ASCII letter-ish
 * code point (an approximation of Rust's char::is_alphanumeric). */
static bool is_word_byte(uint8_t c) { return c == '_' || c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

/* Longest added token matching at text[i], honouring single_word; -1 when none. */
static int match_added(const struct rd_tokenizer *t, const char *text, size_t len, size_t i)
{
    int best = -1;
    for (int k = 0; k < t->n_added; k++) {
        const struct added_token *a = &t->added[k];
        if (a->len == 0 || a->len > len - i || (best >= 0 && a->len <= t->added[best].len)) continue;
        if (memcmp(text + i, a->content, a->len) != 0) continue;
        if (a->single_word) {
            if (i > 0 && is_word_byte((uint8_t)text[i - 1])) continue;
            if (i + a->len < len && is_word_byte((uint8_t)text[i + a->len])) continue;
        }
        best = k;
    }
    return best;
}

/* Length of the whitespace run ending at text[end) (lstrip) or starting at text[start] (rstrip). */
static size_t ws_before(const char *text, size_t lo, size_t end)
{
    size_t i = end;
    while (i > lo) {
        size_t j = i - 1;
        while (j > lo && ((uint8_t)text[j] & 0xC0) == 0x80) j--;
        int k = utf8_seq((const uint8_t *)text + j, i - j);
        if (k <= 0 || !is_ws(utf8_cp((const uint8_t *)text + j, k))) break;
        i = j;
    }
    return end - i;
}

static size_t ws_after(const char *text, size_t start, size_t len)
{
    size_t i = start;
    while (i < len) {
        int k = utf8_seq((const uint8_t *)text + i, len - i);
        if (k <= 0 || !is_ws(utf8_cp((const uint8_t *)text + i, k))) break;
        i += (size_t)k;
    }
    return i - start;
}


static const char SPM_SPACE[] = "\xE2\x96\x81"; /* U+2581 ▁ */

/* Encodes one text segment (between added tokens). */
static rd_status encode_text(const struct rd_tokenizer *t, const char *s, size_t n, bool at_start,
                             struct idbuf *out)
{
    struct bytebuf cur = {0}, tmp = {0};
    struct pieces a = {0}, b = {0};
    rd_status st = RD_OK;
    RD_TRY_GOTO(bb_put(&cur, s, n), st, done);
    for (int i = 0; i < t->n_norm; i++) {
        const struct normalizer *z = &t->norm[i];
        if (z->kind == NORM_PREPEND) {
            if (cur.n == 0) continue;
            tmp.n = 0;
            RD_TRY_GOTO(bb_put(&tmp, z->a, strlen(z->a)), st, done);
            RD_TRY_GOTO(bb_put(&tmp, cur.p, cur.n), st, done);
        } else {
            RD_TRY_GOTO(replace_all(cur.p, cur.n, z->a, z->b, &tmp), st, done);
        }
        struct bytebuf sw = cur;
        cur = tmp;
        tmp = sw;
    }
    if (t->model == MODEL_SPM_SCORE) {
        /* llama.cpp / SentencePiece: " " + text, spaces escaped to ▁, one word */
        tmp.n = 0;
        RD_TRY_GOTO(bb_put(&tmp, "", 0), st, done);
        if (t->spm_prefix_space && cur.n) RD_TRY_GOTO(bb_put(&tmp, SPM_SPACE, 3), st, done);
        RD_TRY_GOTO(bb_put(&tmp, cur.p, cur.n), st, done);
        RD_TRY_GOTO(replace_all(tmp.p, tmp.n, " ", SPM_SPACE, &cur), st, done);
        if (cur.n) st = model_spm_word(t, cur.p, cur.n, out);
        goto done;
    }
    RD_TRY_GOTO(pieces_add(&a, cur.p, cur.n, at_start), st, done);
    for (int i = 0; i < t->n_pre; i++) {
        RD_TRY_GOTO(pretok_apply(t, &t->pre[i], &a, &b), st, done);
        pieces_free(&a);
        a = b;
        memset(&b, 0, sizeof b);
    }
    for (int i = 0; i < a.n; i++)
        if (a.p[i].n) RD_TRY_GOTO(model_bpe_word(t, a.p[i].s, a.p[i].n, out), st, done);
done:
    free(cur.p);
    free(tmp.p);
    pieces_free(&a);
    pieces_free(&b);
    return st;
}

rd_status rd_tokenizer_encode(const struct rd_tokenizer *t, const char *text, size_t len,
                              bool add_special, int32_t **ids, int *n)
{
    if (!t || (!text && len) || !ids || !n) return RD_ERR_INVALID_ARG;
    *ids = NULL;
    *n = 0;
    size_t bad;
    if (!rd_utf8_valid(text, len, &bad)) {
        RD_LOG_WARN("tokenizer: input text is not valid UTF-8 (byte %zu of %zu)", bad, len);
        return RD_ERR_INVALID_ARG;
    }
    struct idbuf out = {0};
    rd_status st = RD_OK;
    if (add_special)
        for (int i = 0; i < t->n_post_pre; i++) RD_TRY_GOTO(ib_push(&out, t->post_pre[i]), st, fail);
    size_t seg = 0, i = 0;
    while (i < len) {
        int k = t->added_first[(uint8_t)text[i]] ? match_added(t, text, len, i) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        const struct added_token *a = &t->added[k];
        size_t start = i, end = i + a->len;
        if (a->lstrip) start -= ws_before(text, seg, start);
        if (a->rstrip) end += ws_after(text, end, len);
        if (start > seg) RD_TRY_GOTO(encode_text(t, text + seg, start - seg, seg == 0, &out), st, fail);
        RD_TRY_GOTO(ib_push(&out, a->id), st, fail);
        seg = i = end;
    }
    if (len > seg) RD_TRY_GOTO(encode_text(t, text + seg, len - seg, seg == 0, &out), st, fail);
    if (add_special)
        for (int j = 0; j < t->n_post_post; j++) RD_TRY_GOTO(ib_push(&out, t->post_post[j]), st, fail);
    if (!out.p) {
        RD_TRY_GOTO(ib_push(&out, 0), st, fail);
        out.n = 0;
    }
    *ids = out.p;
    *n = out.n;
    return RD_OK;
fail:
    free(out.p);
    return st;
}

/* ---------------------------------------------------------------- accessors */

int rd_tokenizer_vocab_size(const struct rd_tokenizer *t) { return t->n_vocab; }
int32_t rd_tokenizer_bos(const struct rd_tokenizer *t) { return t->bos_id; }
int32_t rd_tokenizer_eos(const struct rd_tokenizer *t) { return t->eos_id; }

const char *rd_tokenizer_piece(const struct rd_tokenizer *t, int32_t id)
{
    return (id >= 0 && id < t->n_vocab) ? t->piece[id] : NULL;
}

int32_t rd_tokenizer_piece_id(const struct rd_tokenizer *t, const char *piece)
{
    size_t n = strlen(piece);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, piece, n) == 0) return t->added[i].id;
    return strmap_get(&t->vocab, piece, n);
}

bool rd_tokenizer_is_special(const struct rd_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->is_special[id];
}
