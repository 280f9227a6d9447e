/* The cpu backend: fp32, the reference every cuda op is judged by, and what runs where there
 * is no GPU (CI, laptops, CPU clusters). Buffers are host memory ("upload" and "download" are
 * copies; there is no stream).
 *
 * GEMMs go to BLAS (OpenBLAS, see blas_cpu.c): matmul is cblas_sgemm for T > 1 tokens, which
 * BLAS threads itself, and for one token a weight-streaming GEMV (gemv_cpu.c says why it is
 * not BLAS's). Everything else runs on the rank's OpenMP team (impl->threads): rows of
 * rmsnorm / swiglu / embed, vocabulary slices of top-k, attention items (attn_cpu.c); small
 * calls stay on one thread, where a team costs more than it saves. Results differ from plain
 * loops only in the order of fp32 sums (BLAS blocks its dot products): the unit test holds
 * every op to 1e-5 relative of plain loops and of a double-precision reference, whatever the
 * thread count. Buffers are 64-byte aligned and zeroed lazily by the kernel; large uploads
 * (the weights) are backed by transparent huge pages when the system allows. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <omp.h>

#include "common/log.h"
#include "kernels/cpu/cpu_impl.h"

#define ALIGN          64
#define HUGE_MIN       ((size_t)4 << 20)   /* uploads from this size on are offered huge pages */
#define PAR_MIN        ((size_t)1 << 17)   /* elements below which an elementwise op stays serial */
#define COPY_PAR_MIN   ((size_t)8 << 20)   /* bytes from which a copy is split over the team */
#define TOPK_SPLIT_MIN 8192                /* vocabulary from which one row's top-k is split */
#define GEMM_PAR_MIN   ((double)(1 << 24)) /* multiply-adds from which BLAS gets the team */

/* ---- memory ---- */

static rd_status cpu_alloc(struct rd_backend *be, size_t bytes, void **p)
{
    (void)be;
    const size_t n = bytes ? bytes : 1;
    char *raw =
        n <= SIZE_MAX - ALIGN - sizeof(void *) ? calloc(1, n + ALIGN + sizeof(void *)) : NULL;
    if (!raw) {
        *p = NULL;
        RD_LOG_ERROR("cpu backend: cannot allocate %zu bytes", bytes);
        return RD_ERR_OOM;
    }
    uintptr_t a = ((uintptr_t)raw + sizeof(void *) + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
    ((void **)a)[-1] = raw;
    *p = (void *)a;
    return RD_OK;
}

static void cpu_free(struct rd_backend *be, void *p)
{
    (void)be;
    if (p) free(((void **)p)[-1]);
}

static rd_status cpu_copy(struct rd_backend *be, void *dst, const void *src, size_t bytes)
{
    const int nt = ((struct cpu_impl *)be->impl)->threads;
    const char *s = src;
    char *d = dst;
    const uintptr_t ds = (uintptr_t)dst, ss = (uintptr_t)src;
    if (nt > 1 && bytes >= COPY_PAR_MIN && (ds + bytes <= ss || ss + bytes <= ds)) {
        const size_t chunk = (bytes / (size_t)nt + ALIGN - 1) & ~(size_t)(ALIGN - 1);
#pragma omp parallel for num_threads(nt)
        for (int i = 0; i < nt; i++) {
            const size_t off = (size_t)i * chunk;
            if (off < bytes) memcpy(d + off, s + off, bytes - off < chunk ? bytes - off : chunk);
        }
    } else if (bytes) {
        memmove(dst, src, bytes);
    }
    return RD_OK;
}

/* An upload of a large block (a weight matrix) first asks for transparent huge pages over it:
 * decode reads every weight once per token, and huge pages spare it TLB misses. Buffers the
 * forward pass fills itself (activations, the KV cache) stay on normal pages: with huge pages
 * their first touch, in the middle of a prefill, can wait for the kernel to compact memory
 * (~0.2 s on the development machine). */
static rd_status cpu_upload(struct rd_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes >= HUGE_MIN) {
        const uintptr_t pg = 4096, lo = ((uintptr_t)dst + pg - 1) & ~(pg - 1);
        const uintptr_t hi = ((uintptr_t)dst + bytes) & ~(pg - 1);
        if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* a hint; may be off */
    }
    return cpu_copy(be, dst, src, bytes);
}

