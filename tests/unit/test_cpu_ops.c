/* Unit test of the cpu backend's ops (kernels/cpu) against plain loops and naive
 * double-precision references written here, on a team of 1 and of 2 threads.
 *
 * rmsnorm, add_rmsnorm (the residual is updated in place), matmul (BLAS: GEMV for one row,
 * GEMM for more; held to the plain fp32 loop the backend used to be as well as to double),
 * swiglu, embed, copy, and the fused rope_attention. Shapes come in small and in sizes that
 * reach the threaded paths. The attention reference keeps, per sequence, the raw k/v and rope
 * position of every cache entry, rotates with its own neox / gptj rotation (written from the
 * formula in kernels/rope_table.h, not with rd_rope_rotate_ref) and computes causal softmax
 * attention in double. Cases: MHA, GQA, MQA, partial rotary, both styles, head_dim not a power
 * of two, an attention factor, several sequences of different lengths in one flat batch over a
 * shuffled block table with block size 4, rope positions that differ from cache slots, chunked
 * prefill (later calls attend to entries written by earlier ones), decode steps with T = 1, a
 * batch whose tokens are in shuffled order, and prompts long enough to span several query and
 * key tiles. Besides the output, the KV cache itself is checked: the rotated k and the v at
 * each token's block / row, and untouched (NaN) everywhere else. Tolerance: 1e-5 relative. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/ops.h"
#include "test_util.h"

#define TOL 1e-5

/* ---- deterministic random numbers ---- */

static uint64_t g_rng = 0x853c49e6748fea9bull;
static uint32_t rnd_u32(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}
static float rnd_uniform(float lo, float hi) /* [lo, hi) */
{
    return lo + (hi - lo) * (float)((double)rnd_u32() / 2147483648.0);
}
static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = rnd_uniform(lo, hi);
}
static void shuffle_int(int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd_u32() % (uint32_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- comparison: max |got - ref| over the block, relative to the block's largest |ref| ---- */

static double rel_err(const float *got, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= num)) num = d; /* NaN propagates */
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return num / (den > 0 ? den : 1.0);
}

/* max |got - ref| over the block relative to the larger of its largest |ref| and floor */
static double abs_err(const float *got, const double *ref, size_t n, double floor)
{
    double num = 0, den = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= num)) num = d;
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return num / (den > 0 ? den : 1.0);
}

static struct rd_backend *g_be;

static void *dev_from(const void *src, size_t bytes)
{
    void *p = NULL;
    if (g_be->ops->alloc(g_be, bytes, &p) != RD_OK) {
        fprintf(stderr, "alloc of %zu bytes failed\n", bytes);
        exit(2);
    }
    if (src) g_be->ops->upload(g_be, p, src, bytes);
    return p;
}

/* ---- backend creation and memory ops ---- */

static void test_backend(void)
{
    struct rd_backend *be = NULL;
    struct rd_backend_opts o = {.dtype = RD_DTYPE_BF16, .device = 0};
    CHECK(rd_backend_cpu_create(&o, &be) == RD_ERR_UNSUPPORTED && be == NULL);
    o.dtype = RD_DTYPE_F16;
    CHECK(rd_backend_cpu_create(&o, &be) == RD_ERR_UNSUPPORTED && be == NULL);
    CHECK(rd_backend_cpu_create(NULL, &be) == RD_OK && be != NULL);
    if (be) CHECK(be->dtype == RD_DTYPE_F32 && be->device == -1 && !strcmp(be->ops->name, "cpu"));
    rd_backend_free(be);
    rd_backend_free(NULL);

    /* the default thread count: OMP_NUM_THREADS (of a nested list, the first level), else the
     * node's cores shared by its ranks, at least one, within the CPUs the process may use */
    char why[160], *saved = getenv("OMP_NUM_THREADS") ? strdup(getenv("OMP_NUM_THREADS")) : NULL;
    setenv("OMP_NUM_THREADS", "3,1", 1);
    CHECK(rd_backend_cpu_default_threads(4, why, sizeof why) == 3 && strstr(why, "OMP_NUM_THREADS"));
    setenv("OMP_NUM_THREADS", "none", 1); /* not a number: ignored */
    const int n1 = rd_backend_cpu_default_threads(1, why, sizeof why);
    unsetenv("OMP_NUM_THREADS");
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int allowed = rd_backend_cpu_allowed_cpus();
    CHECK_MSG(n1 == (cores < allowed ? cores : allowed), "default threads %d (%s), %ld cores, %d "
              "allowed", n1, why, cores, allowed);
    CHECK(rd_backend_cpu_default_threads(1 << 20, why, sizeof why) == 1);
    CHECK(rd_backend_cpu_default_threads(0, NULL, 0) == n1);
    if (saved) setenv("OMP_NUM_THREADS", saved, 1);
    free(saved);

    /* upload / download / zero / copy / free(NULL) */
    float src[10], dst[10];
    fill(src, 10, -1, 1);
    void *a = dev_from(NULL, sizeof src), *b = dev_from(NULL, sizeof src);
    CHECK(g_be->ops->upload_f32(g_be, a, src, 10) == RD_OK);
    CHECK(g_be->ops->copy(g_be, b, a, sizeof src) == RD_OK);
    CHECK(g_be->ops->download_f32(g_be, dst, b, 10) == RD_OK);
    CHECK(!memcmp(src, dst, sizeof src));
    CHECK(g_be->ops->zero(g_be, b, 4 * sizeof(float)) == RD_OK);
    CHECK(g_be->ops->download(g_be, dst, b, sizeof dst) == RD_OK);
    CHECK(dst[0] == 0 && dst[3] == 0 && dst[4] == src[4] && dst[9] == src[9]);
    CHECK(g_be->ops->sync(g_be) == RD_OK);
    g_be->ops->free(g_be, a);
    g_be->ops->free(g_be, b);
    g_be->ops->free(g_be, NULL);
}

