/* The tokenizer's models and pre-tokenizers.
 *
 * BPE by rank (Hugging Face's BPE model): a word starts as one symbol per character (or its
 * <0xNN> byte tokens under byte_fallback, or the unknown token), then the adjacent pair with the
 * lowest merge rank is merged, leftmost first, until no pair has a merge. SentencePiece BPE by
 * score (llama.cpp's llm_tokenizer_spm): the adjacent pair whose concatenation is a vocabulary
 * piece with the highest score is merged, leftmost first; leftover symbols that are not pieces
 * become byte tokens. Both run on one binary heap of candidate merges whose stale entries are
 * skipped when popped. The pre-tokenizers (Split, ByteLevel, Metaspace) cut a piece list into a
 * finer one exactly as Hugging Face's SplitDelimiterBehavior rules do. */
#include <stdlib.h>
#include <string.h>

#include "runtime/tokenizer_impl.h"

const char *const tok_regex_gpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *const tok_regex_llama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------- heap of merge candidates */

struct cand {
    double key;    /* BPE: rank; SPM: -score (smaller pops first) */
    int32_t pos;   /* left symbol (ties: leftmost first) */
    int32_t right; /* SPM: right symbol */
    int32_t aux;   /* BPE: merged id; SPM: merged byte length */
};

struct heap {
    struct cand *a;
    int n, cap;
};

static bool cand_less(const struct cand *x, const struct cand *y)
{
    return x->key < y->key || (x->key == y->key && x->pos < y->pos);
}

static rd_status heap_push(struct heap *h, struct cand c)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 32;
        struct cand *a = realloc(h->a, (size_t)cap * sizeof *a);
        if (!a) return RD_ERR_OOM;
        h->a = a;
        h->cap = cap;
    }
    int i = h->n++;
    h->a[i] = c;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&h->a[i], &h->a[p])) break;
        struct cand t = h->a[i]; h->a[i] = h->a[p]; h->a[p] = t;
        i = p;
    }
    return RD_OK;
}

static struct cand heap_pop(struct heap *h)
{
    struct cand top = h->a[0];
    h->a[0] = h->a[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && cand_less(&h->a[l], &h->a[m])) m = l;
        if (r < h->n && cand_less(&h->a[r], &h->a[m])) m = r;
        if (m == i) break;
        struct cand t = h->a[i]; h->a[i] = h->a[m]; h->a[m] = t;
        i = m;
    }
    return top;
}

struct sym {
    int32_t id;          /* BPE: token id */
    int32_t start, len;  /* bytes of the word (len 0 = merged away) */
    int32_t prev, next;
};

struct syms {
    struct sym *s;
    int n, cap;
};

static rd_status sym_add(struct syms *v, int32_t id, int32_t start, int32_t len)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 32;
        struct sym *s = realloc(v->s, (size_t)cap * sizeof *s);
        if (!s) return RD_ERR_OOM;
        v->s = s;
        v->cap = cap;
    }
    v->s[v->n] = (struct sym){id, start, len, v->n - 1, -1};
    if (v->n > 0) v->s[v->n - 1].next = v->n;
    v->n++;
    return RD_OK;
}

static int char_len(const char *w, size_t n, size_t i)
{
    int k = utf8_seq((const uint8_t *)w + i, n - i);
    return k > 0 ? k : 1;
}

/* ---------------------------------------------------------------- BPE by rank */

static rd_status bpe_candidate(const struct rd_tokenizer *t, struct heap *h, const struct syms *v,
                               int32_t pos)
{
    if (pos < 0 || v->s[pos].next < 0) return RD_OK;
    int32_t rank, id;
    if (!pairmap_get(&t->merges, v->s[pos].id, v->s[v->s[pos].next].id, &rank, &id)) return RD_OK;
    return heap_push(h, (struct cand){(double)rank, pos, 0, id});
}

