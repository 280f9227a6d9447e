/* Synthetic weights from a counter-based hash (see weights_random.h). */
#include "runtime/weights_random.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct rnd_src {
    struct rd_config cfg;
    uint64_t seed;
    float scale;
    uint64_t bytes; /* fp32 bytes handed out, reported as bytes_read */
};

/* splitmix64's finaliser: a bijective mix, good enough to look random element by element */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t name_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ULL));
}

/* uniform in [-1, 1) from the top 24 bits */
static inline float unit(uint64_t key, uint64_t i)
{
    uint64_t h = mix64(key + i * 0x9e3779b97f4a7c15ULL);
    return (float)(int32_t)(h >> 40) * (1.0f / 8388608.0f) - 1.0f;
}

static int is_norm(const char *name) { return strstr(name, "norm.weight") != NULL; }

/* Shape the config implies for a Hugging Face tensor name; 0 when the name is not one. */
static int implied_shape(const struct rd_config *c, const char *name, int *ndim, int64_t dims[2])
{
    const int64_t D = c->hidden_size, V = c->vocab_size, F = c->intermediate_size;
    const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    *ndim = 2;
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight")) {
        dims[0] = V, dims[1] = D;
        return 1;
    }
    if (!strcmp(name, "model.norm.weight")) {
        *ndim = 1, dims[0] = D, dims[1] = 0;
        return 1;
    }
    int l = -1, used = 0;
    char rest[128];
    if (sscanf(name, "model.layers.%d.%127s%n", &l, rest, &used) != 2 || l < 0 ||
        l >= c->n_layers || name[used] != 0)
        return 0;
    static const struct {
        const char *name;
        int which; /* 0 norm, 1 q, 2 kv, 3 o, 4 gate/up, 5 down */
    } k[] = {{"input_layernorm.weight", 0},  {"post_attention_layernorm.weight", 0},
             {"self_attn.q_proj.weight", 1}, {"self_attn.k_proj.weight", 2},
             {"self_attn.v_proj.weight", 2}, {"self_attn.o_proj.weight", 3},
             {"mlp.gate_proj.weight", 4},    {"mlp.up_proj.weight", 4},
             {"mlp.down_proj.weight", 5}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        if (strcmp(rest, k[i].name)) continue;
        switch (k[i].which) {
        case 0: *ndim = 1, dims[0] = D, dims[1] = 0; break;
        case 1: dims[0] = q, dims[1] = D; break;
        case 2: dims[0] = kv, dims[1] = D; break;
        case 3: dims[0] = D, dims[1] = q; break;
        case 4: dims[0] = F, dims[1] = D; break;
        default: dims[0] = D, dims[1] = F; break;
        }
        return 1;
    }
    return 0;
}

static rd_status rnd_shape(void *ctx, const char *name, int *ndim, int64_t dims[2], char *err,
                           int err_len)
{
    struct rnd_src *s = ctx;
    if (!implied_shape(&s->cfg, name, ndim, dims)) {
        snprintf(err, err_len, "synthetic weights: no tensor %s in this config", name);
        return RD_ERR_FORMAT;
    }
    return RD_OK;
}

struct fill_job {
    uint64_t key;
    int64_t r0, nr, c0, nc, cols;
    float scale, offset;
    float *dst;
};

static void fill_rows(const struct fill_job *j)
{
    for (int64_t r = 0; r < j->nr; r++) {
        float *d = j->dst + r * j->nc;
        const uint64_t base = (uint64_t)(j->r0 + r) * (uint64_t)j->cols + (uint64_t)j->c0;
        for (int64_t c = 0; c < j->nc; c++) d[c] = j->offset + j->scale * unit(j->key, base + c);
    }
}

static void *fill_thread(void *arg)
{
    fill_rows(arg);
    return NULL;
}

static int n_threads(void)
{
    int n = rd_env_int("RD_RANDOM_THREADS", 0);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > 32 ? 32 : n;
}

/* rows split over threads when the read is large; a failed pthread_create runs inline */
static void fill(const struct fill_job *job)
{
    int nt = n_threads();
    if ((double)job->nr * job->nc < (1 << 20) || nt < 2 || job->nr < 2) {
        fill_rows(job);
        return;
    }
    if (nt > job->nr) nt = (int)job->nr;
    pthread_t th[32];
    struct fill_job part[32];
    int started[32] = {0};
    for (int t = 0; t < nt; t++) {
        int64_t a = job->nr * t / nt, b = job->nr * (t + 1) / nt;
        part[t] = *job;
        part[t].r0 = job->r0 + a;
        part[t].nr = b - a;
        part[t].dst = job->dst + a * job->nc;
        started[t] = pthread_create(&th[t], NULL, fill_thread, &part[t]) == 0;
        if (!started[t]) fill_rows(&part[t]);
    }
    for (int t = 0; t < nt; t++)
        if (started[t]) pthread_join(th[t], NULL);
}

static rd_status rnd_read(void *ctx, const char *name, int64_t r0, int64_t nr, int64_t c0,
                          int64_t nc, float *dst, char *err, int err_len)
{
    struct rnd_src *s = ctx;
    int nd;
    int64_t dims[2];
    RD_TRY(rnd_shape(ctx, name, &nd, dims, err, err_len));
    const int64_t rows = nd == 1 ? 1 : dims[0], cols = nd == 1 ? dims[0] : dims[1];
    if (r0 < 0 || nr < 0 || c0 < 0 || nc < 0 || r0 + nr > rows || c0 + nc > cols) {
        snprintf(err, err_len, "synthetic weights: slice [%lld+%lld, %lld+%lld] outside %s",
                 (long long)r0, (long long)nr, (long long)c0, (long long)nc, name);
        return RD_ERR_RANGE;
    }
    struct fill_job j = {.key = name_key(s->seed, name), .r0 = r0, .nr = nr, .c0 = c0, .nc = nc,
                         .cols = cols, .scale = s->scale, .offset = is_norm(name) ? 1.0f : 0.0f,
                         .dst = dst};
    fill(&j);
    s->bytes += (uint64_t)nr * nc * sizeof(float);
    return RD_OK;
}

static uint64_t rnd_bytes(void *ctx) { return ((struct rnd_src *)ctx)->bytes; }
static void rnd_close(void *ctx) { free(ctx); }

float rd_weights_random_value(uint64_t seed, const char *name, float scale, int64_t r, int64_t c,
                              int64_t cols)
{
    if (scale <= 0) scale = 0.02f;
    return (is_norm(name) ? 1.0f : 0.0f) +
           scale * unit(name_key(seed, name), (uint64_t)r * (uint64_t)cols + (uint64_t)c);
}

rd_status rd_weights_open_random(const struct rd_config *cfg, uint64_t seed, float scale,
                                 struct rd_weight_source *src, char *err, int err_len)
{
    struct rnd_src *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_len, "synthetic weights: out of memory");
        return RD_ERR_OOM;
    }
    s->cfg = *cfg;
    s->seed = seed;
    s->scale = scale > 0 ? scale : 0.02f;
    memset(src, 0, sizeof *src);
    src->ctx = s;
    src->shape = rnd_shape;
    src->read = rnd_read;
    src->bytes_read = rnd_bytes;
    src->close = rnd_close;
    return RD_OK;
}
