/* CUDA graphs of the decode step (on by default, RD_CUDA_GRAPHS=0 turns them off, see
 * runtime/model.h): the same runs with and without graphs must give the same greedy tokens. Runs `ropedist --device cuda` on random
 * models (ropedist-convert --random) and on stories260K (when <shared> has it), in fp32 and
 * bf16, at mpirun -np 1 and -np 2 --share-gpu (the graphs then hold NCCL all-reduces), and
 * prints decode_tokens_per_s of both from the JSON timing (no assertion on speed).
 *
 * Each graph run is made with RD_LOG_LEVEL=debug and must log that it recorded a graph, so the
 * comparison is never eager against eager. Graphs give attention a context bound rounded up to
 * a power of two (>= 256); up to 512 tokens of context that gives one split either way and the
 * tokens must be identical. The "random_long" model (max_position_embeddings 2048) gets a
 * prompt of 500 tokens, so its generation crosses 512: a second graph (bound 1024) is recorded
 * and its decode attention splits the context (split-K + merge kernel, captured) differently
 * from the eager call, so there logits are compared within 1e-4 (fp32) and bf16 tokens are
 * reported but not asserted. One more run adds RD_DEBUG_SYNC=1 (the per-op sync is skipped
 * while recording and done after each replay), and --with-logits runs take the full-logits
 * path (rd_model_forward) instead of top-k.
 *
 * Skips (77) without CUDA or without a device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_e2e.h"

#define TOL 1e-4

struct model {
    const char *name;
    char cfg[512], ckpt[512]; /* ckpt "" = the config's own (gguf) */
    const char *prompt;       /* flags that give the prompt */
    bool splits;              /* max_ctx > 512: graph and eager attention split differently */
};

/* a run's JSON, or NULL; with graphs, also that a graph was recorded */
static json_t *run(const struct model *md, int np, const char *dtype, bool graphs, const char *extra)
{
    char pre[2048], cmd[8192], ck[600] = "";
    gpu_e2e_prefix(pre, sizeof pre, np, "cuda");
    if (md->ckpt[0]) snprintf(ck, sizeof ck, "--checkpoint %s", md->ckpt);
    snprintf(cmd, sizeof cmd,
             "%s%s --dtype %s --config %s %s %s --max-new-tokens 48 --ignore-eos --temperature 0 "
             "--output json %s",
             graphs ? "RD_CUDA_GRAPHS=1 RD_LOG_LEVEL=debug " : "RD_CUDA_GRAPHS=0 ", pre, dtype,
             md->cfg, ck,
             md->prompt, extra);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    json_t *j = rc == 0 && out ? rd_test_parse_json(out) : NULL;
    if (!j) fprintf(stderr, "run failed (rc %d): %s\n%s\n", rc, cmd, err ? err : "");
    if (j && graphs && (!err || !strstr(err, "as a graph"))) {
        fprintf(stderr, "no graph was recorded: %s\n%s\n", cmd, err ? err : "");
        json_decref(j);
        j = NULL;
    }
    free(out);
    free(err);
    return j;
}

