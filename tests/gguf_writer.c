/* Implementation of the test GGUF v3 writer (see gguf_writer.h): a growing byte buffer,
 * each metadata value narrowed back to its stored width, then the header, kvs, tensor infos
 * and the aligned data section in one write. */
#include "gguf_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s, uint64_t len)
{
    put_u64(b, len);
    put(b, s, (size_t)len);
}
static void pad_to(struct buf *b, uint64_t align)
{
    static const uint8_t zeros[256];
    while (b->n % align) put(b, zeros, (size_t)(align - b->n % align) < sizeof zeros ? (size_t)(align - b->n % align) : sizeof zeros);
}

static size_t elem_size(enum rd_gguf_type t)
{
    switch (t) {
    case RD_GGUF_TYPE_UINT8: case RD_GGUF_TYPE_INT8: case RD_GGUF_TYPE_BOOL: return 1;
    case RD_GGUF_TYPE_UINT16: case RD_GGUF_TYPE_INT16: return 2;
    case RD_GGUF_TYPE_UINT32: case RD_GGUF_TYPE_INT32: case RD_GGUF_TYPE_FLOAT32: return 4;
    case RD_GGUF_TYPE_UINT64: case RD_GGUF_TYPE_INT64: case RD_GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* One value as stored, narrowed back from the reader's widened union. */
static bool put_value(struct buf *b, const struct rd_gguf_kv *kv)
{
    switch (kv->type) {
    case RD_GGUF_TYPE_UINT8: { uint8_t v = (uint8_t)kv->v.u64; put(b, &v, 1); return true; }
    case RD_GGUF_TYPE_INT8: { int8_t v = (int8_t)kv->v.i64; put(b, &v, 1); return true; }
    case RD_GGUF_TYPE_UINT16: { uint16_t v = (uint16_t)kv->v.u64; put(b, &v, 2); return true; }
    case RD_GGUF_TYPE_INT16: { int16_t v = (int16_t)kv->v.i64; put(b, &v, 2); return true; }
    case RD_GGUF_TYPE_UINT32: put_u32(b, (uint32_t)kv->v.u64); return true;
    case RD_GGUF_TYPE_INT32: { int32_t v = (int32_t)kv->v.i64; put(b, &v, 4); return true; }
    case RD_GGUF_TYPE_FLOAT32: { float v = (float)kv->v.f64; put(b, &v, 4); return true; }
    case RD_GGUF_TYPE_BOOL: { uint8_t v = kv->v.b ? 1 : 0; put(b, &v, 1); return true; }
    case RD_GGUF_TYPE_STRING: put_str(b, kv->v.str.data, kv->v.str.len); return true;
    case RD_GGUF_TYPE_UINT64: put_u64(b, kv->v.u64); return true;
    case RD_GGUF_TYPE_INT64: { int64_t v = kv->v.i64; put(b, &v, 8); return true; }
    case RD_GGUF_TYPE_FLOAT64: { double v = kv->v.f64; put(b, &v, 8); return true; }
    case RD_GGUF_TYPE_ARRAY:
        put_u32(b, (uint32_t)kv->arr_type);
        put_u64(b, kv->n);
        if (kv->arr_type == RD_GGUF_TYPE_STRING) {
            const struct rd_gguf_str *s = kv->arr;
            for (uint64_t i = 0; i < kv->n; i++) put_str(b, s[i].data, s[i].len);
            return true;
        }
        if (!elem_size(kv->arr_type)) return false;
        put(b, kv->arr, (size_t)kv->n * elem_size(kv->arr_type)); /* packed host copies */
        return true;
    default: return false;
    }
}

bool rd_test_gguf_write(const char *path, const struct rd_gguf_kv *const *kvs, int64_t n_kv,
                        const struct rd_test_gguf_tensor *t, int64_t n_t)
{
    uint64_t align = RD_GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < n_kv; i++)
        if (!strcmp(kvs[i]->key, "general.alignment") && kvs[i]->type == RD_GGUF_TYPE_UINT32)
            align = kvs[i]->v.u64;
    struct buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)n_t);
    put_u64(&b, (uint64_t)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        put_str(&b, kvs[i]->key, strlen(kvs[i]->key));
        put_u32(&b, (uint32_t)kvs[i]->type);
        if (!put_value(&b, kvs[i])) {
            fprintf(stderr, "gguf writer: cannot write %s (type %d)\n", kvs[i]->key, kvs[i]->type);
            free(b.p);
            return false;
        }
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n_t; i++) {
        put_str(&b, t[i].name, strlen(t[i].name));
        put_u32(&b, (uint32_t)t[i].n_dims);
        for (int d = 0; d < t[i].n_dims; d++) put_u64(&b, (uint64_t)t[i].ne[d]);
        put_u32(&b, t[i].type);
        put_u64(&b, off);
        off = (off + t[i].nbytes + align - 1) / align * align;
    }
    pad_to(&b, align);
    for (int64_t i = 0; i < n_t; i++) {
        put(&b, t[i].data, (size_t)t[i].nbytes);
        pad_to(&b, align);
    }
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(b.p, 1, b.n, f) == b.n;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) fprintf(stderr, "gguf writer: cannot write %s\n", path);
    free(b.p);
    return ok;
}

