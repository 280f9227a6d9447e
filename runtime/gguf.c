/* The GGUF reader (see gguf.h): a bounds-checked cursor over the mapped file parses the header,
 * copies metadata and tensor infos into owned memory and validates every size against the bytes
 * that are really there before allocating for it, so absurd counts fail cleanly instead of
 * asking malloc for terabytes. */
#include "runtime/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct rd_gguf {
    const uint8_t *base; /* whole file */
    size_t size;
    void *map;           /* non-NULL when we own an mmap of the file */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    struct rd_gguf_kv *kv;
    int64_t n_tensors;
    struct rd_gguf_tensor *tensors;
};

struct cursor {
    const uint8_t *p;
    size_t pos, size;
    char *err;
    int err_len;
};

static rd_status fail(struct cursor *c, rd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rd_status fail(struct cursor *c, rd_status st, const char *fmt, ...)
{
    if (c->err && c->err_len > 0) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(c->err, (size_t)c->err_len, "gguf: %s (at byte %zu)", msg, c->pos);
    }
    return st;
}

static size_t remaining(const struct cursor *c) { return c->size - c->pos; }

static rd_status take(struct cursor *c, void *dst, size_t n, const char *what)
{
    if (remaining(c) < n) return fail(c, RD_ERR_FORMAT, "truncated file while reading %s", what);
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return RD_OK;
}

static rd_status take_u32(struct cursor *c, uint32_t *v, const char *what) { return take(c, v, 4, what); }
static rd_status take_u64(struct cursor *c, uint64_t *v, const char *what) { return take(c, v, 8, what); }

static rd_status take_str(struct cursor *c, struct rd_gguf_str *s, const char *what)
{
    uint64_t len = 0;
    RD_TRY(take_u64(c, &len, what));
    if (len > remaining(c))
        return fail(c, RD_ERR_FORMAT, "%s: string length %llu past the end of the file", what,
                    (unsigned long long)len);
    s->data = malloc((size_t)len + 1);
    if (!s->data) return fail(c, RD_ERR_OOM, "out of memory for %s", what);
    memcpy(s->data, c->p + c->pos, (size_t)len);
    s->data[len] = 0;
    s->len = len;
    c->pos += (size_t)len;
    return RD_OK;
}

