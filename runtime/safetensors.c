/* Reader of Hugging Face safetensors files (see safetensors.h).
 *
 * The file is untrusted input: the header length is checked against the file size before
 * anything is allocated, the JSON header is parsed (common/json.h) and every entry is checked
 * (dtype known, shape non-negative and small enough not to overflow, shape * dtype size equal
 * to the byte range, range inside the data section, no two ranges overlapping, no duplicate
 * names). Only then are tensors handed out; rd_st_read reads a tensor's bytes on demand, so
 * opening a large shard costs one header read. Data is little-endian, as on every host we
 * build for. */
#include "runtime/safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/log.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER (100ull * 1024 * 1024)
/* Offsets and dims above this are refused (2^62: sums and products below stay in range). */
#define ST_MAX_INT (1ll << 62)

#define set_err rd_err_set

/* A JSON number that is an integer in [0, ST_MAX_INT]. */
static int json_u64(const json_t *j, uint64_t *out)
{
    int64_t v;
    if (!rd_json_int(j, 0, ST_MAX_INT, &v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int parse_dtype(const char *s, enum rd_dtype *d)
{
    if (!strcmp(s, "F32")) *d = RD_DTYPE_F32;
    else if (!strcmp(s, "BF16")) *d = RD_DTYPE_BF16;
    else if (!strcmp(s, "F16")) *d = RD_DTYPE_F16;
    else return 0;
    return 1;
}

/* Checks one header entry and fills t (except name). Returns 0 and fills err on failure. */
static int parse_entry(const char *name, const json_t *e, const char *path, uint64_t data_size,
                       struct rd_st_tensor *t, char *err, int err_len)
{
    if (!json_is_object(e)) {
        set_err(err, err_len, "%s: header entry '%s' is not an object", path, name);
        return 0;
    }
    const json_t *jd = json_object_get(e, "dtype");
    const json_t *js = json_object_get(e, "shape");
    const json_t *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo)) {
        set_err(err, err_len,
                "%s: tensor '%s' needs string 'dtype', array 'shape' and array 'data_offsets'",
                path, name);
        return 0;
    }
    const char *dtype = json_string_value(jd);
    if (!parse_dtype(dtype, &t->dtype)) {
        set_err(err, err_len, "%s: tensor '%s' has dtype %s; only F32, BF16 and F16 are supported",
                path, name, dtype);
        return 0;
    }
    size_t ndim = json_array_size(js);
    if (ndim > RD_ST_MAX_DIMS) {
        set_err(err, err_len, "%s: tensor '%s' has %zu dims (at most %d supported)", path, name,
                ndim, RD_ST_MAX_DIMS);
        return 0;
    }
    t->ndim = (int)ndim;
    /* the element count is kept below 2^62 / 4 so that bytes never overflow */
    const uint64_t limit = (1ull << 60);
    uint64_t count = 1;
    size_t i;
    const json_t *d;
    json_array_foreach(js, i, d)
    {
        uint64_t v;
        if (!json_u64(d, &v)) {
            set_err(err, err_len, "%s: tensor '%s' shape[%zu] is not a non-negative integer",
                    path, name, i);
            return 0;
        }
        if (v != 0 && count > limit / v) {
            set_err(err, err_len, "%s: tensor '%s' shape is too large", path, name);
            return 0;
        }
        count *= v;
        t->shape[i] = (int64_t)v;
    }
    uint64_t range[2];
    if (json_array_size(jo) != 2 || !json_u64(json_array_get(jo, 0), &range[0]) ||
        !json_u64(json_array_get(jo, 1), &range[1])) {
        set_err(err, err_len, "%s: tensor '%s' data_offsets must be two non-negative integers",
                path, name);
        return 0;
    }
    t->begin = range[0];
    t->end = range[1];
    if (t->end < t->begin) {
        set_err(err, err_len, "%s: tensor '%s' data_offsets [%llu, %llu] end before begin", path,
                name, (unsigned long long)t->begin, (unsigned long long)t->end);
        return 0;
    }
    if (t->end > data_size) {
        set_err(err, err_len,
                "%s: tensor '%s' data_offsets [%llu, %llu] beyond the data section (%llu bytes)",
                path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                (unsigned long long)data_size);
        return 0;
    }
    uint64_t bytes = count * rd_dtype_size(t->dtype);
    if (bytes != t->end - t->begin) {
        set_err(err, err_len,
                "%s: tensor '%s' shape needs %llu bytes of %s but data_offsets span %llu", path,
                name, (unsigned long long)bytes, dtype,
                (unsigned long long)(t->end - t->begin));
        return 0;
    }
    return 1;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct rd_st_tensor *x = *(const struct rd_st_tensor *const *)a;
    const struct rd_st_tensor *y = *(const struct rd_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static int cmp_name(const void *a, const void *b)
{
    const struct rd_st_tensor *x = *(const struct rd_st_tensor *const *)a;
    const struct rd_st_tensor *y = *(const struct rd_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* No two non-empty ranges overlap and no name repeats (the parser refuses repeated keys too). */
static rd_status check_layout(struct rd_safetensors *st, char *err, int err_len)
{
    int n = st->n_tensors;
    if (n < 2) return RD_OK;
    struct rd_st_tensor **v = malloc((size_t)n * sizeof *v);
    if (!v) {
        set_err(err, err_len, "%s: out of memory", st->path);
        return RD_ERR_OOM;
    }
    for (int i = 0; i < n; i++) v[i] = &st->tensors[i];
    rd_status rc = RD_OK;
    qsort(v, (size_t)n, sizeof *v, cmp_begin);
    uint64_t hi = 0;
    const char *hi_name = NULL;
    for (int i = 0; i < n && rc == RD_OK; i++) {
        if (v[i]->begin == v[i]->end) continue; /* empty tensors take no bytes */
        if (hi_name && v[i]->begin < hi) {
            set_err(err, err_len, "%s: tensors '%s' and '%s' overlap in the data section",
                    st->path, hi_name, v[i]->name);
            rc = RD_ERR_FORMAT;
        }
        if (v[i]->end > hi) hi = v[i]->end, hi_name = v[i]->name;
    }
    if (rc == RD_OK) {
        qsort(v, (size_t)n, sizeof *v, cmp_name);
        for (int i = 1; i < n && rc == RD_OK; i++) {
            if (!strcmp(v[i - 1]->name, v[i]->name)) {
                set_err(err, err_len, "%s: tensor '%s' appears twice in the header", st->path,
                        v[i]->name);
                rc = RD_ERR_FORMAT;
            }
        }
    }
    free(v);
    return rc;
}

static rd_status parse_header(struct rd_safetensors *st, const char *text, size_t len, char *err,
                              int err_len)
{
    uint64_t data_size = st->file_size - st->data_offset;
    char why[256];
    json_t *root = rd_json_parse(text, len, RD_JSON_NO_DUPLICATES, why, sizeof why);
    if (!root) {
        set_err(err, err_len, "%s: header is not valid JSON: %s", st->path, why);
        return RD_ERR_FORMAT;
    }
    rd_status rc = RD_OK;
    if (!json_is_object(root)) {
        set_err(err, err_len, "%s: header is not a JSON object", st->path);
        rc = RD_ERR_FORMAT;
        goto done;
    }
    size_t n = json_object_size(root);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        set_err(err, err_len, "%s: out of memory", st->path);
        rc = RD_ERR_OOM;
        goto done;
    }
    const char *key;
    const json_t *e;
    json_object_foreach(root, key, e)
    {
        if (!strcmp(key, "__metadata__")) continue;
        struct rd_st_tensor *t = &st->tensors[st->n_tensors];
        if (!parse_entry(key, e, st->path, data_size, t, err, err_len)) {
            rc = RD_ERR_FORMAT;
            goto done;
        }
        t->name = strdup(key);
        if (!t->name) {
            set_err(err, err_len, "%s: out of memory", st->path);
            rc = RD_ERR_OOM;
            goto done;
        }
        st->n_tensors++;
    }
    rc = check_layout(st, err, err_len);
done:
    json_decref(root);
    return rc;
}

rd_status rd_st_open(const char *path, struct rd_safetensors **out, char *err, int err_len)
{
    if (err && err_len > 0) err[0] = 0;
    if (!path || !out) {
        set_err(err, err_len, "rd_st_open: NULL argument");
        return RD_ERR_INVALID_ARG;
    }
    *out = NULL;
    rd_status rc = RD_OK;
    char *header = NULL;
    struct rd_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        set_err(err, err_len, "%s: out of memory", path);
        rc = RD_ERR_OOM;
        goto fail;
    }
    st->f = fopen(path, "rb");
    if (!st->f) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        rc = RD_ERR_IO;
        goto fail;
    }
    struct stat sb;
    if (fstat(fileno(st->f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, err_len, "%s: not a regular file", path);
        rc = RD_ERR_IO;
        goto fail;
    }
    st->file_size = (uint64_t)sb.st_size;
    unsigned char lenbuf[8];
    if (st->file_size < 8 || fread(lenbuf, 1, 8, st->f) != 8) {
        set_err(err, err_len, "%s: too short for a safetensors file (%llu bytes)", path,
                (unsigned long long)st->file_size);
        rc = RD_ERR_FORMAT;
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenbuf[i];
    if (hlen == 0 || hlen > st->file_size - 8) {
        set_err(err, err_len, "%s: header length %llu does not fit in the file (%llu bytes)",
                path, (unsigned long long)hlen, (unsigned long long)st->file_size);
        rc = RD_ERR_FORMAT;
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        set_err(err, err_len, "%s: header length %llu exceeds the 100 MB limit", path,
                (unsigned long long)hlen);
        rc = RD_ERR_FORMAT;
        goto fail;
    }
    st->data_offset = 8 + hlen;
    header = malloc((size_t)hlen + 1);
    if (!header) {
        set_err(err, err_len, "%s: out of memory for a %llu-byte header", path,
                (unsigned long long)hlen);
        rc = RD_ERR_OOM;
        goto fail;
    }
    if (fread(header, 1, (size_t)hlen, st->f) != (size_t)hlen) {
        set_err(err, err_len, "%s: cannot read the header: %s", path,
                ferror(st->f) ? strerror(errno) : "unexpected end of file");
        rc = RD_ERR_IO;
        goto fail;
    }
    header[hlen] = 0;
    RD_TRY_GOTO(parse_header(st, header, (size_t)hlen, err, err_len), rc, fail);
    free(header);
    *out = st;
    return RD_OK;
fail:
    free(header);
    rd_st_close(st);
    return rc;
}

int rd_st_find(const struct rd_safetensors *st, const char *name)
{
    if (!st || !name) return -1;
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return i;
    return -1;
}

rd_status rd_st_read(struct rd_safetensors *st, int idx, void *dst)
{
    if (!st || idx < 0 || idx >= st->n_tensors || !dst) return RD_ERR_INVALID_ARG;
    const struct rd_st_tensor *t = &st->tensors[idx];
    size_t n = (size_t)(t->end - t->begin);
    if (n == 0) return RD_OK;
    if (fseeko(st->f, (off_t)(st->data_offset + t->begin), SEEK_SET) != 0 ||
        fread(dst, 1, n, st->f) != n) {
        RD_LOG_ERROR("%s: cannot read tensor '%s' (%zu bytes at offset %llu): %s", st->path,
                     t->name, n, (unsigned long long)(st->data_offset + t->begin),
                     ferror(st->f) ? strerror(errno) : "unexpected end of file");
        clearerr(st->f);
        return RD_ERR_IO;
    }
    return RD_OK;
}

void rd_st_close(struct rd_safetensors *st)
{
    if (!st) return;
    if (st->f) fclose(st->f);
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->path);
    free(st);
}
