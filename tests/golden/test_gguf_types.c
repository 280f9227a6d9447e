/* GGUF tensor types end to end, on the real stories260K model.
 *
 * The test GGUF v3 writer (tests/gguf_writer.c) copies every metadata key of
 * ../shared/models/stories260K/stories260K.gguf and writes its tensors in a chosen ggml type,
 * with the data section and every tensor aligned to general.alignment (or 32). For each type T
 * in F16, BF16 and Q8_0 the test writes
 *   model_T.gguf      every 2-D tensor whose row length fits T stored as T (Q8_0 needs
 *                     ne[0] % 32 == 0: ffn_down, ne[0] = 172, stays F32, as llama.cpp does);
 *                     quantized here the llama.cpp way (fp16/bf16 round to nearest even; Q8_0
 *                     per block of 32: d = max|x| / 127 as fp16, q = round(x / d));
 *   model_T_ref.gguf  the same tensors as F32 holding exactly what the T tensor dequantizes to
 *                     (computed here, independently of ropedist's converters),
 * and runs ropedist greedy from BOS on both at tp 1, 2 and 4: the output ids must be the same
 * and the logits equal within 1e-6 (relative L2, every step), and the ids at tp 2 and 4 equal
 * those at tp 1. tp 4 slices attn_output (o_proj, ne[0] = 64, Q8_0) by columns at 16, inside
 * a Q8_0 block, and tp 2/4 slice ffn_down (ne[0] = 172, F16/BF16) at 86 and 43.
 * Then ropedist-convert model_Q8_0.gguf -> .h5 must give the same run at tp 2, and files
 * with a tensor of a type ropedist cannot read (Q4_0, an unknown type number) or a Q8_0 row
 * that is not whole blocks must fail with a message naming the type and the tensor, a nonzero
 * exit and no hang. The writer itself is checked first: every metadata type (scalars, strings,
 * arrays of numbers, bools and strings) and a 64-byte alignment survive a write and re-read,
 * and an all-F32 copy of the input re-reads to the same metadata and tensor bytes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "runtime/gguf.h"
#include "test_util.h"

#define N_NEW 24
#define LOGIT_TOL 1e-6

/* ---- reference conversions (llama.cpp's rounding, written independently of common/dtype.c) ---- */

static float f16_to_f32(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0) v = ldexpf((float)man, -24);
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(1024 + man), exp - 25);
    return (h & 0x8000) ? -v : v;
}

/* round to nearest, ties to even (rintf in the default rounding mode) */
static uint16_t f32_to_f16(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00; /* rounds to infinity */
    if (a < 6.103515625e-05f)                /* below 2^-14: subnormal, quantum 2^-24 */
        return sign | (uint16_t)rintf(a * 16777216.0f); /* 1024 is the smallest normal */
    int e;
    frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    uint32_t m = (uint32_t)rintf(ldexpf(a, 11 - e)); /* in [1024, 2048] */
    int biased = e - 1 + 15;
    if (m == 2048) m = 1024, biased++;
    if (biased >= 31) return sign | 0x7c00;
    return (uint16_t)(sign | (uint32_t)biased << 10 | (m - 1024));
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f32_to_bf16(float f) /* ggml_compute_fp32_to_bf16 */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* quantize_row_q8_0_ref: n % 32 == 0, 34 bytes per block (fp16 d, 32 x int8) */
static void q8_0_quantize(const float *x, int64_t n, uint8_t *out)
{
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = f32_to_f16(d);
        uint8_t *blk = out + b * 34;
        memcpy(blk, &dh, 2);
        for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)roundf(xb[j] * id);
    }
}

static void q8_0_dequantize(const uint8_t *in, int64_t n, float *y)
{
    for (int64_t b = 0; b < n / 32; b++) {
        uint16_t dh;
        memcpy(&dh, in + b * 34, 2);
        const float d = f16_to_f32(dh);
        for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)(int8_t)in[b * 34 + 2 + j] * d;
    }
}