rd_status model_bpe_word(const struct rd_tokenizer *t, const char *w, size_t n, struct idbuf *out)
{
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, w, n);
        if (id >= 0) return ib_push(out, id);
    }
    struct syms v = {0};
    struct heap h = {0};
    rd_status st = RD_OK;
    int32_t unk_len = 0;
    bool unk = false;
    for (size_t i = 0; i < n;) {
        int k = char_len(w, n, i);
        int32_t id = strmap_get(&t->vocab, w + i, (size_t)k);
        if (id >= 0) {
            if (unk) RD_TRY_GOTO(sym_add(&v, t->unk_id, (int32_t)i - unk_len, unk_len), st, done);
            unk = false;
            RD_TRY_GOTO(sym_add(&v, id, (int32_t)i, k), st, done);
        } else {
            bool all = t->byte_fallback;
            for (int j = 0; j < k && all; j++) all = t->byte_id[(uint8_t)w[i + j]] >= 0;
            if (all) {
                /* as in Hugging Face, a pending unknown is not flushed here */
                for (int j = 0; j < k; j++)
                    RD_TRY_GOTO(sym_add(&v, t->byte_id[(uint8_t)w[i + j]], (int32_t)i + j, 1), st, done);
            } else if (t->unk_id >= 0) {
                if (unk && t->fuse_unk) {
                    unk_len += k;
                } else {
                    if (unk) RD_TRY_GOTO(sym_add(&v, t->unk_id, (int32_t)i - unk_len, unk_len), st, done);
                    unk = true;
                    unk_len = k;
                }
            }
        }
        i += (size_t)k;
    }
    if (unk) RD_TRY_GOTO(sym_add(&v, t->unk_id, (int32_t)n - unk_len, unk_len), st, done);

    for (int32_t i = 0; i + 1 < v.n; i++) RD_TRY_GOTO(bpe_candidate(t, &h, &v, i), st, done);
    while (h.n > 0) {
        struct cand c = heap_pop(&h);
        struct sym *l = &v.s[c.pos];
        if (l->len == 0 || l->next < 0) continue;
        struct sym *r = &v.s[l->next];
        int32_t rank, id;
        if (!pairmap_get(&t->merges, l->id, r->id, &rank, &id) || id != c.aux) continue;
        l->id = c.aux;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) v.s[r->next].prev = c.pos;
        RD_TRY_GOTO(bpe_candidate(t, &h, &v, l->prev), st, done);
        RD_TRY_GOTO(bpe_candidate(t, &h, &v, c.pos), st, done);
    }
    for (int32_t i = 0; i < v.n; i++)
        if (v.s[i].len) RD_TRY_GOTO(ib_push(out, v.s[i].id), st, done);
done:
    free(v.s);
    free(h.a);
    return st;
}

/* ---------------------------------------------------------------- SentencePiece BPE by score */

static rd_status spm_candidate(const struct rd_tokenizer *t, struct heap *h, const struct syms *v,
                               const char *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) return RD_OK;
    int32_t len = v->s[left].len + v->s[right].len;
    int32_t id = strmap_get(&t->vocab, w + v->s[left].start, (size_t)len);
    if (id < 0 || id >= t->n_vocab) return RD_OK;
    return heap_push(h, (struct cand){-(double)t->score[id], left, right, len});
}

rd_status model_spm_word(const struct rd_tokenizer *t, const char *w, size_t n, struct idbuf *out)
{
    struct syms v = {0};
    struct heap h = {0};
    rd_status st = RD_OK;
    for (size_t i = 0; i < n;) {
        int k = char_len(w, n, i);
        if ((size_t)k > n - i) k = (int)(n - i);
        RD_TRY_GOTO(sym_add(&v, -1, (int32_t)i, k), st, done);
        i += (size_t)k;
    }
    for (int32_t i = 1; i < v.n; i++) RD_TRY_GOTO(spm_candidate(t, &h, &v, w, i - 1, i), st, done);
    while (h.n > 0) {
        struct cand c = heap_pop(&h);
        struct sym *l = &v.s[c.pos], *r = &v.s[c.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != c.aux) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) v.s[r->next].prev = c.pos;
        RD_TRY_GOTO(spm_candidate(t, &h, &v, w, l->prev, c.pos), st, done);
        RD_TRY_GOTO(spm_candidate(t, &h, &v, w, c.pos, l->next), st, done);
    }
    for (int32_t i = 0; i >= 0 && i < v.n; i = v.s[i].next) {
        const struct sym *s = &v.s[i];
        int32_t id = strmap_get(&t->vocab, w + s->start, (size_t)s->len);
        if (id >= 0) {
            RD_TRY_GOTO(ib_push(out, id), st, done);
            continue;
        }
        for (int32_t j = 0; j < s->len; j++) {
            int32_t b = t->byte_id[(uint8_t)w[s->start + j]];
            if (b < 0) b = t->unk_id;
            if (b >= 0) RD_TRY_GOTO(ib_push(out, b), st, done);
        }
    }