/* ---- elementwise / dense ops ---- */

static void ref_rmsnorm(double *out, const float *x, const float *w, int T, int D, double eps)
{
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[t * D + i] * x[t * D + i];
        double inv = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) out[t * D + i] = x[t * D + i] * inv * w[i];
    }
}

static void test_rmsnorm(void)
{
    static const int shapes[][2] = {{1, 1}, {1, 64}, {5, 37}, {3, 128}, {7, 1000}, {200, 768}};
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const int T = shapes[c][0], D = shapes[c][1];
        const float eps = c % 3 ? 1e-5f : 1e-6f;
        float *x = malloc(sizeof(float) * T * D), *w = malloc(sizeof(float) * D),
              *out = malloc(sizeof(float) * T * D), *r2 = malloc(sizeof(float) * T * D),
              *dl = malloc(sizeof(float) * T * D);
        double *ref = malloc(sizeof(double) * T * D);
        /* every other case has tiny activations, where eps is a large part of the result */
        const float mag = c % 2 ? 3.0f : 1e-3f;
        fill(x, (size_t)T * D, -mag, mag);
        fill(w, D, 0.5f, 1.5f);
        fill(dl, (size_t)T * D, -mag, mag);
        void *x_d = dev_from(x, sizeof(float) * T * D), *w_d = dev_from(w, sizeof(float) * D),
             *o_d = dev_from(NULL, sizeof(float) * T * D), *d_d = dev_from(dl, sizeof(float) * T * D);

        CHECK(g_be->ops->rmsnorm(g_be, o_d, x_d, w_d, T, D, eps) == RD_OK);
        g_be->ops->download_f32(g_be, out, o_d, (size_t)T * D);
        ref_rmsnorm(ref, x, w, T, D, eps);
        for (int t = 0; t < T; t++) {
            double e = rel_err(out + t * D, ref + t * D, D);
            CHECK_MSG(e <= TOL, "rmsnorm T=%d D=%d row %d: rel err %.3g", T, D, t, e);
        }
        /* input untouched */
        g_be->ops->download_f32(g_be, r2, x_d, (size_t)T * D);
        CHECK(!memcmp(r2, x, sizeof(float) * T * D));

        /* add_rmsnorm: resid (x_d) += delta, out = rmsnorm(resid) * w */
        CHECK(g_be->ops->add_rmsnorm(g_be, o_d, x_d, d_d, w_d, T, D, eps) == RD_OK);
        g_be->ops->download_f32(g_be, r2, x_d, (size_t)T * D);
        g_be->ops->download_f32(g_be, out, o_d, (size_t)T * D);
        float *sum = malloc(sizeof(float) * T * D);
        double *sumd = malloc(sizeof(double) * T * D);
        for (int i = 0; i < T * D; i++) {
            sum[i] = x[i] + dl[i]; /* fp32 sum, as the residual stream holds it */
            sumd[i] = (double)x[i] + dl[i];
        }
        double e = rel_err(r2, sumd, (size_t)T * D);
        CHECK_MSG(e <= 1e-7, "add_rmsnorm T=%d D=%d: residual not updated (rel err %.3g)", T, D, e);
        ref_rmsnorm(ref, sum, w, T, D, eps);
        for (int t = 0; t < T; t++) {
            e = rel_err(out + t * D, ref + t * D, D);
            CHECK_MSG(e <= TOL, "add_rmsnorm T=%d D=%d row %d: rel err %.3g", T, D, t, e);
        }
        /* delta untouched */
        g_be->ops->download_f32(g_be, r2, d_d, (size_t)T * D);
        CHECK(!memcmp(r2, dl, sizeof(float) * T * D));

        free(sum), free(sumd);
        g_be->ops->free(g_be, x_d), g_be->ops->free(g_be, w_d), g_be->ops->free(g_be, o_d),
            g_be->ops->free(g_be, d_d);
        free(x), free(w), free(out), free(r2), free(dl), free(ref);
    }
}

