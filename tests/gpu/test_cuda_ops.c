/* Every op of the cuda backend against the cpu backend's op (ggml's test-backend-ops idea):
 * fresh random inputs, identical on both sides (rounded to the dtype first, so both see the
 * same values), cuda outputs poisoned with NaN before each call, relative L2 error bounds of
 * 1e-5 for fp32 and 2e-2 for bf16/fp16. rope_attention runs decode (one token per sequence,
 * several sequences of different lengths, long contexts for split-K, a few tokens per
 * sequence; head dims up to 256; 1 to 12 query heads per kv head) and prefill (flat batches of
 * several sequences, odd lengths, chunked prefill over earlier cache entries, hundreds of
 * tokens over many blocks) cases with GQA/MQA, partial rotary and both rope styles, each
 * through the automatic path and forced through the decode kernel (T <= 64), the decode
 * kernel with forced split-K (3 splits, and 40 short ones for long contexts), and the prefill
 * kernel (on tensor cores for bf16/fp16 where the rows allow: several key tiles, causal
 * skipping, interleaved sequences, head dims 32 to 256). The KV cache is checked too: unused
 * entries hold NaN on both sides and must still hold NaN afterwards. Attention sinks (window
 * > 0): a wrapped ring with S = 4, W = 16 at several ring phases, several tokens past the wrap
 * in one call, S = 0 (sliding window), and W >= length against the cpu's plain attention.
 * topk (sampling candidates) must give the cpu's ids and values exactly, ties included, also
 * over a whole 128k vocabulary (k = 1 and 50: many blocks, then a merge). rmsnorm runs with one
 * row split over several blocks and with rows that are not 16-byte multiples.
 *
 * Skips (exit 77) without CUDA. RD_TEST_QUICK=1 runs a small subset (for compute-sanitizer).
 * Sets RD_DEBUG_SYNC=1 (unless set) so a fault is reported by the op that caused it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "kernels/ops.h"
#include "test_util.h"

#ifndef RD_WITH_CUDA
int main(void)
{
    printf("SKIP: no CUDA device (built without CUDA)\n");
    return RD_TEST_SKIP;
}
#else

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static int g_quick;

static float frand(void) /* uniform in [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static int irand(int n) { return (int)((frand() + 1.0f) * 0.5f * n) % n; }

static float *rand_vec(size_t n, float scale, float offset)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * frand();
    return x;
}

/* the values a tensor of dtype dt holds for x */
static void round_dt(float *x, size_t n, enum rd_dtype dt)
{
    if (dt == RD_DTYPE_F32) return;
    uint16_t *h = malloc(n * sizeof(uint16_t));
    rd_convert_from_f32(h, x, dt, n);
    rd_convert_to_f32(x, h, dt, n);
    free(h);
}

struct pair {
    struct rd_backend *cpu, *gpu;
    enum rd_dtype dt;
    double tol;
};

/* n elements on both backends from the same host values (NULL: NaN poison) */
static void both_f32(struct pair *P, const float *h, size_t n, void **c, void **g)
{
    float *tmp = NULL;
    if (!h) {
        tmp = malloc((n ? n : 1) * sizeof(float));
        for (size_t i = 0; i < n; i++) tmp[i] = NAN;
        h = tmp;
    }
    CHECK(P->cpu->ops->alloc(P->cpu, n * 4, c) == RD_OK);
    CHECK(P->gpu->ops->alloc(P->gpu, n * rd_dtype_size(P->dt), g) == RD_OK);
    CHECK(P->cpu->ops->upload_f32(P->cpu, *c, h, n) == RD_OK);
    CHECK(P->gpu->ops->upload_f32(P->gpu, *g, h, n) == RD_OK);
    free(tmp);
}

static void both_raw(struct pair *P, const void *h, size_t bytes, void **c, void **g)
{
    CHECK(P->cpu->ops->alloc(P->cpu, bytes, c) == RD_OK);
    CHECK(P->gpu->ops->alloc(P->gpu, bytes, g) == RD_OK);
    CHECK(P->cpu->ops->upload(P->cpu, *c, h, bytes) == RD_OK);
    CHECK(P->gpu->ops->upload(P->gpu, *g, h, bytes) == RD_OK);
}

static void both_free(struct pair *P, void *c, void *g)
{
    P->cpu->ops->free(P->cpu, c);
    P->gpu->ops->free(P->gpu, g);
}

/* Compares n elements; entries that are NaN on the cpu side (never written there) must be NaN
 * on the cuda side too. Returns the relative L2 error over the others. */
