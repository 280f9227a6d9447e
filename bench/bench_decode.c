/* Decode throughput: ms per step and tokens/s of rd_model_forward (the runtime's own forward,
 * wall clock, logits of every sequence downloaded) at each batch x context, against the floor
 * of reading every byte a step needs once: (weights + KV entries attended) / copy bandwidth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/model_bench.h"

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_decode",
                         "decode ms/step and tokens/s (defaults: --batch 1,8,64 --ctx 128,2k,32k)",
                         &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.n_batch) a.n_batch = 3, a.batch[0] = 1, a.batch[1] = 8, a.batch[2] = 64;
    if (!a.n_ctx) a.n_ctx = 3, a.ctx[0] = 128, a.ctx[1] = 2048, a.ctx[2] = 32768;
    int max_b = 0;
    for (int i = 0; i < a.n_batch; i++) max_b = a.batch[i] > max_b ? a.batch[i] : max_b;

    struct rd_backend *be = NULL;
    if (bench_backend_open(&a, &be) != RD_OK) return 1;
    struct bench_floors fl;
    char err[1024] = "";
    struct bench_model bm;
    int failures = 0;
    if (bench_measure_floors(be, &a, &fl) != RD_OK) {
        fprintf(stderr, "bench_decode: measuring the floors failed\n");
        rd_backend_free(be);
        return 1;
    }
    if (bench_model_open(&bm, &a, be, a.tp, a.layers, max_b, err, sizeof err) != RD_OK) {
        fprintf(stderr, "bench_decode: %s\n", err);
        bench_model_close(&bm);
        rd_backend_free(be);
        return 1;
    }
    bench_begin(&a, be, &bm.cfg, &fl);
    printf("# built %d of %d layers, shard of rank 0 of %d: %.2f GB of weights, generated and "
           "loaded in %.1f s\n", bm.cfg.n_layers, bm.full_layers, a.tp, bm.m.weight_bytes / 1e9,
           bm.load_s);

    static const struct bench_col cols[] = {
        {"batch", "seqs", 6, -1},     {"ctx", "tokens", 7, -1},  {"ms/step", "ms", 9, 3},
        {"min", "ms", 9, 3},          {"max", "ms", 9, 3},       {"tok/s", "tok/s", 10, 1},
        {"read", "GB", 7, 3},         {"floor", "ms", 8, 3},     {"of_floor", "%", 8, 1},
        {"allreduce", "ms", 9, 3}};
    struct bench_table t;
    bench_table_begin(&t, "decode step (rd_model_forward, all logits downloaded)", cols, 10);
    double *v = malloc((size_t)a.iters * sizeof(double));
    float *logits = malloc((size_t)max_b * bm.m.V_local * sizeof(float));
    const double es = (double)rd_dtype_size(be->dtype);
    for (int ci = 0; ci < a.n_ctx && v && logits; ci++) {
        for (int bi = 0; bi < a.n_batch; bi++) {
            const int B = a.batch[bi], C = a.ctx[ci];
            double need = bench_kv_bytes(&bm, B, C) - bench_kv_bytes(&bm, bm.cache_seqs, bm.cache_ctx);
            double vals[10] = {B, C, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
            if (need > a.mem_frac * (double)bench_free_bytes(be)) {
                const char *s[10] = {NULL, NULL, "no-mem"};
                bench_table_row(&t, vals, s);
                continue;
            }
            struct rd_batch b = {0};
            rd_status st = bench_model_cache(&bm, B, C);
            if (st == RD_OK) st = bench_batch_decode(&b, B, C, bm.cfg.vocab_size);
            for (int i = 0; st == RD_OK && i < a.warmup; i++) st = rd_model_forward(&bm.m, &b, logits);
            for (int i = 0; st == RD_OK && i < a.iters; i++) {
                double t0 = bench_now_ms();
                st = rd_model_forward(&bm.m, &b, logits);
                v[i] = bench_now_ms() - t0;
            }
            if (st != RD_OK) {
                const char *s[10] = {NULL, NULL, "error"};
                bench_table_row(&t, vals, s);
                fprintf(stderr, "bench_decode: batch %d ctx %d: %s\n", B, C, rd_status_str(st));
                failures++;
                if (b.ids) bench_batch_free(&b);
                continue;
            }
            bench_batch_free(&b);
            /* with --simulate-tp the step also pays 2 all-reduces per layer (model) */
            double ar = 2.0 * bm.cfg.n_layers * bench_allreduce_ms(&a, a.tp, B * bm.m.D * es);
            struct bench_stat s = bench_stat_of(v, a.iters);
            double bytes = bench_step_bytes(&bm, B, C);
            double floor = bytes / (fl.copy_gbs * 1e9) * 1e3 + ar;
            double step = s.med + ar;
            double row[10] = {B, C, step, s.min + ar, s.max + ar, B / step * 1e3, bytes / 1e9,
                              floor, 100 * floor / step, ar};
            bench_table_row(&t, row, NULL);
        }
    }
    bench_table_note(&t, "floor = (weights + KV entries attended) / %.1f GB/s copy bandwidth%s; "
                     "of_floor = floor / measured", fl.copy_gbs,
                     a.tp > 1 ? " + modelled all-reduces" : "");
    bench_table_note(&t, "median of %d steps after %d warm-up; tok/s = batch / ms/step; KV "
                     "cache filled with random values", a.iters, a.warmup);
    if (a.tp > 1)
        bench_table_note(&t, "simulate-tp %d: rank 0's shard timed alone; all-reduce modelled as "
                         "%.1f us + 2(P-1)/P bytes / %.0f GB/s, twice per layer", a.tp,
                         a.ar_latency_us, a.ar_busbw_gbs);
    free(v);
    free(logits);
    bench_model_close(&bm);
    rd_backend_free(be);
    return bench_finish(&a, failures);
}
