/* Unit test of the HDF5 checkpoint reader and writer: 1-D and 2-D tensors in fp32, bf16 and
 * fp16 are written, then read back through hyperslab slices (rows, columns, blocks) and compared
 * with the values stored; the config attribute round-trips (also in the fixed-length string
 * form other writers may use); an existing file is refused without force and stays untouched
 * (also when it appears while the writer runs, and after an abort); a missing tensor gives an
 * error naming it; files that are not ropedist checkpoints are refused. The ropedist-convert
 * tool, which writes such checkpoints, is tested in test_convert.c. */
#include <dirent.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "test_util.h"

static char g_dir[256];

#define E_R 7
#define E_C 5
#define Q_R 6
#define Q_C 4
#define D_R 3
#define D_C 8
#define N_1D 9

/* the values as stored, widened to fp32: what every read must return exactly */
static float g_embed[E_R * E_C], g_q[Q_R * Q_C], g_down[D_R * D_C], g_norm[E_C], g_ln[N_1D];
static uint16_t g_q16[Q_R * Q_C], g_down16[D_R * D_C], g_ln16[N_1D];

static const char *CONFIG = "{\"hidden_size\": 5, \"note\": \"caf\xc3\xa9\"}";

static void make_data(void)
{
    for (int i = 0; i < E_R * E_C; i++) g_embed[i] = 0.1f * (float)i - 1.7f;
    for (int i = 0; i < E_C; i++) g_norm[i] = 1.0f + 0.01f * (float)i;
    for (int i = 0; i < Q_R * Q_C; i++) {
        g_q16[i] = rd_f32_to_bf16(0.37f * (float)i - 3.0f);
        g_q[i] = rd_bf16_to_f32(g_q16[i]);
    }
    for (int i = 0; i < D_R * D_C; i++) {
        g_down16[i] = rd_f32_to_f16(0.011f * (float)(i * i) - 0.5f);
        g_down[i] = rd_f16_to_f32(g_down16[i]);
    }
    for (int i = 0; i < N_1D; i++) {
        g_ln16[i] = rd_f32_to_bf16(0.9f + 0.03f * (float)i);
        g_ln[i] = rd_bf16_to_f32(g_ln16[i]);
    }
}

