/* Unit test of the safetensors reader: small files written here (F32, BF16, F16) read back
 * exactly, and corrupt files of every kind the reader checks for (truncated, header length
 * beyond the file, bad JSON, sizes that disagree with the shape, offsets outside the data,
 * overlaps, duplicate names, unknown dtypes, every truncation and random header bytes) give an
 * error naming the file instead of a crash. Also reads a golden model from ../shared. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/safetensors.h"
#include "test_util.h"

static char g_dir[256];

/* Writes an 8-byte length (hlen, or strlen(header) when hlen is UINT64_MAX), the header and
 * the data. Returns the path (static buffer rotated among 4). */
static const char *write_st(const char *name, const char *header, uint64_t hlen,
                            const void *data, size_t data_len)
{
    static char bufs[4][512];
    static int k = 0;
    char *path = bufs[k++ % 4];
    snprintf(path, 512, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return path;
    uint64_t n = hlen == UINT64_MAX ? strlen(header) : hlen;
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(n >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
    return path;
}

/* Opens a file that must be refused; checks the message names the file and contains what. */
static void expect_error(const char *path, const char *what)
{
    struct rd_safetensors *st = (struct rd_safetensors *)0x1;
    char err[512] = "";
    rd_status rc = rd_st_open(path, &st, err, sizeof err);
    CHECK_MSG(rc != RD_OK, "%s was accepted", path);
    CHECK(st == NULL);
    CHECK_MSG(strstr(err, path) != NULL, "message does not name the file: %s", err);
    if (what) CHECK_MSG(strstr(err, what) != NULL, "message lacks '%s': %s", what, err);
    if (rc == RD_OK) rd_st_close(st);
}

/* data of the good file: a F32 [2,3] at 0, b BF16 [4] at 24, c F16 [2,2] at 32 (40 bytes) */
static const char *GOOD_HEADER =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"c\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[32,40]}}";

static void make_good_data(unsigned char data[40], float a[6], uint16_t b[4], uint16_t c[4])
{
    for (int i = 0; i < 6; i++) a[i] = 0.25f * (float)i - 1.0f;
    for (int i = 0; i < 4; i++) b[i] = rd_f32_to_bf16(3.5f * (float)i + 0.5f);
    for (int i = 0; i < 4; i++) c[i] = rd_f32_to_f16(-0.125f * (float)i);
    memcpy(data, a, 24);
    memcpy(data + 24, b, 8);
    memcpy(data + 32, c, 8);
}

static void test_good(void)
{
    unsigned char data[40];
    float a[6];
    uint16_t b[4], c[4];
    make_good_data(data, a, b, c);
    const char *path = write_st("good.safetensors", GOOD_HEADER, UINT64_MAX, data, sizeof data);
    struct rd_safetensors *st = NULL;
    char err[512] = "";
    rd_status rc = rd_st_open(path, &st, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s", err);
    if (rc != RD_OK) return;
    CHECK(st->n_tensors == 3);
    CHECK(rd_st_find(st, "__metadata__") == -1);
    CHECK(rd_st_find(st, "missing") == -1);
    int ia = rd_st_find(st, "a"), ib = rd_st_find(st, "b"), ic = rd_st_find(st, "c");
    CHECK(ia >= 0 && ib >= 0 && ic >= 0);
    if (ia < 0 || ib < 0 || ic < 0) goto out;
    CHECK(st->tensors[ia].dtype == RD_DTYPE_F32 && st->tensors[ia].ndim == 2);
    CHECK(st->tensors[ia].shape[0] == 2 && st->tensors[ia].shape[1] == 3);
    CHECK(st->tensors[ib].dtype == RD_DTYPE_BF16 && st->tensors[ib].ndim == 1);
    CHECK(st->tensors[ib].shape[0] == 4);
    CHECK(st->tensors[ic].dtype == RD_DTYPE_F16 && st->tensors[ic].shape[1] == 2);
    float ra[6];
    uint16_t rb[4], rc16[4];
    CHECK(rd_st_read(st, ia, ra) == RD_OK && !memcmp(ra, a, sizeof a));
    CHECK(rd_st_read(st, ib, rb) == RD_OK && !memcmp(rb, b, sizeof b));
    CHECK(rd_st_read(st, ic, rc16) == RD_OK && !memcmp(rc16, c, sizeof c));
    float fb[4];
    rd_convert_to_f32(fb, rb, RD_DTYPE_BF16, 4);
    CHECK(fb[3] == 11.0f);
    CHECK(rd_st_read(st, 99, ra) == RD_ERR_INVALID_ARG);
out:
    rd_st_close(st);
    rd_st_close(NULL);

    /* a scalar and an empty tensor are legal */
    float one = 1.0f;
    path = write_st("scalar.safetensors",
                    "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[4,4]}}",
                    UINT64_MAX, &one, 4);
    st = NULL;
    rc = rd_st_open(path, &st, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s", err);
    if (rc == RD_OK) {
        int is = rd_st_find(st, "s");
        float v = 0;
        CHECK(is >= 0 && st->tensors[is].ndim == 0 && rd_st_read(st, is, &v) == RD_OK &&
              v == 1.0f);
        rd_st_close(st);
    }
}

static void test_corrupt(void)
{
    unsigned char data[40];
    float a[6];
    uint16_t b[4], c[4];
    make_good_data(data, a, b, c);
    char err[256];
    struct rd_safetensors *st = NULL;

    CHECK(rd_st_open("/nonexistent/x.safetensors", &st, err, sizeof err) == RD_ERR_IO);
    CHECK(strstr(err, "/nonexistent/x.safetensors") != NULL);

    /* too short for the length field */
    char path[512];
    snprintf(path, sizeof path, "%s/short.safetensors", g_dir);
    FILE *f = fopen(path, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_error(path, "too short");

    /* header length beyond the file, and absurdly large */
    expect_error(write_st("hlen.safetensors", GOOD_HEADER, strlen(GOOD_HEADER) + 100, NULL, 0),
                 "header length");
    expect_error(write_st("hlen2.safetensors", GOOD_HEADER, UINT64_MAX - 3, data, 40),
                 "header length");
    expect_error(write_st("hlen0.safetensors", "", 0, data, 40), "header length");

    /* truncated data: the last tensor runs past the end */
    expect_error(write_st("trunc.safetensors", GOOD_HEADER, UINT64_MAX, data, 36),
                 "beyond the data section");

    /* header not JSON, or not an object, or entries of the wrong shape */
    expect_error(write_st("json.safetensors", "{\"a\":{\"dtype\":\"F32\",", UINT64_MAX, data, 40),
                 "not valid JSON");
    expect_error(write_st("arr.safetensors", "[1,2,3]", UINT64_MAX, data, 40),
                 "not a JSON object");
    expect_error(write_st("entry.safetensors", "{\"a\":5}", UINT64_MAX, data, 40),
                 "not an object");
    expect_error(write_st("fields.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[6]}}",
                          UINT64_MAX, data, 40),
                 "data_offsets");

    /* shape * dtype size disagrees with the range */
    expect_error(write_st("size.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}}",
                          UINT64_MAX, data, 40),
                 "'a'");
    expect_error(write_st("size16.safetensors",
                          "{\"a\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,24]}}",
                          UINT64_MAX, data, 40),
                 "bytes");

    /* offsets outside the data section, reversed, negative, fractional */
    expect_error(write_st("range.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[24,48]}}",
                          UINT64_MAX, data, 40),
                 "beyond the data section");
    expect_error(write_st("rev.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,0]}}",
                          UINT64_MAX, data, 40),
                 "end before begin");
    expect_error(write_st("neg.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[-4,20]}}",
                          UINT64_MAX, data, 40),
                 "data_offsets");
    expect_error(write_st("negshape.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,-6],\"data_offsets\":[0,24]}}",
                          UINT64_MAX, data, 40),
                 "shape[0]");
    expect_error(write_st("frac.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5,4],\"data_offsets\":[0,24]}}",
                          UINT64_MAX, data, 40),
                 "shape[0]");
    expect_error(write_st("huge.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                          "\"data_offsets\":[0,24]}}",
                          UINT64_MAX, data, 40),
                 "too large");
    expect_error(write_st("dims.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                          "\"data_offsets\":[0,4]}}",
                          UINT64_MAX, data, 40),
                 "dims");

    /* overlapping ranges, duplicate names */
    expect_error(write_st("overlap.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]}}",
                          UINT64_MAX, data, 40),
                 "overlap");
    expect_error(write_st("dup.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                          UINT64_MAX, data, 40),
                 "twice");

    /* unknown dtypes are named */
    expect_error(write_st("i64.safetensors",
                          "{\"a\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}}",
                          UINT64_MAX, data, 40),
                 "I64");
    expect_error(write_st("f8.safetensors",
                          "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}",
                          UINT64_MAX, data, 40),
                 "F8_E4M3");
}

/* Every truncation of a good file is refused; random bytes in the header never crash. */
static void test_fuzz(void)
{
    unsigned char data[40];
    float a[6];
    uint16_t b[4], c[4];
    make_good_data(data, a, b, c);
    const char *good = write_st("fz.safetensors", GOOD_HEADER, UINT64_MAX, data, 40);
    size_t len = 0;
    char *bytes = rd_test_read_file(good, &len);
    CHECK(bytes != NULL);
    if (!bytes) return;
    char path[512];
    snprintf(path, sizeof path, "%s/fuzz.safetensors", g_dir);
    int accepted_trunc = 0;
    for (size_t cut = 0; cut < len; cut++) {
        FILE *f = fopen(path, "wb");
        fwrite(bytes, 1, cut, f);
        fclose(f);
        struct rd_safetensors *st = NULL;
        char err[256];
        if (rd_st_open(path, &st, err, sizeof err) == RD_OK) {
            accepted_trunc++;
            rd_st_close(st);
        }
    }
    CHECK_MSG(accepted_trunc == 0, "%d truncations accepted", accepted_trunc);

    uint64_t s = 12345;
    int accepted = 0;
    for (int iter = 0; iter < 2000; iter++) {
        char *m = malloc(len);
        memcpy(m, bytes, len);
        int flips = 1 + (int)(s % 4);
        for (int k = 0; k < flips; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)((s >> 33) % (len - 40)); /* length field and header */
            m[pos] = (char)(s >> 13);
        }
        FILE *f = fopen(path, "wb");
        fwrite(m, 1, len, f);
        fclose(f);
        free(m);
        struct rd_safetensors *st = NULL;
        char err[256];
        if (rd_st_open(path, &st, err, sizeof err) == RD_OK) {
            /* whatever got through must be self-consistent and readable */
            for (int i = 0; i < st->n_tensors; i++) {
                const struct rd_st_tensor *t = &st->tensors[i];
                CHECK(t->end <= st->file_size - st->data_offset);
                void *buf = malloc(t->end - t->begin + 1);
                CHECK(rd_st_read(st, i, buf) == RD_OK);
                free(buf);
            }
            accepted++;
            rd_st_close(st);
        }
    }
    printf("fuzz: %d of 2000 mutated headers still valid\n", accepted);
    free(bytes);
}

static void test_golden(void)
{
    const char *shared = rd_test_shared_dir();
    if (!shared) return;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/golden/models/tiny_mha_tied/model.safetensors", shared);
    struct rd_safetensors *st = NULL;
    rd_status rc = rd_st_open(path, &st, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s", err);
    if (rc != RD_OK) return;
    int i = rd_st_find(st, "model.embed_tokens.weight");
    CHECK(i >= 0);
    if (i >= 0) {
        const struct rd_st_tensor *t = &st->tensors[i];
        CHECK(t->dtype == RD_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 256 &&
              t->shape[1] == 64);
        float *w = malloc(256 * 64 * sizeof(float));
        CHECK(rd_st_read(st, i, w) == RD_OK);
        double sum2 = 0;
        for (int k = 0; k < 256 * 64; k++) sum2 += (double)w[k] * w[k];
        double std = sqrt(sum2 / (256 * 64));
        CHECK_MSG(std > 0.05 && std < 0.11, "embed std %g (golden weights have std 0.08)", std);
        free(w);
    }
    int q = rd_st_find(st, "model.layers.1.self_attn.q_proj.weight");
    CHECK(q >= 0 && st->tensors[q].shape[0] == 64 && st->tensors[q].shape[1] == 64);
    rd_st_close(st);

    snprintf(path, sizeof path, "%s/golden/models/tiny_gqa_bf16/model.safetensors", shared);
    rc = rd_st_open(path, &st, err, sizeof err);
    CHECK_MSG(rc == RD_OK, "%s", err);
    if (rc == RD_OK) {
        int k = rd_st_find(st, "model.layers.0.self_attn.k_proj.weight");
        CHECK(k >= 0 && st->tensors[k].dtype == RD_DTYPE_BF16);
        rd_st_close(st);
    }
}

int main(void)
{
    rd_test_tmpdir(g_dir, sizeof g_dir);
    CHECK(g_dir[0] != 0);
    test_good();
    test_corrupt();
    test_fuzz();
    test_golden();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rd_test_finish("test_safetensors");
}
