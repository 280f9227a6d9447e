/* The cpu backend's fused RoPE attention (the op's contract is struct rd_attn_params in
 * kernels/ops.h).
 *
 * 1. cos/sin of every token's rope position, once per call (not per head);
 * 2. k rotated (unless sinks keep keys unrotated) and v stored at their cache rows;
 * 3. attention in tiles. The call's tokens are cut into query tiles, runs of consecutive
 *    tokens of one sequence of at most QT_ROWS / group tokens (group = query heads per kv
 *    head); a work item is a few consecutive tiles of one sequence with one kv head, and the
 *    thread team takes the items. An item stacks the rotated q rows of its heads and tokens,
 *    then walks the sequence's cache in key tiles of KT entries, each gathered once into
 *    contiguous K, V [KT, Dh] for all the item's query tiles that reach it. Per query tile an
 *    online softmax: S = Q K^T and O += P V are BLAS GEMMs (GEMVs for one row), so a
 *    2048-token prompt is GEMM-shaped work; each row masks the keys past its own n_ctx, which
 *    is the causal mask inside a prefill chunk. A decode token with a short context reads its
 *    keys and values where they lie instead (four rows at a time, a block prefetched ahead).
 * With attention sinks (window > 0) the keys are rotated when read, at a position that
 * depends on the query, so tiles and items are single tokens; the cos/sin of the cache
 * positions [0, W) are kept between calls (they depend only on the rope table).
 *
 * The rotation repeats rd_rope_rotate_ref's arithmetic exactly (same fp32 angle, cos/sin in
 * double rounded to float, same products), so the cache holds the reference's bits. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "kernels/cpu/cpu_impl.h"

#define QT_ROWS       128  /* query rows (heads x tokens) per tile */
#define KT            512  /* keys per tile */
#define ITEM_ROWS     1024 /* query rows of one work item at most (its Q and O stay in L2) */
#define IN_PLACE_KEYS 1024 /* decode reads at most this many keys in place, more are gathered */
/* below this many multiply-adds a call runs on one thread */
#define PARALLEL_MIN_WORK (1 << 16)

/* cos, sin (times the attention factor) of the n_pairs rotated pairs at position pos, as
 * rd_rope_rotate_ref computes them */
static void rope_cs(float *cs, int pos, const float *inv_freq, int n_pairs, float af)
{
    const float p = (float)pos;
    for (int i = 0; i < n_pairs; i++) {
        const float angle = p * inv_freq[i];
        cs[2 * i] = (float)cos((double)angle) * af;
        cs[2 * i + 1] = (float)sin((double)angle) * af;
    }
}

static void rotate(float *x, enum rd_rope_style style, const float *cs, int n_pairs)
{
    for (int i = 0; i < n_pairs; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        float *a = style == RD_ROPE_GPTJ ? &x[2 * i] : &x[i];
        float *b = style == RD_ROPE_GPTJ ? &x[2 * i + 1] : &x[i + n_pairs];
        const float x0 = *a, x1 = *b;
        *a = x0 * c - x1 * s;
        *b = x1 * c + x0 * s;
    }
}

/* dst[0, n) = src[0, n) for one head row, inline: a library call per 64-512 bytes costs more
 * than the copy (the compiler turns a plain loop back into that call) */
static inline void copy_row(float *restrict dst, const float *restrict src, int n)
{
    struct f16 {
        float v[16];
    };
    int d = 0;
    for (; d + 16 <= n; d += 16)
        *(struct f16 *)(dst + d) = *(const struct f16 *)(src + d);
    for (; d < n; d++)
        dst[d] = src[d];
}

/* address of logical cache entry j of sequence seq, kv head kh */
static float *cache_at(float *cache, const struct rd_attn_params *p, int seq, int j, int kh)
{
    int block = p->block_table_d[(size_t)seq * p->max_blocks + j / p->block_size];
    size_t row = (size_t)block * p->block_size + (size_t)(j % p->block_size);
    return cache + (row * p->Hkv + kh) * p->Dh;
}

/* A float's bits as an integer that orders like the float (for all but NaN): negative
 * floats have their magnitude bits flipped. Integer maxima vectorize; float ones, under IEEE
 * rules for NaN and signed zeros, do not. */
