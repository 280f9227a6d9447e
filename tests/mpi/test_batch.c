/* Continuous batching of --prompts: decoding up to N prompts together (--batch N), with
 * prompts of different lengths starting as others finish and prefill chunks sharing calls with
 * decode tokens, gives every prompt exactly the tokens it gets alone (--batch 1), and with
 * --with-logits the same logits within 1e-5 relative (the cpu backend's BLAS rounds a row of
 * a GEMM differently from the same row alone), at np 1 and 2, greedy and sampled (top-k through
 * the candidate path, top-p through full logits), through EOS, length and a full context. Uses
 * the embedded default model (configs/default). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define TOL 1e-5

static char *run(int np, const char *prompts, const char *flags)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np %d %s/ropedist --device cpu --config "
             "%s/configs/default/config.json --prompts %s --output json %s",
             rd_test_mpirun(), np, rd_test_bin_dir(), rd_test_source_dir(), prompts, flags);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    if (rc) {
        fprintf(stderr, "run failed (rc %d): %s\n%s\n", rc, cmd, err ? err : "");
        free(out);
        out = NULL;
    }
    free(err);
    return out;
}

/* The output split in two: each line without timing and logits (text compared exactly), and
 * the lines' logits (compared numerically). */
static char *split_output(const char *out, int *n_lines, json_t *logits)
{
    char *res = NULL, *copy = strdup(out);
    size_t len = 0;
    FILE *f = open_memstream(&res, &len);
    *n_lines = 0;
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = rd_test_parse_json(line);
        if (!j) continue;
        json_object_del(j, "timing");
        json_t *l = json_object_get(j, "logits");
        json_array_append_new(logits, l ? json_incref(l) : json_array());
        json_object_del(j, "logits");
        char *s = rd_test_json_compact(j);
        fprintf(f, "%s\n", s ? s : "");
        free(s);
        json_decref(j);
        (*n_lines)++;
    }
    fclose(f);
    free(copy);
    return res;
}

/* the largest relative difference between two runs' logits, prompt by prompt */
static double logits_err(const json_t *got, const json_t *want)
{
    if (json_array_size(got) != json_array_size(want)) return INFINITY;
    double worst = 0;
    for (size_t i = 0; i < json_array_size(want); i++) {
        double e = rd_test_json_rows_err(json_array_get(got, i), json_array_get(want, i));
        if (e > worst || isnan(e)) worst = e;
    }
    return worst;
}

int main(void)
{
    char tmp[256], prompts[512];
    rd_test_tmpdir(tmp, sizeof tmp);
    snprintf(prompts, sizeof prompts, "%s/prompts.jsonl", tmp);
    FILE *f = fopen(prompts, "w");
    const char *texts[] = {"It is a truth universally acknowledged", "Emma", "Mr. Darcy said",
                           "The weather was fine, and"};
    unsigned x = 7;
    for (int i = 0; i < 13; i++) {
        if (i % 3 == 0) {
            fprintf(f, "{\"prompt\": \"%s\"}\n", texts[(i / 3) % 4]);
        } else {
            int n = 1 + (int)((x = x * 1103515245u + 12345u) >> 16) % 60;
            fprintf(f, "{\"prompt_ids\": [0");
            for (int t = 0; t < n; t++)
                fprintf(f, ", %u", 2 + ((x = x * 1103515245u + 12345u) >> 16) % 4000);
            fprintf(f, "]}\n");
        }
    }
    fclose(f);
    static const struct {
        const char *what, *flags;
    } k_cases[] = {
        {"greedy, logits", "--temperature 0 --max-new-tokens 24 --with-logits"},
        {"greedy to eos", "--temperature 0 --max-new-tokens 120"},
        {"top-k sampling", "--temperature 0.8 --top-k 30 --seed 5 --max-new-tokens 24"},
        {"top-p sampling", "--temperature 0.9 --top-p 0.9 --seed 5 --max-new-tokens 24"},
        {"full context", "--temperature 0 --ignore-eos --max-new-tokens 1000 --max-seq-len 96"},
        {"no new tokens", "--temperature 0 --max-new-tokens 0"},
    };
    printf("%-16s %3s %-32s %-6s %s\n", "case", "np", "batch", "output", "logits err");
    for (size_t c = 0; c < sizeof k_cases / sizeof *k_cases; c++) {
        for (int np = 1; np <= 2; np++) {
            /* the reference is the same np one prompt at a time: the all-reduce order of
             * another np changes the logits' last bits */
            char flags[512];
            snprintf(flags, sizeof flags, "%s --batch 1", k_cases[c].flags);
            char *ref_out = run(np, prompts, flags);
            CHECK_MSG(ref_out != NULL, "%s: the one-at-a-time run failed", k_cases[c].what);
            if (!ref_out) continue;
            int n_ref;
            json_t *ref_logits = json_array();
            char *ref = split_output(ref_out, &n_ref, ref_logits);
            CHECK_MSG(n_ref == 13, "%s: %d results for 13 prompts", k_cases[c].what, n_ref);
            const char *batches[] = {"--batch 4 --max-batch-tokens 16", "--batch 13"};
            for (int b = 0; b < 2; b++) {
                snprintf(flags, sizeof flags, "%s %s", k_cases[c].flags, batches[b]);
                char *out = run(np, prompts, flags);
                int n = 0;
                json_t *logits = json_array();
                char *got = out ? split_output(out, &n, logits) : strdup("");
                bool same = !strcmp(got, ref);
                double e = logits_err(logits, ref_logits);
                printf("%-16s %3d %-32s %-6s %.2e\n", k_cases[c].what, np, batches[b] + 2,
                       same ? "same" : "DIFFER", e);
                CHECK_MSG(same, "%s np=%d %s: output differs from one prompt at a time",
                          k_cases[c].what, np, batches[b]);
                CHECK_MSG(e <= TOL, "%s np=%d %s: logits differ from one prompt at a time by "
                          "%.3e", k_cases[c].what, np, batches[b], e);
                json_decref(logits);
                free(out);
                free(got);
            }
            json_decref(ref_logits);
            free(ref);
            free(ref_out);
        }
    }
    remove(prompts);
    rmdir(tmp);
    return rd_test_finish("batched prompts");
}