/* The writer on every metadata type, 64-byte alignment and odd tensor sizes. */
static void writer_selftest(const char *dir)
{
    static const uint8_t u8s[] = {0, 7, 255};
    static const int16_t i16s[] = {-32768, 5, 32767};
    static const float f32s[] = {1.5f, -0.0f, 3.25e-9f};
    static const double f64s[] = {1e300, -2.5};
    static const int8_t bools[] = {1, 0, 1};
    static const int64_t i64s[] = {INT64_MIN, 42};
    struct rd_gguf_str strs[] = {{3, "abc"}, {0, ""}, {4, "a\0b!"}};
    struct rd_gguf_kv kv[20];
    memset(kv, 0, sizeof kv);
    int n = 0;
#define KV(k, ty) (kv[n].key = (char *)(k), kv[n].type = (ty), &kv[n++])
    KV("general.alignment", RD_GGUF_TYPE_UINT32)->v.u64 = 64;
    KV("t.u8", RD_GGUF_TYPE_UINT8)->v.u64 = 200;
    KV("t.i8", RD_GGUF_TYPE_INT8)->v.i64 = -100;
    KV("t.u16", RD_GGUF_TYPE_UINT16)->v.u64 = 65535;
    KV("t.i16", RD_GGUF_TYPE_INT16)->v.i64 = -12345;
    KV("t.i32", RD_GGUF_TYPE_INT32)->v.i64 = -2000000000;
    KV("t.f32", RD_GGUF_TYPE_FLOAT32)->v.f64 = (double)0.1f;
    KV("t.bool", RD_GGUF_TYPE_BOOL)->v.b = true;
    KV("t.str", RD_GGUF_TYPE_STRING)->v.str = (struct rd_gguf_str){5, "hello"};
    KV("t.u64", RD_GGUF_TYPE_UINT64)->v.u64 = UINT64_MAX;
    KV("t.i64", RD_GGUF_TYPE_INT64)->v.i64 = INT64_MIN + 1;
    KV("t.f64", RD_GGUF_TYPE_FLOAT64)->v.f64 = -1e-300;
    struct rd_gguf_kv *a;
#define ARR(k, at, ptr, cnt) (a = KV(k, RD_GGUF_TYPE_ARRAY), a->arr_type = (at), a->arr = (void *)(ptr), a->n = (cnt))
    ARR("a.u8", RD_GGUF_TYPE_UINT8, u8s, 3);
    ARR("a.i16", RD_GGUF_TYPE_INT16, i16s, 3);
    ARR("a.f32", RD_GGUF_TYPE_FLOAT32, f32s, 3);
    ARR("a.f64", RD_GGUF_TYPE_FLOAT64, f64s, 2);
    ARR("a.bool", RD_GGUF_TYPE_BOOL, bools, 3);
    ARR("a.i64", RD_GGUF_TYPE_INT64, i64s, 2);
    ARR("a.str", RD_GGUF_TYPE_STRING, strs, 3);
    ARR("a.empty", RD_GGUF_TYPE_INT32, u8s, 0);
#undef ARR
#undef KV
    const struct rd_gguf_kv *kvp[20];
    for (int i = 0; i < n; i++) kvp[i] = &kv[i];
    uint8_t data[3 * 34 + 7];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37 + 1);
    const struct rd_test_gguf_tensor t[] = {
        {"odd", 1, {7, 1, 1, 1}, RD_GGML_TYPE_F32 + 24 /* i8 */, data, 7},
        {"q", 2, {32, 3, 1, 1}, RD_GGML_TYPE_Q8_0, data + 7, 3 * 34},
        {"h", 3, {2, 1, 3, 1}, RD_GGML_TYPE_F16, data, 12},
    };
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/selftest.gguf", dir);
    CHECK(rd_test_gguf_write(path, kvp, n, t, 3));
    struct rd_gguf *g = NULL;
    rd_status st = rd_gguf_open(path, &g, err, sizeof err);
    CHECK_MSG(st == RD_OK, "%s", err);
    if (st == RD_OK) {
        CHECK(rd_gguf_version(g) == 3);
        CHECK(rd_gguf_alignment(g) == 64);
        CHECK(rd_test_gguf_check_kvs(g, kvp, n) == 0);
        CHECK(rd_test_gguf_check_tensors(g, t, 3) == 0);
        CHECK(rd_gguf_tensor_at(g, 1)->offset == 64 && rd_gguf_tensor_at(g, 2)->offset == 192);
        CHECK(rd_gguf_file_size(g) == rd_gguf_data_offset(g) + 256);
    }
    rd_gguf_close(g);
    remove(path);
}

/* ---- building the model variants ---- */

