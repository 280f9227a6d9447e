/* Unit tests of the GGUF reader: the real stories260K.gguf (metadata of every kind, 48 tensors,
 * token embedding bytes identical to the llama2.c .bin of the same model) and corrupt files
 * (every truncation of the header, bad magic, unknown version, absurd counts and lengths,
 * misaligned or out-of-file tensors, random byte flips) that must fail cleanly, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/gguf.h"
#include "test_util.h"

static void check_real(const char *shared, const uint8_t *buf, size_t len)
{
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared);
    struct rd_gguf *g = NULL;
    rd_status st = rd_gguf_open(path, &g, err, sizeof err);
    CHECK_MSG(st == RD_OK, "%s", err);
    if (!g) return;
    CHECK(len > 4 && memcmp(buf, "GGUF", 4) == 0);
    CHECK(rd_gguf_version(g) == 3);
    CHECK(rd_gguf_n_tensors(g) == 48);
    CHECK(rd_gguf_file_size(g) == len);
    CHECK(rd_gguf_data_offset(g) % rd_gguf_alignment(g) == 0);
    int64_t v = 0;
    CHECK(rd_gguf_get_int(g, "llama.embedding_length", &v) == RD_OK && v == 64);
    CHECK(rd_gguf_get_int(g, "llama.feed_forward_length", &v) == RD_OK && v == 172);
    CHECK(rd_gguf_get_int(g, "llama.block_count", &v) == RD_OK && v == 5);
    CHECK(rd_gguf_get_int(g, "llama.attention.head_count", &v) == RD_OK && v == 8);
    CHECK(rd_gguf_get_int(g, "llama.attention.head_count_kv", &v) == RD_OK && v == 4);
    double eps = 0;
    CHECK(rd_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps) == RD_OK &&
          eps > 0.9e-5 && eps < 1.1e-5);
    const char *s = NULL;
    CHECK(rd_gguf_get_str(g, "general.architecture", &s, NULL) == RD_OK && s && strcmp(s, "llama") == 0);
    CHECK(rd_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL) == RD_OK && s && strcmp(s, "llama") == 0);
    enum rd_gguf_type at;
    uint64_t n = 0;
    const void *arr = NULL;
    CHECK(rd_gguf_get_arr(g, "tokenizer.ggml.tokens", &at, &n, &arr) == RD_OK && at == RD_GGUF_TYPE_STRING && n == 512);
    if (arr && n == 512) CHECK(strcmp(((const struct rd_gguf_str *)arr)[1].data, "<s>") == 0);
    CHECK(rd_gguf_get_arr(g, "tokenizer.ggml.scores", &at, &n, &arr) == RD_OK && at == RD_GGUF_TYPE_FLOAT32 && n == 512);
    /* absent keys and wrong types are told apart */
    CHECK(rd_gguf_get_int(g, "no.such.key", &v) == RD_ERR_INVALID_ARG);
    CHECK(rd_gguf_get_int(g, "general.architecture", &v) == RD_ERR_FORMAT);
    CHECK(rd_gguf_get_str(g, "llama.block_count", &s, NULL) == RD_ERR_FORMAT);
    for (int64_t i = 0; i < rd_gguf_n_kv(g); i++) CHECK(rd_gguf_kv_at(g, i)->key != NULL);
    CHECK(rd_gguf_kv_at(g, rd_gguf_n_kv(g)) == NULL);

    const struct rd_gguf_tensor *t = rd_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 && t->type == RD_GGML_TYPE_F32);
        CHECK(t->nbytes == 64 * 512 * 4 && rd_gguf_tensor_nelements(t) == 64 * 512);
        /* identical to the llama2.c checkpoint's token_embedding_table (after its 7 int32s) */
        snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
        size_t bl = 0;
        char *bin = rd_test_read_file(path, &bl);
        float *emb = malloc(t->nbytes);
        CHECK(bin && bl > 28 + t->nbytes);
        CHECK(rd_gguf_read(g, t, 0, t->nbytes, emb) == RD_OK);
        if (bin && emb && bl > 28 + t->nbytes) CHECK(memcmp(emb, bin + 28, t->nbytes) == 0);
        CHECK(memcmp(rd_gguf_tensor_data(g, t), emb, t->nbytes) == 0);
        /* a slice: row 3 */
        float row[64];
        CHECK(rd_gguf_read(g, t, 3 * 64 * 4, sizeof row, row) == RD_OK && memcmp(row, emb + 3 * 64, sizeof row) == 0);
        CHECK(rd_gguf_read(g, t, t->nbytes - 4, 8, row) == RD_ERR_RANGE);
        CHECK(rd_gguf_read(g, t, UINT64_MAX - 2, 8, row) == RD_ERR_RANGE);
        free(emb);
        free(bin);
    }
    int n_f32 = 0;
    for (int64_t i = 0; i < rd_gguf_n_tensors(g); i++) n_f32 += rd_gguf_tensor_at(g, i)->type == RD_GGML_TYPE_F32;
    CHECK(n_f32 == 48);
    CHECK(rd_gguf_find_tensor(g, "blk.4.ffn_down.weight") != NULL);
    CHECK(rd_gguf_find_tensor(g, "blk.5.ffn_down.weight") == NULL);
    rd_gguf_close(g);
}