static void test_matmul(void)
{
    static const int shapes[][3] = {{1, 1, 1},    {1, 17, 33},    {3, 17, 33},   {4, 64, 128},
                                    {7, 5, 1},    {2, 1, 300},    {9, 96, 176},  {1, 2304, 768},
                                    {1, 1000, 300}, {37, 300, 200}, {130, 96, 64}, {64, 512, 1024},
                                    {1, 4099, 70},  {1, 7, 5000}};
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const int T = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
        float *x = malloc(sizeof(float) * T * K), *w = malloc(sizeof(float) * N * K),
              *y = malloc(sizeof(float) * T * N);
        double *ref = malloc(sizeof(double) * T * N);
        fill(x, (size_t)T * K, -1, 1);
        fill(w, (size_t)N * K, -0.5f, 0.5f);
        void *x_d = dev_from(x, sizeof(float) * T * K), *w_d = dev_from(w, sizeof(float) * N * K),
             *y_d = dev_from(NULL, sizeof(float) * T * N);
        CHECK(g_be->ops->matmul(g_be, y_d, x_d, w_d, T, N, K) == RD_OK);
        g_be->ops->download_f32(g_be, y, y_d, (size_t)T * N);
        /* the double reference, and the plain fp32 loop (in order over K) */
        double *plain = malloc(sizeof(double) * T * N);
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) {
                double acc = 0;
                float acc32 = 0.0f;
                for (int k = 0; k < K; k++) {
                    acc += (double)x[(size_t)t * K + k] * w[(size_t)n * K + k];
                    acc32 += x[(size_t)t * K + k] * w[(size_t)n * K + k];
                }
                ref[(size_t)t * N + n] = acc;
                plain[(size_t)t * N + n] = acc32;
            }
        /* per row, relative to the row's largest output, or, when cancellation leaves every
         * output of the row small, to the typical size of such a dot product,
         * |x_t| |w_n| / sqrt(K) (fp32 sums in any order err on that scale) */
        for (int t = 0; t < T; t++) {
            double xx = 0, ww = 0;
            for (int k = 0; k < K; k++) xx += (double)x[(size_t)t * K + k] * x[(size_t)t * K + k];
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)w[(size_t)n * K + k] * w[(size_t)n * K + k];
                if (s > ww) ww = s;
            }
            const double typical = sqrt(xx * ww / K);
            double e = abs_err(y + (size_t)t * N, ref + (size_t)t * N, N, typical);
            double ep = abs_err(y + (size_t)t * N, plain + (size_t)t * N, N, typical);
            CHECK_MSG(e <= TOL && ep <= TOL, "matmul T=%d N=%d K=%d row %d: rel err %.3g (%.3g "
                      "from the plain loop)", T, N, K, t, e, ep);
            if (e > TOL || ep > TOL) break;
        }
        free(plain);
        g_be->ops->free(g_be, x_d), g_be->ops->free(g_be, w_d), g_be->ops->free(g_be, y_d);
        free(x), free(w), free(y), free(ref);
    }
}

static void test_swiglu(void)
{
    static const int shapes[][2] = {{1, 1}, {4, 13}, {3, 176}, {2, 1024}, {150, 1024}};
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const int T = shapes[c][0], F = shapes[c][1];
        float *gu = malloc(sizeof(float) * T * 2 * F), *out = malloc(sizeof(float) * T * F);
        double *ref = malloc(sizeof(double) * T * F);
        fill(gu, (size_t)T * 2 * F, -8, 8);
        if (F > 4) gu[0] = -80.0f, gu[1] = 80.0f, gu[2] = 0.0f; /* saturated and zero gates */
        void *g_d = dev_from(gu, sizeof(float) * T * 2 * F), *o_d = dev_from(NULL, sizeof(float) * T * F);
        CHECK(g_be->ops->swiglu(g_be, o_d, g_d, T, F) == RD_OK);
        g_be->ops->download_f32(g_be, out, o_d, (size_t)T * F);
        for (int t = 0; t < T; t++)
            for (int f = 0; f < F; f++) {
                double g = gu[t * 2 * F + f], u = gu[t * 2 * F + F + f];
                ref[t * F + f] = g / (1.0 + exp(-g)) * u;
            }
        for (int i = 0; i < T * F; i++) {
            double e = fabs(out[i] - ref[i]) / (fabs(ref[i]) > 1e-3 ? fabs(ref[i]) : 1e-3);
            CHECK_MSG(e <= TOL, "swiglu T=%d F=%d elem %d: %g vs %g", T, F, i, out[i], ref[i]);
            if (e > TOL) break;
        }
        g_be->ops->free(g_be, g_d), g_be->ops->free(g_be, o_d);
        free(gu), free(out), free(ref);
    }
}

