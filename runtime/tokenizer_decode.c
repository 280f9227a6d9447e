/* Decoding: ids back to text through the tokenizer's decoder, built as a stream so that
 * rd_tokenizer_decode and rd_detok_stream produce the same bytes by construction.
 *
 * What the stream holds back and why: ByteLevel turns pieces into bytes and Hugging Face
 * converts all of them at once, lossily, so an incomplete UTF-8 tail waits for the next token;
 * ByteFallback turns a whole run of <0xNN> tokens into text only if the run is valid UTF-8 (else
 * one U+FFFD per byte), so a run waits until a non-byte token or the flush; Strip removes
 * leading spaces of the whole output, so the stream drops them until real text starts. */
#include "runtime/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- decode */

struct rd_detok_stream {
    const struct rd_tokenizer *t;
    bool skip_special;
    int n_tokens;        /* tokens decoded since the start (after skipping) */
    int strip_left;      /* leading strip chars still to remove; 0 once text has started */
    struct bytebuf pend; /* BYTELEVEL: undecided UTF-8 tail; PIECES: the current <0xNN> run */
    struct bytebuf out;  /* what the current call returns */
    struct bytebuf tmp, tmp2;
};

/* Appends decided text to the output, removing the decoder's leading strip chars. */
static rd_status emit(struct rd_detok_stream *s, const char *p, size_t n)
{
    const struct rd_tokenizer *t = s->t;
    if (s->strip_left > 0 && n > 0) {
        size_t cl = strlen(t->dec_strip_content);
        while (s->strip_left > 0 && n >= cl && cl && memcmp(p, t->dec_strip_content, cl) == 0) {
            p += cl;
            n -= cl;
            s->strip_left--;
        }
        if (n > 0) s->strip_left = 0;
    }
    return bb_put(&s->out, p, n);
}

static rd_status emit_lossy(struct rd_detok_stream *s, const char *p, size_t n)
{
    s->tmp2.n = 0;
    RD_TRY(utf8_lossy(&s->tmp2, (const uint8_t *)p, n, false, NULL));
    return emit(s, s->tmp2.p, s->tmp2.n);
}

/* ByteFallback: a run of byte tokens becomes its text when valid UTF-8, else one U+FFFD per byte. */
static rd_status flush_run(struct rd_detok_stream *s)
{
    if (!s->pend.n) return RD_OK;
    rd_status st;
    if (rd_utf8_valid(s->pend.p, s->pend.n, NULL)) {
        st = emit(s, s->pend.p, s->pend.n);
    } else {
        st = RD_OK;
        for (size_t i = 0; i < s->pend.n && st == RD_OK; i++) st = emit(s, "\xEF\xBF\xBD", 3);
    }
    s->pend.n = 0;
    return st;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 32) >= 'a' && (c | 32) <= 'f') return (c | 32) - 'a' + 10;
    return -1;
}

static rd_status stream_reset(struct rd_detok_stream *s)
{
    s->n_tokens = 0;
    s->strip_left = s->t->dec_strip_content ? s->t->dec_strip_start : 0;
    s->pend.n = 0;
    return RD_OK;
}

rd_status rd_detok_stream_new(const struct rd_tokenizer *t, bool skip_special,
                              struct rd_detok_stream **out)
{
    if (!t || !out) return RD_ERR_INVALID_ARG;
    struct rd_detok_stream *s = calloc(1, sizeof *s);
    if (!s) return RD_ERR_OOM;
    s->t = t;
    s->skip_special = skip_special;
    stream_reset(s);
    *out = s;
    return RD_OK;
}

void rd_detok_stream_free(struct rd_detok_stream *s)
{
    if (!s) return;
    free(s->pend.p);
    free(s->out.p);
    free(s->tmp.p);
    free(s->tmp2.p);
    free(s);
}

