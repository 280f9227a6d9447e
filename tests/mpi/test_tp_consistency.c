/* Multi-rank consistency on the cpu backend: the same model run with mpirun -np 1, 2 and 4
 * gives identical greedy ids and logits within 1e-5 relative, and the same sampled tokens for
 * the same seed, for the shapes tensor parallelism treats differently: MHA, GQA with
 * tp <= kv heads, GQA/MQA with tp > kv heads (kv heads replicated), tied embeddings, and
 * head_dim != hidden/heads. Models are random (ropedist-convert --random). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define TOL 1e-5

struct shape {
    const char *name;
    int hidden, heads, kv, head_dim, ffn, vocab, layers;
    bool tied;
    const char *extra; /* more config fields */
};

static const struct shape k_shapes[] = {
    {"mha", 64, 4, 4, 0, 160, 256, 2, false, ""},
    {"gqa_tp_le_kv", 64, 8, 4, 0, 144, 300, 2, false, ""},
    {"gqa_tp_gt_kv", 64, 8, 2, 0, 128, 256, 2, false, ""},
    {"mqa", 96, 4, 1, 0, 200, 203, 2, false, ""},
    {"tied", 64, 4, 2, 0, 128, 256, 2, true, ""},
    {"headdim", 48, 4, 2, 20, 100, 257, 2, false, ""},
    {"gptj_partial", 64, 4, 2, 0, 128, 256, 2, false,
     ", \"partial_rotary_factor\": 0.5, \"ropedist\": {\"rope_style\": \"gptj\"}"},
};

static json_t *run(const char *bin, int np, const char *cfg, const char *h5, const char *flags)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np %d %s/ropedist --device cpu --config %s --checkpoint %s "
             "--prompt-ids 1,5,9,17,33,2,7 --max-new-tokens 12 --ignore-eos --output json %s",
             rd_test_mpirun(), np, bin, cfg, h5, flags);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    json_t *j = rc == 0 ? rd_test_parse_json(out) : NULL;
    if (!j) fprintf(stderr, "run failed (rc %d): %s\n%s\n", rc, cmd, err ? err : "");
    free(out);
    free(err);
    return j;
}

int main(void)
{
    const char *bin = rd_test_bin_dir();
    char tmp[256];
    rd_test_tmpdir(tmp, sizeof tmp);
    printf("%-14s %3s %-6s %10s %-8s\n", "shape", "np", "ids", "logit_err", "sampled");
    for (size_t si = 0; si < sizeof k_shapes / sizeof *k_shapes; si++) {
        const struct shape *s = &k_shapes[si];
        char cfg[512], h5[512];
        snprintf(cfg, sizeof cfg, "%s/%s.json", tmp, s->name);
        snprintf(h5, sizeof h5, "%s/%s.h5", tmp, s->name);
        int rc = rd_test_random_model(cfg, h5, s->hidden, s->heads, s->kv, s->head_dim, s->ffn,
                                      s->vocab, s->layers, s->tied, 64, s->extra,
                                      (unsigned)(si + 3));
        CHECK_MSG(rc == 0, "%s: convert failed", s->name);
        if (rc) continue;
        json_t *ref = run(bin, 1, cfg, h5, "--with-logits");
        json_t *ref_s = run(bin, 1, cfg, h5, "--temperature 0.9 --top-k 40 --top-p 0.95 --seed 7");
        CHECK_MSG(ref && ref_s, "%s: np=1 run failed", s->name);
        if (!ref || !ref_s) continue;
        for (int np = 2; np <= 4; np *= 2) {
            json_t *got = run(bin, np, cfg, h5, "--with-logits");
            json_t *got_s = run(bin, np, cfg, h5, "--temperature 0.9 --top-k 40 --top-p 0.95 --seed 7");
            CHECK_MSG(got && got_s, "%s: np=%d run failed", s->name, np);
            if (got && got_s) {
                bool ids = rd_test_json_same_ids(json_object_get(got, "output_ids"),
                                                 json_object_get(ref, "output_ids"));
                double e = rd_test_json_rows_err(json_object_get(got, "logits"),
                                                 json_object_get(ref, "logits"));
                bool samp = rd_test_json_same_ids(json_object_get(got_s, "output_ids"),
                                                  json_object_get(ref_s, "output_ids"));
                printf("%-14s %3d %-6s %10.2e %-8s\n", s->name, np, ids ? "same" : "DIFFER", e,
                       samp ? "same" : "DIFFER");
                CHECK_MSG(ids, "%s np=%d: greedy ids differ from np=1", s->name, np);
                CHECK_MSG(e <= TOL, "%s np=%d: logits differ from np=1 by %.3e", s->name, np, e);
                CHECK_MSG(samp, "%s np=%d: sampled ids (seed 7) differ from np=1", s->name, np);
            }
            json_decref(got);
            json_decref(got_s);
        }
        json_decref(ref);
        json_decref(ref_s);
        remove(cfg);
        remove(h5);
    }
    rmdir(tmp);
    return rd_test_finish("tp consistency");
}