static void test_embed(void)
{
    const int V = 11, D = 7, T = 9;
    const int32_t ids[9] = {3, 0, 10, 3, 7, 7, 1, 10, 0};
    float table[11 * 7], out[9 * 7];
    fill(table, (size_t)V * D, -1, 1);
    void *t_d = dev_from(table, sizeof table), *i_d = dev_from(ids, sizeof ids),
         *o_d = dev_from(NULL, sizeof out);
    CHECK(g_be->ops->embed(g_be, o_d, t_d, i_d, T, D) == RD_OK);
    g_be->ops->download_f32(g_be, out, o_d, (size_t)T * D);
    for (int t = 0; t < T; t++)
        CHECK_MSG(!memcmp(out + t * D, table + ids[t] * D, sizeof(float) * D), "embed row %d", t);
    /* T = 1 */
    CHECK(g_be->ops->embed(g_be, o_d, t_d, (const int32_t *)i_d + 2, 1, D) == RD_OK);
    g_be->ops->download_f32(g_be, out, o_d, D);
    CHECK(!memcmp(out, table + 10 * D, sizeof(float) * D));
    g_be->ops->free(g_be, t_d), g_be->ops->free(g_be, i_d), g_be->ops->free(g_be, o_d);

    /* enough rows for the team */
    enum { BV = 100, BD = 768, BT = 200 };
    float *btab = malloc(sizeof(float) * BV * BD), *bout = malloc(sizeof(float) * BT * BD);
    int32_t bids[BT];
    fill(btab, (size_t)BV * BD, -1, 1);
    for (int t = 0; t < BT; t++) bids[t] = (int32_t)(rnd_u32() % BV);
    t_d = dev_from(btab, sizeof(float) * BV * BD), i_d = dev_from(bids, sizeof bids);
    o_d = dev_from(NULL, sizeof(float) * BT * BD);
    CHECK(g_be->ops->embed(g_be, o_d, t_d, i_d, BT, BD) == RD_OK);
    g_be->ops->download_f32(g_be, bout, o_d, (size_t)BT * BD);
    int bad = 0;
    for (int t = 0; t < BT; t++) bad += memcmp(bout + (size_t)t * BD, btab + (size_t)bids[t] * BD,
                                               sizeof(float) * BD) != 0;
    CHECK_MSG(bad == 0, "embed T=%d D=%d: %d rows differ", BT, BD, bad);
    g_be->ops->free(g_be, t_d), g_be->ops->free(g_be, i_d), g_be->ops->free(g_be, o_d);
    free(btab), free(bout);
}

/* a copy large enough to be split over the team, at an odd size */
static void test_big_copy(void)
{
    const size_t n = ((size_t)9 << 20) / sizeof(float) + 13;
    float *src = malloc(n * sizeof(float)), *dst = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) src[i] = (float)i;
    void *a = dev_from(src, n * sizeof(float)), *b = dev_from(NULL, n * sizeof(float));
    CHECK(g_be->ops->copy(g_be, b, a, n * sizeof(float)) == RD_OK);
    CHECK(g_be->ops->download_f32(g_be, dst, b, n) == RD_OK);
    CHECK_MSG(!memcmp(src, dst, n * sizeof(float)), "copy of %zu floats differs", n);
    /* overlapping (memmove semantics): shift by one element */
    CHECK(g_be->ops->copy(g_be, (float *)b + 1, b, (n - 1) * sizeof(float)) == RD_OK);
    CHECK(g_be->ops->download_f32(g_be, dst, b, n) == RD_OK);
    CHECK(dst[0] == 0.0f && dst[1] == 0.0f && dst[n - 1] == (float)(n - 2));
    g_be->ops->free(g_be, a), g_be->ops->free(g_be, b);
    free(src), free(dst);
}

/* ---- rope attention ---- */

/* Our own rotation, from kernels/rope_table.h: angle = (float)p * inv_freq[i] (fp32 product),
 * c = cos(angle) * af, s = sin(angle) * af; neox pairs (i, i + rot/2), gptj pairs (2i, 2i + 1);
 * dims from rot on are kept. */
