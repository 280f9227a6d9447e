/* The cpu backend's fused RoPE attention (the op's contract is struct rd_attn_params in
 * kernels/ops.h).
 *
 * 1. cos/sin of every token's rope position, once per call (not per head);
 * 2. k rotated (unless sinks keep keys unrotated) and v stored at their cache rows;
 * 3. attention in tiles: the call's tokens are cut into query tiles, runs of consecutive
 *    tokens of one sequence (at most QT_ROWS / group of them, group = query heads per kv head),
 *    and each (tile, kv head) is one work item for the thread team. An item stacks the rotated
 *    q rows of its group's heads and tokens into Q [rows, Dh], walks the sequence's cache in
 *    key tiles of KT entries gathered into contiguous K, V [KT, Dh], and keeps an online
 *    softmax: S = Q K^T and O += P V are BLAS GEMMs (GEMVs for one row), so a 2048-token
 *    prompt is GEMM-shaped work; each row masks the keys past its own n_ctx, which is the
 *    causal mask inside a prefill chunk.
 * With attention sinks (window > 0) the keys are rotated when read, at a position that
 * depends on the query, so tiles are single tokens; the cos/sin of the cache positions
 * [0, W) are kept between calls (they depend only on the rope table).
 *
 * The rotation repeats rd_rope_rotate_ref's arithmetic exactly (same fp32 angle, cos/sin in
 * double rounded to float, same products), so the cache holds the reference's bits. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <omp.h>

#include "kernels/cpu/cpu_impl.h"

#define QT_ROWS 64 /* query rows (heads x tokens) per tile */
#define KT 256     /* keys per tile */
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

/* address of logical cache entry j of sequence seq, kv head kh */
static float *cache_at(float *cache, const struct rd_attn_params *p, int seq, int j, int kh)
{
    int block = p->block_table_d[(size_t)seq * p->max_blocks + j / p->block_size];
    size_t row = (size_t)block * p->block_size + (size_t)(j % p->block_size);
    return cache + (row * p->Hkv + kh) * p->Dh;
}

/* s[0, n) *= scale; returns the largest of them and mx. The scaling vectorizes; the maximum
 * (a reduction the compiler leaves alone under IEEE rules) runs as sixteen independent
 * chains, and the sums below as sixteen vector lanes. */
