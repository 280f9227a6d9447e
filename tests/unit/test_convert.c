/* Unit test of the ropedist-convert tool (tools/convert_main.c) through the checkpoints it
 * writes: golden Hugging Face models (single file, bf16, 7 shards) convert to checkpoints
 * holding exactly the safetensors values and the config text; an existing output is refused
 * without --force and --dtype converts; random models are deterministic per seed and carry the
 * ropedist note; a misshaped or missing tensor is an error naming it and leaves no output;
 * usage errors exit nonzero with a message. Skipped (77) when ropedist-convert is not built or
 * ../shared is absent. The checkpoint reader and writer themselves are tested in test_ckpt.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "runtime/config.h"
#include "runtime/safetensors.h"
#include "test_util.h"

static char g_dir[256];   /* outputs and the broken model, removed at the end */
static char g_conv[1024]; /* the ropedist-convert binary */

static int run_convert(const char *args, char **err_out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s", g_conv, args);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    if (rc != 0 && !err_out) fprintf(stderr, "%s -> %d\n%s", cmd, rc, err ? err : "");
    free(out);
    if (err_out) *err_out = err;
    else free(err);
    return rc;
}

/* Every tensor of the safetensors files in dir is in the checkpoint with the same values
 * (as_stored: also the same dtype); returns the number of tensors compared. */
static int compare_with_hf(const char *h5, const char *dir, const char **files, int n_files,
                           bool as_stored)
{
    char err[1024] = "";
    struct rd_ckpt *ck = NULL;
    CHECK_MSG(rd_ckpt_open(h5, &ck, err, sizeof err) == RD_OK, "%s", err);
    if (!ck) return 0;
    int compared = 0;
    for (int f = 0; f < n_files; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        struct rd_safetensors *st = NULL;
        CHECK_MSG(rd_st_open(path, &st, err, sizeof err) == RD_OK, "%s", err);
        for (int i = 0; st && i < st->n_tensors; i++) {
            const struct rd_st_tensor *t = &st->tensors[i];
            size_t n = 1;
            for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
            void *raw = malloc(n * 4);
            float *want = malloc(n * 4), *got = malloc(n * 4);
            CHECK(rd_st_read(st, i, raw) == RD_OK);
            rd_convert_to_f32(want, raw, t->dtype, n);
            int nd;
            int64_t dims[2];
            enum rd_dtype dt;
            rd_status rc = rd_ckpt_shape(ck, t->name, &nd, dims, &dt, err, sizeof err);
            CHECK_MSG(rc == RD_OK, "%s", err);
            if (rc == RD_OK) {
                CHECK(nd == t->ndim && dims[0] == t->shape[0] && (nd == 1 || dims[1] == t->shape[1]));
                if (as_stored) CHECK_MSG(dt == t->dtype, "%s dtype changed", t->name);
                int64_t R = nd == 2 ? dims[0] : 1, C = nd == 2 ? dims[1] : dims[0];
                rc = rd_ckpt_read_slice(ck, t->name, 0, R, 0, C, got, err, sizeof err);
                CHECK_MSG(rc == RD_OK, "%s", err);
                int bad = 0;
                for (size_t k = 0; k < n; k++) {
                    float w = want[k];
                    if (dt != t->dtype) { /* converted: compare with the same rounding */
                        uint16_t h;
                        rd_convert_from_f32(&h, &w, dt, 1);
                        rd_convert_to_f32(&w, &h, dt, 1);
                    }
                    if (got[k] != w) bad++;
                }
                CHECK_MSG(bad == 0, "%s: %d of %zu values differ", t->name, bad, n);
                compared++;
            }
            free(raw), free(want), free(got);
        }
        rd_st_close(st);
    }
    rd_ckpt_close(ck);
    return compared;
}

static char *ckpt_config(const char *h5)
{
    char err[512];
    struct rd_ckpt *ck = NULL;
    char *cfg = NULL;
    if (rd_ckpt_open(h5, &ck, err, sizeof err) == RD_OK) rd_ckpt_config_json(ck, &cfg, NULL, 0);
    rd_ckpt_close(ck);
    return cfg;
}

