/* Small pieces the tokenizer files share: a string hash map and a token-pair hash map (both
 * open addressing), growable byte / id / piece buffers, strict and lossy UTF-8 handling (the
 * lossy one replaces each maximal invalid subpart by one U+FFFD, as Rust's from_utf8_lossy
 * does, so decode output matches Hugging Face byte for byte) and GPT-2's byte-to-unicode map. */
#include "runtime/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- containers */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

void strmap_free(struct strmap *m)
{
    for (uint32_t i = 0; i < m->cap && m->keys; i++) free((char *)m->keys[i]);
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static rd_status strmap_grow(struct strmap *m)
{
    struct strmap g = {0};
    g.cap = m->cap ? m->cap * 2 : 64;
    g.keys = calloc(g.cap, sizeof *g.keys);
    g.lens = calloc(g.cap, sizeof *g.lens);
    g.vals = calloc(g.cap, sizeof *g.vals);
    if (!g.keys || !g.lens || !g.vals) {
        strmap_free(&g);
        return RD_ERR_OOM;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        uint32_t j = hash_bytes(m->keys[i], m->lens[i]) & (g.cap - 1);
        while (g.keys[j]) j = (j + 1) & (g.cap - 1);
        g.keys[j] = m->keys[i];
        g.lens[j] = m->lens[i];
        g.vals[j] = m->vals[i];
    }
    g.n = m->n;
    free(m->keys);
    free(m->lens);
    free(m->vals);
    *m = g;
    return RD_OK;
}

rd_status strmap_put(struct strmap *m, const char *key, uint32_t len, int32_t val)
{
    if ((m->n + 1) * 2 > m->cap) RD_TRY(strmap_grow(m));
    uint32_t j = hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && memcmp(m->keys[j], key, len) == 0) {
            m->vals[j] = val;
            return RD_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    char *c = malloc((size_t)len + 1);
    if (!c) return RD_ERR_OOM;
    memcpy(c, key, len);
    c[len] = 0;
    m->keys[j] = c;
    m->lens[j] = len;
    m->vals[j] = val;
    m->n++;
    return RD_OK;
}

int32_t strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    uint32_t j = hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && memcmp(m->keys[j], key, len) == 0) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void pairmap_free(struct pairmap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->new_id);
    memset(m, 0, sizeof *m);
}

static uint32_t hash_u64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static rd_status pairmap_grow(struct pairmap *m)
{
    struct pairmap g = {0};
    g.cap = m->cap ? m->cap * 2 : 64;
    g.keys = calloc(g.cap, sizeof *g.keys);
    g.rank = calloc(g.cap, sizeof *g.rank);
    g.new_id = calloc(g.cap, sizeof *g.new_id);
    if (!g.keys || !g.rank || !g.new_id) {
        pairmap_free(&g);
        return RD_ERR_OOM;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        uint32_t j = hash_u64(m->keys[i]) & (g.cap - 1);
        while (g.keys[j]) j = (j + 1) & (g.cap - 1);
        g.keys[j] = m->keys[i];
        g.rank[j] = m->rank[i];
        g.new_id[j] = m->new_id[i];
    }
    g.n = m->n;
    pairmap_free(m);
    *m = g;
    return RD_OK;
}

rd_status pairmap_put(struct pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id)
{
    if ((m->n + 1) * 2 > m->cap) RD_TRY(pairmap_grow(m));
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t j = hash_u64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) return RD_OK; /* the first (best-ranked) merge of a pair wins */
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = k;
    m->rank[j] = rank;
    m->new_id[j] = new_id;
    m->n++;
    return RD_OK;
}

bool pairmap_get(const struct pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *new_id)
{
    if (!m->cap) return false;
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t j = hash_u64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) {
            *rank = m->rank[j];
            *new_id = m->new_id[j];
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

rd_status bb_put(struct bytebuf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return RD_ERR_OOM;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return RD_OK;
}

rd_status ib_push(struct idbuf *b, int32_t id)
{
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        int32_t *p = realloc(b->p, (size_t)cap * sizeof *p);
        if (!p) return RD_ERR_OOM;
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = id;
    return RD_OK;
}

rd_status pieces_add(struct pieces *l, const char *s, size_t n, bool at_start)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        struct piece *p = realloc(l->p, (size_t)cap * sizeof *p);
        if (!p) return RD_ERR_OOM;
        l->p = p;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return RD_ERR_OOM;
    if (n) memcpy(c, s, n);
    c[n] = 0;
    l->p[l->n++] = (struct piece){c, n, at_start};
    return RD_OK;
}

void pieces_free(struct pieces *l)
{
    for (int i = 0; i < l->n; i++) free(l->p[i].s);
    free(l->p);
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------- UTF-8 */

int utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else return -1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -i;
    }
    return need + 1;
}

uint32_t utf8_cp(const uint8_t *s, int k)
{
    if (k == 1) return s[0];
    uint32_t cp = s[0] & (0x7F >> k);
    for (int i = 1; i < k; i++) cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

rd_status utf8_lossy(struct bytebuf *out, const uint8_t *s, size_t n, bool hold, size_t *held)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t i = 0;
    if (held) *held = 0;
    while (i < n) {
        int k = utf8_seq(s + i, n - i);
        if (k > 0) {
            size_t j = i + (size_t)k; /* copy a run of valid sequences at once */
            while (j < n && (k = utf8_seq(s + j, n - j)) > 0) j += (size_t)k;
            RD_TRY(bb_put(out, s + i, j - i));
            i = j;
        } else if (k == 0 && hold) {
            if (held) *held = n - i;
            return RD_OK;
        } else {
            RD_TRY(bb_put(out, fffd, 3));
            i += k == 0 ? n - i : (size_t)-k;
        }
    }
    return RD_OK;
}

bool rd_utf8_valid(const char *s, size_t len, size_t *bad_at)
{
    size_t i = 0;
    while (i < len) {
        int k = utf8_seq((const uint8_t *)s + i, len - i);
        if (k <= 0) {
            if (bad_at) *bad_at = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the other 68 bytes map to
 * U+0100.. in byte order. */
static bool bl_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

int bytelevel_char(uint8_t b, char out[4])
{
    uint32_t cp = b;
    if (!bl_printable(b)) cp = 256 + (b <= 0x20 ? b : b <= 0xA0 ? 33u + (b - 0x7Fu) : 67u);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int bytelevel_byte(uint32_t cp)
{
    if (cp < 256) return bl_printable(cp) ? (int)cp : -1;
    if (cp > 256 + 67) return -1;
    uint32_t n = cp - 256;
    return n <= 32 ? (int)n : n <= 66 ? (int)(0x7F + n - 33) : 0xAD;
}

rd_status replace_all(const char *s, size_t n, const char *from, const char *to,
                             struct bytebuf *out)
{
    size_t fl = strlen(from), tl = strlen(to), i = 0;
    out->n = 0;
    RD_TRY(bb_put(out, "", 0));
    while (i < n) {
        if (fl && i + fl <= n && memcmp(s + i, from, fl) == 0) {
            RD_TRY(bb_put(out, to, tl));
            i += fl;
        } else {
            RD_TRY(bb_put(out, s + i, 1));
            i++;
        }
    }
    return RD_OK;
}