enum { V_F16, V_BF16, V_Q8_0, N_TYPES };
static const uint32_t k_ggml[N_TYPES] = {RD_GGML_TYPE_F16, RD_GGML_TYPE_BF16, RD_GGML_TYPE_Q8_0};
static const char *k_name[N_TYPES] = {"F16", "BF16", "Q8_0"};

static bool convertible(const struct rd_gguf_tensor *t, int v)
{
    return t->n_dims == 2 && (v != V_Q8_0 || t->ne[0] % 32 == 0);
}

/* model_T.gguf and model_T_ref.gguf; *n_conv counts the tensors stored as T. */
static bool write_variant(const struct rd_gguf *g, int v, const char *path, const char *ref_path,
                          int *n_conv, bool *o_proj_conv)
{
    int64_t n = rd_gguf_n_tensors(g);
    const struct rd_gguf_kv **kvs = rd_test_gguf_kv_list(g);
    struct rd_test_gguf_tensor *tq = rd_test_gguf_tensor_list(g), *tr = rd_test_gguf_tensor_list(g);
    void **owned = calloc((size_t)(2 * n + 1), sizeof *owned);
    int n_owned = 0;
    double worst = 0;
    *n_conv = 0;
    *o_proj_conv = false;
    for (int64_t i = 0; i < n; i++) {
        const struct rd_gguf_tensor *t = rd_gguf_tensor_at(g, i);
        CHECK_MSG(t->type == RD_GGML_TYPE_F32, "input tensor %s is not f32", t->name);
        if (t->type != RD_GGML_TYPE_F32 || !convertible(t, v)) continue;
        const int64_t ne = rd_gguf_tensor_nelements(t);
        const float *x = rd_gguf_tensor_data(g, t);
        float *y = malloc((size_t)ne * sizeof *y);
        uint8_t *q;
        uint64_t qbytes;
        if (v == V_Q8_0) {
            qbytes = (uint64_t)(ne / 32) * 34;
            q = malloc((size_t)qbytes);
            q8_0_quantize(x, ne, q);
            q8_0_dequantize(q, ne, y);
            /* |x - y| <= d/2 (+ the fp16 rounding of d) within each block */
            for (int64_t b = 0; b < ne / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
                for (int j = 0; j < 32; j++) {
                    double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]) / (amax > 0 ? amax : 1);
                    if (e > worst) worst = e;
                }
            }
        } else {
            qbytes = (uint64_t)ne * 2;
            uint16_t *h = malloc((size_t)qbytes);
            for (int64_t k = 0; k < ne; k++) {
                h[k] = v == V_F16 ? f32_to_f16(x[k]) : f32_to_bf16(x[k]);
                y[k] = v == V_F16 ? f16_to_f32(h[k]) : bf16_to_f32(h[k]);
                double e = fabs((double)x[k] - y[k]) / (fabs(x[k]) > 1e-4 ? fabs(x[k]) : 1e-4);
                if (e > worst) worst = e;
            }
            q = (uint8_t *)h;
        }
        tq[i].type = k_ggml[v], tq[i].data = q, tq[i].nbytes = qbytes;
        tr[i].data = y; /* F32, same size */
        owned[n_owned++] = q;
        owned[n_owned++] = y;
        (*n_conv)++;
        if (strstr(t->name, "attn_output")) *o_proj_conv = true;
    }
    /* fp16: 2^-11 relative (above 1e-4); bf16: 2^-8; q8_0: half a step of max/127 plus
     * 127 times the fp16 rounding of the step */
    const double bound = v == V_F16 ? 1.0 / 2048 : v == V_BF16 ? 1.0 / 256
                                                 : (0.5 + 127.0 / 2048) / 127 * 1.001;
    CHECK_MSG(worst <= bound, "%s: quantization error %.3g above %.3g", k_name[v], worst, bound);
    bool ok = rd_test_gguf_write(path, kvs, rd_gguf_n_kv(g), tq, n) &&
              rd_test_gguf_write(ref_path, kvs, rd_gguf_n_kv(g), tr, n);
    /* both files re-read to what was meant */
    for (int f = 0; ok && f < 2; f++) {
        struct rd_gguf *w = NULL;
        char err[512];
        rd_status st = rd_gguf_open(f ? ref_path : path, &w, err, sizeof err);
        CHECK_MSG(st == RD_OK, "%s", err);
        if (st == RD_OK) {
            CHECK(rd_test_gguf_check_kvs(w, kvs, rd_gguf_n_kv(g)) == 0);
            CHECK(rd_test_gguf_check_tensors(w, f ? tr : tq, n) == 0);
        }
        rd_gguf_close(w);
    }
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    free(tq);
    free(tr);
    free(kvs);
    return ok;
}

