/* Strong scaling, projected: for each tp, rank 0's shard of a tp-way group is built in this one
 * process and its decode step timed alone on the GPU (rd_model_forward wall time), with
 * --layers L of the shape's layers built and the remaining layers added at the per-layer time
 * measured op by op (layers are identical); the two all-reduces per layer come from the
 * documented model (model_bench.h). Speed-up and efficiency are against the first tp of the
 * list. Nothing here ran on several GPUs: the table says "projected" and why. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/model_bench.h"

struct rowres {
    double compute, ar, step;
};

/* one (batch, ctx) of one shard: wall of the built layers + per-layer time x missing layers */
static rd_status measure(struct bench_model *bm, const struct bench_args *a, int B, int C,
                         struct bench_clock *clk, struct rowres *r)
{
    struct rd_batch b = {0};
    double *v = malloc((size_t)a->iters * sizeof(double));
    double *pl = malloc((size_t)a->iters * sizeof(double));
    float *logits = malloc((size_t)B * bm->m.V_local * sizeof(float));
    rd_status st = v && pl && logits ? RD_OK : RD_ERR_OOM;
    if (st == RD_OK) st = bench_model_cache(bm, B, C);
    if (st == RD_OK) st = bench_batch_decode(&b, B, C, bm->cfg.vocab_size);
    for (int i = 0; st == RD_OK && i < a->warmup; i++) st = rd_model_forward(&bm->m, &b, logits);
    for (int i = 0; st == RD_OK && i < a->iters; i++) {
        double t0 = bench_now_ms();
        st = rd_model_forward(&bm->m, &b, logits);
        v[i] = bench_now_ms() - t0;
    }
    const int Lb = bm->cfg.n_layers, missing = bm->full_layers - Lb;
    for (int i = 0; st == RD_OK && i < (missing > 0 ? a->iters : 0); i++) {
        struct bench_op_times t;
        st = bench_forward_timed(bm, &b, clk, 0, logits, &t);
        pl[i] = 0;
        for (int k = 0; k < RD_MODEL_OP_COUNT; k++)
            if (bench_op_per_layer((enum rd_model_op)k) && k != RD_MODEL_OP_ALLREDUCE) pl[i] += t.ms[k];
        pl[i] /= Lb;
    }
    if (st == RD_OK) {
        const double es = (double)rd_dtype_size(bm->m.be->dtype);
        double per_layer = missing > 0 ? bench_stat_of(pl, a->iters).med : 0;
        r->compute = bench_stat_of(v, a->iters).med + missing * per_layer;
        r->ar = 2.0 * bm->full_layers * bench_allreduce_ms(a, bm->shard.tp, B * bm->m.D * es);
        r->step = r->compute + r->ar;
    }
    if (b.ids) bench_batch_free(&b);
    free(v), free(pl), free(logits);
    return st;
}

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_scaling",
                         "projected strong scaling over tp (defaults: --tp 1,2,4,8 --batch 1 "
                         "--ctx 2048 --layers 8; --layers 1000 builds all)", &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.n_tp) a.n_tp = 4, a.tp_list[0] = 1, a.tp_list[1] = 2, a.tp_list[2] = 4, a.tp_list[3] = 8;
    if (!a.n_batch) a.n_batch = 1, a.batch[0] = 1;
    if (!a.n_ctx) a.n_ctx = 1, a.ctx[0] = 2048;
    if (!a.layers) a.layers = 8;
    int max_b = 0;
    for (int i = 0; i < a.n_batch; i++) max_b = a.batch[i] > max_b ? a.batch[i] : max_b;

    struct rd_backend *be = NULL;
    if (bench_backend_open(&a, &be) != RD_OK) return 1;
    struct bench_floors fl;
    struct rd_config cfg;
    char err[1024] = "";
    if (bench_measure_floors(be, &a, &fl) != RD_OK ||
        bench_config_load(a.model, &cfg, err, sizeof err) != RD_OK) {
        fprintf(stderr, "bench_scaling: %s\n", err[0] ? err : "measuring the floors failed");
        rd_backend_free(be);
        return 1;
    }
    bench_begin(&a, be, &cfg, &fl);
    static const struct bench_col cols[] = {
        {"tp", "ranks", 5, -1},       {"batch", "seqs", 6, -1},   {"ctx", "tokens", 7, -1},
        {"built", "layers", 6, -1},   {"compute", "ms", 9, 3},    {"allreduce", "ms", 9, 3},
        {"step", "ms", 9, 3},         {"tok/s", "tok/s", 9, 1},   {"speedup", "x", 7, 2},
        {"eff", "%", 6, 1},           {"floor", "ms", 8, 3},      {"mem", "GB/rank", 8, 2}};
    struct bench_table t;
    bench_table_begin(&t, "projected strong scaling: per-rank compute measured, all-reduce modelled",
                      cols, 12);
    const int nbc = a.n_batch * a.n_ctx;
    double *base = calloc((size_t)nbc, sizeof(double));
    int failures = 0;
    struct bench_clock *clk = NULL;
    for (int ti = 0; ti < a.n_tp && base; ti++) {
        const int P = a.tp_list[ti];
        struct bench_model bm;
        err[0] = 0;
        rd_status st = bench_model_open(&bm, &a, be, P, a.layers, max_b, err, sizeof err);
        if (st == RD_OK && !clk) st = bench_clock_create(be, 16 * bm.cfg.n_layers + 64, &clk);
        if (st != RD_OK) {
            fprintf(stderr, "bench_scaling: tp %d: %s\n", P, err[0] ? err : rd_status_str(st));
            bench_model_close(&bm);
            failures++;
            continue;
        }
        const double L = bm.full_layers, Lb = bm.cfg.n_layers;
        const double layer_w = bench_layer_weight_bytes(&bm);
        const double other_w = (double)bm.m.weight_bytes - Lb * layer_w;
        for (int ci = 0; ci < a.n_ctx; ci++)
            for (int bi = 0; bi < a.n_batch; bi++) {
                const int B = a.batch[bi], C = a.ctx[ci], k = ci * a.n_batch + bi;
                double kv_full = bench_kv_bytes(&bm, B, C) * L / Lb;
                double mem = other_w + L * layer_w + kv_full;
                double vals[12] = {P, B, C, Lb, NAN, NAN, NAN, NAN, NAN, NAN, NAN, mem / 1e9};
                double need = bench_kv_bytes(&bm, B, C) - bench_kv_bytes(&bm, bm.cache_seqs, bm.cache_ctx);
                if (need > a.mem_frac * (double)bench_free_bytes(be)) {
                    const char *s[12] = {NULL, NULL, NULL, NULL, "no-mem"};
                    bench_table_row(&t, vals, s);
                    continue;
                }
                struct rowres r = {0};
                st = measure(&bm, &a, B, C, clk, &r);
                if (st != RD_OK) {
                    const char *s[12] = {NULL, NULL, NULL, NULL, "error"};
                    bench_table_row(&t, vals, s);
                    fprintf(stderr, "bench_scaling: tp %d batch %d ctx %d: %s\n", P, B, C,
                            rd_status_str(st));
                    failures++;
                    continue;
                }
                if (ti == 0) base[k] = r.step;
                double speed = base[k] > 0 ? base[k] / r.step : NAN;
                double ideal = (double)P / a.tp_list[0];
                /* a full shard's step reads its layers, the LM head rows, the batch's
                 * embedding rows and the KV entries */
                const double es = (double)rd_dtype_size(be->dtype);
                double bytes = other_w - (double)bm.cfg.vocab_size * bm.m.D * es +
                               (double)B * bm.m.D * es + L * layer_w + kv_full;
                double floor = bytes / (fl.copy_gbs * 1e9) * 1e3 + r.ar;
                double row[12] = {P, B, C, Lb, r.compute, r.ar, r.step, B / r.step * 1e3, speed,
                                  100 * speed / ideal, floor, mem / 1e9};
                bench_table_row(&t, row, NULL);
            }
        bench_model_close(&bm);
    }
    bench_table_note(&t, "compute: rank 0's shard timed alone (rd_model_forward wall) with %d of "
                     "%d layers built, the rest added at the measured per-layer time",
                     a.layers < cfg.n_layers ? a.layers : cfg.n_layers, cfg.n_layers);
    bench_table_note(&t, "allreduce (modelled, NCCL on 8xH100 NVSwitch): 2 per layer, each "
                     "%.1f us + 2(P-1)/P x bytes / %.0f GB/s bus bandwidth", a.ar_latency_us,
                     a.ar_busbw_gbs);
    bench_table_note(&t, "speedup and eff vs tp %d; floor = shard bytes / %.1f GB/s + allreduce; "
                     "mem = full shard weights + KV per rank (an H100 holds 80 GB)", a.tp_list[0],
                     fl.copy_gbs);
    free(base);
    bench_clock_free(clk);
    rd_backend_free(be);
    return bench_finish(&a, failures);
}