static size_t scalar_size(enum rd_gguf_type t)
{
    switch (t) {
    case RD_GGUF_TYPE_UINT8: case RD_GGUF_TYPE_INT8: case RD_GGUF_TYPE_BOOL: return 1;
    case RD_GGUF_TYPE_UINT16: case RD_GGUF_TYPE_INT16: return 2;
    case RD_GGUF_TYPE_UINT32: case RD_GGUF_TYPE_INT32: case RD_GGUF_TYPE_FLOAT32: return 4;
    case RD_GGUF_TYPE_UINT64: case RD_GGUF_TYPE_INT64: case RD_GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* Widens one stored scalar into the kv's union. */
static void widen(struct rd_gguf_kv *kv, const uint8_t *p)
{
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } x;
    memcpy(&x, p, scalar_size(kv->type));
    switch (kv->type) {
    case RD_GGUF_TYPE_UINT8: kv->v.u64 = x.u8; break;
    case RD_GGUF_TYPE_INT8: kv->v.i64 = x.i8; break;
    case RD_GGUF_TYPE_UINT16: kv->v.u64 = x.u16; break;
    case RD_GGUF_TYPE_INT16: kv->v.i64 = x.i16; break;
    case RD_GGUF_TYPE_UINT32: kv->v.u64 = x.u32; break;
    case RD_GGUF_TYPE_INT32: kv->v.i64 = x.i32; break;
    case RD_GGUF_TYPE_FLOAT32: kv->v.f64 = x.f32; break;
    case RD_GGUF_TYPE_BOOL: kv->v.b = x.u8 != 0; break;
    case RD_GGUF_TYPE_UINT64: kv->v.u64 = x.u64; break;
    case RD_GGUF_TYPE_INT64: kv->v.i64 = x.i64; break;
    case RD_GGUF_TYPE_FLOAT64: kv->v.f64 = x.f64; break;
    default: break;
    }
}

static rd_status read_value(struct cursor *c, struct rd_gguf_kv *kv)
{
    if (kv->type == RD_GGUF_TYPE_STRING) return take_str(c, &kv->v.str, kv->key);
    if (kv->type != RD_GGUF_TYPE_ARRAY) {
        size_t sz = scalar_size(kv->type);
        if (remaining(c) < sz) return fail(c, RD_ERR_FORMAT, "truncated value of %s", kv->key);
        widen(kv, c->p + c->pos);
        c->pos += sz;
        return RD_OK;
    }
    uint32_t at = 0;
    RD_TRY(take_u32(c, &at, kv->key));
    RD_TRY(take_u64(c, &kv->n, kv->key));
    if (at == RD_GGUF_TYPE_ARRAY)
        return fail(c, RD_ERR_UNSUPPORTED, "%s: arrays of arrays are not supported", kv->key);
    if (at >= RD_GGUF_TYPE_COUNT)
        return fail(c, RD_ERR_FORMAT, "%s: bad array element type %u", kv->key, at);
    kv->arr_type = (enum rd_gguf_type)at;
    if (at == RD_GGUF_TYPE_STRING) {
        /* each string needs at least its 8-byte length */
        if (kv->n > remaining(c) / 8)
            return fail(c, RD_ERR_FORMAT, "%s: array count %llu larger than the file", kv->key,
                        (unsigned long long)kv->n);
        struct rd_gguf_str *s = calloc(kv->n ? (size_t)kv->n : 1, sizeof *s);
        if (!s) return fail(c, RD_ERR_OOM, "out of memory for %s", kv->key);
        kv->arr = s;
        for (uint64_t i = 0; i < kv->n; i++) RD_TRY(take_str(c, &s[i], kv->key));
        return RD_OK;
    }
    size_t sz = scalar_size(kv->arr_type);
    if (kv->n > remaining(c) / sz)
        return fail(c, RD_ERR_FORMAT, "%s: array of %llu elements past the end of the file",
                    kv->key, (unsigned long long)kv->n);
    kv->arr = malloc(kv->n ? (size_t)kv->n * sz : 1);
    if (!kv->arr) return fail(c, RD_ERR_OOM, "out of memory for %s", kv->key);
    memcpy(kv->arr, c->p + c->pos, (size_t)kv->n * sz);
    c->pos += (size_t)kv->n * sz;
    return RD_OK;
}

static void free_kv(struct rd_gguf_kv *kv)
{
    free(kv->key);
    if (kv->type == RD_GGUF_TYPE_STRING) free(kv->v.str.data);
    if (kv->type == RD_GGUF_TYPE_ARRAY && kv->arr_type == RD_GGUF_TYPE_STRING && kv->arr) {
        struct rd_gguf_str *s = kv->arr;
        for (uint64_t i = 0; i < kv->n; i++) free(s[i].data);
    }
    free(kv->arr);
}

static rd_status parse(struct rd_gguf *g, struct cursor *c)
{
    uint32_t magic = 0, version = 0;
    uint64_t n_tensors = 0, n_kv = 0;
    if (c->size < 24) return fail(c, RD_ERR_FORMAT, "file of %zu bytes is too small", c->size);
    RD_TRY(take_u32(c, &magic, "magic"));
    if (memcmp(&magic, "GGUF", 4) != 0) return fail(c, RD_ERR_FORMAT, "bad magic (not a GGUF file)");
    RD_TRY(take_u32(c, &version, "version"));
    if (version == 1) return fail(c, RD_ERR_UNSUPPORTED, "GGUF version 1 is not supported");
    if (version < 2 || version > 3) return fail(c, RD_ERR_FORMAT, "unknown GGUF version %u", version);
    g->version = version;
    RD_TRY(take_u64(c, &n_tensors, "tensor count"));
    RD_TRY(take_u64(c, &n_kv, "metadata count"));
    /* smallest kv: 8 (key length) + 1 (key) + 4 (type) + 1 (u8); smallest tensor info:
     * 8 + 1 + 4 (n_dims) + 8 (ne[0]) + 4 (type) + 8 (offset) */
    if (n_kv > remaining(c) / 14)
        return fail(c, RD_ERR_FORMAT, "metadata count %llu larger than the file",
                    (unsigned long long)n_kv);
    if (n_tensors > remaining(c) / 33)
        return fail(c, RD_ERR_FORMAT, "tensor count %llu larger than the file",
                    (unsigned long long)n_tensors);
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return fail(c, RD_ERR_OOM, "out of memory");

    g->alignment = RD_GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct rd_gguf_kv *kv = &g->kv[i];
        struct rd_gguf_str key = {0};
        g->n_kv = (int64_t)i + 1; /* so close() frees what was read so far */
        RD_TRY(take_str(c, &key, "metadata key"));
        kv->key = key.data;
        if (key.len == 0 || strlen(key.data) != key.len)
            return fail(c, RD_ERR_FORMAT, "metadata key %llu is empty or holds a NUL",
                        (unsigned long long)i);
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->kv[j].key, kv->key) == 0)
                return fail(c, RD_ERR_FORMAT, "duplicate metadata key %s", kv->key);
        uint32_t type = 0;
        RD_TRY(take_u32(c, &type, kv->key));
        if (type >= RD_GGUF_TYPE_COUNT)
            return fail(c, RD_ERR_FORMAT, "%s: bad value type %u", kv->key, type);
        kv->type = (enum rd_gguf_type)type;
        RD_TRY(read_value(c, kv));
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->type != RD_GGUF_TYPE_UINT32 || kv->v.u64 == 0 ||
                (kv->v.u64 & (kv->v.u64 - 1)) != 0)
                return fail(c, RD_ERR_FORMAT, "general.alignment must be a power-of-two u32");
            g->alignment = (uint32_t)kv->v.u64;
        }
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        struct rd_gguf_tensor *t = &g->tensors[i];
        struct rd_gguf_str name = {0};
        g->n_tensors = (int64_t)i + 1;
        RD_TRY(take_str(c, &name, "tensor name"));
        t->name = name.data;
        if (name.len == 0 || strlen(name.data) != name.len)
            return fail(c, RD_ERR_FORMAT, "tensor %llu has an empty name or one with a NUL",
                        (unsigned long long)i);
        uint32_t nd = 0;
        RD_TRY(take_u32(c, &nd, t->name));
        if (nd < 1 || nd > RD_GGUF_MAX_DIMS)
            return fail(c, RD_ERR_FORMAT, "tensor %s: %u dimensions", t->name, nd);
        t->n_dims = (int)nd;
        int64_t nel = 1;
        for (int d = 0; d < RD_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne = 0;
            RD_TRY(take_u64(c, &ne, t->name));
            if (ne > (uint64_t)INT64_MAX || (ne != 0 && (uint64_t)nel > (uint64_t)INT64_MAX / ne))
                return fail(c, RD_ERR_FORMAT, "tensor %s: absurd dimension %llu", t->name,
                            (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
            nel *= (int64_t)ne;
        }
        RD_TRY(take_u32(c, &t->type, t->name));
        RD_TRY(take_u64(c, &t->offset, t->name));
        int64_t blk, tsz;
        if (rd_gguf_ggml_type_size(t->type, &blk, &tsz)) {
            if (t->ne[0] % blk != 0)
                return fail(c, RD_ERR_FORMAT, "tensor %s: row of %lld not a multiple of %s's block %lld",
                            t->name, (long long)t->ne[0], rd_gguf_ggml_type_name(t->type),
                            (long long)blk);
            uint64_t blocks = (uint64_t)(nel / blk);
            if (blocks > (uint64_t)c->size / (uint64_t)tsz + 1)
                return fail(c, RD_ERR_FORMAT, "tensor %s is larger than the file", t->name);
            t->nbytes = blocks * (uint64_t)tsz;
        } else if (t->type > 1000) {
            return fail(c, RD_ERR_FORMAT, "tensor %s: bad ggml type %u", t->name, t->type);
        }
        if (t->offset % g->alignment != 0)
            return fail(c, RD_ERR_FORMAT, "tensor %s: offset %llu not aligned to %u", t->name,
                        (unsigned long long)t->offset, g->alignment);
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->tensors[j].name, t->name) == 0)
                return fail(c, RD_ERR_FORMAT, "duplicate tensor name %s", t->name);
    }

    uint64_t data = ((uint64_t)c->pos + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = data;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const struct rd_gguf_tensor *t = &g->tensors[i];
        if (data > c->size || t->offset > c->size - data ||
            t->nbytes > c->size - data - t->offset) {
            c->pos = c->size;
            return fail(c, RD_ERR_FORMAT, "tensor %s (%llu bytes at %llu) lies past the end of the file",
                        t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset);
        }
    }
    return RD_OK;
}