static inline int32_t order_key(float f)
{
    union {
        float f;
        int32_t i;
    } u = {.f = f};
    return u.i ^ ((u.i >> 31) & 0x7fffffff);
}

static inline float order_unkey(int32_t k)
{
    union {
        int32_t i;
        float f;
    } u = {.i = k ^ ((k >> 31) & 0x7fffffff)};
    return u.f;
}

/* s[0, n) *= scale; returns the largest of them and mx (sixteen lanes, then across) */
RD_CPU_CLONES static float scale_max(float *s, int n, float scale, float mx)
{
    int32_t m[16];
    for (int l = 0; l < 16; l++)
        m[l] = order_key(mx);
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) {
            const float v = s[j + l] * scale;
            const int32_t k = order_key(v);
            s[j + l] = v;
            m[l] = k > m[l] ? k : m[l];
        }
    for (; j < n; j++) {
        s[j] *= scale;
        const int32_t k = order_key(s[j]);
        m[0] = k > m[0] ? k : m[0];
    }
    for (int l = 1; l < 16; l++)
        m[0] = m[l] > m[0] ? m[l] : m[0];
    return order_unkey(m[0]);
}

/* s[j] = e^(s[j] - mx) over [0, n); returns their sum */
RD_CPU_CLONES static float exp_sum(float *s, int n, float mx)
{
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) {
            const float e = rd_cpu_exp(s[j + l] - mx);
            s[j + l] = e;
            acc[l] += e;
        }
    for (; j < n; j++)
        acc[0] += (s[j] = rd_cpu_exp(s[j] - mx));
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    return sum;
}

/* The sinks' table of cache positions [0, len), rebuilt when the rope table changes. */
static rd_status update_pos_table(struct cpu_impl *impl, const struct rd_attn_params *p, int len)
{
    const int n_pairs = p->rotary_dim / 2;
    const bool same = impl->cs_pos_pairs == n_pairs &&
                      !memcmp(&impl->cs_pos_af, &p->attention_factor, sizeof(float)) &&
                      !memcmp(impl->cs_pos_freq, p->inv_freq_d, (size_t)n_pairs * sizeof(float));
    if (!same) {
        impl->cs_pos_len = 0;
        impl->cs_pos_pairs = n_pairs;
        impl->cs_pos_af = p->attention_factor;
        memcpy(impl->cs_pos_freq, p->inv_freq_d, (size_t)n_pairs * sizeof(float));
    }
    if (impl->cs_pos_len >= len) return RD_OK;
    RD_TRY(rd_cpu_grow((void **)&impl->cs_pos, &impl->cs_pos_cap, (size_t)len * 2 * n_pairs,
                       sizeof(float)));
    for (int j = impl->cs_pos_len; j < len; j++)
        rope_cs(impl->cs_pos + (size_t)j * 2 * n_pairs, j, p->inv_freq_d, n_pairs,
                p->attention_factor);
    impl->cs_pos_len = len;
    return RD_OK;
}

/* The keys [j, end) of sequence seq, kv head kh, that lie in the cache block holding key j: the
 * first one's row (the next rows follow Hkv * Dh floats apart); *cnt gets how many there are. */
static inline const float *block_run(const float *cache, const struct rd_attn_params *p, int seq,
                                     int kh, int j, int end, int *cnt)
{
    const int Bs = p->block_size, r0 = j % Bs;
    const int blk = p->block_table_d[(size_t)seq * p->max_blocks + j / Bs];
    *cnt = Bs - r0 < end - j ? Bs - r0 : end - j;
    return cache + ((size_t)blk * Bs + r0) * p->Hkv * p->Dh + (size_t)kh * p->Dh;
}

/* Copies keys [j0, j0 + nk) of sequence seq, kv head kh from the cache into dst [nk, Dh]. */
static void gather(float *dst, const float *cache, const struct rd_attn_params *p, int seq, int j0,
                   int nk, int kh)
{
    const int Dh = p->Dh;
    const size_t stride = (size_t)p->Hkv * Dh;
    for (int j = j0; j < j0 + nk;) {
        int cnt;
        const float *src = block_run(cache, p, seq, kh, j, j0 + nk, &cnt);
        for (int r = 0; r < cnt; r++)
            copy_row(dst + (size_t)(j - j0 + r) * Dh, src + r * stride, Dh);
        j += cnt;
    }
}