/* Copies src to dst replacing the first occurrence of from by to (same length). */
static void copy_patched(const char *src, const char *dst, const char *from, const char *to)
{
    size_t len = 0;
    char *b = rd_test_read_file(src, &len);
    CHECK(b != NULL);
    if (!b) return;
    char *hit = NULL;
    for (size_t i = 0; from && i + strlen(from) <= len && !hit; i++)
        if (!memcmp(b + i, from, strlen(from))) hit = b + i;
    CHECK(!from || hit);
    if (hit) memcpy(hit, to, strlen(to));
    FILE *f = fopen(dst, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    free(b);
}


static void test_convert(const char *shared)
{
    char gm[1024], args[4096], h5[512], *err = NULL;
    snprintf(gm, sizeof gm, "%s/golden/models", shared);

    /* single file, fp32, tied: values and the config text as is */
    snprintf(h5, sizeof h5, "%s/mha.h5", g_dir);
    snprintf(args, sizeof args, "'%s/tiny_mha_tied' -o '%s'", gm, h5);
    CHECK(run_convert(args, NULL) == 0);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/tiny_mha_tied", gm);
    const char *single[] = {"model.safetensors"};
    CHECK(compare_with_hf(h5, dir, single, 1, true) == 20);
    char cfgp[1300];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    char *want_cfg = rd_test_read_file(cfgp, NULL), *got_cfg = ckpt_config(h5);
    CHECK(want_cfg && got_cfg && !strcmp(want_cfg, got_cfg));
    free(got_cfg);

    /* existing output: refused, untouched; --force replaces; --dtype converts */
    size_t l0, l1;
    char *orig = rd_test_read_file(h5, &l0);
    snprintf(args, sizeof args, "'%s/tiny_mha_tied' -o '%s' --dtype fp16", gm, h5);
    CHECK(run_convert(args, &err) != 0);
    CHECK(err && strstr(err, "exists"));
    free(err);
    char *now = rd_test_read_file(h5, &l1);
    CHECK(orig && now && l0 == l1 && !memcmp(orig, now, l0));
    free(orig), free(now);
    snprintf(args, sizeof args, "'%s/tiny_mha_tied' -o '%s' --dtype fp16 --force", gm, h5);
    CHECK(run_convert(args, NULL) == 0);
    CHECK(compare_with_hf(h5, dir, single, 1, false) == 20);
    unlink(h5);

    /* bf16 as stored */
    snprintf(dir, sizeof dir, "%s/tiny_gqa_bf16", gm);
    snprintf(args, sizeof args, "'%s' -o '%s'", dir, h5);
    CHECK(run_convert(args, NULL) == 0);
    CHECK(compare_with_hf(h5, dir, single, 1, true) == 30);
    unlink(h5);

    /* 7 shards through the index */
    snprintf(dir, sizeof dir, "%s/tiny_mqa_headdim_sharded", gm);
    snprintf(args, sizeof args, "'%s' -o '%s'", dir, h5);
    CHECK(run_convert(args, NULL) == 0);
    const char *shards[7];
    char names[7][64];
    for (int i = 0; i < 7; i++) {
        snprintf(names[i], sizeof names[i], "model-%05d-of-00007.safetensors", i + 1);
        shards[i] = names[i];
    }
    CHECK(compare_with_hf(h5, dir, shards, 7, true) == 21);
    unlink(h5);

    /* a misshaped tensor (same byte size) and a missing one: named, and no output left */
    char bad[512], path[1400];
    snprintf(bad, sizeof bad, "%s/bad_hf", g_dir);
    mkdir(bad, 0755);
    snprintf(path, sizeof path, "%s/config.json", bad);
    copy_patched(cfgp, path, NULL, NULL);
    snprintf(cfgp, sizeof cfgp, "%s/tiny_mha_tied/model.safetensors", gm);
    snprintf(path, sizeof path, "%s/model.safetensors", bad);
    copy_patched(cfgp, path,
                 "\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[64,176]",
                 "\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[176,64]");
    snprintf(args, sizeof args, "'%s' -o '%s'", bad, h5);
    CHECK(run_convert(args, &err) != 0);
    CHECK_MSG(err && strstr(err, "model.layers.0.mlp.down_proj.weight") && strstr(err, "[176, 64]"),
              "%s", err ? err : "");
    free(err);
    CHECK(access(h5, F_OK) != 0);
    copy_patched(cfgp, path, "\"model.norm.weight\"", "\"model.norX.weight\"");
    CHECK(run_convert(args, &err) != 0);
    CHECK_MSG(err && strstr(err, "'model.norm.weight'") && strstr(err, "missing"), "%s",
              err ? err : "");
    free(err);
    CHECK(access(h5, F_OK) != 0);

    /* random weights: same seed, same tensors (and file); other seed, other tensors */
    char r1[512], r2[512], r3[512];
    snprintf(r1, sizeof r1, "%s/r1.h5", g_dir);
    snprintf(r2, sizeof r2, "%s/r2.h5", g_dir);
    snprintf(r3, sizeof r3, "%s/r3.h5", g_dir);
    snprintf(cfgp, sizeof cfgp, "%s/tiny_gqa_bf16/config.json", gm);
    snprintf(args, sizeof args, "--random --config '%s' --seed 42 -o '%s'", cfgp, r1);
    CHECK(run_convert(args, NULL) == 0);
    snprintf(args, sizeof args, "--random --config='%s' -o '%s' --seed=42", cfgp, r2);
    CHECK(run_convert(args, NULL) == 0);
    snprintf(args, sizeof args, "--random --config '%s' --seed 43 -o '%s' --dtype bf16", cfgp, r3);
    CHECK(run_convert(args, NULL) == 0);
    const char *tn[] = {"model.embed_tokens.weight", "model.layers.2.mlp.down_proj.weight",
                        "model.layers.1.input_layernorm.weight", "lm_head.weight"};
    struct rd_ckpt *c1 = NULL, *c2 = NULL, *c3 = NULL;
    char e[512];
    CHECK(rd_ckpt_open(r1, &c1, e, sizeof e) == RD_OK);
    CHECK(rd_ckpt_open(r2, &c2, e, sizeof e) == RD_OK);
    CHECK(rd_ckpt_open(r3, &c3, e, sizeof e) == RD_OK);
    for (int i = 0; c1 && c2 && c3 && i < 4; i++) {
        int nd;
        int64_t dims[2];
        enum rd_dtype dt;
        CHECK(rd_ckpt_shape(c1, tn[i], &nd, dims, &dt, e, sizeof e) == RD_OK);
        int64_t R = nd == 2 ? dims[0] : 1, C = nd == 2 ? dims[1] : dims[0];
        size_t n = (size_t)(R * C);
        float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
        CHECK(rd_ckpt_read_slice(c1, tn[i], 0, R, 0, C, a, e, sizeof e) == RD_OK);
        CHECK(rd_ckpt_read_slice(c2, tn[i], 0, R, 0, C, b, e, sizeof e) == RD_OK);
        CHECK(rd_ckpt_read_slice(c3, tn[i], 0, R, 0, C, c, e, sizeof e) == RD_OK);
        CHECK(!memcmp(a, b, n * 4));
        CHECK(memcmp(a, c, n * 4) != 0);
        double s2 = 0, lo = 1e9, hi = -1e9;
        for (size_t k = 0; k < n; k++) {
            s2 += (double)a[k] * a[k];
            lo = a[k] < lo ? a[k] : lo;
            hi = a[k] > hi ? a[k] : hi;
        }
        if (nd == 1) CHECK_MSG(lo >= 0.8 && hi <= 1.2, "%s in [%g, %g]", tn[i], lo, hi);
        else CHECK_MSG(fabs(sqrt(s2 / (double)n) - 0.08) < 0.01, "%s std %g", tn[i], sqrt(s2 / (double)n));
        free(a), free(b), free(c);
    }
    rd_ckpt_close(c1), rd_ckpt_close(c2), rd_ckpt_close(c3);

    /* the random config keeps the original fields and gains the note; still a valid config */
    char *rc_txt = ckpt_config(r1);
    json_t *j = rc_txt ? rd_test_parse_json(rc_txt) : NULL;
    json_t *note = json_object_get(j, "ropedist");
    CHECK(json_is_true(json_object_get(note, "random_weights")));
    json_t *seed = json_object_get(note, "seed");
    CHECK(json_is_number(seed) && json_number_value(seed) == 42);
    json_t *nl = json_object_get(j, "num_hidden_layers");
    CHECK(json_is_number(nl) && (int)json_number_value(nl) == 3);
    struct rd_config cfg;
    char ce[512] = "";
    CHECK_MSG(rc_txt && rd_config_parse(rc_txt, NULL, &cfg, ce, sizeof ce) == RD_OK, "%s", ce);
    json_decref(j);
    free(rc_txt);

    /* usage errors exit nonzero with a message */
    CHECK(run_convert("", &err) != 0 && err && strstr(err, "-o"));
    free(err);
    CHECK(run_convert("--dtype int4 x -o y.h5", &err) != 0 && err && strstr(err, "int4"));
    free(err);
    CHECK(run_convert("--random -o y.h5", &err) != 0 && err && strstr(err, "--config"));
    free(err);
    CHECK(run_convert("--help", NULL) == 0);
    free(want_cfg);
}

int main(void)
{
    const char *shared;
    int setup = rd_test_program_setup("ropedist-convert", g_conv, sizeof g_conv, &shared, g_dir,
                                      sizeof g_dir);
    if (setup != 0) return setup;
    test_convert(shared);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rd_test_finish("test_convert");
}