rd_status rd_gguf_open_buffer(const void *buf, size_t len, struct rd_gguf **out, char *err,
                              int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!out || (!buf && len)) return RD_ERR_INVALID_ARG;
    *out = NULL;
    struct rd_gguf *g = calloc(1, sizeof *g);
    if (!g) return RD_ERR_OOM;
    g->base = buf;
    g->size = len;
    struct cursor c = {buf, 0, len, err, err_len};
    rd_status st = parse(g, &c);
    if (st != RD_OK) {
        rd_gguf_close(g);
        return st;
    }
    *out = g;
    return RD_OK;
}

rd_status rd_gguf_open(const char *path, struct rd_gguf **out, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!path || !out) return RD_ERR_INVALID_ARG;
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (err) snprintf(err, (size_t)err_len, "gguf: cannot open %s: %s", path, strerror(errno));
        return RD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (err) snprintf(err, (size_t)err_len, "gguf: %s is not a readable regular file", path);
        close(fd);
        return RD_ERR_IO;
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            if (err) snprintf(err, (size_t)err_len, "gguf: cannot map %s: %s", path, strerror(errno));
            close(fd);
            return RD_ERR_IO;
        }
    }
    close(fd);
    static const uint8_t empty[1];
    rd_status st = rd_gguf_open_buffer(map ? map : empty, size, out, err, err_len);
    if (st != RD_OK) {
        if (map) munmap(map, size);
        if (err && err_len > 0) {
            char tmp[600];
            snprintf(tmp, sizeof tmp, "%s: %s", path, err);
            snprintf(err, (size_t)err_len, "%s", tmp);
        }
        return st;
    }
    (*out)->map = map;
    return RD_OK;
}