/* Asks for the head-kh rows of the cache block that holds key j (when j < end): the in-place
 * loops below read a block ahead of their use, as a copy loop's hardware prefetch would. */
static inline void prefetch_block(const float *cache, const struct rd_attn_params *p, int seq,
                                  int kh, int j, int end)
{
    if (j >= end) return;
    const int Bs = p->block_size, Dh = p->Dh;
    const size_t stride = (size_t)p->Hkv * Dh;
    const int blk = p->block_table_d[(size_t)seq * p->max_blocks + j / Bs];
    const float *src = cache + (size_t)blk * Bs * stride + (size_t)kh * Dh;
    for (int r = 0; r < Bs; r++)
        for (int d = 0; d < Dh; d += 16)
            __builtin_prefetch(src + r * stride + d);
}

/* S[r, j - j0] = Q[r] . k_j over the keys [j0, j0 + nk), read where they lie in the cache
 * (decode: one token's rows, no copy of the keys first) */
RD_CPU_CLONES static void scores_in_place(const float *Q, int rows, const float *cache,
                                          const struct rd_attn_params *p, int seq, int kh, int j0,
                                          int nk, float *S)
{
    const int Dh = p->Dh;
    const size_t stride = (size_t)p->Hkv * Dh;
    for (int j = j0; j < j0 + nk;) {
        int cnt;
        const float *src = block_run(cache, p, seq, kh, j, j0 + nk, &cnt);
        prefetch_block(cache, p, seq, kh, j + cnt, j0 + nk);
        for (int r = 0; r < rows; r++) {
            const float *q = Q + (size_t)r * Dh;
            float *out = S + (size_t)r * nk + (j - j0);
            int c = 0;
            for (; c + 4 <= cnt; c += 4) { /* four keys at once, sixteen lanes each */
                const float *k0 = src + c * stride, *k1 = k0 + stride, *k2 = k1 + stride,
                            *k3 = k2 + stride;
                float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
                int d = 0;
                for (; d + 16 <= Dh; d += 16)
                    for (int x = 0; x < 16; x++) {
                        a0[x] += q[d + x] * k0[d + x];
                        a1[x] += q[d + x] * k1[d + x];
                        a2[x] += q[d + x] * k2[d + x];
                        a3[x] += q[d + x] * k3[d + x];
                    }
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
                for (int x = 0; x < 16; x++)
                    s0 += a0[x], s1 += a1[x], s2 += a2[x], s3 += a3[x];
                for (; d < Dh; d++)
                    s0 += q[d] * k0[d], s1 += q[d] * k1[d], s2 += q[d] * k2[d], s3 += q[d] * k3[d];
                out[c] = s0, out[c + 1] = s1, out[c + 2] = s2, out[c + 3] = s3;
            }
            for (; c < cnt; c++)
                out[c] = rd_cpu_dot16(q, src + c * stride, Dh);
        }
        j += cnt;
    }
}

/* O[r] += sum_j P[r, j - j0] v_j over the values [j0, j0 + nk), read where they lie */
RD_CPU_CLONES static void pv_in_place(const float *P, int rows, const float *cache,
                                      const struct rd_attn_params *p, int seq, int kh, int j0,
                                      int nk, float *O)
{
    const int Dh = p->Dh;
    const size_t stride = (size_t)p->Hkv * Dh;
    for (int j = j0; j < j0 + nk;) {
        int cnt;
        const float *src = block_run(cache, p, seq, kh, j, j0 + nk, &cnt);
        prefetch_block(cache, p, seq, kh, j + cnt, j0 + nk);
        for (int r = 0; r < rows; r++) {
            const float *w = P + (size_t)r * nk + (j - j0);
            float *o = O + (size_t)r * Dh;
            int c = 0;
            for (; c + 4 <= cnt; c += 4) { /* four values per pass over o */
                const float *v0 = src + c * stride, *v1 = v0 + stride, *v2 = v1 + stride,
                            *v3 = v2 + stride;
                for (int d = 0; d < Dh; d++)
                    o[d] += w[c] * v0[d] + w[c + 1] * v1[d] + w[c + 2] * v2[d] + w[c + 3] * v3[d];
            }
            for (; c < cnt; c++)
                for (int d = 0; d < Dh; d++)
                    o[d] += w[c] * src[c * stride + d];
        }
        j += cnt;
    }
}