static double compare(struct pair *P, const void *c, const void *g, size_t n, const char *what)
{
    float *hc = malloc(n * sizeof(float)), *hg = malloc(n * sizeof(float));
    CHECK(P->cpu->ops->download_f32(P->cpu, hc, c, n) == RD_OK);
    CHECK(P->gpu->ops->download_f32(P->gpu, hg, g, n) == RD_OK);
    double num = 0, den = 0, max_abs = 0;
    size_t bad_nan = 0, first_bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(hc[i])) {
            if (!isnan(hg[i])) bad_nan++;
            continue;
        }
        if (!isfinite(hg[i])) {
            if (first_bad == (size_t)-1) first_bad = i;
            bad_nan++;
            continue;
        }
        double d = (double)hg[i] - hc[i];
        num += d * d;
        den += (double)hc[i] * hc[i];
        if (fabs(d) > max_abs) max_abs = fabs(d);
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    CHECK_MSG(bad_nan == 0 && rel <= P->tol,
              "%s [%s]: rel L2 %.3g (tol %.1g), max abs %.3g, %zu non-finite/unexpected "
              "(first at %zu)",
              what, rd_dtype_name(P->dt), rel, P->tol, max_abs, bad_nan,
              first_bad == (size_t)-1 ? (size_t)0 : first_bad);
    free(hc);
    free(hg);
    return rel;
}

/* ---- simple ops ---- */

static void test_memory(struct pair *P)
{
    const size_t n = 1003;
    float *x = rand_vec(n, 1, 0), *y = malloc(n * sizeof(float));
    round_dt(x, n, P->dt);
    struct rd_backend *g = P->gpu;
    void *a = NULL, *b = NULL;
    size_t es = rd_dtype_size(P->dt);
    CHECK(g->ops->alloc(g, n * es, &a) == RD_OK && g->ops->alloc(g, n * es, &b) == RD_OK);
    CHECK(g->ops->upload_f32(g, a, x, n) == RD_OK);
    CHECK(g->ops->copy(g, b, a, n * es) == RD_OK);
    CHECK(g->ops->download_f32(g, y, b, n) == RD_OK);
    CHECK_MSG(memcmp(x, y, n * sizeof(float)) == 0, "upload_f32/copy/download_f32 round trip [%s]",
              rd_dtype_name(P->dt));
    CHECK(g->ops->zero(g, b, n * es) == RD_OK);
    CHECK(g->ops->download_f32(g, y, b, n) == RD_OK);
    int zeros = 1;
    for (size_t i = 0; i < n; i++) zeros &= y[i] == 0.0f;
    CHECK_MSG(zeros, "zero [%s]", rd_dtype_name(P->dt));
    CHECK(g->ops->sync(g) == RD_OK);
    CHECK(g->ops->stream(g) != NULL);
    /* upload_async: the host array is reused at once; 300 copies of 4-40 KB wrap the staging
     * ring several times (the emulation checks that no pending copy's source is rewritten),
     * and one copy larger than the ring falls back to a plain upload */
    if (g->ops->upload_async) {
        const size_t big = (size_t)3 << 18; /* floats: 3 MiB */
        float *src = malloc(big * sizeof(float)), *back = malloc(big * sizeof(float));
        void *dst = NULL;
        CHECK(g->ops->alloc(g, big * sizeof(float), &dst) == RD_OK);
        int ok = 1;
        for (int i = 0; i < 300 && ok; i++) {
            const size_t n = 1000 + (size_t)(i % 10) * 1000, off = (size_t)(i % 7) * 50000;
            for (size_t j = 0; j < n; j++) src[j] = (float)(i * 7 + (int)j);
            CHECK(g->ops->upload_async(g, (float *)dst + off, src, n * sizeof(float)) == RD_OK);
            if (i % 50 == 49) {
                CHECK(g->ops->download(g, back, (float *)dst + off, n * sizeof(float)) == RD_OK);
                ok = memcmp(back, src, n * sizeof(float)) == 0;
            }
        }
        CHECK_MSG(ok, "upload_async: what arrived differs from what was sent");
        for (size_t j = 0; j < big; j++) src[j] = (float)(j % 1000);
        CHECK(g->ops->upload_async(g, dst, src, big * sizeof(float)) == RD_OK);
        CHECK(g->ops->download(g, back, dst, big * sizeof(float)) == RD_OK);
        CHECK_MSG(memcmp(back, src, big * sizeof(float)) == 0, "upload_async larger than the ring");
        g->ops->free(g, dst);
        free(src), free(back);
    }
    /* an impossible allocation reports OOM and leaves the backend usable */
    void *huge = NULL;
    CHECK(g->ops->alloc(g, (size_t)1 << 50, &huge) == RD_ERR_OOM && huge == NULL);
    CHECK(g->ops->download_f32(g, y, a, n) == RD_OK && memcmp(x, y, n * sizeof(float)) == 0);
    g->ops->free(g, a);
    g->ops->free(g, b);
    g->ops->free(g, NULL);
    free(x);
    free(y);
}