static int count_dir_entries(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static rd_status write_ckpt(const char *path, bool force, const char *config)
{
    struct rd_ckpt_writer *w = NULL;
    char err[512] = "";
    RD_TRY(rd_ckpt_create(path, force, config, &w, err, sizeof err));
    int64_t de[2] = {E_R, E_C}, dq[2] = {Q_R, Q_C}, dd[2] = {D_R, D_C}, dn[1] = {E_C},
            dl[1] = {N_1D};
    rd_status rc;
    RD_TRY_GOTO(rd_ckpt_write(w, "model.embed_tokens.weight", 2, de, RD_DTYPE_F32, g_embed), rc,
                fail);
    RD_TRY_GOTO(rd_ckpt_write(w, "model.norm.weight", 1, dn, RD_DTYPE_F32, g_norm), rc, fail);
    RD_TRY_GOTO(rd_ckpt_write(w, "model.layers.0.self_attn.q_proj.weight", 2, dq, RD_DTYPE_BF16,
                              g_q16),
                rc, fail);
    RD_TRY_GOTO(rd_ckpt_write(w, "model.layers.0.mlp.down_proj.weight", 2, dd, RD_DTYPE_F16,
                              g_down16),
                rc, fail);
    RD_TRY_GOTO(rd_ckpt_write(w, "model.layers.0.input_layernorm.weight", 1, dl, RD_DTYPE_BF16,
                              g_ln16),
                rc, fail);
    /* before finish, nothing is at path (unless it was there before) */
    CHECK(force || access(path, F_OK) != 0);
    rc = rd_ckpt_finish(w, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s", err);
    return rc;
fail:
    fprintf(stderr, "write failed: %s\n", rd_ckpt_writer_error(w));
    rd_ckpt_abort(w);
    return rc;
}

/* Reads [r0,+nr) x [c0,+nc) and compares with the reference matrix ref [R, C]. */
static void check_slice(struct rd_ckpt *ck, const char *name, const float *ref, int C, int r0,
                        int nr, int c0, int nc)
{
    float *buf = malloc((size_t)(nr * nc + 1) * sizeof(float));
    char err[512] = "";
    uint64_t before = rd_ckpt_bytes_read(ck);
    rd_status rc = rd_ckpt_read_slice(ck, name, r0, nr, c0, nc, buf, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s [%d,+%d)x[%d,+%d): %s", name, r0, nr, c0, nc, err);
    if (rc == RD_OK) {
        int bad = 0;
        for (int i = 0; i < nr; i++)
            for (int j = 0; j < nc; j++)
                if (buf[i * nc + j] != ref[(r0 + i) * C + c0 + j]) bad++;
        CHECK_MSG(bad == 0, "%s [%d,+%d)x[%d,+%d): %d values differ", name, r0, nr, c0, nc, bad);
        enum rd_dtype dt;
        int nd;
        int64_t dims[2];
        CHECK(rd_ckpt_shape(ck, name, &nd, dims, &dt, err, sizeof err) == RD_OK);
        CHECK(rd_ckpt_bytes_read(ck) - before == (uint64_t)(nr * nc) * rd_dtype_size(dt));
    }
    free(buf);
}

static void test_roundtrip(void)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/model.h5", g_dir);
    CHECK(write_ckpt(path, false, CONFIG) == RD_OK);
    CHECK(count_dir_entries() == 1); /* no temporary file left */

    struct rd_ckpt *ck = NULL;
    rd_status rc = rd_ckpt_open(path, &ck, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s", err);
    if (rc != RD_OK) return;
    CHECK(rd_ckpt_bytes_read(ck) == 0);

    char *cfg = NULL;
    CHECK(rd_ckpt_config_json(ck, &cfg, NULL, 0) == RD_OK && cfg && !strcmp(cfg, CONFIG));
    free(cfg);

    struct {
        const char *name;
        int ndim;
        int64_t d0, d1;
        enum rd_dtype dt;
    } shapes[] = {
        {"model.embed_tokens.weight", 2, E_R, E_C, RD_DTYPE_F32},
        {"model.norm.weight", 1, E_C, 1, RD_DTYPE_F32},
        {"model.layers.0.self_attn.q_proj.weight", 2, Q_R, Q_C, RD_DTYPE_BF16},
        {"model.layers.0.mlp.down_proj.weight", 2, D_R, D_C, RD_DTYPE_F16},
        {"model.layers.0.input_layernorm.weight", 1, N_1D, 1, RD_DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int nd = 0;
        int64_t dims[2] = {0, 0};
        enum rd_dtype dt = RD_DTYPE_F32;
        rc = rd_ckpt_shape(ck, shapes[i].name, &nd, dims, &dt, err, sizeof err);
        CHECK_MSG(rc == RD_OK, "%s", err);
        CHECK_MSG(nd == shapes[i].ndim && dims[0] == shapes[i].d0 &&
                      (nd == 1 || dims[1] == shapes[i].d1) && dt == shapes[i].dt,
                  "%s: ndim %d dims %lld,%lld dtype %d", shapes[i].name, nd, (long long)dims[0],
                  (long long)dims[1], (int)dt);
    }

    /* whole tensors, row ranges (column-parallel shards), column ranges (row-parallel
     * shards), inner blocks, 1-D ranges */
    check_slice(ck, "model.embed_tokens.weight", g_embed, E_C, 0, E_R, 0, E_C);
    check_slice(ck, "model.embed_tokens.weight", g_embed, E_C, 2, 3, 0, E_C);
    check_slice(ck, "model.embed_tokens.weight", g_embed, E_C, 0, E_R, 3, 2);
    check_slice(ck, "model.embed_tokens.weight", g_embed, E_C, 1, 4, 1, 3);
    check_slice(ck, "model.layers.0.self_attn.q_proj.weight", g_q, Q_C, 0, Q_R, 0, Q_C);
    check_slice(ck, "model.layers.0.self_attn.q_proj.weight", g_q, Q_C, 3, 3, 0, Q_C);
    check_slice(ck, "model.layers.0.self_attn.q_proj.weight", g_q, Q_C, 0, Q_R, 2, 2);
    check_slice(ck, "model.layers.0.mlp.down_proj.weight", g_down, D_C, 0, D_R, 0, D_C);
    check_slice(ck, "model.layers.0.mlp.down_proj.weight", g_down, D_C, 0, D_R, 4, 4);
    check_slice(ck, "model.layers.0.mlp.down_proj.weight", g_down, D_C, 1, 1, 5, 2);
    check_slice(ck, "model.norm.weight", g_norm, E_C, 0, 1, 0, E_C);
    check_slice(ck, "model.layers.0.input_layernorm.weight", g_ln, N_1D, 0, 1, 0, N_1D);
    check_slice(ck, "model.layers.0.input_layernorm.weight", g_ln, N_1D, 0, 1, 4, 3);

    /* out of range slices */
    float buf[64];
    CHECK(rd_ckpt_read_slice(ck, "model.embed_tokens.weight", 5, 3, 0, E_C, buf, err,
                             sizeof err) == RD_ERR_RANGE);
    CHECK(strstr(err, "model.embed_tokens.weight") != NULL);
    CHECK(rd_ckpt_read_slice(ck, "model.embed_tokens.weight", 0, 1, 4, 2, buf, err,
                             sizeof err) == RD_ERR_RANGE);
    CHECK(rd_ckpt_read_slice(ck, "model.norm.weight", 1, 1, 0, 2, buf, err, sizeof err) ==
          RD_ERR_RANGE);
    CHECK(rd_ckpt_read_slice(ck, "model.norm.weight", -1, 1, 0, 2, buf, err, sizeof err) ==
          RD_ERR_RANGE);

    /* missing tensors are named: missing leaf, missing group, a group that is not a tensor */
    const char *missing[] = {"model.layers.0.self_attn.k_proj.weight", "model.layers.7.mlp.x",
                             "lm_head.weight", "model.layers"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        int nd;
        int64_t dims[2];
        enum rd_dtype dt;
        err[0] = 0;
        CHECK(rd_ckpt_shape(ck, missing[i], &nd, dims, &dt, err, sizeof err) != RD_OK);
        CHECK_MSG(strstr(err, missing[i]) != NULL, "message does not name %s: %s", missing[i],
                  err);
        CHECK(strstr(err, path) != NULL);
        err[0] = 0;
        CHECK(rd_ckpt_read_slice(ck, missing[i], 0, 1, 0, 1, buf, err, sizeof err) != RD_OK);
        CHECK(strstr(err, missing[i]) != NULL);
    }
    int nd;
    int64_t dims[2];
    enum rd_dtype dt;
    CHECK(rd_ckpt_shape(ck, "bad..name", &nd, dims, &dt, err, sizeof err) ==
          RD_ERR_INVALID_ARG);
    CHECK(rd_ckpt_shape(ck, "a/b", &nd, dims, &dt, err, sizeof err) == RD_ERR_INVALID_ARG);
    rd_ckpt_close(ck);
    rd_ckpt_close(NULL);
}

static void test_overwrite(void)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/model.h5", g_dir);
    size_t len0 = 0, len1 = 0;
    char *orig = rd_test_read_file(path, &len0);
    CHECK(orig != NULL);

    /* refused without force, file untouched, nothing left behind */
    struct rd_ckpt_writer *w = NULL;
    CHECK(rd_ckpt_create(path, false, "{}", &w, err, sizeof err) == RD_ERR_EXISTS);
    CHECK(w == NULL);
    CHECK(strstr(err, path) != NULL && strstr(err, "exists") != NULL);
    CHECK(write_ckpt(path, false, "{}") == RD_ERR_EXISTS);
    char *now = rd_test_read_file(path, &len1);
    CHECK(now && len0 == len1 && !memcmp(orig, now, len0));
    free(now);
    CHECK(count_dir_entries() == 1);

    /* an aborted forced write leaves the original as it was */
    CHECK(rd_ckpt_create(path, true, "{\"x\":1}", &w, err, sizeof err) == RD_OK);
    int64_t d1[1] = {E_C};
    CHECK(rd_ckpt_write(w, "model.norm.weight", 1, d1, RD_DTYPE_F32, g_norm) == RD_OK);
    /* writing a tensor twice fails with a message naming it */
    CHECK(rd_ckpt_write(w, "model.norm.weight", 1, d1, RD_DTYPE_F32, g_norm) != RD_OK);
    CHECK(strstr(rd_ckpt_writer_error(w), "model.norm.weight") != NULL);
    CHECK(count_dir_entries() == 2);
    rd_ckpt_abort(w);
    rd_ckpt_abort(NULL);
    now = rd_test_read_file(path, &len1);
    CHECK(now && len0 == len1 && !memcmp(orig, now, len0));
    free(now);
    CHECK(count_dir_entries() == 1);

    /* a file that appears while a non-forced writer runs is still not replaced */
    char other[512];
    snprintf(other, sizeof other, "%s/late.h5", g_dir);
    CHECK(rd_ckpt_create(other, false, "{}", &w, err, sizeof err) == RD_OK);
    FILE *f = fopen(other, "wb");
    fputs("precious", f);
    fclose(f);
    CHECK(rd_ckpt_finish(w, err, sizeof err) == RD_ERR_EXISTS);
    now = rd_test_read_file(other, &len1);
    CHECK(now && !strcmp(now, "precious"));
    free(now);
    unlink(other);
    CHECK(count_dir_entries() == 1);

    /* with force the file is replaced and the new config is read back */
    CHECK(write_ckpt(path, true, "{\"replaced\": true}") == RD_OK);
    struct rd_ckpt *ck = NULL;
    CHECK(rd_ckpt_open(path, &ck, err, sizeof err) == RD_OK);
    char *cfg = NULL;
    CHECK(ck && rd_ckpt_config_json(ck, &cfg, NULL, 0) == RD_OK && cfg &&
          !strcmp(cfg, "{\"replaced\": true}"));
    free(cfg);
    rd_ckpt_close(ck);
    CHECK(count_dir_entries() == 1);

    /* a directory that does not exist */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.h5", g_dir);
    CHECK(rd_ckpt_create(bad, false, "{}", &w, err, sizeof err) == RD_ERR_IO);
    free(orig);
}

/* Files that are not ropedist checkpoints, and a config stored as a fixed-length string. */
static void test_foreign(void)
{
    char path[512], err[512] = "";
    struct rd_ckpt *ck = NULL;
    snprintf(path, sizeof path, "%s/text.h5", g_dir);
    FILE *f = fopen(path, "wb");
    fputs("not hdf5 at all", f);
    fclose(f);
    CHECK(rd_ckpt_open(path, &ck, err, sizeof err) == RD_ERR_FORMAT && ck == NULL);
    CHECK(strstr(err, path) != NULL);
    unlink(path);

    CHECK(rd_ckpt_open("/nonexistent/m.h5", &ck, err, sizeof err) == RD_ERR_IO);

    snprintf(path, sizeof path, "%s/plain.h5", g_dir);
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    CHECK(rd_ckpt_open(path, &ck, err, sizeof err) == RD_ERR_FORMAT);
    CHECK(strstr(err, "ropedist_format") != NULL);

    /* ropedist_format 1 plus a fixed-length config string: accepted */
    h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    int one = 1;
    hid_t a = H5Acreate2(h, "ropedist_format", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &one);
    H5Aclose(a);
    const char *txt = "{\"fixed\": 1}";
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(txt));
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    a = H5Acreate2(h, "config", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, txt);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
    H5Fclose(h);
    CHECK(rd_ckpt_open(path, &ck, err, sizeof err) == RD_OK);
    char *cfg = NULL;
    CHECK(ck && rd_ckpt_config_json(ck, &cfg, NULL, 0) == RD_OK && cfg && !strcmp(cfg, txt));
    free(cfg);
    rd_ckpt_close(ck);

    /* a future format version is refused */
    h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    int two = 2;
    a = H5Aopen(h, "ropedist_format", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &two);
    H5Aclose(a);
    H5Fclose(h);
    ck = NULL;
    CHECK(rd_ckpt_open(path, &ck, err, sizeof err) == RD_ERR_UNSUPPORTED && ck == NULL);
    unlink(path);
}

int main(void)
{
    rd_test_tmpdir(g_dir, sizeof g_dir);
    CHECK(g_dir[0] != 0);
    make_data();
    test_roundtrip();
    test_overwrite();
    test_foreign();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rd_test_finish("test_ckpt");
}