/* The online softmax of each row of S [rows, nk] (its keys past the row's n_ctx masked to 0):
 * running maximum m, sum l, and O rescaled. Rows: hi * n + i is query head hi of the group
 * with token t0 + i. */
static void softmax_step(const struct rd_attn_params *p, int t0, int n, int rows, int j0, int nk,
                         float *P, float *O, float *m, float *l)
{
    const int Dh = p->Dh;
    for (int r = 0; r < rows; r++) {
        float *s = P + (size_t)r * nk;
        int valid = p->n_ctx_d[t0 + r % n] - j0;
        if (valid > nk) valid = nk;
        if (valid <= 0) {
            memset(s, 0, (size_t)nk * sizeof(float));
            continue;
        }
        const float mx = scale_max(s, valid, p->scale, m[r]);
        const float alpha = expf(m[r] - mx); /* 0 on the row's first keys (m = -inf) */
        const float sum = exp_sum(s, valid, mx);
        if (valid < nk) memset(s + valid, 0, (size_t)(nk - valid) * sizeof(float));
        l[r] = l[r] * alpha + sum;
        m[r] = mx;
        if (alpha != 1.0f)
            for (int d = 0; d < Dh; d++)
                O[(size_t)r * Dh + d] *= alpha;
    }
}

/* One query tile against one gathered key tile K, V [nk, Dh]: S = Q K^T, the online softmax,
 * O += P V, as BLAS GEMMs (GEMVs for one row). */
static void tile_step(const struct cpu_impl *impl, const struct rd_attn_params *p, int t0, int n,
                      const float *Q, const float *K, const float *V, int j0, int nk, float *P,
                      float *O, float *m, float *l)
{
    const struct rd_cpu_blas *B = impl->blas;
    const int Dh = p->Dh, rows = (p->H / p->Hkv) * n;
    if (rows == 1)
        B->sgemv(CblasRowMajor, CblasNoTrans, nk, Dh, 1.0f, K, Dh, Q, 1, 0.0f, P, 1);
    else
        B->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, Dh, 1.0f, Q, Dh, K, Dh, 0.0f, P,
                 nk);
    softmax_step(p, t0, n, rows, j0, nk, P, O, m, l);
    if (rows == 1)
        B->sgemv(CblasRowMajor, CblasTrans, nk, Dh, 1.0f, V, Dh, P, 1, 1.0f, O, 1);
    else
        B->sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Dh, nk, 1.0f, P, nk, V, Dh, 1.0f,
                 O, Dh);
}

/* One work item: query tiles [ta, tb) (consecutive tokens of one sequence) with kv head kh.
 * Each key tile is gathered once and serves every query tile that reaches it. */