static void ref_rotate(double *out, const float *x, int Dh, int rot, enum rd_rope_style style,
                       int pos, const float *inv_freq, double af)
{
    for (int d = 0; d < Dh; d++) out[d] = x[d];
    const int half = rot / 2;
    for (int i = 0; i < half; i++) {
        const float angle = (float)pos * inv_freq[i];
        const double c = cos((double)angle) * af, s = sin((double)angle) * af;
        const int a = style == RD_ROPE_NEOX ? i : 2 * i;
        const int b = style == RD_ROPE_NEOX ? i + half : 2 * i + 1;
        out[a] = x[a] * c - x[b] * s;
        out[b] = x[b] * c + x[a] * s;
    }
}

#define MAX_SEQ 4
#define MAX_CALLS 6
#define MAX_CHUNKS 5

struct chunk {
    int seq, n; /* n new tokens appended to sequence seq; n == 0 ends the call */
};

struct attn_case {
    const char *name;
    int H, Hkv, Dh, rot;
    enum rd_rope_style style;
    float attention_factor;
    double theta;
    int n_seq;
    int pos_offset[MAX_SEQ]; /* rope position = cache slot + offset */
    int shuffle;             /* shuffle the token order inside each call */
    struct chunk calls[MAX_CALLS][MAX_CHUNKS];
};

static const struct attn_case k_cases[] = {
    {"MHA neox prefill", 4, 4, 16, 16, RD_ROPE_NEOX, 1.0f, 10000, 1, {0}, 0,
     {{{0, 7}}}},
    {"MHA gptj prefill + decode", 4, 4, 16, 16, RD_ROPE_GPTJ, 1.0f, 10000, 1, {0}, 0,
     {{{0, 6}}, {{0, 1}}, {{0, 1}}, {{0, 1}}}},
    {"GQA 8/2 neox", 8, 2, 16, 16, RD_ROPE_NEOX, 1.0f, 500000, 1, {0}, 0,
     {{{0, 9}}, {{0, 1}}}},
    {"GQA 8/2 gptj", 8, 2, 16, 16, RD_ROPE_GPTJ, 1.0f, 10000, 1, {0}, 0,
     {{{0, 9}}, {{0, 1}}}},
    {"MQA 6/1 head_dim 32", 6, 1, 32, 32, RD_ROPE_NEOX, 1.0f, 10000, 1, {0}, 0,
     {{{0, 10}}, {{0, 1}}}},
    {"partial rotary neox 8/16", 4, 2, 16, 8, RD_ROPE_NEOX, 1.0f, 10000, 1, {0}, 0,
     {{{0, 8}}, {{0, 1}}}},
    {"partial rotary gptj 6/20", 4, 2, 20, 6, RD_ROPE_GPTJ, 1.0f, 10000, 1, {0}, 0,
     {{{0, 8}}, {{0, 1}}}},
    {"head_dim 24 neox", 3, 3, 24, 24, RD_ROPE_NEOX, 1.0f, 10000, 1, {0}, 0,
     {{{0, 11}}}},
    {"head_dim 12 gptj GQA 6/2", 6, 2, 12, 12, RD_ROPE_GPTJ, 1.0f, 10000, 1, {0}, 0,
     {{{0, 11}}}},
    {"head_dim 40 partial 20 + attention factor", 2, 1, 40, 20, RD_ROPE_NEOX, 1.17f, 10000, 1,
     {0}, 0, {{{0, 6}}, {{0, 1}}}},
    {"3 sequences in one batch", 4, 2, 16, 16, RD_ROPE_NEOX, 1.0f, 10000, 3, {0, 0, 0}, 0,
     {{{1, 9}, {0, 5}, {2, 2}}}},
    {"3 sequences, positions != slots, gptj", 4, 2, 16, 16, RD_ROPE_GPTJ, 1.0f, 10000, 3,
     {3, 0, 17}, 0, {{{2, 5}, {0, 9}, {1, 3}}, {{0, 1}, {1, 1}, {2, 1}}}},
    {"chunked prefill, several sequences", 8, 2, 16, 16, RD_ROPE_NEOX, 1.0f, 10000, 4,
     {0, 0, 0, 0},
     0,
     {{{0, 6}, {1, 3}},
      {{0, 5}, {2, 7}, {1, 4}},
      {{3, 2}, {2, 1}, {0, 1}},
      {{1, 1}},
      {{3, 9}, {0, 1}, {1, 1}, {2, 1}}}},
    {"decode T=1 steps, MQA partial gptj", 4, 1, 12, 8, RD_ROPE_GPTJ, 1.0f, 10000, 2, {0, 2}, 0,
     {{{0, 3}, {1, 4}}, {{1, 1}}, {{0, 1}}, {{1, 1}}, {{0, 1}}, {{0, 1}}}},
    {"shuffled token order", 4, 2, 16, 16, RD_ROPE_NEOX, 1.0f, 10000, 3, {0, 5, 0}, 1,
     {{{0, 7}, {1, 5}, {2, 3}}, {{2, 6}, {0, 2}}, {{0, 1}, {1, 1}, {2, 1}}}},
    /* past one query tile (128 rows), and several tiles per work item */
    {"long prefill GQA 8/2 head_dim 64, then decode", 8, 2, 64, 64, RD_ROPE_NEOX, 1.0f, 10000,
     1, {0}, 0, {{{0, 300}}, {{0, 1}}, {{0, 1}}}},
    {"long chunks of 2 sequences, MHA gptj", 4, 4, 32, 32, RD_ROPE_GPTJ, 1.0f, 10000, 2, {0, 5},
     0, {{{0, 140}, {1, 70}}, {{1, 200}, {0, 1}}, {{0, 1}, {1, 1}}}},
    {"past two key tiles (512 keys), MQA 4/1, chunked", 4, 1, 32, 32, RD_ROPE_NEOX, 1.0f, 10000, 1,
     {0}, 0, {{{0, 600}}, {{0, 500}}, {{0, 1}}, {{0, 1}}}},
};

