/* Where one decode step goes: the forward pass op by op (bench_forward_timed marks the clock
 * after each op through the model's on_op hook: CUDA events on cuda, sync + clock on cpu), per
 * op the median time over the runs, its share of the step, the bytes it must move and the
 * bandwidth / FLOP rate that gives. The last rows compare the sum with rd_model_forward's wall
 * time without the hook, and check that the timed forward gives the untimed one's logits
 * (#wrong = logits off by more than 1e-3 relative to the largest). Uses the first --batch and
 * --ctx values (default 1, 2048). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/model_bench.h"

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_breakdown",
                         "per-op breakdown of one decode step (default --batch 1 --ctx 2048)", &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.n_batch) a.n_batch = 1, a.batch[0] = 1;
    if (!a.n_ctx) a.n_ctx = 1, a.ctx[0] = 2048;
    const int B = a.batch[0], C = a.ctx[0];

    struct rd_backend *be = NULL;
    if (bench_backend_open(&a, &be) != RD_OK) return 1;
    struct bench_floors fl;
    char err[1024] = "";
    struct bench_model bm;
    if (bench_measure_floors(be, &a, &fl) != RD_OK) {
        fprintf(stderr, "bench_breakdown: measuring the floors failed\n");
        rd_backend_free(be);
        return 1;
    }
    struct rd_batch b = {0};
    struct bench_clock *clk = NULL;
    if (bench_model_open(&bm, &a, be, a.tp, a.layers, B, err, sizeof err) != RD_OK ||
        bench_model_cache(&bm, B, C) != RD_OK || bench_batch_decode(&b, B, C, bm.cfg.vocab_size) ||
        bench_clock_create(be, 16 * bm.cfg.n_layers + 64, &clk) != RD_OK) {
        fprintf(stderr, "bench_breakdown: %s\n", err[0] ? err : "cannot set up the step");
        bench_model_close(&bm);
        rd_backend_free(be);
        return 1;
    }
    bench_begin(&a, be, &bm.cfg, &fl);
    printf("# built %d of %d layers, shard of rank 0 of %d, batch %d, context %d\n",
           bm.cfg.n_layers, bm.full_layers, a.tp, B, C);

    const size_t nl = (size_t)B * bm.m.V_local;
    float *ref = malloc(nl * sizeof(float)), *got = malloc(nl * sizeof(float));
    double *ops = malloc((size_t)a.iters * RD_MODEL_OP_COUNT * sizeof(double));
    double *wall = malloc((size_t)a.iters * sizeof(double)), *tot = malloc((size_t)a.iters * sizeof(double));
    const double es = (double)rd_dtype_size(be->dtype);
    const double ar = bench_allreduce_ms(&a, a.tp, B * bm.m.D * es);
    struct bench_op_times t;
    rd_status st = ref && got && ops && wall && tot ? RD_OK : RD_ERR_OOM;
    for (int i = 0; st == RD_OK && i < a.warmup; i++) st = rd_model_forward(&bm.m, &b, ref);
    for (int i = 0; st == RD_OK && i < a.iters; i++) {
        double t0 = bench_now_ms();
        st = rd_model_forward(&bm.m, &b, ref);
        wall[i] = bench_now_ms() - t0;
    }
    for (int i = 0; st == RD_OK && i < a.iters; i++) {
        st = bench_forward_timed(&bm, &b, clk, ar, got, &t);
        for (int k = 0; k < RD_MODEL_OP_COUNT; k++) ops[k * a.iters + i] = t.ms[k];
        tot[i] = t.total_ms;
    }
    int wrong = 0, failures = 0;
    if (st != RD_OK) {
        fprintf(stderr, "bench_breakdown: the step failed: %s\n", rd_status_str(st));
        failures = 1;
    } else {
        float amax = 0;
        for (size_t i = 0; i < nl; i++) amax = fabsf(ref[i]) > amax ? fabsf(ref[i]) : amax;
        for (size_t i = 0; i < nl; i++)
            wrong += !(fabsf(got[i] - ref[i]) <= 1e-3f * amax + 1e-6f); /* NaN counts */
        failures = wrong > 0;

        static const struct bench_col cols[] = {
            {"op", "", 12, -1},       {"calls", "", 6, -1},      {"time", "ms", 9, 4},
            {"share", "%", 6, 1},     {"bytes", "MB", 9, 2},     {"bw", "GB/s", 8, 1},
            {"of_bw", "%", 6, 1},     {"rate", "TFLOP/s", 8, 2}, {"#wrong", "", 7, -1}};
        struct bench_table tab;
        bench_table_begin(&tab, "one decode step, op by op (median over runs)", cols, 9);
        struct bench_stat sw = bench_stat_of(wall, a.iters), stt = bench_stat_of(tot, a.iters);
        double sum = 0;
        for (int k = 0; k < RD_MODEL_OP_COUNT; k++) {
            struct bench_stat s = bench_stat_of(ops + (size_t)k * a.iters, a.iters);
            sum += s.med;
            double bw = t.bytes[k] > 0 && s.med > 0 ? t.bytes[k] / (s.med * 1e-3) / 1e9 : NAN;
            double row[9] = {0, t.calls[k], s.med, 100 * s.med / stt.med,
                             t.bytes[k] > 0 ? t.bytes[k] / 1e6 : NAN, bw, 100 * bw / fl.copy_gbs,
                             t.flops[k] > 0 && s.med > 0 ? t.flops[k] / (s.med * 1e-3) / 1e12 : NAN,
                             NAN};
            const char *str[9] = {bench_op_name((enum rd_model_op)k)};
            if (k == RD_MODEL_OP_ALLREDUCE && a.tp > 1) str[8] = "model";
            bench_table_row(&tab, row, str);
        }
        double bytes = bench_step_bytes(&bm, B, C);
        double r1[9] = {0, NAN, stt.med, 100, bytes / 1e6, bytes / (stt.med * 1e-3) / 1e9,
                        100 * bytes / (stt.med * 1e-3) / 1e9 / fl.copy_gbs, NAN, NAN};
        const char *s1[9] = {"step(marked)"};
        bench_table_row(&tab, r1, s1);
        double w = sw.med + (a.tp > 1 ? 2.0 * bm.cfg.n_layers * ar : 0);
        double r2[9] = {0, NAN, w, 100 * w / stt.med, NAN, NAN, NAN, NAN, wrong};
        const char *s2[9] = {"model_fwd"};
        bench_table_row(&tab, r2, s2);
        bench_table_note(&tab, "bytes = least bytes the op moves (weights, KV entries, activations); "
                         "of_bw = bw / %.1f GB/s copy bandwidth", fl.copy_gbs);
        bench_table_note(&tab, "step(marked) = first to last mark of the op-by-op step; model_fwd = "
                         "rd_model_forward wall time (median of %d); sum of op medians %.4f ms",
                         a.iters, sum);
        bench_table_note(&tab, "#wrong: %d of %zu logits differ from rd_model_forward's by more "
                         "than 1e-3 of the largest", wrong, nl);
        if (a.tp > 1)
            bench_table_note(&tab, "allreduce: modelled, %.1f us + 2(P-1)/P bytes / %.0f GB/s per "
                             "call (P = %d)", a.ar_latency_us, a.ar_busbw_gbs, a.tp);
    }
    free(ref), free(got), free(ops), free(wall), free(tot);
    bench_batch_free(&b);
    bench_clock_free(clk);
    bench_model_close(&bm);
    rd_backend_free(be);
    return bench_finish(&a, failures);
}