static void test_embed(struct pair *P, int V, int D, int T)
{
    float *table = rand_vec((size_t)V * D, 1, 0);
    round_dt(table, (size_t)V * D, P->dt);
    int32_t *ids = malloc(T * sizeof(int32_t));
    for (int t = 0; t < T; t++) ids[t] = irand(V);
    void *tc, *tg, *ic, *ig, *oc, *og;
    both_f32(P, table, (size_t)V * D, &tc, &tg);
    both_raw(P, ids, T * sizeof(int32_t), &ic, &ig);
    both_f32(P, NULL, (size_t)T * D, &oc, &og);
    CHECK(P->cpu->ops->embed(P->cpu, oc, tc, ic, T, D) == RD_OK);
    CHECK(P->gpu->ops->embed(P->gpu, og, tg, ig, T, D) == RD_OK);
    char what[64];
    snprintf(what, sizeof what, "embed V=%d D=%d T=%d", V, D, T);
    compare(P, oc, og, (size_t)T * D, what);
    both_free(P, tc, tg), both_free(P, ic, ig), both_free(P, oc, og);
    free(table), free(ids);
}

static void test_norms(struct pair *P, int T, int D)
{
    const size_t n = (size_t)T * D;
    float *x = rand_vec(n, 2, 0), *dl = rand_vec(n, 1, 0), *w = rand_vec(D, 0.5f, 1.0f);
    round_dt(x, n, P->dt), round_dt(dl, n, P->dt), round_dt(w, D, P->dt);
    void *xc, *xg, *dc, *dg, *wc, *wg, *oc, *og;
    both_f32(P, x, n, &xc, &xg);
    both_f32(P, dl, n, &dc, &dg);
    both_f32(P, w, D, &wc, &wg);
    both_f32(P, NULL, n, &oc, &og);
    char what[64];
    CHECK(P->cpu->ops->rmsnorm(P->cpu, oc, xc, wc, T, D, 1e-5f) == RD_OK);
    CHECK(P->gpu->ops->rmsnorm(P->gpu, og, xg, wg, T, D, 1e-5f) == RD_OK);
    snprintf(what, sizeof what, "rmsnorm T=%d D=%d", T, D);
    compare(P, oc, og, n, what);
    both_free(P, oc, og);
    both_f32(P, NULL, n, &oc, &og);
    CHECK(P->cpu->ops->add_rmsnorm(P->cpu, oc, xc, dc, wc, T, D, 1e-6f) == RD_OK);
    CHECK(P->gpu->ops->add_rmsnorm(P->gpu, og, xg, dg, wg, T, D, 1e-6f) == RD_OK);
    snprintf(what, sizeof what, "add_rmsnorm out T=%d D=%d", T, D);
    compare(P, oc, og, n, what);
    snprintf(what, sizeof what, "add_rmsnorm resid T=%d D=%d", T, D);
    compare(P, xc, xg, n, what);
    both_free(P, xc, xg), both_free(P, dc, dg), both_free(P, wc, wg), both_free(P, oc, og);
    free(x), free(dl), free(w);
}

static void test_matmul(struct pair *P, int T, int N, int K)
{
    float *x = rand_vec((size_t)T * K, 1, 0), *w = rand_vec((size_t)N * K, 0.1f, 0);
    round_dt(x, (size_t)T * K, P->dt), round_dt(w, (size_t)N * K, P->dt);
    void *xc, *xg, *wc, *wg, *yc, *yg;
    both_f32(P, x, (size_t)T * K, &xc, &xg);
    both_f32(P, w, (size_t)N * K, &wc, &wg);
    both_f32(P, NULL, (size_t)T * N, &yc, &yg);
    CHECK(P->cpu->ops->matmul(P->cpu, yc, xc, wc, T, N, K) == RD_OK);
    CHECK(P->gpu->ops->matmul(P->gpu, yg, xg, wg, T, N, K) == RD_OK);
    char what[64];
    snprintf(what, sizeof what, "matmul T=%d N=%d K=%d", T, N, K);
    compare(P, yc, yg, (size_t)T * N, what);
    both_free(P, xc, xg), both_free(P, wc, wg), both_free(P, yc, yg);
    free(x), free(w);
}

