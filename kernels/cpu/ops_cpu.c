/* The cpu backend: plain fp32 loops in llama2.c's style. It is the reference every cuda op is
 * judged by, and what runs where there is no GPU (CI, laptops, CPU clusters). Buffers are host
 * memory; "upload" and "download" are copies; there is no stream. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/ops.h"

struct cpu_impl {
    float *scratch; /* rotated q of one head + scores of one query; grown once to the largest */
    size_t scratch_n;
};

static rd_status cpu_alloc(struct rd_backend *be, size_t bytes, void **p)
{
    (void)be;
    *p = calloc(1, bytes ? bytes : 1);
    if (!*p) {
        RD_LOG_ERROR("cpu backend: cannot allocate %zu bytes", bytes);
        return RD_ERR_OOM;
    }
    return RD_OK;
}

static void cpu_free(struct rd_backend *be, void *p)
{
    (void)be;
    free(p);
}

static rd_status cpu_copy(struct rd_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes) memmove(dst, src, bytes);
    return RD_OK;
}

static rd_status cpu_upload_f32(struct rd_backend *be, void *dst, const float *src, size_t n)
{
    return cpu_copy(be, dst, src, n * sizeof(float));
}

static rd_status cpu_download_f32(struct rd_backend *be, float *dst, const void *src, size_t n)
{
    return cpu_copy(be, dst, src, n * sizeof(float));
}

static rd_status cpu_zero(struct rd_backend *be, void *p, size_t bytes)
{
    (void)be;
    memset(p, 0, bytes);
    return RD_OK;
}

static rd_status cpu_sync(struct rd_backend *be)
{
    (void)be;
    return RD_OK;
}

static void *cpu_stream(struct rd_backend *be)
{
    (void)be;
    return NULL;
}

static rd_status cpu_embed(struct rd_backend *be, void *out_d, const void *table_d,
                           const int32_t *ids, int T, int D)
{
    (void)be;
    float *out = out_d;
    const float *table = table_d;
    for (int t = 0; t < T; t++) memcpy(out + (size_t)t * D, table + (size_t)ids[t] * D, D * sizeof(float));
    return RD_OK;
}

static void rmsnorm_row(float *out, const float *x, const float *w, int D, float eps)
{
    double ss = 0;
    for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / D + eps));
    for (int i = 0; i < D; i++) out[i] = x[i] * inv * w[i];
}

static rd_status cpu_rmsnorm(struct rd_backend *be, void *out_d, const void *x_d, const void *w_d,
                             int T, int D, float eps)
{
    (void)be;
    for (int t = 0; t < T; t++)
        rmsnorm_row((float *)out_d + (size_t)t * D, (const float *)x_d + (size_t)t * D, w_d, D, eps);
    return RD_OK;
}

static rd_status cpu_add_rmsnorm(struct rd_backend *be, void *out_d, void *resid_d,
                                 const void *delta_d, const void *w_d, int T, int D, float eps)
{
    (void)be;
    float *r = resid_d;
    const float *d = delta_d;
    for (size_t i = 0; i < (size_t)T * D; i++) r[i] += d[i];
    for (int t = 0; t < T; t++)
        rmsnorm_row((float *)out_d + (size_t)t * D, r + (size_t)t * D, w_d, D, eps);
    return RD_OK;
}

static rd_status cpu_matmul(struct rd_backend *be, void *y_d, const void *x_d, const void *w_d,
                            int T, int N, int K)
{
    (void)be;
    float *y = y_d;
    const float *x = x_d, *w = w_d;
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * K;
        for (int n = 0; n < N; n++) {
            const float *wr = w + (size_t)n * K;
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc += xr[k] * wr[k];
            y[(size_t)t * N + n] = acc;
        }
    }
    return RD_OK;
}

