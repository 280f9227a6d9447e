/* The benchmarks' shared driver (see common.h). */
#include "bench/common.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef RD_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include "common/log.h"

#ifndef BENCH_CONFIG_DIR
#define BENCH_CONFIG_DIR "configs"
#endif

/* the smoke shape: every code path of the 8B shape (GQA, llama3 rope) at toy size */
static const char k_tiny_config[] =
    "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 256,"
    " \"rms_norm_eps\": 1e-5, \"max_position_embeddings\": 4096, \"rope_theta\": 500000.0,"
    " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
    " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 512},"
    " \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}";

static json_t *g_doc;    /* the run's JSON document */
static json_t *g_tables; /* its "tables" array (borrowed from g_doc) */

/* ---- arguments ---- */

static int parse_list(const char *s, int *out, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > (1L << 30) || *n >= BENCH_MAX_LIST) return -1;
        if (*end == 'k' || *end == 'K') v *= 1024, end++;
        out[(*n)++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return *n ? 0 : -1;
}

static void usage(FILE *f, const char *name, const char *about)
{
    fprintf(f,
            "usage: %s [options]\n%s\n"
            "  -m, --model NAME|FILE     llama-3-8b (default), llama-2-7b, llama-70b, tiny, or a\n"
            "                            config.json; weights are synthetic (seeded), no file read\n"
            "  -d, --device auto|cpu|cuda  (auto: cuda when a GPU is visible)\n"
            "      --dtype fp32|bf16|fp16  (default bf16 on cuda, fp32 on cpu)\n"
            "  -l, --layers N            build only N layers; per-layer cost is extrapolated\n"
            "                            where the benchmark says so (0 = all)\n"
            "  -t, --simulate-tp P       time rank 0's shard of a P-way group alone; the\n"
            "                            all-reduce is replaced by the modelled cost\n"
            "      --tp LIST             tp sizes (scaling), e.g. 1,2,4,8\n"
            "  -b, --batch LIST          sequences per decode step, e.g. 1,8,64\n"
            "  -c, --ctx LIST            context tokens, e.g. 128,2k,32k\n"
            "  -p, --prompt LIST         prompt tokens (prefill), e.g. 128,512,2048\n"
            "  -w, --warmup N            untimed runs first (default 3)\n"
            "  -n, --iters N             timed runs; median/min/max over them (default 20)\n"
            "  -J, --json FILE           also write the tables as JSON\n"
            "      --seed S              weight seed (default 1234)\n"
            "      --ar-latency-us US    all-reduce model: cost per call (default 20)\n"
            "      --ar-busbw GBS        all-reduce model: bus bandwidth (default 400)\n"
            "      --copy-mb MB          floor: bytes of the copy (default 1024 cuda, 64 cpu)\n"
            "      --gemm-n N            floor: n of the n^3 GEMM (default 8192 cuda, 256 cpu)\n"
            "      --mem-frac F          a row may use this share of free memory (default 0.9)\n"
            "  -h, --help\n",
            name, about);
}

