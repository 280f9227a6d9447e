/* The fused RoPE attention op alone (be->ops->rope_attention), one layer of the shape's heads
 * (GQA H/Hkv, --simulate-tp divides them):
 *   decode: batch sequences each adding one token at position ctx - 1 and attending to ctx
 *     cache entries, against the floor of reading its KV entries, q and the output once at
 *     the measured copy bandwidth (of_floor: the fraction of copy bandwidth reached);
 *   prefill (--prompt, default 2k,8k): one sequence of P tokens attending causally, its
 *     FLOPs (2 H Dh P(P+1): Q K^T and P V over the causal half) per second against the
 *     measured GEMM rate, on the automatic path (tensor cores for bf16/fp16) and on the scalar
 *     kernel (RD_ATTN_PATH=prefill_scalar) for comparison.
 * PyTorch's scaled_dot_product_attention on the decode problem: bench/compare_hf.py --sdpa. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/common.h"
#include "parallel/shard.h"
#include "runtime/rope.h"

struct bufs {
    void *qkv_d, *out_d, *k_d, *v_d;
    int32_t *meta_d, *table_d; /* meta: pos, seq, slot, n_ctx */
    float *freq_d;
};

static void bufs_free(struct rd_backend *be, struct bufs *b)
{
    void *p[] = {b->qkv_d, b->out_d, b->k_d, b->v_d, b->meta_d, b->table_d, b->freq_d};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) be->ops->free(be, p[i]);
}

/* one (batch, ctx) row: B sequences of one new token at position C - 1 (decode), or with
 * prefill one sequence of C new tokens at positions 0..C-1; *s gets the op's times (ms) */
static rd_status run_row(struct rd_backend *be, const struct bench_args *a,
                         const struct rd_config *cfg, int H, int Hkv, int B, int C, bool prefill,
                         struct bench_stat *s)
{
    const int T = prefill ? C : B; /* new tokens of the call */
    const int Dh = cfg->head_dim, BS = 16, max_blocks = (C + BS - 1) / BS;
    const size_t es = rd_dtype_size(be->dtype);
    const size_t qkv_n = (size_t)(H + 2 * Hkv) * Dh;
    const size_t cache = (size_t)B * max_blocks * BS * Hkv * Dh * es;
    struct bufs b = {0};
    struct bench_clock *clk = NULL;
    int32_t *h = malloc(((size_t)4 * T + (size_t)B * max_blocks) * sizeof(int32_t));
    double *v = malloc((size_t)a->iters * sizeof(double));
    struct rd_rope_table rope;
    rd_status st = h && v ? RD_OK : RD_ERR_OOM;
    RD_TRY_GOTO(st, st, done);
    RD_TRY_GOTO(rd_rope_build(cfg, C, &rope), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, T * qkv_n * es, &b.qkv_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, (size_t)T * H * Dh * es, &b.out_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, cache, &b.k_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, cache, &b.v_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, ((size_t)4 * T) * sizeof(int32_t), (void **)&b.meta_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, (size_t)B * max_blocks * sizeof(int32_t), (void **)&b.table_d),
                st, done);
    RD_TRY_GOTO(be->ops->alloc(be, RD_MAX_ROPE_PAIRS * sizeof(float), (void **)&b.freq_d), st, done);
    RD_TRY_GOTO(bench_fill_random(be, b.qkv_d, T * qkv_n * es, 3), st, done);
    RD_TRY_GOTO(bench_fill_random(be, b.k_d, cache, 5), st, done);
    RD_TRY_GOTO(bench_fill_random(be, b.v_d, cache, 6), st, done);
    for (int i = 0; i < T; i++) {
        const int pos = prefill ? i : C - 1;
        h[i] = pos, h[T + i] = prefill ? 0 : i, h[2 * T + i] = pos, h[3 * T + i] = pos + 1;
    }
    for (int i = 0; i < B * max_blocks; i++) h[4 * T + i] = i;
    RD_TRY_GOTO(be->ops->upload(be, b.meta_d, h, (size_t)4 * T * sizeof(int32_t)), st, done);
    RD_TRY_GOTO(be->ops->upload(be, b.table_d, h + 4 * T, (size_t)B * max_blocks * sizeof(int32_t)),
                st, done);
    RD_TRY_GOTO(be->ops->upload(be, b.freq_d, rope.inv_freq, (size_t)rope.n_pairs * sizeof(float)),
                st, done);
    struct rd_attn_params p = {
        .T = T, .H = H, .Hkv = Hkv, .Dh = Dh, .rotary_dim = cfg->rotary_dim,
        .style = cfg->rope_style, .inv_freq_d = b.freq_d, .attention_factor = rope.attention_factor,
        .scale = (float)(1.0 / sqrt((double)Dh)), .qkv_d = b.qkv_d, .out_d = b.out_d,
        .pos_d = b.meta_d, .seq_d = b.meta_d + T, .slot_d = b.meta_d + 2 * T,
        .n_ctx_d = b.meta_d + 3 * T, .block_table_d = b.table_d, .max_blocks = max_blocks,
        .block_size = BS, .max_ctx = C, .k_cache_d = b.k_d, .v_cache_d = b.v_d};
    RD_TRY_GOTO(bench_clock_create(be, 2, &clk), st, done);
    for (int i = 0; i < a->warmup; i++) RD_TRY_GOTO(be->ops->rope_attention(be, &p), st, done);
    for (int i = 0; i < a->iters; i++) {
        bench_clock_reset(clk);
        RD_TRY_GOTO(bench_clock_mark(clk), st, done);
        RD_TRY_GOTO(be->ops->rope_attention(be, &p), st, done);
        RD_TRY_GOTO(bench_clock_mark(clk), st, done);
        RD_TRY_GOTO(bench_clock_wait(clk), st, done);
        v[i] = bench_clock_ms(clk, 0, 1);
    }
    *s = bench_stat_of(v, a->iters);