static void test_swiglu(struct pair *P, int T, int F)
{
    const size_t n = (size_t)T * 2 * F;
    float *gu = rand_vec(n, 4, 0);
    round_dt(gu, n, P->dt);
    void *gc, *gg, *oc, *og;
    both_f32(P, gu, n, &gc, &gg);
    both_f32(P, NULL, (size_t)T * F, &oc, &og);
    CHECK(P->cpu->ops->swiglu(P->cpu, oc, gc, T, F) == RD_OK);
    CHECK(P->gpu->ops->swiglu(P->gpu, og, gg, T, F) == RD_OK);
    char what[64];
    snprintf(what, sizeof what, "swiglu T=%d F=%d", T, F);
    compare(P, oc, og, (size_t)T * F, what);
    both_free(P, gc, gg), both_free(P, oc, og);
    free(gu);
}

/* topk: ids and values must match the cpu op exactly (both see the same dtype-rounded values);
 * few_values draws from 5 values so ties (broken to the smaller id) are everywhere */
static void test_topk(struct pair *P, int T, int V, int k, int offset, int few_values)
{
    const size_t n = (size_t)T * V;
    float *x = rand_vec(n, 8, 0);
    if (few_values)
        for (size_t i = 0; i < n; i++) x[i] = (float)irand(5) * 0.25f;
    round_dt(x, n, P->dt);
    if (n > 3) x[n / 2] = NAN, x[n / 3] = -INFINITY; /* NaN counts as -inf */
    void *xc, *xg;
    both_f32(P, x, n, &xc, &xg);
    float *vc = malloc((size_t)T * k * 4), *vg = malloc((size_t)T * k * 4);
    int32_t *ic = malloc((size_t)T * k * 4), *ig = malloc((size_t)T * k * 4);
    CHECK(P->cpu->ops->topk(P->cpu, vc, ic, xc, T, V, k, offset) == RD_OK);
    for (size_t i = 0; i < (size_t)T * k; i++) vg[i] = 12345.0f, ig[i] = -7;
    rd_status st = P->gpu->ops->topk(P->gpu, vg, ig, xg, T, V, k, offset);
    CHECK_MSG(st == RD_OK, "topk T=%d V=%d k=%d: %s", T, V, k, rd_status_str(st));
    int bad = 0;
    for (size_t i = 0; i < (size_t)T * k; i++) {
        if (vc[i] == vg[i] && ic[i] == ig[i]) continue;
        if (bad++ < 3)
            fprintf(stderr, "  topk T=%d V=%d k=%d [%s] row %zu rank %zu: cuda (%g, %d) cpu (%g, %d)\n",
                    T, V, k, rd_dtype_name(P->dt), i / k, i % k, vg[i], ig[i], vc[i], ic[i]);
    }
    CHECK_MSG(bad == 0, "topk T=%d V=%d k=%d few_values=%d [%s]: %d entries differ", T, V, k,
              few_values, rd_dtype_name(P->dt), bad);
    both_free(P, xc, xg);
    free(x), free(vc), free(vg), free(ic), free(ig);
}

/* ---- rope_attention ---- */

#define MAX_SEQS 8

struct attn_case {
    const char *name;
    int H, Hkv, Dh, rotary_dim;
    enum rd_rope_style style;
    int block_size;
    float attention_factor;
    int n_seqs;
    int ctx[MAX_SEQS]; /* entries already in the cache */
    int n[MAX_SEQS];   /* new tokens of this call */
    int interleave;    /* tokens round-robin over sequences instead of one sequence after another */
    /* attention sinks (window > 0): ctx[s] counts the tokens the sequence has seen, which go
     * to cache entries as runtime/generate.c places them (the first W in order, then the ring
     * [sinks, W) with the query at position W - 1); keys in the cache are unrotated */
    int sinks, window;
    int vs_plain; /* the cpu side runs plain attention (window 0) instead: W >= length only */
};

/* where token i of a sequence goes with sinks (runtime/generate.c's placement) */
static void place_window(int S, int W, int i, int32_t *slot, int32_t *pos, int32_t *nctx)
{
    if (i < W) {
        *slot = i, *pos = i, *nctx = i + 1;
        return;
    }
    *slot = S + (i - S) % (W - S);
    *pos = W - 1;
    *nctx = W;
}