int bench_parse(int argc, char **argv, const char *name, const char *about, struct bench_args *a)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    a->model = "llama-3-8b";
    a->device = "auto";
    a->dtype = -1;
    a->tp = 1;
    a->warmup = 3;
    a->iters = 20;
    a->seed = 1234;
    a->ar_latency_us = 20;
    a->ar_busbw_gbs = 400;
    a->mem_frac = 0.9;
    enum { O_DTYPE = 256, O_TP, O_SEED, O_ARL, O_ARB, O_COPY, O_GEMM, O_MEM };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"device", required_argument, 0, 'd'},
        {"dtype", required_argument, 0, O_DTYPE}, {"layers", required_argument, 0, 'l'},
        {"simulate-tp", required_argument, 0, 't'}, {"tp", required_argument, 0, O_TP},
        {"batch", required_argument, 0, 'b'},     {"ctx", required_argument, 0, 'c'},
        {"prompt", required_argument, 0, 'p'},    {"warmup", required_argument, 0, 'w'},
        {"iters", required_argument, 0, 'n'},     {"json", required_argument, 0, 'J'},
        {"seed", required_argument, 0, O_SEED},   {"ar-latency-us", required_argument, 0, O_ARL},
        {"ar-busbw", required_argument, 0, O_ARB}, {"copy-mb", required_argument, 0, O_COPY},
        {"gemm-n", required_argument, 0, O_GEMM}, {"mem-frac", required_argument, 0, O_MEM},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:l:t:b:c:p:w:n:J:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'd': a->device = optarg; break;
        case O_DTYPE: bad |= (a->dtype = rd_dtype_parse(optarg)) < 0; break;
        case 'l': a->layers = atoi(optarg); bad |= a->layers < 0; break;
        case 't': a->tp = atoi(optarg); bad |= a->tp < 1; break;
        case O_TP: bad |= parse_list(optarg, a->tp_list, &a->n_tp); break;
        case 'b': bad |= parse_list(optarg, a->batch, &a->n_batch); break;
        case 'c': bad |= parse_list(optarg, a->ctx, &a->n_ctx); break;
        case 'p': bad |= parse_list(optarg, a->prompt, &a->n_prompt); break;
        case 'w': a->warmup = atoi(optarg); bad |= a->warmup < 0; break;
        case 'n': a->iters = atoi(optarg); bad |= a->iters < 1; break;
        case 'J': a->json_path = optarg; break;
        case O_SEED: a->seed = strtoull(optarg, NULL, 10); break;
        case O_ARL: a->ar_latency_us = atof(optarg); break;
        case O_ARB: a->ar_busbw_gbs = atof(optarg); bad |= a->ar_busbw_gbs <= 0; break;
        case O_COPY: a->copy_mb = atof(optarg); break;
        case O_GEMM: a->gemm_n = atoi(optarg); break;
        case O_MEM: a->mem_frac = atof(optarg); break;
        case 'h': usage(stdout, name, about); return -1;
        default: bad = 1;
        }
        if (bad) {
            fprintf(stderr, "%s: bad value for option %s\n", name, argv[optind - 1]);
            usage(stderr, name, about);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument %s\n", name, argv[optind]);
        return 2;
    }
    return 0;
}

rd_status bench_backend_open(const struct bench_args *a, struct rd_backend **be)
{
    bool cuda = !strcmp(a->device, "cuda") ||
                (!strcmp(a->device, "auto") && rd_backend_cuda_device_count() > 0);
    if (strcmp(a->device, "cuda") && strcmp(a->device, "cpu") && strcmp(a->device, "auto")) {
        fprintf(stderr, "%s: --device must be auto, cpu or cuda\n", a->name);
        return RD_ERR_INVALID_ARG;
    }
    struct rd_backend_opts o = {.dtype = RD_DTYPE_F32, .device = -1};
    if (cuda) o.dtype = a->dtype >= 0 ? (enum rd_dtype)a->dtype : RD_DTYPE_BF16, o.device = 0;
    else if (a->dtype > 0) {
        fprintf(stderr, "%s: the cpu backend computes in fp32 only\n", a->name);
        return RD_ERR_UNSUPPORTED;
    }
    rd_status st = cuda ? rd_backend_cuda_create(&o, be) : rd_backend_cpu_create(&o, be);
    if (st != RD_OK)
        fprintf(stderr, "%s: cannot open the %s backend: %s\n", a->name, cuda ? "cuda" : "cpu",
                rd_status_str(st));
    return st;
}

rd_status bench_config_load(const char *model, struct rd_config *cfg, char *err, int err_len)
{
    if (!strcmp(model, "tiny")) {
        RD_TRY(rd_config_parse(k_tiny_config, NULL, cfg, err, err_len));
        return rd_config_validate(cfg, err, err_len);
    }
    char path[RD_PATH_MAX];
    if (strchr(model, '/') || strstr(model, ".json")) snprintf(path, sizeof path, "%s", model);
    else
        snprintf(path, sizeof path, "%s/%s.json", rd_env_str("RD_BENCH_CONFIGS", BENCH_CONFIG_DIR),
                 model);
    RD_TRY(rd_config_load(path, cfg, err, err_len));
    return rd_config_validate(cfg, err, err_len);
}

size_t bench_free_bytes(struct rd_backend *be)
{
#ifdef RD_WITH_CUDA
    if (be->device >= 0) {
        size_t free_b = 0, total = 0;
        if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) return 0;
        return free_b;
    }
#endif
    (void)be;
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : (size_t)1 << 30;
}

/* ---- time ---- */

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct bench_clock {
    struct rd_backend *be;
    int n, cap;
    double *t_ms;  /* cpu: host time after a sync */
    void **ev;     /* cuda: cudaEvent_t per mark */
};