#define BLOCK 4

static void run_attn_case(const struct attn_case *c)
{
    const int H = c->H, Hkv = c->Hkv, Dh = c->Dh, W = (H + 2 * Hkv) * Dh;
    const int n_pairs = c->rot / 2;
    float inv_freq[RD_MAX_ROPE_PAIRS];
    for (int i = 0; i < n_pairs; i++)
        inv_freq[i] = (float)(1.0 / pow(c->theta, (double)(2 * i) / c->rot));

    /* total length per sequence -> block table */
    int total[MAX_SEQ] = {0}, max_len = 0;
    for (int k = 0; k < MAX_CALLS; k++)
        for (int j = 0; j < MAX_CHUNKS && c->calls[k][j].n; j++) total[c->calls[k][j].seq] += c->calls[k][j].n;
    for (int s = 0; s < c->n_seq; s++)
        if (total[s] > max_len) max_len = total[s];
    const int max_blocks = (max_len + BLOCK - 1) / BLOCK + 1; /* one spare per sequence */
    const int n_blocks = c->n_seq * max_blocks + 3;           /* and blocks nobody owns */
    int *perm = malloc(sizeof(int) * n_blocks);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    shuffle_int(perm, n_blocks);
    int32_t *btab = malloc(sizeof(int32_t) * c->n_seq * max_blocks);
    for (int i = 0; i < c->n_seq * max_blocks; i++) btab[i] = perm[i];

    const size_t cache_n = (size_t)n_blocks * BLOCK * Hkv * Dh;
    float *cache_h = malloc(sizeof(float) * cache_n);
    for (size_t i = 0; i < cache_n; i++) cache_h[i] = NAN;
    void *kc_d = dev_from(cache_h, sizeof(float) * cache_n);
    void *vc_d = dev_from(cache_h, sizeof(float) * cache_n);
    void *bt_d = dev_from(btab, sizeof(int32_t) * c->n_seq * max_blocks);

    /* reference store: raw k, v and rope position of every cache entry */
    float *ref_k = malloc(sizeof(float) * MAX_SEQ * max_len * Hkv * Dh);
    float *ref_v = malloc(sizeof(float) * MAX_SEQ * max_len * Hkv * Dh);
    int *ref_pos = malloc(sizeof(int) * MAX_SEQ * max_len);
    int len[MAX_SEQ] = {0};
#define RK(s, j, kh) (ref_k + (((size_t)(s) * max_len + (j)) * Hkv + (kh)) * Dh)
#define RV(s, j, kh) (ref_v + (((size_t)(s) * max_len + (j)) * Hkv + (kh)) * Dh)

    double worst = 0, worst_cache = 0;
    int bad_stray = 0;
    for (int k = 0; k < MAX_CALLS && c->calls[k][0].n; k++) {
        int T = 0;
        for (int j = 0; j < MAX_CHUNKS && c->calls[k][j].n; j++) T += c->calls[k][j].n;
        float *qkv = malloc(sizeof(float) * T * W);
        int32_t *pos = malloc(sizeof(int32_t) * T), *seq = malloc(sizeof(int32_t) * T),
                *slot = malloc(sizeof(int32_t) * T), *nctx = malloc(sizeof(int32_t) * T);
        int *order = malloc(sizeof(int) * T);
        for (int t = 0; t < T; t++) order[t] = t;
        if (c->shuffle) shuffle_int(order, T);
        int t0 = 0, max_ctx = 0;
        for (int j = 0; j < MAX_CHUNKS && c->calls[k][j].n; j++) {
            const int s = c->calls[k][j].seq;
            for (int i = 0; i < c->calls[k][j].n; i++) {
                const int t = order[t0++], sl = len[s] + i;
                float *row = qkv + (size_t)t * W;
                fill(row, (size_t)H * Dh, -2, 2); /* q: a bit larger, for peakier softmax */
                fill(row + (size_t)H * Dh, (size_t)2 * Hkv * Dh, -1, 1);
                seq[t] = s, slot[t] = sl, pos[t] = sl + c->pos_offset[s], nctx[t] = sl + 1;
                if (nctx[t] > max_ctx) max_ctx = nctx[t];
                ref_pos[s * max_len + sl] = pos[t];
                for (int kh = 0; kh < Hkv; kh++) {
                    memcpy(RK(s, sl, kh), row + (size_t)(H + kh) * Dh, sizeof(float) * Dh);
                    memcpy(RV(s, sl, kh), row + (size_t)(H + Hkv + kh) * Dh, sizeof(float) * Dh);
                }
            }
            len[s] += c->calls[k][j].n;
        }

        void *qkv_d = dev_from(qkv, sizeof(float) * T * W), *out_d = dev_from(NULL, sizeof(float) * T * H * Dh);
        void *pos_d = dev_from(pos, sizeof(int32_t) * T), *seq_d = dev_from(seq, sizeof(int32_t) * T),
             *slot_d = dev_from(slot, sizeof(int32_t) * T), *nctx_d = dev_from(nctx, sizeof(int32_t) * T);
        void *if_d = dev_from(inv_freq, sizeof(float) * (n_pairs ? n_pairs : 1));
        struct rd_attn_params p = {
            .T = T, .H = H, .Hkv = Hkv, .Dh = Dh, .rotary_dim = c->rot, .style = c->style,
            .inv_freq_d = if_d, .attention_factor = c->attention_factor,
            .scale = (float)(1.0 / sqrt((double)Dh)), .qkv_d = qkv_d, .out_d = out_d,
            .pos_d = pos_d, .seq_d = seq_d, .slot_d = slot_d, .n_ctx_d = nctx_d,
            .block_table_d = bt_d, .max_blocks = max_blocks, .block_size = BLOCK,
            .max_ctx = max_ctx, .k_cache_d = kc_d, .v_cache_d = vc_d,
        };
        rd_status st = g_be->ops->rope_attention(g_be, &p);
        CHECK_MSG(st == RD_OK, "%s call %d: %s", c->name, k, rd_status_str(st));
        float *out = malloc(sizeof(float) * T * H * Dh);
        g_be->ops->download_f32(g_be, out, out_d, (size_t)T * H * Dh);

        /* reference attention */
        double *qr = malloc(sizeof(double) * Dh), *o = malloc(sizeof(double) * Dh);
        double *kr = malloc(sizeof(double) * max_len * Dh), *sc = malloc(sizeof(double) * max_len);
        for (int t = 0; t < T; t++) {
            const int s = seq[t], n = nctx[t];
            for (int h = 0; h < H; h++) {
                const int kh = h / (H / Hkv);
                ref_rotate(qr, qkv + (size_t)t * W + (size_t)h * Dh, Dh, c->rot, c->style, pos[t],
                           inv_freq, c->attention_factor);
                double mx = -INFINITY;
                for (int j = 0; j < n; j++) {
                    ref_rotate(kr + (size_t)j * Dh, RK(s, j, kh), Dh, c->rot, c->style,
                               ref_pos[s * max_len + j], inv_freq, c->attention_factor);
                    double dot = 0;
                    for (int d = 0; d < Dh; d++) dot += qr[d] * kr[(size_t)j * Dh + d];
                    sc[j] = dot / sqrt((double)Dh);
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0;
                for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < Dh; d++) o[d] = 0;
                for (int j = 0; j < n; j++)
                    for (int d = 0; d < Dh; d++) o[d] += sc[j] / sum * RV(s, j, kh)[d];
                double e = rel_err(out + ((size_t)t * H + h) * Dh, o, Dh);
                if (!(e <= worst)) worst = e;
                if (!(e <= TOL))
                    fprintf(stderr, "  %s call %d token %d (seq %d slot %d pos %d) head %d: rel err %.3g\n",
                            c->name, k, t, s, slot[t], pos[t], h, e);
            }
        }

        /* the cache: rotated k and raw v at block_table[seq][slot / B], row slot % B */
        g_be->ops->download_f32(g_be, cache_h, kc_d, cache_n);
        float *vcache = malloc(sizeof(float) * cache_n);
        g_be->ops->download_f32(g_be, vcache, vc_d, cache_n);
        char *written = calloc(cache_n, 1);
        for (int s = 0; s < c->n_seq; s++)
            for (int j = 0; j < len[s]; j++) {
                const int blk = btab[s * max_blocks + j / BLOCK];
                for (int kh = 0; kh < Hkv; kh++) {
                    const size_t at = (((size_t)blk * BLOCK + j % BLOCK) * Hkv + kh) * Dh;
                    ref_rotate(qr, RK(s, j, kh), Dh, c->rot, c->style, ref_pos[s * max_len + j],
                               inv_freq, c->attention_factor);
                    double e = rel_err(cache_h + at, qr, Dh);
                    if (!(e <= worst_cache)) worst_cache = e;
                    if (memcmp(vcache + at, RV(s, j, kh), sizeof(float) * Dh) != 0) worst_cache = INFINITY;
                    memset(written + at, 1, Dh);
                }
            }
        for (size_t i = 0; i < cache_n; i++)
            if (!written[i] && (!isnan(cache_h[i]) || !isnan(vcache[i]))) bad_stray++;
        free(written), free(vcache);

        free(qr), free(o), free(kr), free(sc), free(out);
        g_be->ops->free(g_be, qkv_d), g_be->ops->free(g_be, out_d), g_be->ops->free(g_be, pos_d);
        g_be->ops->free(g_be, seq_d), g_be->ops->free(g_be, slot_d), g_be->ops->free(g_be, nctx_d);
        g_be->ops->free(g_be, if_d);
        free(qkv), free(pos), free(seq), free(slot), free(nctx), free(order);
    }
    CHECK_MSG(worst <= TOL, "%s: worst output rel err %.3g", c->name, worst);
    CHECK_MSG(worst_cache <= TOL, "%s: worst k cache rel err %.3g (inf: v cache differs)", c->name,
              worst_cache);
    CHECK_MSG(bad_stray == 0, "%s: %d cache values written outside the tokens' rows", c->name, bad_stray);
    printf("rope_attention %-44s out err %.2e, cache err %.2e\n", c->name, worst, worst_cache);
#undef RK
#undef RV
    g_be->ops->free(g_be, kc_d), g_be->ops->free(g_be, vc_d), g_be->ops->free(g_be, bt_d);
    free(perm), free(btab), free(cache_h), free(ref_k), free(ref_v), free(ref_pos);
}