void rd_gguf_close(struct rd_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) free_kv(&g->kv[i]);
    free(g->kv);
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->map) munmap(g->map, g->size);
    free(g);
}

uint32_t rd_gguf_version(const struct rd_gguf *g) { return g->version; }
uint32_t rd_gguf_alignment(const struct rd_gguf *g) { return g->alignment; }
uint64_t rd_gguf_data_offset(const struct rd_gguf *g) { return g->data_offset; }
uint64_t rd_gguf_file_size(const struct rd_gguf *g) { return g->size; }
int64_t rd_gguf_n_kv(const struct rd_gguf *g) { return g->n_kv; }
int64_t rd_gguf_n_tensors(const struct rd_gguf *g) { return g->n_tensors; }

const struct rd_gguf_kv *rd_gguf_kv_at(const struct rd_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_kv) ? &g->kv[i] : NULL;
}

const struct rd_gguf_kv *rd_gguf_find_kv(const struct rd_gguf *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

static bool is_signed(enum rd_gguf_type t)
{
    return t == RD_GGUF_TYPE_INT8 || t == RD_GGUF_TYPE_INT16 || t == RD_GGUF_TYPE_INT32 ||
           t == RD_GGUF_TYPE_INT64;
}

static bool is_unsigned(enum rd_gguf_type t)
{
    return t == RD_GGUF_TYPE_UINT8 || t == RD_GGUF_TYPE_UINT16 || t == RD_GGUF_TYPE_UINT32 ||
           t == RD_GGUF_TYPE_UINT64;
}

rd_status rd_gguf_get_int(const struct rd_gguf *g, const char *key, int64_t *out)
{
    const struct rd_gguf_kv *kv = rd_gguf_find_kv(g, key);
    if (!kv) return RD_ERR_INVALID_ARG;
    if (is_signed(kv->type)) *out = kv->v.i64;
    else if (is_unsigned(kv->type) && kv->v.u64 <= (uint64_t)INT64_MAX) *out = (int64_t)kv->v.u64;
    else return RD_ERR_FORMAT;
    return RD_OK;
}

rd_status rd_gguf_get_f64(const struct rd_gguf *g, const char *key, double *out)
{
    const struct rd_gguf_kv *kv = rd_gguf_find_kv(g, key);
    if (!kv) return RD_ERR_INVALID_ARG;
    if (kv->type == RD_GGUF_TYPE_FLOAT32 || kv->type == RD_GGUF_TYPE_FLOAT64) *out = kv->v.f64;
    else if (is_signed(kv->type)) *out = (double)kv->v.i64;
    else if (is_unsigned(kv->type)) *out = (double)kv->v.u64;
    else return RD_ERR_FORMAT;
    return RD_OK;
}

rd_status rd_gguf_get_bool(const struct rd_gguf *g, const char *key, bool *out)
{
    const struct rd_gguf_kv *kv = rd_gguf_find_kv(g, key);
    if (!kv) return RD_ERR_INVALID_ARG;
    if (kv->type != RD_GGUF_TYPE_BOOL) return RD_ERR_FORMAT;
    *out = kv->v.b;
    return RD_OK;
}

rd_status rd_gguf_get_str(const struct rd_gguf *g, const char *key, const char **out,
                          uint64_t *len)
{
    const struct rd_gguf_kv *kv = rd_gguf_find_kv(g, key);
    if (!kv) return RD_ERR_INVALID_ARG;
    if (kv->type != RD_GGUF_TYPE_STRING) return RD_ERR_FORMAT;
    *out = kv->v.str.data;
    if (len) *len = kv->v.str.len;
    return RD_OK;
}

rd_status rd_gguf_get_arr(const struct rd_gguf *g, const char *key, enum rd_gguf_type *type,
                          uint64_t *n, const void **data)
{
    const struct rd_gguf_kv *kv = rd_gguf_find_kv(g, key);
    if (!kv) return RD_ERR_INVALID_ARG;
    if (kv->type != RD_GGUF_TYPE_ARRAY) return RD_ERR_FORMAT;
    if (type) *type = kv->arr_type;
    if (n) *n = kv->n;
    if (data) *data = kv->arr;
    return RD_OK;
}

const struct rd_gguf_tensor *rd_gguf_tensor_at(const struct rd_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const struct rd_gguf_tensor *rd_gguf_find_tensor(const struct rd_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

int64_t rd_gguf_tensor_nelements(const struct rd_gguf_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

rd_status rd_gguf_read(const struct rd_gguf *g, const struct rd_gguf_tensor *t, uint64_t offset,
                       uint64_t nbytes, void *dst)
{
    if (!g || !t || (!dst && nbytes)) return RD_ERR_INVALID_ARG;
    uint64_t start = g->data_offset + t->offset;
    uint64_t limit = t->nbytes ? t->nbytes : (g->size - start);
    if (offset > limit || nbytes > limit - offset) return RD_ERR_RANGE;
    if (nbytes) memcpy(dst, g->base + start + offset, (size_t)nbytes);
    return RD_OK;
}

const void *rd_gguf_tensor_data(const struct rd_gguf *g, const struct rd_gguf_tensor *t)
{
    return g->base + g->data_offset + t->offset;
}

struct type_info {
    const char *name;
    int64_t block, size;
};

/* ggml_type numbers, block sizes and block bytes (gaps are types ggml has retired). */
static const struct type_info ggml_types[] = {
    [0] = {"f32", 1, 4},        [1] = {"f16", 1, 2},         [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},     [6] = {"q5_0", 32, 22},      [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},     [9] = {"q8_1", 32, 36},      [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},  [12] = {"q4_K", 256, 144},   [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},  [15] = {"q8_K", 256, 292},   [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74}, [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},  [21] = {"iq3_s", 256, 110},  [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},        [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},       [27] = {"i64", 1, 8},        [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},  [30] = {"bf16", 1, 2},       [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},  [39] = {"mxfp4", 32, 17},
};

bool rd_gguf_ggml_type_size(uint32_t type, int64_t *block, int64_t *type_size)
{
    if (type >= sizeof ggml_types / sizeof ggml_types[0] || !ggml_types[type].name) return false;
    if (block) *block = ggml_types[type].block;
    if (type_size) *type_size = ggml_types[type].size;
    return true;
}

const char *rd_gguf_ggml_type_name(uint32_t type)
{
    if (type >= sizeof ggml_types / sizeof ggml_types[0] || !ggml_types[type].name) return "unknown";
    return ggml_types[type].name;
}

const char *rd_gguf_type_name(enum rd_gguf_type type)
{
    static const char *names[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                  "bool",  "string", "array", "uint64", "int64",  "float64"};
    return (type >= 0 && type < RD_GGUF_TYPE_COUNT) ? names[type] : "unknown";
}