static void run_attn(struct pair *P, const struct attn_case *C, const char *path, int splits)
{
    const int H = C->H, Hkv = C->Hkv, Dh = C->Dh, S = C->n_seqs, B = C->block_size;
    const int W = C->window;
    int T = 0, max_ctx = 0, max_blocks = 0, n_blocks = 0;
    int pos_off[MAX_SEQS], entries[MAX_SEQS], filled[MAX_SEQS];
    for (int s = 0; s < S; s++) {
        T += C->n[s];
        int total = C->ctx[s] + C->n[s];
        /* cache entries the sequence uses, and those holding earlier tokens */
        entries[s] = W > 0 && total > W ? W : total;
        filled[s] = W > 0 && C->ctx[s] > W ? W : C->ctx[s];
        if (entries[s] > max_ctx) max_ctx = entries[s];
        int nb = (entries[s] + B - 1) / B;
        if (nb + 1 > max_blocks) max_blocks = nb + 1;
        n_blocks += nb;
        pos_off[s] = W > 0 ? 0 : irand(4); /* positions need not equal slots (not with sinks) */
    }
    n_blocks += 3; /* spare blocks nobody uses: stay NaN */

    /* tokens: (seq, slot) in the call's order */
    int32_t *pos = malloc(T * 4), *seq = malloc(T * 4), *slot = malloc(T * 4), *nctx = malloc(T * 4);
    int done[MAX_SEQS] = {0}, t = 0;
    while (t < T) {
        for (int s = 0; s < S; s++) {
            int take = C->interleave ? 1 : C->n[s];
            for (int k = 0; k < take && done[s] < C->n[s]; k++, done[s]++, t++) {
                seq[t] = s;
                if (W > 0) {
                    place_window(C->sinks, W, C->ctx[s] + done[s], &slot[t], &pos[t], &nctx[t]);
                    continue;
                }
                slot[t] = C->ctx[s] + done[s];
                pos[t] = slot[t] + pos_off[s];
                nctx[t] = slot[t] + 1;
            }
        }
    }
    /* block table: a random permutation of the physical blocks */
    int32_t *perm = malloc(n_blocks * 4), *table = malloc((size_t)S * max_blocks * 4);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = irand(i + 1), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    int next = 0;
    for (int s = 0; s < S; s++) {
        int nb = (entries[s] + B - 1) / B;
        for (int b = 0; b < max_blocks; b++) table[s * max_blocks + b] = b < nb ? perm[next++] : -1;
    }
    /* caches: earlier entries random, the rest NaN */
    const size_t row = (size_t)Hkv * Dh, cache_n = (size_t)n_blocks * B * row;
    float *kcache = malloc(cache_n * 4), *vcache = malloc(cache_n * 4);
    for (size_t i = 0; i < cache_n; i++) kcache[i] = vcache[i] = NAN;
    for (int s = 0; s < S; s++)
        for (int j = 0; j < filled[s]; j++) {
            size_t r = (size_t)table[s * max_blocks + j / B] * B + j % B;
            for (size_t e = 0; e < row; e++) kcache[r * row + e] = frand(), vcache[r * row + e] = frand();
        }
    round_dt(kcache, cache_n, P->dt), round_dt(vcache, cache_n, P->dt);
    const size_t qkv_n = (size_t)T * (H + 2 * Hkv) * Dh;
    float *qkv = rand_vec(qkv_n, 1.5f, 0);
    round_dt(qkv, qkv_n, P->dt);
    float inv_freq[RD_MAX_ROPE_PAIRS] = {0};
    for (int i = 0; i < C->rotary_dim / 2; i++)
        inv_freq[i] = (float)(1.0 / pow(10000.0, 2.0 * i / C->rotary_dim));

    void *qc, *qg, *oc, *og, *kc, *kg, *vc, *vg, *fc, *fg;
    void *pc, *pg, *sc, *sg, *lc, *lg, *nc, *ng, *bc, *bg;
    both_f32(P, qkv, qkv_n, &qc, &qg);
    both_f32(P, NULL, (size_t)T * H * Dh, &oc, &og);
    both_f32(P, kcache, cache_n, &kc, &kg);
    if (C->vs_plain) { /* the plain cpu cache holds the earlier keys rotated at their entry */
        float *krot = malloc(cache_n * 4);
        memcpy(krot, kcache, cache_n * 4);
        for (int s = 0; s < S; s++)
            for (int j = 0; j < filled[s]; j++) {
                size_t r = (size_t)table[s * max_blocks + j / B] * B + j % B;
                for (int kh = 0; kh < Hkv; kh++)
                    rd_rope_rotate_ref(krot + r * row + (size_t)kh * Dh, Dh, C->style, j, inv_freq,
                                       C->rotary_dim / 2, C->attention_factor);
            }
        CHECK(P->cpu->ops->upload_f32(P->cpu, kc, krot, cache_n) == RD_OK);
        free(krot);
    }
    both_f32(P, vcache, cache_n, &vc, &vg);
    both_raw(P, inv_freq, (C->rotary_dim / 2 + 1) * sizeof(float), &fc, &fg);
    both_raw(P, pos, T * 4, &pc, &pg);
    both_raw(P, seq, T * 4, &sc, &sg);
    both_raw(P, slot, T * 4, &lc, &lg);
    both_raw(P, nctx, T * 4, &nc, &ng);
    both_raw(P, table, (size_t)S * max_blocks * 4, &bc, &bg);

    struct rd_attn_params a = {0};
    a.T = T, a.H = H, a.Hkv = Hkv, a.Dh = Dh, a.rotary_dim = C->rotary_dim, a.style = C->style;
    a.attention_factor = C->attention_factor, a.scale = 1.0f / sqrtf((float)Dh);
    a.max_blocks = max_blocks, a.block_size = B, a.max_ctx = max_ctx;
    a.sink_tokens = C->sinks, a.window = W;
    struct rd_attn_params ac = a, ag = a;
    if (C->vs_plain) ac.sink_tokens = 0, ac.window = 0;
    ac.inv_freq_d = fc, ac.qkv_d = qc, ac.out_d = oc, ac.pos_d = pc, ac.seq_d = sc;
    ac.slot_d = lc, ac.n_ctx_d = nc, ac.block_table_d = bc, ac.k_cache_d = kc, ac.v_cache_d = vc;
    ag.inv_freq_d = fg, ag.qkv_d = qg, ag.out_d = og, ag.pos_d = pg, ag.seq_d = sg;
    ag.slot_d = lg, ag.n_ctx_d = ng, ag.block_table_d = bg, ag.k_cache_d = kg, ag.v_cache_d = vg;

    setenv("RD_ATTN_PATH", path, 1);
    char sp[16];
    snprintf(sp, sizeof sp, "%d", splits);
    setenv("RD_ATTN_SPLITS", sp, 1);
    CHECK(P->cpu->ops->rope_attention(P->cpu, &ac) == RD_OK);
    rd_status st = P->gpu->ops->rope_attention(P->gpu, &ag);
    CHECK_MSG(st == RD_OK, "rope_attention %s: %s", C->name, rd_status_str(st));
    unsetenv("RD_ATTN_PATH");
    unsetenv("RD_ATTN_SPLITS");

    char what[160];
    snprintf(what, sizeof what, "rope_attention %s (T=%d, path %s, splits %d) out", C->name, T,
             path, splits);
    compare(P, oc, og, (size_t)T * H * Dh, what);
    snprintf(what, sizeof what, "rope_attention %s (path %s) k cache", C->name, path);
    if (!C->vs_plain) compare(P, kc, kg, cache_n, what); /* rotated vs unrotated by design */
    snprintf(what, sizeof what, "rope_attention %s (path %s) v cache", C->name, path);
    compare(P, vc, vg, cache_n, what);

    both_free(P, qc, qg), both_free(P, oc, og), both_free(P, kc, kg), both_free(P, vc, vg);
    both_free(P, fc, fg), both_free(P, pc, pg), both_free(P, sc, sg), both_free(P, lc, lg);
    both_free(P, nc, ng), both_free(P, bc, bg);
    free(pos), free(seq), free(slot), free(nctx), free(perm), free(table);
    free(kcache), free(vcache), free(qkv);
}