/* The reference itself must match the header's pictures on a hand-made case. */
static void test_ref_rotation(void)
{
    /* rot 4 of Dh 6, one pair frequency 1 and one 0.5, position 1 */
    const float x[6] = {1, 2, 3, 4, 5, 6}, f[2] = {1.0f, 0.5f};
    double y[6];
    const double c0 = cos(1.0), s0 = sin(1.0), c1 = cos(0.5), s1 = sin(0.5);
    ref_rotate(y, x, 6, 4, RD_ROPE_NEOX, 1, f, 1.0); /* pairs (0,2), (1,3) */
    CHECK(fabs(y[0] - (1 * c0 - 3 * s0)) < 1e-12 && fabs(y[2] - (3 * c0 + 1 * s0)) < 1e-12);
    CHECK(fabs(y[1] - (2 * c1 - 4 * s1)) < 1e-12 && fabs(y[3] - (4 * c1 + 2 * s1)) < 1e-12);
    CHECK(y[4] == 5 && y[5] == 6);
    ref_rotate(y, x, 6, 4, RD_ROPE_GPTJ, 1, f, 2.0); /* pairs (0,1), (2,3), scaled by 2 */
    CHECK(fabs(y[0] - 2 * (1 * c0 - 2 * s0)) < 1e-12 && fabs(y[1] - 2 * (2 * c0 + 1 * s0)) < 1e-12);
    CHECK(fabs(y[2] - 2 * (3 * c1 - 4 * s1)) < 1e-12 && fabs(y[3] - 2 * (4 * c1 + 3 * s1)) < 1e-12);
    CHECK(y[4] == 5 && y[5] == 6);
}

int main(void)
{
    static const int k_threads[] = {1, 2};
    for (size_t ti = 0; ti < sizeof k_threads / sizeof *k_threads; ti++) {
        struct rd_backend_opts opts = {.dtype = RD_DTYPE_F32, .device = 0,
                                       .threads = k_threads[ti]};
        if (rd_backend_cpu_create(&opts, &g_be) != RD_OK || !g_be) {
            fprintf(stderr, "cannot create the cpu backend\n");
            return 1;
        }
        printf("-- %d thread(s)\n", k_threads[ti]);
        test_backend();
        test_rmsnorm();
        test_matmul();
        test_swiglu();
        test_embed();
        test_big_copy();
        test_ref_rotation();
        for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) run_attn_case(&k_cases[i]);
        rd_backend_free(g_be);
    }
    return rd_test_finish("test_cpu_ops");
}