static void attend_item(const struct cpu_impl *impl, const struct rd_attn_params *p, int ta, int tb,
                        int kh, float *scratch)
{
    const int32_t *tiles = impl->tiles; /* [first token, tokens, keys reached] */
    const int H = p->H, Hkv = p->Hkv, Dh = p->Dh, g = H / Hkv;
    const int W = (H + 2 * Hkv) * Dh, n_pairs = p->rotary_dim / 2;
    const int t0 = tiles[3 * ta], n_tok = tiles[3 * (tb - 1)] + tiles[3 * (tb - 1) + 1] - t0;
    const int seq = p->seq_d[t0], rows_all = g * n_tok;
    const bool sinks = p->window > 0;
    const int S = p->sink_tokens, R = p->window - p->sink_tokens;
    float *Q = scratch, *O = Q + (size_t)rows_all * Dh, *m = O + (size_t)rows_all * Dh;
    float *l = m + rows_all, *K = l + rows_all, *V = K + (size_t)KT * Dh, *P = V + (size_t)KT * Dh;

    /* a tile's rows start at g * (its first token - t0), head-major inside the tile */
    int n_keys = 0;
    for (int i = ta; i < tb; i++) {
        const int tt = tiles[3 * i], n = tiles[3 * i + 1];
        if (tiles[3 * i + 2] > n_keys) n_keys = tiles[3 * i + 2];
        for (int j = 0; j < n; j++)
            for (int hi = 0; hi < g; hi++) {
                float *q = Q + ((size_t)g * (tt - t0) + (size_t)hi * n + j) * Dh;
                copy_row(
                    q, (const float *)p->qkv_d + (size_t)(tt + j) * W + (size_t)(kh * g + hi) * Dh,
                    Dh);
                rotate(q, p->style, impl->cs + (size_t)(tt + j) * 2 * n_pairs, n_pairs);
            }
    }
    memset(O, 0, (size_t)rows_all * Dh * sizeof(float));
    for (int r = 0; r < rows_all; r++)
        m[r] = -INFINITY, l[r] = 0.0f;

    /* one token (decode) against plainly rotated keys, up to IN_PLACE_KEYS of them: read the
     * cache where it lies (at 128 keys a third faster than gathering; past a few thousand
     * keys the copy loop streams memory better) */
    const bool in_place = !sinks && tb - ta == 1 && n_tok == 1 && n_keys <= IN_PLACE_KEYS;
    for (int j0 = 0; j0 < n_keys; j0 += KT) {
        const int nk = n_keys - j0 < KT ? n_keys - j0 : KT;
        if (in_place) {
            scores_in_place(Q, g, p->k_cache_d, p, seq, kh, j0, nk, P);
            softmax_step(p, t0, 1, g, j0, nk, P, O, m, l);
            pv_in_place(P, g, p->v_cache_d, p, seq, kh, j0, nk, O);
            continue;
        }
        gather(K, p->k_cache_d, p, seq, j0, nk, kh);
        gather(V, p->v_cache_d, p, seq, j0, nk, kh);
        if (sinks) /* tiles are one token: the keys' positions are relative to it */
            for (int j = 0; j < nk; j++) {
                const int jj = j0 + j;
                const int kpos = jj < S ? jj : p->pos_d[t0] - ((p->slot_d[t0] - jj + R) % R);
                rotate(K + (size_t)j * Dh, p->style, impl->cs_pos + (size_t)kpos * 2 * n_pairs,
                       n_pairs);
            }
        for (int i = ta; i < tb; i++) {
            const int reach = tiles[3 * i + 2] - j0; /* keys of this tile its tokens see */
            if (reach <= 0) continue;
            const size_t r0 = (size_t)g * (tiles[3 * i] - t0);
            tile_step(impl, p, tiles[3 * i], tiles[3 * i + 1], Q + r0 * Dh, K, V, j0,
                      reach < nk ? reach : nk, P, O + r0 * Dh, m + r0, l + r0);
        }
    }
    for (int i = ta; i < tb; i++) {
        const int tt = tiles[3 * i], n = tiles[3 * i + 1];
        for (int r = 0; r < g * n; r++) {
            const size_t row = (size_t)g * (tt - t0) + r;
            float *out =
                (float *)p->out_d + (size_t)(tt + r % n) * H * Dh + (size_t)(kh * g + r / n) * Dh;
            const float inv = 1.0f / l[row];
            for (int d = 0; d < Dh; d++)
                out[d] = O[row * Dh + d] * inv;
        }
    }
}