static rd_status cpu_upload_f32(struct rd_backend *be, void *dst, const float *src, size_t n)
{
    return cpu_upload(be, dst, src, n * sizeof(float));
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

/* ---- elementwise ---- */

static int team(const struct rd_backend *be, size_t elems, int rows)
{
    const int nt = ((const struct cpu_impl *)be->impl)->threads;
    return nt > 1 && rows > 1 && elems >= PAR_MIN ? nt : 1;
}

static rd_status cpu_embed(struct rd_backend *be, void *out_d, const void *table_d,
                           const int32_t *ids, int T, int D)
{
    float *out = out_d;
    const float *table = table_d;
#pragma omp parallel for num_threads(team(be, (size_t)T *D, T))
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * D, table + (size_t)ids[t] * D, D * sizeof(float));
    return RD_OK;
}

/* The sum of squares in double, in eight lanes so that it vectorizes. */
RD_CPU_CLONES static void rmsnorm_row(float *out, const float *x, const float *w, int D, float eps)
{
    double acc[8] = {0};
    int i = 0;
    for (; i + 8 <= D; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)x[i + l] * x[i + l];
    double ss = 0;
    for (int l = 0; l < 8; l++)
        ss += acc[l];
    for (; i < D; i++)
        ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / D + eps));
    for (int i = 0; i < D; i++)
        out[i] = x[i] * inv * w[i];
}

static rd_status cpu_rmsnorm(struct rd_backend *be, void *out_d, const void *x_d, const void *w_d,
                             int T, int D, float eps)
{
#pragma omp parallel for num_threads(team(be, (size_t)T *D, T))
    for (int t = 0; t < T; t++)
        rmsnorm_row((float *)out_d + (size_t)t * D, (const float *)x_d + (size_t)t * D, w_d, D,
                    eps);
    return RD_OK;
}

static rd_status cpu_add_rmsnorm(struct rd_backend *be, void *out_d, void *resid_d,
                                 const void *delta_d, const void *w_d, int T, int D, float eps)
{
#pragma omp parallel for num_threads(team(be, (size_t)T *D, T))
    for (int t = 0; t < T; t++) {
        float *r = (float *)resid_d + (size_t)t * D;
        const float *d = (const float *)delta_d + (size_t)t * D;
        for (int i = 0; i < D; i++)
            r[i] += d[i];
        rmsnorm_row((float *)out_d + (size_t)t * D, r, w_d, D, eps);
    }
    return RD_OK;
}

/* o = silu(g) * u over one row. Two loops: in one, the compiler would also compute
 * g / (1 + e^88) (the clamp's constant) for every lane before selecting, and that denormal
 * costs a microcode assist per element. */
RD_CPU_CLONES static void swiglu_row(float *o, const float *g, const float *u, int F)
{
    for (int f = 0; f < F; f++)
        o[f] = rd_cpu_exp(-g[f]);
    for (int f = 0; f < F; f++)
        o[f] = g[f] / (1.0f + o[f]) * u[f];
}

static rd_status cpu_swiglu(struct rd_backend *be, void *out_d, const void *gu_d, int T, int F)
{
    float *out = out_d;
    const float *gu = gu_d;
#pragma omp parallel for num_threads(team(be, (size_t)T *F, T))
    for (int t = 0; t < T; t++) {
        const float *g = gu + (size_t)t * 2 * F;
        swiglu_row(out + (size_t)t * F, g, g + F, F);
    }
    return RD_OK;
}

/* ---- GEMM ---- */

