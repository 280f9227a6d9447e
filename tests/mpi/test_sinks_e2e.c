/* Attention sinks end to end (np = 2, cpu backend, random model with max_position_embeddings
 * 64): with a window at least as long as the sequence the output equals plain attention (ids
 * and logits); with S = 4, W = 16 generation runs for 200 tokens, far past the window and the
 * trained context, while every rank's KV cache holds 16 entries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static json_t *run(const char *cfg, const char *h5, const char *flags, char **err_out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np 2 %s/ropedist --device cpu --config %s --checkpoint %s "
             "--prompt-ids 1,5,9,17,33,2,7,100,3 --ignore-eos --output json %s",
             rd_test_mpirun(), rd_test_bin_dir(), cfg, h5, flags);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    json_t *j = rc == 0 ? rd_test_parse_json(out) : NULL;
    if (!j) fprintf(stderr, "run failed (rc %d): %s\n%s\n", rc, cmd, err ? err : "");
    free(out);
    if (err_out) *err_out = err;
    else free(err);
    return j;
}

int main(void)
{
    char tmp[256], cfg[512], h5[512], cmd[2048];
    rd_test_tmpdir(tmp, sizeof tmp);
    snprintf(cfg, sizeof cfg, "%s/m.json", tmp);
    snprintf(h5, sizeof h5, "%s/m.h5", tmp);
    FILE *f = fopen(cfg, "w");
    fputs("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
          "\"intermediate_size\": 128, \"vocab_size\": 256, \"num_hidden_layers\": 2, "
          "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"bos_token_id\": 1, "
          "\"eos_token_id\": 2}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert --random --config %s --seed 11 -o %s",
             rd_test_bin_dir(), cfg, h5);
    CHECK(rd_test_run(cmd, NULL, NULL) == 0);

    /* 1. window >= sequence: identical to plain attention */
    json_t *plain = run(cfg, h5, "--max-new-tokens 30 --with-logits", NULL);
    json_t *win = run(cfg, h5, "--max-new-tokens 30 --with-logits --sink-tokens 4 --attention-window 48", NULL);
    CHECK(plain && win);
    if (plain && win) {
        bool ids = rd_test_json_same_ids(json_object_get(win, "output_ids"),
                                         json_object_get(plain, "output_ids"));
        double worst = rd_test_json_rows_err(json_object_get(win, "logits"),
                                             json_object_get(plain, "logits"));
        printf("window 48 >= 39 tokens vs plain: ids %s, largest logit difference %.2e\n",
               ids ? "same" : "DIFFER", worst);
        CHECK_MSG(ids, "greedy ids differ from plain attention");
        CHECK(worst <= 1e-6);
    }
    json_decref(plain);
    json_decref(win);

    /* 2. far past the window and the trained context, with a 16-entry cache */
    char *err = NULL;
    json_t *lng = run(cfg, h5, "--max-new-tokens 200 --sink-tokens 4 --attention-window 16 --verbose", &err);
    CHECK(lng != NULL);
    if (lng) {
        int n = (int)json_array_size(json_object_get(lng, "output_ids"));
        const json_t *fr = json_object_get(lng, "finish_reason");
        printf("S=4 W=16: generated %d tokens (prompt 9), finish_reason %s\n", n,
               json_is_string(fr) ? json_string_value(fr) : "?");
        CHECK(n == 200);
        CHECK(json_is_string(fr) && !strcmp(json_string_value(fr), "length"));
        /* both ranks report a 16-entry cache */
        int reports = 0;
        for (const char *p = err; p && (p = strstr(p, "(16 entries per sequence)")); p++) reports++;
        printf("ranks reporting a 16-entry kv cache: %d\n", reports);
        CHECK(reports == 2);
    }
    free(err);
    json_decref(lng);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    rd_test_run(cmd, NULL, NULL);
    return rd_test_finish("attention sinks end to end");
}
