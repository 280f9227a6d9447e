/* Prefill: time to first token for one prompt of each length (rd_model_forward over the whole
 * prompt in one call, the last token's logits downloaded), against the floor of its FLOPs
 * (GEMMs, causal attention, one LM-head row) at the measured GEMM rate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/model_bench.h"

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_prefill",
                         "prefill time to first token (default --prompt 128,512,2048)", &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.n_prompt) a.n_prompt = 3, a.prompt[0] = 128, a.prompt[1] = 512, a.prompt[2] = 2048;
    int max_t = 0;
    for (int i = 0; i < a.n_prompt; i++) max_t = a.prompt[i] > max_t ? a.prompt[i] : max_t;

    struct rd_backend *be = NULL;
    if (bench_backend_open(&a, &be) != RD_OK) return 1;
    struct bench_floors fl;
    char err[1024] = "";
    struct bench_model bm;
    int failures = 0;
    if (bench_measure_floors(be, &a, &fl) != RD_OK) {
        fprintf(stderr, "bench_prefill: measuring the floors failed\n");
        rd_backend_free(be);
        return 1;
    }
    if (bench_model_open(&bm, &a, be, a.tp, a.layers, max_t, err, sizeof err) != RD_OK ||
        bench_model_cache(&bm, 1, max_t) != RD_OK) {
        fprintf(stderr, "bench_prefill: %s\n", err[0] ? err : "cannot allocate the KV cache");
        bench_model_close(&bm);
        rd_backend_free(be);
        return 1;
    }
    bench_begin(&a, be, &bm.cfg, &fl);
    printf("# built %d of %d layers, shard of rank 0 of %d: %.2f GB of weights, loaded in %.1f s\n",
           bm.cfg.n_layers, bm.full_layers, a.tp, bm.m.weight_bytes / 1e9, bm.load_s);

    static const struct bench_col cols[] = {
        {"prompt", "tokens", 7, -1}, {"ttft", "ms", 9, 3},      {"min", "ms", 9, 3},
        {"max", "ms", 9, 3},         {"tok/s", "tok/s", 10, 0}, {"work", "TFLOP", 8, 3},
        {"rate", "TFLOP/s", 8, 1},   {"floor", "ms", 8, 3},     {"of_floor", "%", 8, 1},
        {"allreduce", "ms", 9, 3}};
    struct bench_table t;
    bench_table_begin(&t, "prefill, one prompt per call (rd_model_forward)", cols, 10);
    double *v = malloc((size_t)a.iters * sizeof(double));
    float *logits = malloc((size_t)bm.m.V_local * sizeof(float));
    const double es = (double)rd_dtype_size(be->dtype);
    for (int pi = 0; pi < a.n_prompt && v && logits; pi++) {
        const int T = a.prompt[pi];
        struct rd_batch b;
        rd_status st = bench_batch_prefill(&b, T, bm.cfg.vocab_size);
        for (int i = 0; st == RD_OK && i < a.warmup; i++) st = rd_model_forward(&bm.m, &b, logits);
        for (int i = 0; st == RD_OK && i < a.iters; i++) {
            double t0 = bench_now_ms();
            st = rd_model_forward(&bm.m, &b, logits);
            v[i] = bench_now_ms() - t0;
        }
        if (b.ids) bench_batch_free(&b);
        if (st != RD_OK) {
            double vals[10] = {T, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
            const char *s[10] = {NULL, "error"};
            bench_table_row(&t, vals, s);
            fprintf(stderr, "bench_prefill: prompt %d: %s\n", T, rd_status_str(st));
            failures++;
            continue;
        }
        double ar = 2.0 * bm.cfg.n_layers * bench_allreduce_ms(&a, a.tp, T * bm.m.D * es);
        struct bench_stat s = bench_stat_of(v, a.iters);
        double flops = bench_prefill_flops(&bm, T);
        double floor = flops / (fl.gemm_tflops * 1e12) * 1e3 + ar;
        double ttft = s.med + ar;
        double row[10] = {T, ttft, s.min + ar, s.max + ar, T / ttft * 1e3, flops / 1e12,
                          flops / (s.med * 1e-3) / 1e12, floor, 100 * floor / ttft, ar};
        bench_table_row(&t, row, NULL);
    }
    bench_table_note(&t, "floor = FLOPs / %.4g TFLOP/s (the %d^3 GEMM measured above)%s; "
                     "of_floor = floor / measured", fl.gemm_tflops, fl.gemm_n,
                     a.tp > 1 ? " + modelled all-reduces" : "");
    bench_table_note(&t, "median of %d runs after %d warm-up; FLOPs = 2 T (weights of the "
                     "layers' GEMMs) + 2 T(T+1) H Dh per layer (causal attention) + 1 LM-head row",
                     a.iters, a.warmup);
    free(v);
    free(logits);
    bench_model_close(&bm);
    rd_backend_free(be);
    return bench_finish(&a, failures);
}