rd_status bench_clock_create(struct rd_backend *be, int max_marks, struct bench_clock **out)
{
    struct bench_clock *c = calloc(1, sizeof *c);
    if (!c) return RD_ERR_OOM;
    c->be = be;
    c->cap = max_marks;
    c->t_ms = calloc((size_t)max_marks, sizeof(double));
    c->ev = calloc((size_t)max_marks, sizeof(void *));
    if (!c->t_ms || !c->ev) {
        bench_clock_free(c);
        return RD_ERR_OOM;
    }
#ifdef RD_WITH_CUDA
    if (be->device >= 0)
        for (int i = 0; i < max_marks; i++)
            if (cudaEventCreate((cudaEvent_t *)&c->ev[i]) != cudaSuccess) {
                bench_clock_free(c);
                return RD_ERR_CUDA;
            }
#endif
    *out = c;
    return RD_OK;
}

void bench_clock_free(struct bench_clock *c)
{
    if (!c) return;
#ifdef RD_WITH_CUDA
    for (int i = 0; i < c->cap && c->ev; i++)
        if (c->ev[i]) cudaEventDestroy((cudaEvent_t)c->ev[i]);
#endif
    free(c->t_ms);
    free(c->ev);
    free(c);
}

void bench_clock_reset(struct bench_clock *c) { c->n = 0; }
int bench_clock_count(const struct bench_clock *c) { return c->n; }

rd_status bench_clock_mark(struct bench_clock *c)
{
    if (c->n >= c->cap) return RD_ERR_RANGE;
#ifdef RD_WITH_CUDA
    if (c->be->device >= 0) {
        cudaStream_t s = (cudaStream_t)c->be->ops->stream(c->be);
        if (cudaEventRecord((cudaEvent_t)c->ev[c->n], s) != cudaSuccess) return RD_ERR_CUDA;
        c->n++;
        return RD_OK;
    }
#endif
    RD_TRY(c->be->ops->sync(c->be));
    c->t_ms[c->n++] = bench_now_ms();
    return RD_OK;
}

rd_status bench_clock_wait(struct bench_clock *c)
{
#ifdef RD_WITH_CUDA
    if (c->be->device >= 0 && c->n > 0) {
        if (cudaEventSynchronize((cudaEvent_t)c->ev[c->n - 1]) != cudaSuccess) return RD_ERR_CUDA;
        return RD_OK;
    }
#endif
    return c->be->ops->sync(c->be);
}