static rd_status cpu_matmul(struct rd_backend *be, void *y_d, const void *x_d, const void *w_d,
                            int T, int N, int K)
{
    const struct cpu_impl *impl = be->impl;
    if (T < 1 || N < 1) return RD_OK;
    if (K < 1) return cpu_zero(be, y_d, (size_t)T * N * sizeof(float));
    if (T == 1) { /* y = W x, W [N, K] row-major: a stream of the weights (gemv_cpu.c) */
        rd_cpu_gemv(impl, y_d, w_d, x_d, N, K);
        return RD_OK;
    }
    /* a small GEMM (a tiny model's) on one thread: the team's fork and join cost more */
    rd_cpu_blas_threads((double)T * N * K >= GEMM_PAR_MIN ? impl->threads : 1);
    impl->blas->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x_d, K, w_d, K, 0.0f,
                      y_d, N);
    return RD_OK;
}

/* ---- top-k ---- */

/* true when (v, i) comes before (w, j): larger value first, then the smaller id */
static int topk_before(float v, int i, float w, int j) { return v > w || (v == w && i < j); }

/* Offers (v, i) to the sorted list val/id of *n <= k entries (best first). */
static void topk_offer(float *val, int32_t *id, int *n, int k, float v, int i)
{
    if (*n == k && !topk_before(v, i, val[k - 1], id[k - 1])) return;
    int at = *n < k ? (*n)++ : k - 1;
    while (at > 0 && topk_before(v, i, val[at - 1], id[at - 1])) {
        val[at] = val[at - 1];
        id[at] = id[at - 1];
        at--;
    }
    val[at] = v;
    id[at] = i;
}

/* The k best of columns [c0, c1) of x (partial selection: a column is either rejected against
 * the current k-th or inserted in place; O(V k) worst case, O(V) typical). */
static int topk_range(const float *x, int c0, int c1, int k, float *val, int32_t *id)
{
    int n = 0;
    for (int i = c0; i < c1; i++)
        topk_offer(val, id, &n, k, isnan(x[i]) ? -INFINITY : x[i], i);
    return n;
}

static void topk_finish(float *val, int32_t *id, int n, int k, int vocab_offset)
{
    for (int r = 0; r < k; r++) {
        if (r < n) {
            id[r] += vocab_offset;
        } else {
            val[r] = -INFINITY;
            id[r] = -1;
        }
    }
}

/* Rows over the team; a single long row is cut into one slice per thread whose lists are then
 * merged: the order (value, then id) is total, so the result is the serial one. */
static rd_status cpu_topk(struct rd_backend *be, float *vals_h, int32_t *ids_h,
                          const void *logits_d, int T, int V, int k, int vocab_offset)
{
    struct cpu_impl *impl = be->impl;
    if (T < 0 || V < 0 || k < 1) return RD_ERR_INVALID_ARG;
    const float *x = logits_d;
    const int nt = impl->threads;
    if (T == 1 && nt > 1 && V >= TOPK_SPLIT_MIN) {
        RD_TRY(
            rd_cpu_grow((void **)&impl->topk_vals, &impl->topk_n, (size_t)nt * k, sizeof(float)));
        RD_TRY(rd_cpu_grow((void **)&impl->topk_ids, &impl->topk_ids_n, (size_t)nt * k,
                           sizeof(int32_t)));
        int counts[256];
        const int parts = nt < 256 ? nt : 256;
#pragma omp parallel for num_threads(parts)
        for (int s = 0; s < parts; s++)
            counts[s] =
                topk_range(x, (int)((int64_t)V * s / parts), (int)((int64_t)V * (s + 1) / parts), k,
                           impl->topk_vals + (size_t)s * k, impl->topk_ids + (size_t)s * k);
        int n = 0;
        for (int s = 0; s < parts; s++)
            for (int r = 0; r < counts[s]; r++)
                topk_offer(vals_h, ids_h, &n, k, impl->topk_vals[(size_t)s * k + r],
                           impl->topk_ids[(size_t)s * k + r]);
        topk_finish(vals_h, ids_h, n, k, vocab_offset);
        return RD_OK;
    }
#pragma omp parallel for num_threads(team(be, (size_t)T *V, T))
    for (int t = 0; t < T; t++) {
        float *val = vals_h + (size_t)t * k;
        int32_t *id = ids_h + (size_t)t * k;
        topk_finish(val, id, topk_range(x + (size_t)t * V, 0, V, k, val, id), k, vocab_offset);
    }
    return RD_OK;
}