static const struct attn_case k_cases[] = {
    /* decode: one token per sequence, different lengths */
    {"decode mha", 4, 4, 64, 64, RD_ROPE_NEOX, 16, 1.0f, 4, {37, 5, 100, 0}, {1, 1, 1, 1}, 1, 0, 0, 0},
    {"decode gqa4 gptj", 8, 2, 128, 128, RD_ROPE_GPTJ, 16, 1.0f, 5, {1, 17, 63, 64, 200},
     {1, 1, 1, 1, 1}, 1, 0, 0, 0},
    {"decode mqa partial", 8, 1, 64, 32, RD_ROPE_NEOX, 8, 1.0f, 3, {9, 40, 2}, {1, 1, 1}, 1, 0, 0, 0},
    {"decode gqa12 spec", 12, 1, 64, 64, RD_ROPE_NEOX, 16, 1.1f, 3, {30, 7, 55}, {1, 3, 2}, 1, 0, 0, 0},
    /* decode with Dh > 128 (8 output dims per lane) and 3, 5, 6, 7 query heads per kv head */
    {"decode dh256 gqa3", 6, 2, 256, 256, RD_ROPE_NEOX, 16, 1.0f, 3, {40, 300, 7}, {1, 1, 1}, 1,
     0, 0, 0},
    {"decode dh160 gqa5 gptj partial", 5, 1, 160, 80, RD_ROPE_GPTJ, 8, 1.0f, 2, {20, 90}, {1, 2},
     1, 0, 0, 0},
    {"decode gqa6", 12, 2, 64, 64, RD_ROPE_NEOX, 16, 1.0f, 3, {33, 70, 5}, {1, 1, 1}, 1, 0, 0, 0},
    {"decode gqa7 long", 7, 1, 128, 128, RD_ROPE_NEOX, 32, 1.0f, 1, {700}, {1}, 0, 0, 0, 0},
    /* head dim 32 (4 or 8 lanes per key row), 8 query heads per kv head; 2 per kv head */
    {"decode dh32 gqa8", 8, 1, 32, 32, RD_ROPE_NEOX, 16, 1.0f, 3, {70, 3, 129}, {1, 1, 1}, 1, 0, 0,
     0},
    {"decode gqa2 gptj", 4, 2, 128, 128, RD_ROPE_GPTJ, 16, 1.0f, 4, {300, 129, 64, 0},
     {1, 1, 1, 1}, 1, 0, 0, 0},
    /* long contexts: split-K (auto) */
    {"decode long", 8, 2, 128, 128, RD_ROPE_NEOX, 64, 1.0f, 3, {3000, 1500, 70}, {1, 1, 1}, 1, 0, 0, 0},
    {"decode long dh64", 16, 16, 64, 64, RD_ROPE_GPTJ, 32, 1.0f, 1, {4100}, {1}, 0, 0, 0, 0},
    /* prefill */
    {"prefill one seq odd", 4, 2, 64, 64, RD_ROPE_NEOX, 16, 1.0f, 1, {0}, {77}, 0, 0, 0, 0},
    {"prefill flat 3 seqs dh80", 6, 2, 80, 40, RD_ROPE_GPTJ, 16, 1.0f, 3, {0, 0, 0}, {45, 20, 33},
     0, 0, 0, 0},
    {"prefill chunked", 8, 8, 32, 32, RD_ROPE_NEOX, 16, 1.0f, 2, {50, 17}, {30, 40}, 0, 0, 0, 0},
    {"prefill dh256 partial", 4, 2, 256, 64, RD_ROPE_NEOX, 16, 1.2f, 2, {10, 0}, {33, 40}, 0, 0, 0, 0},
    {"mixed small odd block", 4, 2, 96, 96, RD_ROPE_NEOX, 5, 1.0f, 3, {3, 0, 20}, {7, 5, 2}, 1, 0, 0, 0},
    {"dh36 unaligned", 2, 1, 36, 36, RD_ROPE_GPTJ, 7, 1.0f, 2, {12, 3}, {9, 4}, 0, 0, 0, 0},
    /* prefill on tensor cores (bf16/fp16): 8 heads per kv head over several key tiles with
     * causal skipping; tokens of two sequences interleaved, so a block of rows holds both */
    {"prefill gqa8 tiles", 8, 1, 128, 128, RD_ROPE_NEOX, 16, 1.0f, 1, {0}, {150}, 0, 0, 0, 0},
    {"prefill interleaved dh64", 4, 2, 64, 64, RD_ROPE_GPTJ, 16, 1.0f, 2, {40, 0}, {70, 90}, 1, 0,
     0, 0},
    {"prefill mqa chunk", 8, 1, 64, 64, RD_ROPE_NEOX, 16, 1.0f, 2, {100, 33}, {50, 60}, 0, 0, 0, 0},
    /* prefill over many blocks of query rows (T well above 100, no GQA grouping) */
    {"prefill many blocks", 4, 4, 64, 64, RD_ROPE_NEOX, 16, 1.0f, 2, {0, 10}, {180, 150}, 0, 0, 0,
     0},
    /* attention sinks: ctx = tokens seen so far; S=4, W=16 with the ring wrapped (decode, one
     * token per sequence, at several ring phases) */
    {"sinks S4 W16 wrapped", 8, 2, 64, 64, RD_ROPE_NEOX, 4, 1.0f, 4, {16, 20, 37, 100},
     {1, 1, 1, 1}, 1, 4, 16, 0},
    {"sinks S4 W16 wrapped gptj partial", 4, 1, 96, 48, RD_ROPE_GPTJ, 5, 1.1f, 3, {29, 16, 61},
     {1, 1, 1}, 1, 4, 16, 0},
    /* several tokens of one sequence past the wrap in one call (the cpu contract: all stored,
     * then read) and a pre-wrap prefill chunk up to the window, in one flat batch */
    {"sinks S4 W16 multi", 4, 2, 64, 64, RD_ROPE_NEOX, 4, 1.0f, 2, {40, 3}, {3, 13}, 0, 4, 16, 0},
    /* S = 0: a plain sliding window */
    {"window S0 W24 wrapped", 8, 8, 128, 128, RD_ROPE_NEOX, 8, 1.0f, 3, {24, 50, 23}, {1, 1, 1},
     1, 0, 24, 0},
    {"window S0 W300 long", 8, 2, 128, 128, RD_ROPE_GPTJ, 16, 1.0f, 2, {1000, 299}, {1, 1}, 1,
     0, 300, 0},
    /* W >= length: equals plain attention (the cpu side runs without a window) */
    {"sinks W>=len = plain decode", 8, 2, 64, 64, RD_ROPE_NEOX, 16, 1.0f, 3, {10, 40, 0},
     {1, 2, 1}, 1, 4, 64, 1},
    {"sinks W>=len = plain prefill", 4, 2, 80, 80, RD_ROPE_NEOX, 16, 1.0f, 2, {0, 20}, {70, 30},
     0, 4, 128, 1},
};