double bench_clock_ms(const struct bench_clock *c, int from, int to)
{
    if (from < 0 || to >= c->n || from >= to) return 0;
#ifdef RD_WITH_CUDA
    if (c->be->device >= 0) {
        float ms = 0;
        cudaEventElapsedTime(&ms, (cudaEvent_t)c->ev[from], (cudaEvent_t)c->ev[to]);
        return ms;
    }
#endif
    return c->t_ms[to] - c->t_ms[from];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct bench_stat bench_stat_of(double *v, int n)
{
    struct bench_stat s = {NAN, NAN, NAN};
    if (n < 1) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return s;
}

/* ---- floors ---- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27, x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

rd_status bench_fill_random(struct rd_backend *be, void *p_d, size_t bytes, uint64_t seed)
{
    const size_t es = rd_dtype_size(be->dtype);
    size_t n = bytes / es, chunk = n < ((size_t)1 << 20) ? n : ((size_t)1 << 20);
    if (!n) return RD_OK;
    float *h = malloc(chunk * sizeof(float));
    if (!h) return RD_ERR_OOM;
    for (size_t i = 0; i < chunk; i++)
        h[i] = (float)((int64_t)(mix(seed * 0x9e3779b97f4a7c15ULL + i) >> 41) - (1 << 22)) /
               (float)(1 << 23);
    rd_status st = be->ops->upload_f32(be, p_d, h, chunk);
    free(h);
    RD_TRY(st);
    for (size_t done = chunk; done < n;) {
        size_t k = done < n - done ? done : n - done;
        RD_TRY(be->ops->copy(be, (char *)p_d + done * es, p_d, k * es));
        done += k;
    }
    return RD_OK;
}

rd_status bench_measure_floors(struct rd_backend *be, const struct bench_args *a,
                               struct bench_floors *f)
{
    const bool gpu = be->device >= 0;
    const size_t es = rd_dtype_size(be->dtype);
    size_t bytes = (size_t)((a->copy_mb > 0 ? a->copy_mb : gpu ? 1024 : 64) * 1048576.0);
    bytes -= bytes % 256;
    int n = a->gemm_n > 0 ? a->gemm_n : gpu ? 8192 : 256;
    const int iters = a->iters < 10 ? 10 : a->iters;
    void *x_d = NULL, *y_d = NULL, *w_d = NULL;
    struct bench_clock *clk = NULL;
    double *v = malloc((size_t)iters * sizeof(double));
    rd_status st = RD_OK;
    memset(f, 0, sizeof *f);
    if (!v) return RD_ERR_OOM;
    RD_TRY_GOTO(bench_clock_create(be, 2, &clk), st, done);

    /* copy bandwidth: a read and a write of every byte */
    RD_TRY_GOTO(be->ops->alloc(be, bytes, &x_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, bytes, &y_d), st, done);
    RD_TRY_GOTO(bench_fill_random(be, x_d, bytes, 7), st, done);
    for (int i = 0; i < 3; i++) RD_TRY_GOTO(be->ops->copy(be, y_d, x_d, bytes), st, done);
    for (int i = 0; i < iters; i++) {
        bench_clock_reset(clk);
        RD_TRY_GOTO(bench_clock_mark(clk), st, done);
        RD_TRY_GOTO(be->ops->copy(be, y_d, x_d, bytes), st, done);
        RD_TRY_GOTO(bench_clock_mark(clk), st, done);
        RD_TRY_GOTO(bench_clock_wait(clk), st, done);
        v[i] = bench_clock_ms(clk, 0, 1);
    }
    struct bench_stat s = bench_stat_of(v, iters);
    f->copy_bytes = (double)bytes;
    f->copy_gbs = 2.0 * bytes / (s.med * 1e-3) / 1e9;
    be->ops->free(be, x_d), be->ops->free(be, y_d);
    x_d = y_d = NULL;

    /* GEMM rate: y[n, n] = x[n, n] @ w[n, n]^T on random data (zeros would draw less power) */
    const size_t nn = (size_t)n * n;
    RD_TRY_GOTO(be->ops->alloc(be, nn * es, &x_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, nn * es, &w_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, nn * es, &y_d), st, done);
    RD_TRY_GOTO(bench_fill_random(be, x_d, nn * es, 11), st, done);
    RD_TRY_GOTO(bench_fill_random(be, w_d, nn * es, 13), st, done);
    const int giters = gpu ? iters : 3;
    for (int i = 0; i < (gpu ? 3 : 1); i++)
        RD_TRY_GOTO(be->ops->matmul(be, y_d, x_d, w_d, n, n, n), st, done);
    for (int i = 0; i < giters; i++) {
        bench_clock_reset(clk);
        RD_TRY_GOTO(bench_clock_mark(clk), st, done);
        RD_TRY_GOTO(be->ops->matmul(be, y_d, x_d, w_d, n, n, n), st, done);
        RD_TRY_GOTO(bench_clock_mark(clk), st, done);
        RD_TRY_GOTO(bench_clock_wait(clk), st, done);
        v[i] = bench_clock_ms(clk, 0, 1);
    }
    s = bench_stat_of(v, giters);
    f->gemm_n = n;
    f->gemm_tflops = 2.0 * n * (double)n * n / (s.med * 1e-3) / 1e12;
done:
    be->ops->free(be, x_d), be->ops->free(be, y_d), be->ops->free(be, w_d);
    bench_clock_free(clk);
    free(v);
    return st;
}

/* ---- output ---- */

double bench_gb(double bytes) { return bytes / 1e9; }

void bench_begin(const struct bench_args *a, struct rd_backend *be, const struct rd_config *cfg,
                 const struct bench_floors *f)
{
    char dev[400] = "cpu";
#ifdef RD_WITH_CUDA
    if (be->device >= 0) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, be->device) == cudaSuccess)
            snprintf(dev, sizeof dev, "%.256s (%d SMs, %.1f GB)", p.name, p.multiProcessorCount,
                     p.totalGlobalMem / 1e9);
    }