static rd_status cpu_swiglu(struct rd_backend *be, void *out_d, const void *gu_d, int T, int F)
{
    (void)be;
    float *out = out_d;
    const float *gu = gu_d;
    for (int t = 0; t < T; t++) {
        const float *g = gu + (size_t)t * 2 * F, *u = g + F;
        for (int f = 0; f < F; f++) out[(size_t)t * F + f] = g[f] / (1.0f + expf(-g[f])) * u[f];
    }
    return RD_OK;
}

/* address of logical cache entry j of sequence seq, kv head kh */
static float *cache_at(float *cache, const struct rd_attn_params *p, int seq, int j, int kh)
{
    int block = p->block_table_d[(size_t)seq * p->max_blocks + j / p->block_size];
    size_t row = (size_t)block * p->block_size + (size_t)(j % p->block_size);
    return cache + (row * p->Hkv + kh) * p->Dh;
}

static rd_status cpu_rope_attention(struct rd_backend *be, const struct rd_attn_params *p)
{
    struct cpu_impl *impl = be->impl;
    const int H = p->H, Hkv = p->Hkv, Dh = p->Dh, W = (H + 2 * Hkv) * Dh;
    const int n_pairs = p->rotary_dim / 2;
    size_t need = (size_t)2 * Dh + (size_t)p->max_ctx;
    if (impl->scratch_n < need) {
        float *s = realloc(impl->scratch, need * sizeof(float));
        if (!s) return RD_ERR_OOM;
        impl->scratch = s;
        impl->scratch_n = need;
    }
    float *qrot = impl->scratch, *krot = impl->scratch + Dh, *scores = impl->scratch + 2 * Dh;
    const int S = p->sink_tokens, R = p->window - p->sink_tokens;
    const float *qkv = p->qkv_d;

    /* 1. rotate k and store k, v of every new token (the cache is then complete for all) */
    for (int t = 0; t < p->T; t++) {
        const float *row = qkv + (size_t)t * W;
        for (int kh = 0; kh < Hkv; kh++) {
            float *kc = cache_at(p->k_cache_d, p, p->seq_d[t], p->slot_d[t], kh);
            float *vc = cache_at(p->v_cache_d, p, p->seq_d[t], p->slot_d[t], kh);
            memcpy(kc, row + (size_t)(H + kh) * Dh, Dh * sizeof(float));
            memcpy(vc, row + (size_t)(H + Hkv + kh) * Dh, Dh * sizeof(float));
            if (p->window == 0) /* with sinks keys stay unrotated until read */
                rd_rope_rotate_ref(kc, Dh, p->style, p->pos_d[t], p->inv_freq_d, n_pairs,
                                   p->attention_factor);
        }
    }
    /* 2. attend */
    const int group = H / Hkv;
    for (int t = 0; t < p->T; t++) {
        const float *row = qkv + (size_t)t * W;
        const int n_ctx = p->n_ctx_d[t], seq = p->seq_d[t];
        for (int h = 0; h < H; h++) {
            const int kh = h / group;
            memcpy(qrot, row + (size_t)h * Dh, Dh * sizeof(float));
            rd_rope_rotate_ref(qrot, Dh, p->style, p->pos_d[t], p->inv_freq_d, n_pairs,
                               p->attention_factor);
            float mx = -INFINITY;
            for (int j = 0; j < n_ctx; j++) {
                const float *k = cache_at(p->k_cache_d, p, seq, j, kh);
                if (p->window > 0) {
                    int kpos = j < S ? j : p->pos_d[t] - ((p->slot_d[t] - j + R) % R);
                    memcpy(krot, k, Dh * sizeof(float));
                    rd_rope_rotate_ref(krot, Dh, p->style, kpos, p->inv_freq_d, n_pairs,
                                       p->attention_factor);
                    k = krot;
                }
                float s = 0.0f;
                for (int d = 0; d < Dh; d++) s += qrot[d] * k[d];
                scores[j] = s * p->scale;
                if (scores[j] > mx) mx = scores[j];
            }
            double sum = 0;
            for (int j = 0; j < n_ctx; j++) {
                scores[j] = expf(scores[j] - mx);
                sum += scores[j];
            }
            float *out = (float *)p->out_d + (size_t)t * H * Dh + (size_t)h * Dh;
            memset(out, 0, Dh * sizeof(float));
            for (int j = 0; j < n_ctx; j++) {
                const float *v = cache_at(p->v_cache_d, p, seq, j, kh);
                float a = (float)(scores[j] / sum);
                for (int d = 0; d < Dh; d++) out[d] += a * v[d];
            }
        }
    }
    return RD_OK;
}