/* ---- the backend ---- */

static void cpu_destroy(struct rd_backend *be)
{
    struct cpu_impl *impl = be->impl;
    if (impl) {
        free(impl->scratch), free(impl->cs), free(impl->cs_pos), free(impl->tiles),
            free(impl->items);
        free(impl->topk_vals), free(impl->topk_ids);
    }
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
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            avail = kb * 1024;
        else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            total = kb * 1024;
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
    .upload = cpu_upload,
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
    .rope_attention = rd_cpu_rope_attention,
    .copy = cpu_copy,
    .topk = cpu_topk,
    .mem_info = cpu_mem_info,
};

int rd_backend_cpu_allowed_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return (int)sysconf(_SC_NPROCESSORS_ONLN);
    return CPU_COUNT(&set);
}

int rd_backend_cpu_default_threads(int ranks_on_node, char *why, int why_len)
{
    char tmp[8];
    if (!why || why_len <= 0) why = tmp, why_len = sizeof tmp;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) { /* "4" or a nested list "4,2": the first level is ours */
        char *end;
        long v = strtol(env, &end, 10);
        if (v > 0 && v <= 4096 && (*end == 0 || *end == ',')) {
            snprintf(why, (size_t)why_len, "OMP_NUM_THREADS=%s", env);
            return (int)v;
        }
    }
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int ranks = ranks_on_node > 0 ? ranks_on_node : 1,
              allowed = rd_backend_cpu_allowed_cpus();
    int n = (int)(cores > 0 ? cores : 1) / ranks;
    if (n < 1) n = 1;
    if (n > allowed) {
        snprintf(why, (size_t)why_len,
                 "%ld core(s) / %d rank(s) on the node, but this rank may "
                 "run on only %d CPU(s)",
                 cores, ranks, allowed);
        return allowed > 0 ? allowed : 1;
    }
    snprintf(why, (size_t)why_len, "%ld core(s) / %d rank(s) on the node", cores, ranks);
    return n;
}

void rd_backend_cpu_describe(const struct rd_backend *be, char *buf, int len)
{
    char blas[256];
    rd_cpu_blas_describe(blas, sizeof blas);
    snprintf(buf, (size_t)len, "%d thread(s), BLAS %s",
             be && be->impl ? ((const struct cpu_impl *)be->impl)->threads : 0, blas);
}

rd_status rd_backend_cpu_create(const struct rd_backend_opts *opts, struct rd_backend **out)
{
    *out = NULL;
    if (opts && opts->dtype != RD_DTYPE_F32) {
        RD_LOG_ERROR("the cpu backend computes in fp32 only (asked for %s)",
                     rd_dtype_name(opts->dtype));
        return RD_ERR_UNSUPPORTED;
    }
    const struct rd_cpu_blas *blas = rd_cpu_blas_get();
    if (!blas) return RD_ERR_UNSUPPORTED; /* the loader said why */
    struct rd_backend *be = calloc(1, sizeof *be);
    struct cpu_impl *impl = calloc(1, sizeof *impl);
    if (!be || !impl) {
        free(be);
        free(impl);
        return RD_ERR_OOM;
    }
    impl->blas = blas;
    impl->threads =
        opts && opts->threads > 0 ? opts->threads : rd_backend_cpu_default_threads(1, NULL, 0);
    rd_cpu_blas_threads(impl->threads);
    be->ops = &k_cpu_ops;
    be->dtype = RD_DTYPE_F32;
    be->device = -1;
    be->impl = impl;
    *out = be;
    return RD_OK;
}