static rd_status open_bytes(const uint8_t *b, size_t n, char *err, int el)
{
    struct rd_gguf *g = NULL;
    rd_status st = rd_gguf_open_buffer(b, n, &g, err, el);
    if (st == RD_OK) CHECK(g != NULL);
    else CHECK(g == NULL);
    rd_gguf_close(g);
    return st;
}

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void check_corrupt(const uint8_t *buf, size_t len)
{
    char err[512];
    uint8_t *b = malloc(len);
    CHECK(open_bytes(buf, len, err, sizeof err) == RD_OK);
    struct rd_gguf *g = NULL;
    CHECK(rd_gguf_open_buffer(buf, len, &g, err, sizeof err) == RD_OK);
    uint64_t data = g ? rd_gguf_data_offset(g) : 0;
    rd_gguf_close(g);

    /* every truncation inside the header, and a few inside the data, is an error */
    int bad_trunc = 0;
    for (size_t cut = 0; cut < data; cut += (cut < 64 ? 1 : 7))
        bad_trunc += open_bytes(buf, cut, err, sizeof err) == RD_OK;
    CHECK_MSG(bad_trunc == 0, "%d header truncations were accepted", bad_trunc);
    CHECK(open_bytes(buf, len - 1, err, sizeof err) == RD_ERR_FORMAT);
    CHECK(strstr(err, "past the end") != NULL);
    CHECK(open_bytes(buf, len / 2, err, sizeof err) == RD_ERR_FORMAT);

    memcpy(b, buf, len);
    memcpy(b, "GGUG", 4);
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT && strstr(err, "magic"));
    memcpy(b, buf, len);
    put_u32(b + 4, 1);
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_UNSUPPORTED);
    put_u32(b + 4, 99);
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT);
    memcpy(b, buf, len);
    put_u64(b + 8, (uint64_t)1 << 62); /* tensor count */
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT && strstr(err, "tensor count"));
    memcpy(b, buf, len);
    put_u64(b + 16, UINT64_MAX); /* kv count */
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT);
    memcpy(b, buf, len);
    put_u64(b + 24, (uint64_t)1 << 40); /* first key's length */
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT);
    memcpy(b, buf, len);
    put_u64(b + 24, 0); /* empty key */
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT);
    memcpy(b, buf, len);
    put_u64(b + 8, 49); /* one tensor more than there are infos */
    CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT);
    CHECK(open_bytes(NULL, 0, err, sizeof err) == RD_ERR_FORMAT);

    /* the first key's value type (right after "general.architecture"-like key) set to garbage */
    uint64_t kl;
    memcpy(&kl, buf + 24, 8);
    if (kl < 200) {
        memcpy(b, buf, len);
        put_u32(b + 32 + kl, 1234);
        CHECK(open_bytes(b, len, err, sizeof err) == RD_ERR_FORMAT);
    }

    /* random byte flips in the header: any status, but no crash and consistent out-pointer */
    uint32_t seed = 12345;
    int accepted = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(b, buf, len);
        int flips = 1 + it % 4;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1664525u + 1013904223u;
            size_t pos = (seed >> 8) % (size_t)data;
            seed = seed * 1664525u + 1013904223u;
            b[pos] ^= (uint8_t)(1u << ((seed >> 16) % 8));
        }
        accepted += open_bytes(b, len, err, sizeof err) == RD_OK;
    }
    printf("test_gguf: %d of 3000 randomly flipped headers still parse (e.g. a flipped string byte)\n", accepted);
    free(b);

    /* a hand-made file: one tensor whose offset is misaligned */
    uint8_t m[256] = {0};
    size_t p = 0;
    memcpy(m, "GGUF", 4);
    put_u32(m + 4, 3);
    put_u64(m + 8, 1);
    put_u64(m + 16, 0);
    p = 24;
    put_u64(m + p, 1); p += 8;
    m[p++] = 'w';
    put_u32(m + p, 1); p += 4;
    put_u64(m + p, 4); p += 8;
    put_u32(m + p, RD_GGML_TYPE_F32); p += 4;
    size_t off_at = p;
    put_u64(m + p, 0); p += 8;
    size_t total = 64 + 16;
    CHECK(open_bytes(m, total, err, sizeof err) == RD_OK);
    put_u64(m + off_at, 4);
    CHECK(open_bytes(m, total, err, sizeof err) == RD_ERR_FORMAT && strstr(err, "aligned"));
    put_u64(m + off_at, 32);
    CHECK(open_bytes(m, total, err, sizeof err) == RD_ERR_FORMAT);
    put_u64(m + off_at, 0);
    put_u32(m + 24 + 8 + 1, 7); /* 7 dims */
    CHECK(open_bytes(m, total, err, sizeof err) == RD_ERR_FORMAT);
}

int main(void)
{
    char err[256] = "";
    struct rd_gguf *g = (struct rd_gguf *)1;
    CHECK(rd_gguf_open("/nonexistent.gguf", &g, err, sizeof err) == RD_ERR_IO && g == NULL);
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared);
    size_t len = 0;
    uint8_t *buf = (uint8_t *)rd_test_read_file(path, &len);
    CHECK(buf != NULL);
    if (!buf) return rd_test_finish("test_gguf");
    check_real(shared, buf, len);
    check_corrupt(buf, len);
    free(buf);
    return rd_test_finish("test_gguf");
}
