/* Multi-rank consistency on the cuda backend (the gpu twin of tests/mpi/test_tp_consistency.c),
 * on random models (ropedist-convert --random): `ropedist --device cuda --dtype fp32` with
 * mpirun -np 1, 2 and 4 (--share-gpu: the ranks share the one GPU and all-reduce with NCCL
 * over loopback) gives the same greedy tokens, and the cuda backend gives the cpu backend's
 * greedy tokens. Logit differences are reported (and bounded loosely: 1e-4 rel L2, since the
 * reduction order changes with tp and backend). A prompt of 70 tokens runs the prefill
 * attention kernel (T > 64), the generated tokens the decode kernel. More rows run with
 * attention sinks (--sink-tokens 4 and --attention-window 32: the ring wraps during the
 * prompt; 80: one prefill call with unrotated keys, the ring wraps while generating): cuda
 * must give the cpu's tokens there too, at np 1 and 2.
 *
 * Skips (77) without CUDA or without a device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_e2e.h"

#define TOL 1e-4

struct shape {
    const char *name;
    int hidden, heads, kv, head_dim, ffn, vocab, layers;
    const char *extra; /* more config fields */
};

static const struct shape k_shapes[] = {
    {"mha", 64, 4, 4, 0, 160, 256, 2, ""},
    {"gqa_tp_gt_kv", 128, 8, 2, 0, 256, 320, 2, ""},
    {"headdim_gptj", 96, 4, 2, 32, 200, 301, 2,
     ", \"partial_rotary_factor\": 0.5, \"ropedist\": {\"rope_style\": \"gptj\"}"},
};

static char g_prompt[1024];

static json_t *run(int np, const char *device, const char *cfg, const char *h5, const char *flags)
{
    char pre[2048], cmd[8192];
    gpu_e2e_prefix(pre, sizeof pre, np, device);
    snprintf(cmd, sizeof cmd,
             "%s --dtype fp32 --config %s --checkpoint %s --prompt-ids %s --max-new-tokens 16 "
             "--ignore-eos --temperature 0 --output json %s",
             pre, cfg, h5, g_prompt, flags);
    return gpu_e2e_run_json(cmd);
}

/* compares one run with the reference run; prints a row */
static void compare(const char *shape, const char *what, const json_t *got, const json_t *ref,
                    bool logits)
{
    CHECK_MSG(got != NULL, "%s %s: run failed", shape, what);
    if (!got || !ref) return;
    bool ids = rd_test_json_same_ids(json_object_get(got, "output_ids"),
                                     json_object_get(ref, "output_ids"));
    double e = logits ? rd_test_json_rows_err(json_object_get(got, "logits"),
                                              json_object_get(ref, "logits"))
                      : NAN;
    printf("%-14s %-24s %-6s %10.2e\n", shape, what, ids ? "same" : "DIFFER", e);
    CHECK_MSG(ids, "%s %s: greedy ids differ", shape, what);
    if (logits) CHECK_MSG(ids && e <= TOL, "%s %s: logits differ by %.3e", shape, what, e);
}

int main(void)
{
    if (gpu_e2e_skip()) return RD_TEST_SKIP;
    char tmp[256];
    rd_test_tmpdir(tmp, sizeof tmp);
    for (int i = 0; i < 70; i++) { /* a deterministic prompt of 70 ids, BOS first */
        size_t l = strlen(g_prompt);
        snprintf(g_prompt + l, sizeof g_prompt - l, "%s%d", i ? "," : "", i ? 3 + (i * 37) % 200 : 1);
    }
    printf("%-14s %-24s %-6s %10s\n", "shape", "run vs reference", "ids", "logit_err");
    for (size_t si = 0; si < sizeof k_shapes / sizeof *k_shapes; si++) {
        const struct shape *s = &k_shapes[si];
        char cfg[512], h5[512];
        snprintf(cfg, sizeof cfg, "%s/%s.json", tmp, s->name);
        snprintf(h5, sizeof h5, "%s/%s.h5", tmp, s->name);
        int rc = rd_test_random_model(cfg, h5, s->hidden, s->heads, s->kv, s->head_dim, s->ffn,
                                      s->vocab, s->layers, false, 256, s->extra,
                                      (unsigned)(si + 11));
        CHECK_MSG(rc == 0, "%s: convert failed", s->name);
        if (rc) continue;

        json_t *ref = run(1, "cuda", cfg, h5, "--with-logits");
        CHECK_MSG(ref != NULL, "%s: cuda np=1 run failed", s->name);
        json_t *cpu = run(1, "cpu", cfg, h5, "--with-logits");
        compare(s->name, "cpu np=1 vs cuda np=1", cpu, ref, true);
        for (int np = 2; np <= 4; np *= 2) {
            json_t *got = run(np, "cuda", cfg, h5, "--with-logits");
            char what[64];
            snprintf(what, sizeof what, "cuda np=%d vs cuda np=1", np);
            compare(s->name, what, got, ref, true);
            json_decref(got);
        }
        /* attention sinks: W = 32 wraps during the prompt (one token per call from there);
         * W = 80 takes the prompt in one prefill call (T = 70) and wraps while generating */
        const char *sinks[] = {"--sink-tokens 4 --attention-window 32",
                               "--sink-tokens 4 --attention-window 80"};
        for (int wi = 0; wi < 2; wi++) {
            json_t *cpu_s = run(1, "cpu", cfg, h5, sinks[wi]);
            CHECK_MSG(cpu_s != NULL, "%s: cpu run with %s failed", s->name, sinks[wi]);
            for (int np = 1; np <= 2; np++) {
                json_t *got = run(np, "cuda", cfg, h5, sinks[wi]);
                char what[64];
                snprintf(what, sizeof what, "W=%d cuda np=%d vs cpu", wi ? 80 : 32, np);
                compare(s->name, what, got, cpu_s, false);
                json_decref(got);
            }
            json_decref(cpu_s);
        }
        json_decref(cpu);
        json_decref(ref);
        remove(cfg);
        remove(h5);
    }
    rmdir(tmp);
    return rd_test_finish("cuda tp consistency");
}