static bool kv_equal(const struct rd_gguf_kv *a, const struct rd_gguf_kv *b)
{
    if (strcmp(a->key, b->key) || a->type != b->type) return false;
    switch (a->type) {
    case RD_GGUF_TYPE_STRING:
        return a->v.str.len == b->v.str.len && !memcmp(a->v.str.data, b->v.str.data, (size_t)a->v.str.len);
    case RD_GGUF_TYPE_BOOL: return a->v.b == b->v.b;
    case RD_GGUF_TYPE_FLOAT32: case RD_GGUF_TYPE_FLOAT64: return !memcmp(&a->v.f64, &b->v.f64, 8);
    case RD_GGUF_TYPE_INT8: case RD_GGUF_TYPE_INT16: case RD_GGUF_TYPE_INT32: case RD_GGUF_TYPE_INT64:
        return a->v.i64 == b->v.i64;
    case RD_GGUF_TYPE_ARRAY:
        if (a->arr_type != b->arr_type || a->n != b->n) return false;
        if (a->arr_type == RD_GGUF_TYPE_STRING) {
            const struct rd_gguf_str *x = a->arr, *y = b->arr;
            for (uint64_t i = 0; i < a->n; i++)
                if (x[i].len != y[i].len || memcmp(x[i].data, y[i].data, (size_t)x[i].len)) return false;
            return true;
        }
        return !memcmp(a->arr, b->arr, (size_t)a->n * elem_size(a->arr_type));
    default: return a->v.u64 == b->v.u64;
    }
}

int rd_test_gguf_check_kvs(const struct rd_gguf *g, const struct rd_gguf_kv *const *want, int64_t n)
{
    int bad = 0;
    if (rd_gguf_n_kv(g) != n) return 1;
    for (int64_t i = 0; i < n; i++)
        if (!kv_equal(rd_gguf_kv_at(g, i), want[i])) {
            fprintf(stderr, "metadata %s differs after the round trip\n", want[i]->key);
            bad++;
        }
    return bad;
}

int rd_test_gguf_check_tensors(const struct rd_gguf *g, const struct rd_test_gguf_tensor *want,
                               int64_t n)
{
    int bad = 0;
    if (rd_gguf_n_tensors(g) != n) return 1;
    if (rd_gguf_data_offset(g) % rd_gguf_alignment(g)) bad++;
    for (int64_t i = 0; i < n; i++) {
        const struct rd_gguf_tensor *t = rd_gguf_tensor_at(g, i);
        bool ok = !strcmp(t->name, want[i].name) && t->n_dims == want[i].n_dims &&
                  t->type == want[i].type && t->offset % rd_gguf_alignment(g) == 0;
        for (int d = 0; ok && d < t->n_dims; d++) ok = t->ne[d] == want[i].ne[d];
        if (ok && t->nbytes) ok = t->nbytes == want[i].nbytes &&
                                  !memcmp(rd_gguf_tensor_data(g, t), want[i].data, (size_t)want[i].nbytes);
        if (!ok) {
            fprintf(stderr, "tensor %s differs after the round trip\n", want[i].name);
            bad++;
        }
    }
    return bad;
}

const struct rd_gguf_kv **rd_test_gguf_kv_list(const struct rd_gguf *g)
{
    int64_t n = rd_gguf_n_kv(g);
    const struct rd_gguf_kv **k = calloc((size_t)n + 1, sizeof *k);
    for (int64_t i = 0; i < n; i++) k[i] = rd_gguf_kv_at(g, i);
    return k;
}

struct rd_test_gguf_tensor *rd_test_gguf_tensor_list(const struct rd_gguf *g)
{
    int64_t n = rd_gguf_n_tensors(g);
    struct rd_test_gguf_tensor *t = calloc((size_t)n + 1, sizeof *t);
    for (int64_t i = 0; i < n; i++) {
        const struct rd_gguf_tensor *s = rd_gguf_tensor_at(g, i);
        t[i] = (struct rd_test_gguf_tensor){s->name, s->n_dims,
                                            {s->ne[0], s->ne[1], s->ne[2], s->ne[3]},
                                            s->type, rd_gguf_tensor_data(g, s), s->nbytes};
    }
    return t;
}