#endif
    printf("# %s  model %s  device %s  dtype %s  simulate-tp %d\n", a->name, a->model, dev,
           rd_dtype_name(be->dtype), a->tp);
    printf("# shape: D %d, layers %d, H %d, Hkv %d, Dh %d, F %d, V %d, rope %s\n",
           cfg->hidden_size, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim,
           cfg->intermediate_size, cfg->vocab_size, rd_rope_type_name(cfg->rope.type));
    if (f)
        printf("# floors: copy %.1f GB/s (%.0f MB device-to-device, read+write counted), "
               "GEMM %.4g TFLOP/s (%d^3 matmul)\n",
               f->copy_gbs, f->copy_bytes / 1048576.0, f->gemm_tflops, f->gemm_n);
    fflush(stdout);
    g_doc = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
                      " s:{s:f, s:f}, s:[]}",
                      "benchmark", a->name, "model", a->model, "backend", be->ops->name,
                      "device", dev, "dtype", rd_dtype_name(be->dtype), "simulate_tp", a->tp,
                      "shape", "hidden_size", cfg->hidden_size, "num_hidden_layers",
                      cfg->n_layers, "num_attention_heads", cfg->n_heads, "num_key_value_heads",
                      cfg->n_kv_heads, "head_dim", cfg->head_dim, "intermediate_size",
                      cfg->intermediate_size, "vocab_size", cfg->vocab_size,
                      "allreduce_model", "latency_us", a->ar_latency_us, "busbw_GBps",
                      a->ar_busbw_gbs, "tables");
    if (g_doc && f)
        json_object_set_new(g_doc, "floors",
                            json_pack("{s:f, s:f, s:f, s:i}", "copy_GBps", f->copy_gbs,
                                      "copy_bytes", (double)f->copy_bytes, "gemm_TFLOPps",
                                      f->gemm_tflops, "gemm_n", f->gemm_n));
    g_tables = json_object_get(g_doc, "tables");
}

void bench_table_begin(struct bench_table *t, const char *title, const struct bench_col *cols,
                       int ncol)
{
    memset(t, 0, sizeof *t);
    t->title = title;
    t->ncol = ncol < BENCH_MAX_COLS ? ncol : BENCH_MAX_COLS;
    memcpy(t->cols, cols, (size_t)t->ncol * sizeof *cols);
    printf("#\n# %s\n#", title);
    for (int i = 0; i < t->ncol; i++) printf(" %*s", t->cols[i].width, t->cols[i].name);
    printf("\n#");
    for (int i = 0; i < t->ncol; i++) printf(" %*s", t->cols[i].width, t->cols[i].unit);
    printf("\n");
    fflush(stdout);
    if (!g_tables) return;
    json_t *c = json_array();
    for (int i = 0; c && i < t->ncol; i++)
        json_array_append_new(c, json_pack("{s:s, s:s}", "name", t->cols[i].name, "unit",
                                           t->cols[i].unit));
    t->json = json_pack("{s:s, s:o, s:[], s:[]}", "title", title, "columns", c, "rows", "notes");
    if (json_array_append_new(g_tables, t->json) != 0) t->json = NULL;
}

void bench_table_row(struct bench_table *t, const double *vals, const char *const *strs)
{
    json_t *row = t->json ? json_object() : NULL;
    printf(" ");
    for (int i = 0; i < t->ncol; i++) {
        const struct bench_col *c = &t->cols[i];
        if (strs && strs[i]) {
            printf(" %*s", c->width, strs[i]);
            if (row) json_object_set_new(row, c->name, json_string(strs[i]));
        } else if (isnan(vals[i]) || isinf(vals[i])) {
            printf(" %*s", c->width, "-");
            if (row) json_object_set_new(row, c->name, json_null());
        } else {
            printf(" %*.*f", c->width, c->prec < 0 ? 0 : c->prec, vals[i]);
            if (row) json_object_set_new(row, c->name, json_real(vals[i]));
        }
    }
    printf("\n");
    fflush(stdout);
    if (row) json_array_append_new(json_object_get(t->json, "rows"), row);
}

void bench_table_note(struct bench_table *t, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("# %s\n", buf);
    fflush(stdout);
    if (t && t->json) json_array_append_new(json_object_get(t->json, "notes"), json_string(buf));
}

int bench_finish(const struct bench_args *a, int failures)
{
    int code = failures ? 1 : 0;
    if (g_doc && a->json_path) {
        json_object_set_new(g_doc, "failures", json_integer(failures));
        char *s = rd_json_dump(g_doc);
        FILE *f = fopen(a->json_path, "w");
        if (!f || !s || fputs(s, f) < 0) {
            fprintf(stderr, "%s: cannot write %s\n", a->name, a->json_path);
            code = 1;
        }
        if (f) fclose(f);
        free(s);
    }
    json_decref(g_doc);
    g_doc = g_tables = NULL;
    return code;
}
