/* Every error a user can cause ends every rank with one clear message from rank 0 naming the
 * cause, a nonzero exit and no hang (each run is bounded by `timeout`). Runs at np = 2 on the
 * cpu backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

static char g_tmp[256], g_cfg[512], g_h5[512];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static const char *k_config =
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"intermediate_size\": 128, \"vocab_size\": 256, "
    "\"num_hidden_layers\": 2, \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-5, "
    "\"bos_token_id\": 1, \"eos_token_id\": 2, \"tie_word_embeddings\": %s%s}";

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* runs ropedist with args at np ranks; expects failure with `want` in stderr */
static void expect_error(const char *what, int np, const char *args, const char *want)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "timeout 60 %s -np %d %s/ropedist --device cpu %s", rd_test_mpirun(),
             np, rd_test_bin_dir(), args);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    const char *e = err ? err : "";
    /* one "error:" line from rank 0 (the cause); the launcher may add its own lines */
    int n_err = count(e, "] error:");
    bool from_rank0 = strstr(e, "[rank 0/") != NULL;
    printf("%-34s rc=%-3d messages=%d  %s\n", what, rc, n_err,
           strstr(e, "] error:") ? strstr(e, "] error:") + 9 : "(none)");
    CHECK_MSG(rc != 0 && rc != 124 && rc != 137, "%s: expected a nonzero exit without a hang, got %d",
              what, rc);
    CHECK_MSG(strstr(e, want) != NULL, "%s: stderr lacks \"%s\":\n%s", what, want, e);
    CHECK_MSG(from_rank0, "%s: no message from rank 0:\n%s", what, e);
    CHECK_MSG(n_err == 1, "%s: expected exactly one error message, got %d:\n%s", what, n_err, e);
    CHECK_MSG(!out || !*out, "%s: stdout should be empty, got: %s", what, out);
    free(out);
    free(err);
}

int main(void)
{
    rd_test_tmpdir(g_tmp, sizeof g_tmp);
    char text[2048], path[600], args[4096], cmd[4096];
    snprintf(g_cfg, sizeof g_cfg, "%s/model.json", g_tmp);
    snprintf(g_h5, sizeof g_h5, "%s/model.h5", g_tmp);
    snprintf(text, sizeof text, k_config, "false", "");
    write_file(g_cfg, text);
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert --random --config %s -o %s", rd_test_bin_dir(),
             g_cfg, g_h5);
    if (rd_test_run(cmd, NULL, NULL) != 0) {
        fprintf(stderr, "cannot build the test model\n");
        return 1;
    }
    const char *base = "--prompt-ids 1,2,3 --max-new-tokens 2 --output ids";

    /* flags */
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s --temperature -1", g_cfg, g_h5, base);
    expect_error("bad flag value", 2, args, "--temperature");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s --threads 0", g_cfg, g_h5, base);
    expect_error("bad thread count", 2, args, "--threads");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s --frobnicate", g_cfg, g_h5, base);
    expect_error("unknown flag", 2, args, "--frobnicate");
    snprintf(args, sizeof args, "--config %s --checkpoint %s --prompt-ids 1,x", g_cfg, g_h5);
    expect_error("bad prompt ids", 2, args, "--prompt-ids");
    snprintf(args, sizeof args, "--checkpoint %s %s", g_h5, base);
    expect_error("missing --config", 2, args, "--config");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s --dtype bf16", g_cfg, g_h5, base);
    expect_error("bf16 on cpu", 2, args, "fp32 only");

    /* config */
    snprintf(args, sizeof args, "--config %s/nope.json --checkpoint %s %s", g_tmp, g_h5, base);
    expect_error("missing config", 2, args, "nope.json");
    snprintf(path, sizeof path, "%s/unreadable.json", g_tmp);
    write_file(path, "{\"hidden_size\": 64,");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s", path, g_h5, base);
    expect_error("config not JSON", 2, args, "not valid JSON");
    snprintf(path, sizeof path, "%s/nolayers.json", g_tmp);
    write_file(path, "{\"hidden_size\": 64, \"num_attention_heads\": 4, \"intermediate_size\": 128, "
                     "\"vocab_size\": 256}");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s", path, g_h5, base);
    expect_error("config missing field", 2, args, "num_hidden_layers");

    /* checkpoint */
    snprintf(args, sizeof args, "--config %s --checkpoint %s/nope.h5 %s", g_cfg, g_tmp, base);
    expect_error("missing checkpoint", 2, args, "nope.h5");
    snprintf(path, sizeof path, "%s/garbage.h5", g_tmp);
    write_file(path, "this is not an HDF5 file");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s", g_cfg, path, base);
    expect_error("checkpoint not HDF5", 2, args, "garbage.h5");
    snprintf(path, sizeof path, "%s/tied.json", g_tmp);
    snprintf(text, sizeof text, k_config, "false", "");
    /* a config asking for lm_head.weight against a checkpoint of a tied model */
    {
        char tied_cfg[600], tied_h5[600];
        snprintf(tied_cfg, sizeof tied_cfg, "%s/tied_model.json", g_tmp);
        snprintf(tied_h5, sizeof tied_h5, "%s/tied_model.h5", g_tmp);
        snprintf(text, sizeof text, k_config, "true", "");
        write_file(tied_cfg, text);
        snprintf(cmd, sizeof cmd, "%s/ropedist-convert --random --config %s -o %s",
                 rd_test_bin_dir(), tied_cfg, tied_h5);
        CHECK(rd_test_run(cmd, NULL, NULL) == 0);
        snprintf(args, sizeof args, "--config %s --checkpoint %s %s", g_cfg, tied_h5, base);
        expect_error("checkpoint missing tensor", 2, args, "lm_head.weight");
    }
    snprintf(path, sizeof path, "%s/wide.json", g_tmp);
    write_file(path, "{\"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                     "\"intermediate_size\": 192, \"vocab_size\": 256, \"num_hidden_layers\": 2, "
                     "\"max_position_embeddings\": 32}");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s", path, g_h5, base);
    expect_error("checkpoint wrong shape", 2, args, "gate_proj.weight");

    /* prompts */
    snprintf(args, sizeof args, "--config %s --checkpoint %s --output ids --prompt-ids "
             "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,"
             "32,33,34", g_cfg, g_h5);
    expect_error("prompt longer than context", 2, args, "34 tokens but the context holds 32");
    snprintf(args, sizeof args, "--config %s --checkpoint %s --output ids --prompt-ids 1,256", g_cfg,
             g_h5);
    expect_error("token id out of range", 2, args, "token id 256");
    snprintf(path, sizeof path, "%s/p.jsonl", g_tmp);
    write_file(path, "{\"prompt_ids\": [1, 2]}\n{\"prompt_ids\": \"oops\"}\n");
    snprintf(args, sizeof args, "--config %s --checkpoint %s --output ids --prompts %s", g_cfg, g_h5,
             path);
    expect_error("bad prompts file line", 2, args, "line 2");

    /* tensor parallelism */
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s", g_cfg, g_h5, base);
    expect_error("tp does not divide heads", 3, args, "does not divide num_attention_heads 4");
    snprintf(args, sizeof args, "--config %s --checkpoint %s %s --tp 4", g_cfg, g_h5, base);
    expect_error("tp does not match the ranks", 2, args, "--tp 4 but 2 rank(s) were started");

    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    rd_test_run(cmd, NULL, NULL);
    return rd_test_finish("errors");
}
