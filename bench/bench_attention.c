/* The fused RoPE decode attention kernel alone (be->ops->rope_attention): batch sequences each
 * adding one token at position ctx - 1 and attending to ctx cache entries, one layer of the
 * shape's heads (GQA H/Hkv, --simulate-tp divides them), against the floor of reading its KV
 * entries, q and the output once at the measured copy bandwidth. PyTorch's
 * scaled_dot_product_attention on the same problem: bench/compare_hf.py --sdpa. */
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

/* one (batch, ctx) row; *us gets median/min of the op */
static rd_status run_row(struct rd_backend *be, const struct bench_args *a,
                         const struct rd_config *cfg, int H, int Hkv, int B, int C,
                         struct bench_stat *s)
{
    const int Dh = cfg->head_dim, BS = 16, max_blocks = (C + BS - 1) / BS;
    const size_t es = rd_dtype_size(be->dtype);
    const size_t qkv_n = (size_t)(H + 2 * Hkv) * Dh;
    const size_t cache = (size_t)B * max_blocks * BS * Hkv * Dh * es;
    struct bufs b = {0};
    struct bench_clock *clk = NULL;
    int32_t *h = malloc(((size_t)4 * B + (size_t)B * max_blocks) * sizeof(int32_t));
    double *v = malloc((size_t)a->iters * sizeof(double));
    struct rd_rope_table rope;
    rd_status st = h && v ? RD_OK : RD_ERR_OOM;
    RD_TRY_GOTO(st, st, done);
    RD_TRY_GOTO(rd_rope_build(cfg, C, &rope), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, B * qkv_n * es, &b.qkv_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, (size_t)B * H * Dh * es, &b.out_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, cache, &b.k_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, cache, &b.v_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, ((size_t)4 * B) * sizeof(int32_t), (void **)&b.meta_d), st, done);
    RD_TRY_GOTO(be->ops->alloc(be, (size_t)B * max_blocks * sizeof(int32_t), (void **)&b.table_d),
                st, done);
    RD_TRY_GOTO(be->ops->alloc(be, RD_MAX_ROPE_PAIRS * sizeof(float), (void **)&b.freq_d), st, done);
    RD_TRY_GOTO(bench_fill_random(be, b.qkv_d, B * qkv_n * es, 3), st, done);
    RD_TRY_GOTO(bench_fill_random(be, b.k_d, cache, 5), st, done);
    RD_TRY_GOTO(bench_fill_random(be, b.v_d, cache, 6), st, done);
    for (int i = 0; i < B; i++)
        h[i] = C - 1, h[B + i] = i, h[2 * B + i] = C - 1, h[3 * B + i] = C;
    for (int i = 0; i < B * max_blocks; i++) h[4 * B + i] = i;
    RD_TRY_GOTO(be->ops->upload(be, b.meta_d, h, (size_t)4 * B * sizeof(int32_t)), st, done);
    RD_TRY_GOTO(be->ops->upload(be, b.table_d, h + 4 * B, (size_t)B * max_blocks * sizeof(int32_t)),
                st, done);
    RD_TRY_GOTO(be->ops->upload(be, b.freq_d, rope.inv_freq, (size_t)rope.n_pairs * sizeof(float)),
                st, done);
    struct rd_attn_params p = {
        .T = B, .H = H, .Hkv = Hkv, .Dh = Dh, .rotary_dim = cfg->rotary_dim,
        .style = cfg->rope_style, .inv_freq_d = b.freq_d, .attention_factor = rope.attention_factor,
        .scale = (float)(1.0 / sqrt((double)Dh)), .qkv_d = b.qkv_d, .out_d = b.out_d,
        .pos_d = b.meta_d, .seq_d = b.meta_d + B, .slot_d = b.meta_d + 2 * B,
        .n_ctx_d = b.meta_d + 3 * B, .block_table_d = b.table_d, .max_blocks = max_blocks,
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

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_attention",
                         "fused RoPE decode attention alone (defaults: --batch 1,8,16,64 "
                         "--ctx 2k,8k,32k)", &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.n_batch) a.n_batch = 4, a.batch[0] = 1, a.batch[1] = 8, a.batch[2] = 16, a.batch[3] = 64;
    if (!a.n_ctx) a.n_ctx = 3, a.ctx[0] = 2048, a.ctx[1] = 8192, a.ctx[2] = 32768;
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
            rd_status st = run_row(be, &a, &cfg, H, Hkv, B, C, &s);
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
    bench_table_note(&t, "peer: torch SDPA on the same problem with bench/compare_hf.py --sdpa");
    rd_backend_free(be);
    return bench_finish(&a, failures);
}