static rd_status push_piece(struct rd_detok_stream *s, const char *p, size_t n)
{
    const struct rd_tokenizer *t = s->t;
    bool first = s->n_tokens == 0;
    s->n_tokens++;
    if (t->dec == DEC_NONE) {
        if (!first) RD_TRY(emit(s, " ", 1));
        return emit_lossy(s, p, n);
    }
    if (t->dec == DEC_BYTELEVEL) {
        /* each char back to its byte; a token with a char outside the map keeps its bytes */
        size_t start = s->pend.n, i = 0;
        while (i < n) {
            int k = utf8_seq((const uint8_t *)p + i, n - i);
            int b = k > 0 ? bytelevel_byte(utf8_cp((const uint8_t *)p + i, k)) : -1;
            if (b < 0) break;
            uint8_t c = (uint8_t)b;
            RD_TRY(bb_put(&s->pend, &c, 1));
            i += (size_t)k;
        }
        if (i < n) {
            s->pend.n = start;
            RD_TRY(bb_put(&s->pend, p, n));
        }
        size_t held;
        s->tmp.n = 0;
        RD_TRY(utf8_lossy(&s->tmp, (const uint8_t *)s->pend.p, s->pend.n, true, &held));
        memmove(s->pend.p, s->pend.p + s->pend.n - held, held);
        s->pend.n = held;
        return emit(s, s->tmp.p ? s->tmp.p : "", s->tmp.n);
    }
    /* DEC_PIECES */
    struct bytebuf *cur = &s->tmp, *alt = &s->tmp2;
    cur->n = 0;
    RD_TRY(bb_put(cur, p, n));
    if (first && t->dec_meta_first) {
        RD_TRY(replace_all(cur->p, cur->n, t->dec_meta_first, "", alt));
        struct bytebuf *sw = cur; cur = alt; alt = sw;
    }
    for (int i = 0; i < t->n_dec_replace; i++) {
        RD_TRY(replace_all(cur->p, cur->n, t->dec_from[i], t->dec_to[i], alt));
        struct bytebuf *sw = cur; cur = alt; alt = sw;
    }
    if (t->dec_byte_fallback && cur->n == 6 && memcmp(cur->p, "<0x", 3) == 0 && cur->p[5] == '>' &&
        hexval(cur->p[3]) >= 0 && hexval(cur->p[4]) >= 0) {
        uint8_t c = (uint8_t)(hexval(cur->p[3]) * 16 + hexval(cur->p[4]));
        return bb_put(&s->pend, &c, 1);
    }
    RD_TRY(flush_run(s));
    /* emit_lossy works in tmp2: hand it a copy-free pointer only when cur is tmp */
    if (cur == &s->tmp2) {
        struct bytebuf sw = s->tmp; s->tmp = s->tmp2; s->tmp2 = sw;
    }
    return emit_lossy(s, s->tmp.p, s->tmp.n);
}

rd_status rd_detok_stream_push(struct rd_detok_stream *s, int32_t id, const char **out,
                               size_t *len)
{
    if (!s || !out) return RD_ERR_INVALID_ARG;
    const struct rd_tokenizer *t = s->t;
    s->out.n = 0;
    RD_TRY(bb_put(&s->out, "", 0));
    *out = s->out.p;
    if (len) *len = 0;
    if (id < 0 || id >= t->n_vocab || !t->piece[id]) return RD_ERR_RANGE;
    if (!(s->skip_special && t->is_special[id])) RD_TRY(push_piece(s, t->piece[id], t->piece_len[id]));
    *out = s->out.p;
    if (len) *len = s->out.n;
    return RD_OK;
}

rd_status rd_detok_stream_flush(struct rd_detok_stream *s, const char **out, size_t *len)
{
    if (!s || !out) return RD_ERR_INVALID_ARG;
    s->out.n = 0;
    RD_TRY(bb_put(&s->out, "", 0));
    if (s->t->dec == DEC_BYTELEVEL) {
        if (s->pend.n) RD_TRY(emit_lossy(s, s->pend.p, s->pend.n));
        s->pend.n = 0;
    } else if (s->t->dec == DEC_PIECES) {
        RD_TRY(flush_run(s));
    }
    stream_reset(s);
    *out = s->out.p;
    if (len) *len = s->out.n;
    return RD_OK;
}

rd_status rd_tokenizer_decode_ex(const struct rd_tokenizer *t, const int32_t *ids, int n,
                                 bool skip_special, char **text, size_t *len)
{
    if (!t || (!ids && n) || n < 0 || !text) return RD_ERR_INVALID_ARG;
    *text = NULL;
    struct rd_detok_stream *s;
    struct bytebuf all = {0};
    RD_TRY(rd_detok_stream_new(t, skip_special, &s));
    rd_status st = bb_put(&all, "", 0);
    const char *p;
    size_t k;
    for (int i = 0; i < n && st == RD_OK; i++) {
        st = rd_detok_stream_push(s, ids[i], &p, &k);
        if (st == RD_OK) st = bb_put(&all, p, k);
    }
    if (st == RD_OK) st = rd_detok_stream_flush(s, &p, &k);
    if (st == RD_OK) st = bb_put(&all, p, k);
    rd_detok_stream_free(s);
    if (st != RD_OK) {
        free(all.p);
        return st;
    }
    *text = all.p;
    if (len) *len = all.n;
    return RD_OK;
}

rd_status rd_tokenizer_decode(const struct rd_tokenizer *t, const int32_t *ids, int n,
                              char **text, size_t *len)
{
    return rd_tokenizer_decode_ex(t, ids, n, false, text, len);
}