RD_CPU_CLONES static float scale_max(float *s, int n, float scale, float mx)
{
    for (int j = 0; j < n; j++) s[j] *= scale;
    float m[16];
    for (int l = 0; l < 16; l++) m[l] = mx;
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) m[l] = s[j + l] > m[l] ? s[j + l] : m[l];
    for (; j < n; j++) m[0] = s[j] > m[0] ? s[j] : m[0];
    for (int l = 1; l < 16; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
    return m[0];
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
    for (; j < n; j++) acc[0] += (s[j] = rd_cpu_exp(s[j] - mx));
    float sum = 0.0f;
    for (int l = 0; l < 16; l++) sum += acc[l];
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

/* One work item: query tile [t0, t0 + n) (tokens of one sequence) with kv head kh. */
static void attend_item(const struct cpu_impl *impl, const struct rd_attn_params *p, int t0,
                        int n, int kh, float *scratch)
{
    const struct rd_cpu_blas *B = impl->blas;
    const int H = p->H, Hkv = p->Hkv, Dh = p->Dh, g = H / Hkv, rows = g * n;
    const int W = (H + 2 * Hkv) * Dh, n_pairs = p->rotary_dim / 2, seq = p->seq_d[t0];
    const bool sinks = p->window > 0;
    const int S = p->sink_tokens, R = p->window - p->sink_tokens;
    float *Q = scratch, *K = Q + (size_t)rows * Dh, *V = K + (size_t)KT * Dh;
    float *P = V + (size_t)KT * Dh, *O = P + (size_t)rows * KT, *m = O + (size_t)rows * Dh;
    float *l = m + rows;

    /* rows: head-major (row hi * n + i is query head kh * g + hi of token t0 + i) */
    int n_keys = 0;
    for (int i = 0; i < n; i++) {
        const int t = t0 + i;
        if (p->n_ctx_d[t] > n_keys) n_keys = p->n_ctx_d[t];
        for (int hi = 0; hi < g; hi++) {
            float *q = Q + ((size_t)hi * n + i) * Dh;
            memcpy(q, (const float *)p->qkv_d + (size_t)t * W + (size_t)(kh * g + hi) * Dh,
                   Dh * sizeof(float));
            rotate(q, p->style, impl->cs + (size_t)t * 2 * n_pairs, n_pairs);
        }
    }
    memset(O, 0, (size_t)rows * Dh * sizeof(float));
    for (int r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0.0f;

    for (int j0 = 0; j0 < n_keys; j0 += KT) {
        const int nk = n_keys - j0 < KT ? n_keys - j0 : KT;
        for (int j = 0; j < nk; j++) {
            float *k = K + (size_t)j * Dh;
            memcpy(k, cache_at(p->k_cache_d, p, seq, j0 + j, kh), Dh * sizeof(float));
            memcpy(V + (size_t)j * Dh, cache_at(p->v_cache_d, p, seq, j0 + j, kh),
                   Dh * sizeof(float));
            if (sinks) { /* tiles are one token: the key's position is relative to it */
                const int jj = j0 + j;
                const int kpos = jj < S ? jj : p->pos_d[t0] - ((p->slot_d[t0] - jj + R) % R);
                rotate(k, p->style, impl->cs_pos + (size_t)kpos * 2 * n_pairs, n_pairs);
            }
        }
        if (rows == 1)
            B->sgemv(CblasRowMajor, CblasNoTrans, nk, Dh, 1.0f, K, Dh, Q, 1, 0.0f, P, 1);
        else
            B->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, Dh, 1.0f, Q, Dh, K, Dh,
                     0.0f, P, nk);
        /* online softmax: scale, mask the keys past the row's context, rescale O */
        for (int r = 0; r < rows; r++) {
            float *s = P + (size_t)r * nk;
            const int t = t0 + r % n;
            int valid = p->n_ctx_d[t] - j0;
            if (valid > nk) valid = nk;
            if (valid <= 0) {
                memset(s, 0, (size_t)nk * sizeof(float));
                continue;
            }
            const float mx = scale_max(s, valid, p->scale, m[r]);
            const float alpha = expf(m[r] - mx); /* 0 on the first tile (m = -inf) */
            const float sum = exp_sum(s, valid, mx);
            if (valid < nk) memset(s + valid, 0, (size_t)(nk - valid) * sizeof(float));
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
            if (alpha != 1.0f)
                for (int d = 0; d < Dh; d++) O[(size_t)r * Dh + d] *= alpha;
        }
        if (rows == 1)
            B->sgemv(CblasRowMajor, CblasTrans, nk, Dh, 1.0f, V, Dh, P, 1, 1.0f, O, 1);
        else
            B->sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Dh, nk, 1.0f, P, nk, V, Dh,
                     1.0f, O, Dh);
    }
    for (int r = 0; r < rows; r++) {
        const int t = t0 + r % n, h = kh * g + r / n;
        float *out = (float *)p->out_d + (size_t)t * H * Dh + (size_t)h * Dh;
        const float inv = 1.0f / l[r];
        for (int d = 0; d < Dh; d++) out[d] = O[(size_t)r * Dh + d] * inv;
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
    RD_TRY(rd_cpu_grow((void **)&impl->cs, &impl->cs_n, (size_t)T * 2 * n_pairs + 1,
                       sizeof(float)));
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
            memcpy(kc, row + (size_t)(H + kh) * Dh, Dh * sizeof(float));
            memcpy(vc, row + (size_t)(H + Hkv + kh) * Dh, Dh * sizeof(float));
            if (!sinks) rotate(kc, p->style, impl->cs + (size_t)t * 2 * n_pairs, n_pairs);
        }

    /* 3. query tiles, then (tile, kv head) items over the team */
    const int qt = sinks ? 1 : (QT_ROWS / g > 1 ? QT_ROWS / g : 1);
    RD_TRY(rd_cpu_grow((void **)&impl->tiles, &impl->tiles_n, (size_t)2 * T, sizeof(int32_t)));
    int n_tiles = 0;
    double work = 0;
    for (int t = 0; t < T;) {
        int n = 1;
        while (t + n < T && n < qt && p->seq_d[t + n] == p->seq_d[t]) n++;
        impl->tiles[2 * n_tiles] = t;
        impl->tiles[2 * n_tiles + 1] = n;
        n_tiles++;
        work += (double)n * p->n_ctx_d[t + n - 1];
        t += n;
    }
    const int rows_max = g * qt;
    const size_t per = (size_t)rows_max * Dh * 2 + (size_t)2 * KT * Dh + (size_t)rows_max * KT +
                       (size_t)2 * rows_max;
    if (impl->scratch_per < per) {
        RD_TRY(rd_cpu_grow((void **)&impl->scratch, &impl->scratch_cap, per * (size_t)nt,
                           sizeof(float)));
        impl->scratch_per = per;
    }
    const int n_items = n_tiles * Hkv;
    work *= (double)H * Dh * 2;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && n_items > 1 && \
                                                                  work >= PARALLEL_MIN_WORK)
    for (int it = 0; it < n_items; it++) {
        const int tile = it / Hkv, kh = it % Hkv;
        attend_item(impl, p, impl->tiles[2 * tile], impl->tiles[2 * tile + 1], kh,
                    impl->scratch + (size_t)omp_get_thread_num() * impl->scratch_per);
    }
    return RD_OK;
}