/* ---- running ropedist ---- */

static char *g_last_err; /* stderr of the last run (for messages) */

static json_t *run_json(const char *cfg, int tp, const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np %d %s/ropedist --device cpu --config %s %s --prompt-ids 1 "
             "--max-new-tokens %d --temperature 0 --output json --with-logits",
             rd_test_mpirun(), tp, rd_test_bin_dir(), cfg, extra ? extra : "", N_NEW);
    char *out = NULL;
    free(g_last_err);
    g_last_err = NULL;
    int rc = rd_test_run(cmd, &out, &g_last_err);
    json_t *j = rc == 0 && out ? rd_test_parse_json(out) : NULL;
    CHECK_MSG(j != NULL, "%s: rc %d\n%s", cmd, rc, g_last_err ? g_last_err : "");
    free(out);
    return j;
}

static const json_t *ids_of(const json_t *j) { return j ? json_object_get(j, "output_ids") : NULL; }

static bool same_ids(const json_t *a, const json_t *b)
{
    a = ids_of(a), b = ids_of(b);
    if (!json_is_array(a) || !json_is_array(b) || (int)json_array_size(a) != (int)json_array_size(b))
        return false;
    for (int i = 0; i < (int)json_array_size(a); i++)
        if ((int)json_number_value(json_array_get(a, i)) != (int)json_number_value(json_array_get(b, i))) return false;
    return (int)json_array_size(a) > 0;
}

static void ids_str(const json_t *j, char *s, size_t n)
{
    const json_t *ids = ids_of(j);
    size_t o = 0;
    s[0] = 0;
    for (int i = 0; i < (int)json_array_size(ids) && o < n; i++)
        o += (size_t)snprintf(s + o, n - o, "%s%d", i ? "," : "", (int)json_number_value(json_array_get(ids, i)));
    if (!json_is_array(ids)) snprintf(s, n, "(none)");
}

/* Largest per-step relative L2 difference of the logits (and the largest absolute one);
 * INFINITY when they cannot be compared. */
static double logit_diff(const json_t *a, const json_t *b, double *max_abs)
{
    const json_t *la = a ? json_object_get(a, "logits") : NULL;
    const json_t *lb = b ? json_object_get(b, "logits") : NULL;
    *max_abs = INFINITY;
    if (!json_is_array(la) || !json_is_array(lb) || (int)json_array_size(la) != (int)json_array_size(lb) ||
        (int)json_array_size(la) == 0)
        return INFINITY;
    double worst = 0, wabs = 0;
    for (int s = 0; s < (int)json_array_size(la); s++) {
        const json_t *x = json_array_get(la, s), *y = json_array_get(lb, s);
        int n = (int)json_array_size(x);
        if (n == 0 || n != (int)json_array_size(y)) return INFINITY;
        double num = 0, den = 0;
        for (int i = 0; i < n; i++) {
            double p = json_number_value(json_array_get(x, i)), q = json_number_value(json_array_get(y, i));
            num += (p - q) * (p - q);
            den += q * q;
            if (fabs(p - q) > wabs) wabs = fabs(p - q);
        }
        double r = den > 0 ? sqrt(num / den) : sqrt(num);
        if (r > worst || isnan(r)) worst = r;
    }
    *max_abs = wabs;
    return worst;
}

/* ---- corrupt files ---- */

/* A copy of the input with tensor `victim` stored as `type` (bytes: nbytes of filler). */
static bool write_with_type(const struct rd_gguf *g, const char *path, const char *victim,
                            uint32_t type, uint64_t nbytes)
{
    int64_t n = rd_gguf_n_tensors(g);
    const struct rd_gguf_kv **kvs = rd_test_gguf_kv_list(g);
    struct rd_test_gguf_tensor *t = rd_test_gguf_tensor_list(g);
    uint8_t *fill = malloc((size_t)nbytes + 1);
    for (uint64_t i = 0; i < nbytes; i++) fill[i] = (uint8_t)(i % 34 < 2 ? (i % 34 ? 0x20 : 0x00) : 0x88);
    bool found = false;
    for (int64_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, victim)) t[i].type = type, t[i].data = fill, t[i].nbytes = nbytes, found = true;
    bool ok = found && rd_test_gguf_write(path, kvs, rd_gguf_n_kv(g), t, n);
    free(fill);
    free(t);
    free(kvs);
    return ok;
}