static void test_attention(struct pair *P)
{
    const int n_cases = (int)(sizeof k_cases / sizeof k_cases[0]);
    for (int i = 0; i < n_cases; i++) {
        const struct attn_case *C = &k_cases[i];
        /* quick: every third case, and the big heads (prefill over 48 KB of shared memory) */
        if (g_quick && i % 3 != 0 && C->Dh <= 128) continue;
        int T = 0;
        for (int s = 0; s < C->n_seqs; s++) T += C->n[s];
        run_attn(P, C, "auto", 0);
        int max_ctx = 0;
        for (int s = 0; s < C->n_seqs; s++)
            if (C->ctx[s] + C->n[s] > max_ctx) max_ctx = C->ctx[s] + C->n[s];
        if (T <= 64) {
            run_attn(P, C, "decode", 1);
            run_attn(P, C, "decode", 3);
            if (max_ctx >= 1000 && !g_quick) run_attn(P, C, "decode", 40); /* short splits */
        }
        if (!g_quick || T > 64) run_attn(P, C, "prefill", 0);
    }
}

int main(void)
{
    setenv("RD_DEBUG_SYNC", "1", 0);
    g_quick = getenv("RD_TEST_QUICK") && atoi(getenv("RD_TEST_QUICK"));
    if (rd_backend_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        return RD_TEST_SKIP;
    }
    struct rd_backend_opts co = {.dtype = RD_DTYPE_F32, .device = -1};
    struct pair P;
    CHECK(rd_backend_cpu_create(&co, &P.cpu) == RD_OK);
    const enum rd_dtype dts[] = {RD_DTYPE_F32, RD_DTYPE_BF16, RD_DTYPE_F16};
    for (int di = 0; di < 3; di++) {
        P.dt = dts[di];
        P.tol = P.dt == RD_DTYPE_F32 ? 1e-5 : 2e-2;
        if (g_quick && P.dt == RD_DTYPE_F16) continue;
        struct rd_backend_opts go = {.dtype = P.dt, .device = 0};
        rd_status st = rd_backend_cuda_create(&go, &P.gpu);
        CHECK_MSG(st == RD_OK, "rd_backend_cuda_create(%s): %s", rd_dtype_name(P.dt),
                  rd_status_str(st));
        if (st != RD_OK) continue;
        printf("dtype %s\n", rd_dtype_name(P.dt));
        test_memory(&P);
        test_embed(&P, 50, 72, 7);
        test_embed(&P, 300, 4096, 3);
        test_norms(&P, 5, 4096);
        test_norms(&P, 3, 100);
        test_norms(&P, 1, 8192);  /* one row over several blocks */
        test_norms(&P, 2, 1536);
        test_norms(&P, 1, 1000);  /* rows not in 16-byte pieces */
        test_matmul(&P, 1, 256, 512);
        test_matmul(&P, 7, 300, 129);
        if (!g_quick) test_matmul(&P, 33, 64, 1024);
        test_swiglu(&P, 3, 1000);
        test_swiglu(&P, 17, 37);
        test_topk(&P, 3, 32000, 1, 0, 0);       /* greedy: argmax */
        test_topk(&P, 2, 128256 / 4, 50, 96192, 0);
        test_topk(&P, 5, 1000, 64, 17, 1);      /* ties everywhere */
        test_topk(&P, 2, 40, 64, 0, 0);         /* V < k: padded with (-inf, -1) */
        test_topk(&P, 2, 128256, 1, 0, 0);      /* a whole vocabulary: 32 blocks, then a merge */
        test_topk(&P, 1, 128256, 50, 0, 0);
        test_topk(&P, 2, 20001, 64, 3, 1);      /* ties across blocks, odd length */
        if (!g_quick) test_topk(&P, 3000, 300, 64, 0, 0); /* more rows than the workspace */
        test_attention(&P);
        rd_backend_free(P.gpu);
        fflush(stdout);
    }
    rd_backend_free(P.cpu);
    return rd_test_finish("test_cuda_ops");
}
#endif