static double tps(const json_t *j)
{
    const json_t *t = json_object_get(j, "timing");
    const json_t *v = t ? json_object_get(t, "decode_tokens_per_s") : NULL;
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* eager vs graphs for one model, dtype and np (extra flags on both; env non-empty: both
 * with RD_DEBUG_SYNC=1) */
static void compare(const struct model *md, int np, const char *dtype, const char *extra,
                    const char *env)
{
    if (env[0]) setenv("RD_DEBUG_SYNC", "1", 1);
    json_t *eager = run(md, np, dtype, false, extra);
    json_t *graph = run(md, np, dtype, true, extra);
    if (env[0]) unsetenv("RD_DEBUG_SYNC");
    const bool logits = strstr(extra, "--with-logits") != NULL;
    CHECK_MSG(eager && graph, "%s %s np=%d %s: a run failed", md->name, dtype, np, extra);
    if (!eager || !graph) {
        json_decref(eager);
        json_decref(graph);
        return;
    }
    const bool same = rd_test_json_same_ids(json_object_get(graph, "output_ids"),
                                            json_object_get(eager, "output_ids"));
    const double err = logits ? rd_test_json_rows_err(json_object_get(graph, "logits"),
                                                      json_object_get(eager, "logits"))
                              : NAN;
    printf("%-12s %-5s np=%d %-16s %-6s %10.2e %12.1f %12.1f\n", md->name, dtype, np,
           env[0]     ? "RD_DEBUG_SYNC=1"
           : extra[0] ? extra
                      : "-",
           same ? "same" : "DIFFER", err, tps(eager), tps(graph));
    const bool fp32 = !strcmp(dtype, "fp32");
    if (!md->splits || fp32)
        CHECK_MSG(same, "%s %s np=%d %s: graph and eager tokens differ", md->name, dtype, np,
                  extra);
    if (logits && fp32) CHECK_MSG(err <= TOL, "%s np=%d: logits differ by %.3e", md->name, np, err);
    json_decref(eager);
    json_decref(graph);
}

/* writes a random model's config and checkpoint; false on failure */
static bool make_random(struct model *md, const char *tmp, int max_pos, int seed)
{
    snprintf(md->cfg, sizeof md->cfg, "%s/%s.json", tmp, md->name);
    snprintf(md->ckpt, sizeof md->ckpt, "%s/%s.h5", tmp, md->name);
    FILE *f = fopen(md->cfg, "w");
    if (!f) return false;
    fprintf(f,
            "{\"model_type\": \"llama\", \"hidden_size\": 128, \"num_attention_heads\": 8, "
            "\"num_key_value_heads\": 2, \"intermediate_size\": 256, \"vocab_size\": 320, "
            "\"num_hidden_layers\": 3, \"tie_word_embeddings\": false, \"rms_norm_eps\": 1e-5, "
            "\"max_position_embeddings\": %d, \"rope_theta\": 10000.0, \"bos_token_id\": 1, "
            "\"eos_token_id\": 2}\n",
            max_pos);
    fclose(f);
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert --random --config %s --seed %d -o %s",
             rd_test_bin_dir(), md->cfg, seed, md->ckpt);
    int rc = rd_test_run(cmd, NULL, &err);
    CHECK_MSG(rc == 0, "%s: convert failed: %s", md->name, err ? err : "");
    free(err);
    return rc == 0;
}

int main(void)
{
    if (gpu_e2e_skip()) return RD_TEST_SKIP;
    unsetenv("RD_CUDA_GRAPHS");
    unsetenv("RD_DEBUG_SYNC");
    char tmp[256];
    rd_test_tmpdir(tmp, sizeof tmp);
    /* deterministic prompts of 20 and 500 ids, BOS first */
    static char prompt[512] = "--prompt-ids ", prompt_long[4096] = "--prompt-ids ";
    for (int i = 0; i < 500; i++) {
        size_t l = strlen(prompt_long);
        snprintf(prompt_long + l, sizeof prompt_long - l, "%s%d", i ? "," : "",
                 i ? 3 + (i * 37) % 300 : 1);
        if (i == 19) snprintf(prompt, sizeof prompt, "%s", prompt_long);
    }
    struct model models[3];
    int n = 0;
    memset(models, 0, sizeof models);
    struct model *rnd = NULL, *rnd_long = NULL;
    models[n] = (struct model){.name = "random", .prompt = prompt, .splits = false};
    if (make_random(&models[n], tmp, 256, 7)) rnd = &models[n++];
    models[n] = (struct model){.name = "random_long", .prompt = prompt_long, .splits = true};
    if (make_random(&models[n], tmp, 2048, 8)) rnd_long = &models[n++];
    const char *shared = rd_test_shared_dir();
    if (shared) {
        models[n] =
            (struct model){.name = "stories260K", .prompt = "--prompt \"\"", .splits = false};
        snprintf(models[n].cfg, sizeof models[n].cfg, "%s/models/stories260K/stories260K.gguf",
                 shared);
        if (access(models[n].cfg, R_OK) == 0)
            n++;
        else
            printf("SKIP stories260K: %s not found\n", models[n].cfg);
    }

    printf("%-12s %-5s %-4s %-16s %-6s %10s %12s %12s\n", "model", "dtype", "np", "extra", "ids",
           "logit_err", "eager_tok/s", "graph_tok/s");
    const char *dtypes[] = {"fp32", "bf16"};
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 2; d++)
            for (int np = 1; np <= 2; np++)
                compare(&models[i], np, dtypes[d], "", "");
    /* the full-logits path, and the debug sync around recording and replays */
    for (int np = 1; np <= 2; np++) {
        if (rnd) compare(rnd, np, "fp32", "--with-logits", "");
        if (rnd_long) compare(rnd_long, np, "fp32", "--with-logits", "");
        if (rnd) compare(rnd, np, "fp32", "", "sync");
    }

    for (int i = 0; i < n; i++)
        if (models[i].ckpt[0]) remove(models[i].cfg), remove(models[i].ckpt);
    rmdir(tmp);
    return rd_test_finish("cuda graphs");
}