/* ropedist on a bad file at tp: nonzero exit, no timeout, a message naming every `need`. */
static void expect_failure(const char *what, const char *path, int tp, const char *need1,
                           const char *need2)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 60 %s -np %d %s/ropedist --device cpu --config %s --prompt-ids 1 "
             "--max-new-tokens 4 --temperature 0 --output json",
             rd_test_mpirun(), tp, rd_test_bin_dir(), path);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    size_t len = (out ? strlen(out) : 0) + (err ? strlen(err) : 0) + 2;
    char *all = calloc(1, len);
    snprintf(all, len, "%s\n%s", out ? out : "", err ? err : "");
    /* the first line that names the tensor, for the log */
    const char *at = strstr(all, need2);
    const char *line = at;
    while (line && line > all && line[-1] != '\n') line--;
    const char *end = at ? strchr(at, '\n') : NULL;
    printf("  %-30s tp=%d rc=%-3d %.*s\n", what, tp, rc, line ? (int)(end ? end - line : (long)strlen(line)) : 9,
           line ? line : "(no line)");
    CHECK_MSG(rc != 0, "%s tp=%d: exit 0", what, tp);
    CHECK_MSG(rc != 124 && rc != 137 && rc != 128 + 9, "%s tp=%d: hung (killed by timeout)", what, tp);
    CHECK_MSG(at != NULL, "%s tp=%d: no message naming %s:\n%s", what, tp, need2, all);
    CHECK_MSG(need1 == NULL || strstr(all, need1) != NULL, "%s tp=%d: no message naming %s:\n%s",
              what, tp, need1, all);
    CHECK_MSG(!out || !strstr(out, "output_ids"), "%s tp=%d: printed a result", what, tp);
    free(all);
    free(out);
    free(err);
}