/* true when (v, i) comes before (w, j): larger value first, then the smaller id */
static int topk_before(float v, int i, float w, int j)
{
    return v > w || (v == w && i < j);
}

/* Partial selection per row: a sorted list of the k best so far, each column either rejected
 * against the current k-th or inserted in place (O(V k) worst case, O(V) typical). */
static rd_status cpu_topk(struct rd_backend *be, float *vals_h, int32_t *ids_h,
                          const void *logits_d, int T, int V, int k, int vocab_offset)
{
    (void)be;
    if (T < 0 || V < 0 || k < 1) return RD_ERR_INVALID_ARG;
    for (int t = 0; t < T; t++) {
        const float *x = (const float *)logits_d + (size_t)t * V;
        float *val = vals_h + (size_t)t * k;
        int32_t *id = ids_h + (size_t)t * k;
        int n = 0; /* entries held, sorted best first; local column ids until the end */
        for (int i = 0; i < V; i++) {
            const float v = isnan(x[i]) ? -INFINITY : x[i];
            if (n == k && !topk_before(v, i, val[k - 1], id[k - 1])) continue;
            int at = n < k ? n++ : k - 1;
            while (at > 0 && topk_before(v, i, val[at - 1], id[at - 1])) {
                val[at] = val[at - 1];
                id[at] = id[at - 1];
                at--;
            }
            val[at] = v;
            id[at] = i;
        }
        for (int r = 0; r < k; r++) {
            if (r < n) {
                id[r] += vocab_offset;
            } else {
                val[r] = -INFINITY;
                id[r] = -1;
            }
        }
    }
    return RD_OK;
}

static void cpu_destroy(struct rd_backend *be)
{
    struct cpu_impl *impl = be->impl;
    if (impl) free(impl->scratch);
    free(impl);
    free(be);
}

/* MemAvailable and MemTotal of /proc/meminfo */
static rd_status cpu_mem_info(struct rd_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return RD_ERR_UNSUPPORTED;
    char line[256];
    unsigned long long avail = 0, total = 0, kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) avail = kb * 1024;
        else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) total = kb * 1024;
    }
    fclose(f);
    if (!avail || !total) return RD_ERR_UNSUPPORTED;
    *free_bytes = (size_t)avail;
    *total_bytes = (size_t)total;
    return RD_OK;
}

static const struct rd_ops k_cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .stream = cpu_stream,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .upload_f32 = cpu_upload_f32,
    .download_f32 = cpu_download_f32,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .matmul = cpu_matmul,
    .swiglu = cpu_swiglu,
    .rope_attention = cpu_rope_attention,
    .copy = cpu_copy,
    .topk = cpu_topk,
    .mem_info = cpu_mem_info,
};

rd_status rd_backend_cpu_create(const struct rd_backend_opts *opts, struct rd_backend **out)
{
    *out = NULL;
    if (opts && opts->dtype != RD_DTYPE_F32) {
        RD_LOG_ERROR("the cpu backend computes in fp32 only (asked for %s)",
                     rd_dtype_name(opts->dtype));
        return RD_ERR_UNSUPPORTED;
    }
    struct rd_backend *be = calloc(1, sizeof *be);
    struct cpu_impl *impl = calloc(1, sizeof *impl);
    if (!be || !impl) {
        free(be);
        free(impl);
        return RD_ERR_OOM;
    }
    be->ops = &k_cpu_ops;
    be->dtype = RD_DTYPE_F32;
    be->device = -1;
    be->impl = impl;
    *out = be;
    return RD_OK;
}