done:
    free(v.s);
    free(h.a);
    return st;
}

/* ---------------------------------------------------------------- pre-tokenizers */

struct part {
    size_t s, e;
    bool match;
};

struct parts {
    struct part *p;
    int n, cap;
};

static rd_status parts_add(struct parts *v, size_t s, size_t e, bool match)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 16;
        struct part *p = realloc(v->p, (size_t)cap * sizeof *p);
        if (!p) return RD_ERR_OOM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (struct part){s, e, match};
    return RD_OK;
}

/* The matches of a regex or literal in s, with the gaps between them, covering all of s. */
static rd_status find_parts(const pcre2_code *re, const char *lit, const char *s, size_t n,
                            struct parts *out)
{
    size_t prev = 0, off = 0;
    rd_status st = RD_OK;
    pcre2_match_data *md = NULL;
    if (re) {
        md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md) return RD_ERR_OOM;
    }
    size_t ll = lit ? strlen(lit) : 0;
    while (off < n) {
        size_t ms, me;
        if (re) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                st = RD_ERR_INTERNAL;
                goto done;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else {
            if (!ll) break;
            const char *f = NULL;
            for (size_t i = off; i + ll <= n; i++)
                if (memcmp(s + i, lit, ll) == 0) {
                    f = s + i;
                    break;
                }
            if (!f) break;
            ms = (size_t)(f - s);
            me = ms + ll;
        }
        if (me == ms) { /* empty match: no piece, step over one character */
            off = me + (size_t)char_len(s, n, me);
            continue;
        }
        if (ms > prev) RD_TRY_GOTO(parts_add(out, prev, ms, false), st, done);
        RD_TRY_GOTO(parts_add(out, ms, me, true), st, done);
        prev = off = me;
    }
    if (prev < n) RD_TRY_GOTO(parts_add(out, prev, n, false), st, done);
done:
    pcre2_match_data_free(md);
    return st;
}

/* Hugging Face's SplitDelimiterBehavior over the parts; adds the kept pieces to out. */
static rd_status split_by(const struct piece *in, struct parts *ps, enum split_behavior b,
                          struct pieces *out)
{
    struct parts keep = {0};
    rd_status st = RD_OK;
    bool prev_match = false;
    if (b == SPLIT_MERGED_NEXT) {
        for (int i = ps->n - 1; i >= 0; i--) {
            struct part p = ps->p[i];
            if (p.match && !prev_match && keep.n) keep.p[keep.n - 1].s = p.s;
            else RD_TRY_GOTO(parts_add(&keep, p.s, p.e, false), st, done);
            prev_match = p.match;
        }
        for (int i = 0; i < keep.n / 2; i++) {
            struct part t = keep.p[i]; keep.p[i] = keep.p[keep.n - 1 - i]; keep.p[keep.n - 1 - i] = t;
        }
    } else {
        for (int i = 0; i < ps->n; i++) {
            struct part p = ps->p[i];
            bool merge = false;
            if (b == SPLIT_CONTIGUOUS) merge = p.match == prev_match && keep.n;
            else if (b == SPLIT_MERGED_PREV) merge = p.match && !prev_match && keep.n;
            if (merge) keep.p[keep.n - 1].e = p.e;
            else RD_TRY_GOTO(parts_add(&keep, p.s, p.e, b == SPLIT_REMOVED && p.match), st, done);
            prev_match = p.match;
        }
    }
    for (int i = 0; i < keep.n; i++) {
        struct part p = keep.p[i];
        if (p.match || p.e == p.s) continue; /* removed, or empty */
        RD_TRY_GOTO(pieces_add(out, in->s + p.s, p.e - p.s, in->at_start && p.s == 0), st, done);
    }
done:
    free(keep.p);
    return st;
}