int main(void)
{
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    char src[1024], tmp[256], path[N_TYPES][1024], ref[N_TYPES][1024], p[1024], err[512];
    snprintf(src, sizeof src, "%s/models/stories260K/stories260K.gguf", shared);
    if (access(src, R_OK) != 0) {
        printf("SKIP: %s not found\n", src);
        return RD_TEST_SKIP;
    }
    rd_test_tmpdir(tmp, sizeof tmp);
    CHECK(tmp[0] != 0);
    if (!tmp[0]) return rd_test_finish("gguf_types");

    printf("# writer self-test (every metadata type, alignment 64)\n");
    writer_selftest(tmp);

    struct rd_gguf *g = NULL;
    rd_status st = rd_gguf_open(src, &g, err, sizeof err);
    CHECK_MSG(st == RD_OK, "%s", err);
    if (st != RD_OK) return rd_test_finish("gguf_types");

    /* an all-F32 copy re-reads to the same metadata and tensors; the input was written by
     * llama.cpp's writer, which lays a file out the same way, so the bytes match too */
    {
        const struct rd_gguf_kv **kvs = rd_test_gguf_kv_list(g);
        struct rd_test_gguf_tensor *t = rd_test_gguf_tensor_list(g);
        snprintf(p, sizeof p, "%s/copy.gguf", tmp);
        CHECK(rd_test_gguf_write(p, kvs, rd_gguf_n_kv(g), t, rd_gguf_n_tensors(g)));
        struct rd_gguf *c = NULL;
        st = rd_gguf_open(p, &c, err, sizeof err);
        CHECK_MSG(st == RD_OK, "%s", err);
        if (st == RD_OK) {
            CHECK(rd_test_gguf_check_kvs(c, kvs, rd_gguf_n_kv(g)) == 0);
            CHECK(rd_test_gguf_check_tensors(c, t, rd_gguf_n_tensors(g)) == 0);
            CHECK(rd_gguf_alignment(c) == rd_gguf_alignment(g));
        }
        size_t la = 0, lb = 0;
        char *a = rd_test_read_file(src, &la), *b = rd_test_read_file(p, &lb);
        bool same = a && b && la == lb && !memcmp(a, b, la);
        printf("copy of the input: %lld kvs, %lld tensors, alignment %u, %zu bytes, %s\n",
               (long long)rd_gguf_n_kv(g), (long long)rd_gguf_n_tensors(g), rd_gguf_alignment(g), lb,
               same ? "byte-identical to the input" : "NOT byte-identical");
        CHECK_MSG(same, "the all-F32 copy differs from the input (%zu vs %zu bytes)", lb, la);
        free(a);
        free(b);
        rd_gguf_close(c);
        remove(p);
        free(t);
        free(kvs);
    }

    /* 1. each type against its F32 reference, at tp 1, 2, 4 */
    const int tps[] = {1, 2, 4};
    json_t *orig = run_json(src, 1, NULL);
    char ids[512];
    ids_str(orig, ids, sizeof ids);
    printf("\nids, logit diff, max |diff|: T against T_ref at the same tp; vs tp=1: the ids at tp=1;\n"
           "vs input: the largest relative logit difference from the unconverted F32 input at tp=1\n");
    printf("%-6s %-3s %-5s %-10s %-10s %-7s %-9s %s\n", "type", "tp", "ids", "logit diff", "max |diff|",
           "vs tp=1", "vs input", "output ids");
    printf("%-6s %-3d %-5s %-10s %-10s %-7s %-9s %s\n", "F32", 1, "-", "(input)", "-", "-", "-", ids);
    json_t *q8_tp2 = NULL;
    for (int v = 0; v < N_TYPES; v++) {
        snprintf(path[v], sizeof path[v], "%s/model_%s.gguf", tmp, k_name[v]);
        snprintf(ref[v], sizeof ref[v], "%s/model_%s_ref.gguf", tmp, k_name[v]);
        int n_conv = 0;
        bool o_conv = false;
        CHECK(write_variant(g, v, path[v], ref[v], &n_conv, &o_conv));
        /* F16/BF16: every 2-D tensor (37 = 5 x 7 + token_embd + output); Q8_0: all but the 5
         * ffn_down */
        CHECK_MSG(n_conv == (v == V_Q8_0 ? 32 : 37), "%s: %d tensors converted", k_name[v], n_conv);
        CHECK_MSG(o_conv, "%s: attn_output (column-sliced) not converted", k_name[v]);
        json_t *tp1 = NULL;
        for (int k = 0; k < 3; k++) {
            json_t *a = run_json(path[v], tps[k], NULL);
            json_t *b = run_json(ref[v], tps[k], NULL);
            double mabs;
            double d = logit_diff(a, b, &mabs);
            bool same = same_ids(a, b);
            bool as_tp1 = k == 0 || same_ids(a, tp1);
            double unused, dq = logit_diff(a, orig, &unused);
            ids_str(a, ids, sizeof ids);
            printf("%-6s %-3d %-5s %-10.3g %-10.3g %-7s %-9.2e %s\n", k_name[v], tps[k], same ? "same" : "DIFF",
                   d, mabs, k == 0 ? "-" : as_tp1 ? "same" : "DIFF", dq, ids);
            /* the converted weights are really in use: the logits moved from the input's */
            if (k == 0) CHECK_MSG(dq > 0 && dq < 0.1, "%s: logits differ from the F32 input by %.3g", k_name[v], dq);
            CHECK_MSG(same, "%s tp=%d: ids differ from the F32 reference", k_name[v], tps[k]);
            CHECK_MSG(d <= LOGIT_TOL, "%s tp=%d: logits differ from the F32 reference by %.3g", k_name[v], tps[k], d);
            CHECK_MSG(as_tp1, "%s tp=%d: ids differ from tp=1", k_name[v], tps[k]);
            CHECK_MSG((int)json_array_size(ids_of(a)) == N_NEW, "%s tp=%d: %d ids", k_name[v], tps[k],
                      (int)json_array_size(ids_of(a)));
            if (k == 0) tp1 = a;
            else if (v == V_Q8_0 && tps[k] == 2) q8_tp2 = a;
            else json_decref(a);
            json_decref(b);
        }
        json_decref(tp1);
    }

    /* 2. Q8_0 GGUF -> .h5 checkpoint (fp32, dequantized at conversion), run at tp 2 */
    {
        char h5[1024], cmd[4096], extra[1200];
        snprintf(h5, sizeof h5, "%s/model_Q8_0.h5", tmp);
        snprintf(cmd, sizeof cmd, "%s/ropedist-convert %s -o %s", rd_test_bin_dir(), path[V_Q8_0], h5);
        char *cerr = NULL;
        int rc = rd_test_run(cmd, NULL, &cerr);
        CHECK_MSG(rc == 0, "%s: rc %d\n%s", cmd, rc, cerr ? cerr : "");
        free(cerr);
        snprintf(extra, sizeof extra, "--tokenizer %s", path[V_Q8_0]);
        json_t *h = rc == 0 ? run_json(h5, 2, extra) : NULL;
        double mabs;
        double d = logit_diff(h, q8_tp2, &mabs);
        ids_str(h, ids, sizeof ids);
        printf("%-6s %-3d %-5s %-10.3g %-10.3g %-7s %-9s %s\n", "Q8_0h5", 2, same_ids(h, q8_tp2) ? "same" : "DIFF",
               d, mabs, "-", "-", ids);
        printf("(Q8_0h5: ropedist-convert model_Q8_0.gguf -> .h5, compared with the Q8_0 GGUF at tp 2)\n");
        CHECK_MSG(same_ids(h, q8_tp2), "converted Q8_0 checkpoint: ids differ from the GGUF run");
        CHECK_MSG(d <= LOGIT_TOL, "converted Q8_0 checkpoint: logits differ by %.3g", d);
        json_decref(h);
        remove(h5);
    }
    json_decref(q8_tp2);
    json_decref(orig);

    /* 3. tensors ropedist cannot read */
    printf("\n# files ropedist must refuse\n");
    snprintf(p, sizeof p, "%s/bad_q4_0.gguf", tmp);
    CHECK(write_with_type(g, p, "blk.0.attn_q.weight", RD_GGML_TYPE_Q4_0, 64 * 64 / 32 * 18));
    expect_failure("q4_0 blk.0.attn_q.weight", p, 1, "q4_0", "blk.0.attn_q.weight");
    expect_failure("q4_0 blk.0.attn_q.weight", p, 2, "q4_0", "blk.0.attn_q.weight");
    {
        char h5[1024], cmd[4096];
        snprintf(h5, sizeof h5, "%s/bad.h5", tmp);
        snprintf(cmd, sizeof cmd, "timeout 60 %s/ropedist-convert %s -o %s", rd_test_bin_dir(), p, h5);
        char *cerr = NULL;
        int rc = rd_test_run(cmd, NULL, &cerr);
        printf("  %-30s      rc=%-3d %s", "convert q4_0", rc, cerr ? cerr : "\n");
        CHECK_MSG(rc != 0 && rc != 124, "ropedist-convert of a q4_0 tensor: rc %d", rc);
        CHECK_MSG(cerr && strstr(cerr, "q4_0") && strstr(cerr, "blk.0.attn_q.weight"),
                  "ropedist-convert: no message naming q4_0 and the tensor: %s", cerr ? cerr : "");
        CHECK_MSG(access(h5, F_OK) != 0, "ropedist-convert left %s behind", h5);
        remove(h5);
        free(cerr);
    }
    remove(p);
    /* a type number ggml does not have (size unknown to ropedist): the file opens, the tensor
     * cannot be read */
    snprintf(p, sizeof p, "%s/bad_type200.gguf", tmp);
    CHECK(write_with_type(g, p, "blk.1.attn_output.weight", 200, 64 * 64 * 4));
    expect_failure("type 200 blk.1.attn_output", p, 2, NULL, "blk.1.attn_output.weight");
    remove(p);
    /* q8_0 rows of 172: not whole blocks, refused when the file is opened */
    snprintf(p, sizeof p, "%s/bad_q8_rows.gguf", tmp);
    CHECK(write_with_type(g, p, "blk.2.ffn_down.weight", RD_GGML_TYPE_Q8_0, 64 * 6 * 34));
    expect_failure("q8_0 rows of 172", p, 2, "q8_0", "blk.2.ffn_down.weight");
    remove(p);

    rd_gguf_close(g);
    free(g_last_err);
    int rc = rd_test_finish("gguf_types");
    if (rc == 0) {
        for (int v = 0; v < N_TYPES; v++) remove(path[v]), remove(ref[v]);
        rmdir(tmp);
    } else {
        printf("files kept in %s\n", tmp);
    }
    return rc;
}