done:
    bench_clock_free(clk);
    bufs_free(be, &b);
    free(h);
    free(v);
    return st;
}

/* the prefill table: the automatic path and the scalar kernel, FLOPs against the GEMM rate */
static int prefill_table(struct rd_backend *be, const struct bench_args *a,
                         const struct rd_config *cfg, int H, int Hkv, const struct bench_floors *fl)
{
    static const struct bench_col cols[] = {
        {"prompt", "tokens", 7, -1}, {"H", "heads", 5, -1},      {"Hkv", "heads", 5, -1},
        {"time", "us", 10, 1},       {"min", "us", 10, 1},       {"work", "GFLOP", 9, 2},
        {"rate", "TFLOP/s", 9, 1},   {"of_gemm", "%", 8, 1},     {"scalar", "us", 10, 1},
        {"speedup", "x", 8, 2}};
    struct bench_table t;
    bench_table_begin(&t, "rope_attention, one layer, prefill (one sequence of P tokens, causal)",
                      cols, 10);
    const double es = (double)rd_dtype_size(be->dtype);
    int failures = 0;
    for (int pi = 0; pi < a->n_prompt; pi++) {
        const int P = a->prompt[pi];
        const double flops = 2.0 * H * cfg->head_dim * (double)P * (P + 1.0);
        double vals[10] = {P, H, Hkv, NAN, NAN, flops / 1e9, NAN, NAN, NAN, NAN};
        const double need = (double)P * ((3.0 * H + 4.0 * Hkv) * cfg->head_dim) * es;
        if (need * 1.1 > a->mem_frac * (double)bench_free_bytes(be)) {
            const char *s[10] = {NULL, NULL, NULL, "no-mem"};
            bench_table_row(&t, vals, s);
            continue;
        }
        struct bench_stat s, sc;
        rd_status st = run_row(be, a, cfg, H, Hkv, 1, P, true, &s);
        if (st == RD_OK) {
            setenv("RD_ATTN_PATH", "prefill_scalar", 1);
            st = run_row(be, a, cfg, H, Hkv, 1, P, true, &sc);
            unsetenv("RD_ATTN_PATH");
        }
        if (st != RD_OK) {
            const char *str[10] = {NULL, NULL, NULL, "error"};
            bench_table_row(&t, vals, str);
            fprintf(stderr, "bench_attention: prefill %d: %s\n", P, rd_status_str(st));
            failures++;
            continue;
        }
        const double rate = flops / (s.med * 1e-3) / 1e12;
        double row[10] = {P, H, Hkv, s.med * 1e3, s.min * 1e3, flops / 1e9, rate,
                          100 * rate / fl->gemm_tflops, sc.med * 1e3, sc.med / s.med};
        bench_table_row(&t, row, NULL);
    }
    bench_table_note(&t, "work = 2 H Dh P(P+1) FLOPs (Q K^T and P V over the causal half); "
                     "of_gemm = rate / %.4g TFLOP/s (the %d^3 GEMM measured above)",
                     fl->gemm_tflops, fl->gemm_n);
    bench_table_note(&t, "time includes storing the call's k/v; scalar = RD_ATTN_PATH=prefill_scalar "
                     "(the CUDA-core kernel); goal: >= 300 TFLOP/s bf16 at 2k and 8k");
    return failures;
}

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_attention",
                         "fused RoPE attention alone, decode and prefill (defaults: --batch "
                         "1,8,16,64 --ctx 512,2k,8k,32k --prompt 2k,8k)", &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.n_batch) a.n_batch = 4, a.batch[0] = 1, a.batch[1] = 8, a.batch[2] = 16, a.batch[3] = 64;
    if (!a.n_ctx) a.n_ctx = 4, a.ctx[0] = 512, a.ctx[1] = 2048, a.ctx[2] = 8192, a.ctx[3] = 32768;
    if (!a.n_prompt) a.n_prompt = 2, a.prompt[0] = 2048, a.prompt[1] = 8192;
    struct rd_config cfg;
    struct rd_shard sh;
    char err[1024] = "";
    if (bench_config_load(a.model, &cfg, err, sizeof err) != RD_OK ||
        rd_shard_compute(cfg.n_heads, cfg.n_kv_heads, cfg.intermediate_size, cfg.vocab_size, a.tp,
                         0, &sh, err, sizeof err) != RD_OK) {
        fprintf(stderr, "bench_attention: %s\n", err);
        return 1;
    }
    struct rd_backend *be = NULL;
    if (bench_backend_open(&a, &be) != RD_OK) return 1;
    struct bench_floors fl;
    if (bench_measure_floors(be, &a, &fl) != RD_OK) {
        fprintf(stderr, "bench_attention: measuring the floors failed\n");
        rd_backend_free(be);
        return 1;
    }
    bench_begin(&a, be, &cfg, &fl);
    static const struct bench_col cols[] = {
        {"batch", "seqs", 6, -1}, {"ctx", "tokens", 7, -1}, {"H", "heads", 5, -1},
        {"Hkv", "heads", 5, -1},  {"time", "us", 10, 1},    {"min", "us", 10, 1},
        {"read", "MB", 9, 2},     {"bw", "GB/s", 8, 1},     {"floor", "us", 10, 1},
        {"of_floor", "%", 8, 1}};
    struct bench_table t;
    bench_table_begin(&t, "rope_attention, one layer, decode (T = batch, one token per sequence)",
                      cols, 10);
    const double es = (double)rd_dtype_size(be->dtype);
    const int H = sh.h_local, Hkv = sh.kv_local, Dh = cfg.head_dim;
    int failures = 0;
    for (int ci = 0; ci < a.n_ctx; ci++)
        for (int bi = 0; bi < a.n_batch; bi++) {
            const int B = a.batch[bi], C = a.ctx[ci];
            double kv = 2.0 * B * (double)C * Hkv * Dh * es;
            double bytes = kv + es * B * ((H + 2.0 * Hkv) * Dh + (double)H * Dh);
            double vals[10] = {B, C, H, Hkv, NAN, NAN, bytes / 1e6, NAN, NAN, NAN};
            if (kv * 1.1 > a.mem_frac * (double)bench_free_bytes(be)) {
                const char *s[10] = {NULL, NULL, NULL, NULL, "no-mem"};
                bench_table_row(&t, vals, s);
                continue;
            }
            struct bench_stat s;
            rd_status st = run_row(be, &a, &cfg, H, Hkv, B, C, false, &s);
            if (st != RD_OK) {
                const char *str[10] = {NULL, NULL, NULL, NULL, "error"};
                bench_table_row(&t, vals, str);
                fprintf(stderr, "bench_attention: batch %d ctx %d: %s\n", B, C, rd_status_str(st));
                failures++;
                continue;
            }
            double floor_us = bytes / (fl.copy_gbs * 1e9) * 1e6;
            double row[10] = {B, C, H, Hkv, s.med * 1e3, s.min * 1e3, bytes / 1e6,
                              bytes / (s.med * 1e-3) / 1e9, floor_us, 100 * floor_us / (s.med * 1e3)};
            bench_table_row(&t, row, NULL);
        }
    bench_table_note(&t, "floor = (KV entries + q + out) bytes / %.1f GB/s copy bandwidth; "
                     "median of %d launches (CUDA events) after %d warm-up", fl.copy_gbs, a.iters,
                     a.warmup);
    bench_table_note(&t, "of_floor is the fraction of copy bandwidth reached; goal: >= 85%% at "
                     "batch 1 and 32k, >= 92%% at batch 16");
    bench_table_note(&t, "peer: torch SDPA on the same problem with bench/compare_hf.py --sdpa");
    failures += prefill_table(be, &a, &cfg, H, Hkv, &fl);
    rd_backend_free(be);
    return bench_finish(&a, failures);
}