static rd_status split_piece(const struct piece *in, const pcre2_code *re, const char *lit,
                             bool invert, enum split_behavior b, struct pieces *out)
{
    struct parts ps = {0};
    rd_status st = find_parts(re, lit, in->s, in->n, &ps);
    if (st == RD_OK && invert)
        for (int i = 0; i < ps.n; i++) ps.p[i].match = !ps.p[i].match;
    if (st == RD_OK) st = split_by(in, &ps, b, out);
    free(ps.p);
    return st;
}

rd_status pretok_apply(const struct rd_tokenizer *t, const struct pretok *p, struct pieces *in,
                       struct pieces *out)
{
    (void)t;
    rd_status st = RD_OK;
    struct bytebuf b = {0};
    struct pieces tmp = {0};
    for (int i = 0; i < in->n && st == RD_OK; i++) {
        const struct piece *pc = &in->p[i];
        if (p->kind == PRE_SPLIT) {
            st = split_piece(pc, p->re, p->literal, p->invert, p->behavior, out);
        } else if (p->kind == PRE_BYTELEVEL) {
            b.n = 0;
            if (p->add_prefix_space && (pc->n == 0 || pc->s[0] != ' ')) st = bb_put(&b, " ", 1);
            if (st == RD_OK) st = bb_put(&b, pc->s, pc->n);
            struct piece whole = {b.p, b.n, pc->at_start};
            pieces_free(&tmp);
            if (st == RD_OK) {
                if (p->re) st = split_piece(&whole, p->re, NULL, false, SPLIT_ISOLATED, &tmp);
                else st = pieces_add(&tmp, b.p, b.n, pc->at_start);
            }
            for (int j = 0; j < tmp.n && st == RD_OK; j++) {
                struct bytebuf m = {0};
                st = bb_put(&m, "", 0);
                for (size_t k = 0; k < tmp.p[j].n && st == RD_OK; k++) {
                    char c[4];
                    int l = bytelevel_char((uint8_t)tmp.p[j].s[k], c);
                    st = bb_put(&m, c, (size_t)l);
                }
                if (st == RD_OK && m.n) st = pieces_add(out, m.p, m.n, tmp.p[j].at_start);
                free(m.p);
            }
        } else { /* PRE_METASPACE */
            const char *rep = p->replacement;
            size_t rl = strlen(rep);
            b.n = 0;
            st = bb_put(&b, "", 0);
            for (size_t k = 0; k < pc->n && st == RD_OK; k++)
                st = pc->s[k] == ' ' ? bb_put(&b, rep, rl) : bb_put(&b, pc->s + k, 1);
            bool starts = b.n >= rl && memcmp(b.p, rep, rl) == 0;
            if (st == RD_OK && !starts &&
                (p->scheme == PREPEND_ALWAYS || (p->scheme == PREPEND_FIRST && pc->at_start))) {
                struct bytebuf c = {0};
                st = bb_put(&c, rep, rl);
                if (st == RD_OK) st = bb_put(&c, b.p, b.n);
                free(b.p);
                b = c;
            }
            struct piece whole = {b.p, b.n, pc->at_start};
            if (st == RD_OK) {
                if (p->split) st = split_piece(&whole, NULL, rep, false, SPLIT_MERGED_NEXT, out);
                else if (b.n) st = pieces_add(out, b.p, b.n, pc->at_start);
            }
        }
    }
    free(b.p);
    pieces_free(&tmp);
    return st;
}