rd_status rd_cpu_rope_attention(struct rd_backend *be, const struct rd_attn_params *p)
{
    struct cpu_impl *impl = be->impl;
    const int T = p->T, H = p->H, Hkv = p->Hkv, Dh = p->Dh, W = (H + 2 * Hkv) * Dh;
    const int n_pairs = p->rotary_dim / 2, g = H / Hkv, nt = impl->threads;
    const bool sinks = p->window > 0;
    if (T < 1) return RD_OK;

    /* 1. cos/sin per token (and, with sinks, per cache position) */
    RD_TRY(
        rd_cpu_grow((void **)&impl->cs, &impl->cs_n, (size_t)T * 2 * n_pairs + 1, sizeof(float)));
    if (sinks) {
        int len = p->window;
        for (int t = 0; t < T; t++)
            if (p->pos_d[t] + 1 > len) len = p->pos_d[t] + 1;
        RD_TRY(update_pos_table(impl, p, len));
    }
#pragma omp parallel for num_threads(nt) if (nt > 1 && (size_t)T * n_pairs >= 4096)
    for (int t = 0; t < T; t++)
        rope_cs(impl->cs + (size_t)t * 2 * n_pairs, p->pos_d[t], p->inv_freq_d, n_pairs,
                p->attention_factor);

        /* 2. store k (rotated, unless sinks keep it raw) and v of every new token; split by kv
         * head so that each head's tokens are stored in the call's order */
#pragma omp parallel for num_threads(nt) if (nt > 1 && (size_t)T * Hkv * Dh >= PARALLEL_MIN_WORK)
    for (int kh = 0; kh < Hkv; kh++)
        for (int t = 0; t < T; t++) {
            const float *row = (const float *)p->qkv_d + (size_t)t * W;
            float *kc = cache_at(p->k_cache_d, p, p->seq_d[t], p->slot_d[t], kh);
            float *vc = cache_at(p->v_cache_d, p, p->seq_d[t], p->slot_d[t], kh);
            copy_row(kc, row + (size_t)(H + kh) * Dh, Dh);
            copy_row(vc, row + (size_t)(H + Hkv + kh) * Dh, Dh);
            if (!sinks) rotate(kc, p->style, impl->cs + (size_t)t * 2 * n_pairs, n_pairs);
        }

    /* 3. query tiles (runs of one sequence's tokens), items of consecutive tiles, and
     * (item, kv head) pairs over the team. Items hold several tiles, so that a key tile is
     * gathered once for many queries, yet at least ~4 items per thread when there is work. */
    const int qt = sinks ? 1 : (QT_ROWS / g > 1 ? QT_ROWS / g : 1);
    RD_TRY(rd_cpu_grow((void **)&impl->tiles, &impl->tiles_n, (size_t)3 * T, sizeof(int32_t)));
    RD_TRY(rd_cpu_grow((void **)&impl->items, &impl->items_n, (size_t)2 * T, sizeof(int32_t)));
    int n_tiles = 0;
    double work = 0;
    for (int t = 0; t < T;) {
        int n = 1, keys = p->n_ctx_d[t];
        while (t + n < T && n < qt && p->seq_d[t + n] == p->seq_d[t]) {
            if (p->n_ctx_d[t + n] > keys) keys = p->n_ctx_d[t + n];
            n++;
        }
        impl->tiles[3 * n_tiles] = t, impl->tiles[3 * n_tiles + 1] = n;
        impl->tiles[3 * n_tiles + 2] = keys;
        n_tiles++;
        work += (double)n * keys;
        t += n;
    }
    int per_item = sinks ? 1 : (n_tiles * Hkv + 4 * nt - 1) / (4 * nt);
    const int cap = ITEM_ROWS / (g * qt) > 1 ? ITEM_ROWS / (g * qt) : 1;
    if (per_item > cap) per_item = cap;
    if (per_item < 1) per_item = 1;
    int n_groups = 0, max_tok = 1;
    for (int i = 0; i < n_tiles;) {
        int j = i + 1;
        while (j < n_tiles && j - i < per_item &&
               p->seq_d[impl->tiles[3 * j]] == p->seq_d[impl->tiles[3 * i]])
            j++;
        impl->items[2 * n_groups] = i, impl->items[2 * n_groups + 1] = j;
        n_groups++;
        const int tok =
            impl->tiles[3 * (j - 1)] + impl->tiles[3 * (j - 1) + 1] - impl->tiles[3 * i];
        if (tok > max_tok) max_tok = tok;
        i = j;
    }
    const size_t rows_max = (size_t)g * max_tok;
    const size_t per = rows_max * Dh * 2 + rows_max * 2 + (size_t)2 * KT * Dh + (size_t)g * qt * KT;
    if (impl->scratch_per < per) {
        RD_TRY(rd_cpu_grow((void **)&impl->scratch, &impl->scratch_cap, per * (size_t)nt,
                           sizeof(float)));
        impl->scratch_per = per;
    }
    const int n_items = n_groups * Hkv;
    work *= (double)H * Dh * 2;
#pragma omp parallel for schedule(dynamic, 1)                                                      \
    num_threads(nt) if (nt > 1 && n_items > 1 && work >= PARALLEL_MIN_WORK)
    for (int it = 0; it < n_items; it++) {
        const int grp = it / Hkv, kh = it % Hkv;
        attend_item(impl, p, impl->items[2 * grp], impl->items[2 * grp + 1], kh,
                    impl->scratch + (size_t)omp_get_thread_num() * impl->scratch_per);
    }
    return RD_OK;
}
