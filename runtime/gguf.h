/* A general, validating reader for GGUF files (llama.cpp's single-file model format, v2 and v3).
 *
 * rd_gguf_open maps the file, checks the whole header before anything is used (magic, version,
 * every count against the bytes that remain, every string and array inside the file, value
 * types, tensor shapes, alignment, every known-size tensor inside the data section, no duplicate
 * keys or tensor names) and copies the metadata into owned memory. A corrupt or truncated file
 * is an error with a message, never a crash. Tensor bytes stay in the read-only mapping: read a
 * byte range with rd_gguf_read or borrow a pointer with rd_gguf_tensor_data.
 *
 * Layout of a file: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
 * metadata key/value pairs, the tensor infos (name, n_dims, ne[n_dims], ggml type, offset), then
 * padding to general.alignment (default 32) and the data section; tensor offsets are relative to
 * the data section. Shapes use ggml's order: ne[0] is the fastest-varying dimension (the length
 * of a row), so a Hugging Face [out_features, in_features] weight has ne = {in, out}. The host
 * must be little-endian (as the files are). */
#ifndef RD_GGUF_H
#define RD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

enum rd_gguf_type {
    RD_GGUF_TYPE_UINT8 = 0,
    RD_GGUF_TYPE_INT8 = 1,
    RD_GGUF_TYPE_UINT16 = 2,
    RD_GGUF_TYPE_INT16 = 3,
    RD_GGUF_TYPE_UINT32 = 4,
    RD_GGUF_TYPE_INT32 = 5,
    RD_GGUF_TYPE_FLOAT32 = 6,
    RD_GGUF_TYPE_BOOL = 7,
    RD_GGUF_TYPE_STRING = 8,
    RD_GGUF_TYPE_ARRAY = 9,
    RD_GGUF_TYPE_UINT64 = 10,
    RD_GGUF_TYPE_INT64 = 11,
    RD_GGUF_TYPE_FLOAT64 = 12,
    RD_GGUF_TYPE_COUNT
};

/* A few ggml tensor types by their on-disk number (the full list is in rd_gguf_ggml_type_size). */
enum {
    RD_GGML_TYPE_F32 = 0,
    RD_GGML_TYPE_F16 = 1,
    RD_GGML_TYPE_Q4_0 = 2,
    RD_GGML_TYPE_Q8_0 = 8,
    RD_GGML_TYPE_BF16 = 30,
};

#define RD_GGUF_MAX_DIMS 4
#define RD_GGUF_DEFAULT_ALIGNMENT 32

/* A string as stored: len bytes (may hold NULs), plus a NUL terminator after them. */
struct rd_gguf_str {
    uint64_t len;
    char *data;
};

struct rd_gguf_kv {
    char *key;
    enum rd_gguf_type type;
    /* scalars, widened: integers in i64/u64 (both filled when representable), floats in f64 */
    union {
        uint64_t u64;
        int64_t i64;
        double f64;
        bool b;
        struct rd_gguf_str str;
    } v;
    /* type == ARRAY: arr_type, n elements at arr. Numbers and bools are packed host copies of
     * the stored elements (e.g. float[n] for FLOAT32, int8 0/1 for BOOL); strings are
     * struct rd_gguf_str[n]. Arrays of arrays are rejected as unsupported. */
    enum rd_gguf_type arr_type;
    uint64_t n;
    void *arr;
};

struct rd_gguf_tensor {
    char *name;
    int n_dims;                     /* 1..4 */
    int64_t ne[RD_GGUF_MAX_DIMS];   /* ggml order, ne[0] fastest; unused dims are 1 */
    uint32_t type;                  /* ggml type number */
    uint64_t offset;                /* from the start of the data section */
    uint64_t nbytes;                /* 0 when the ggml type's size is not known to ropedist */
};

struct rd_gguf;

/* Opens and validates path; on error fills err (when not NULL) and returns RD_ERR_IO (cannot
 * read), RD_ERR_FORMAT (corrupt), RD_ERR_UNSUPPORTED (version 1, nested arrays) or RD_ERR_OOM. */
rd_status rd_gguf_open(const char *path, struct rd_gguf **out, char *err, int err_len);
/* Same over bytes in memory; buf must outlive the reader (it is borrowed, not copied). */
rd_status rd_gguf_open_buffer(const void *buf, size_t len, struct rd_gguf **out, char *err,
                              int err_len);
void rd_gguf_close(struct rd_gguf *g); /* NULL: nothing */

uint32_t rd_gguf_version(const struct rd_gguf *g);
uint32_t rd_gguf_alignment(const struct rd_gguf *g);
uint64_t rd_gguf_data_offset(const struct rd_gguf *g); /* absolute offset of the data section */
uint64_t rd_gguf_file_size(const struct rd_gguf *g);

int64_t rd_gguf_n_kv(const struct rd_gguf *g);
const struct rd_gguf_kv *rd_gguf_kv_at(const struct rd_gguf *g, int64_t i);
const struct rd_gguf_kv *rd_gguf_find_kv(const struct rd_gguf *g, const char *key); /* or NULL */

/* Typed getters. They log nothing: RD_ERR_INVALID_ARG when the key is absent, RD_ERR_FORMAT
 * when its type does not fit (any integer type fits get_int when the value is representable;
 * integers and floats fit get_f64), so callers can probe optional keys. */
rd_status rd_gguf_get_int(const struct rd_gguf *g, const char *key, int64_t *out);
rd_status rd_gguf_get_f64(const struct rd_gguf *g, const char *key, double *out);
rd_status rd_gguf_get_bool(const struct rd_gguf *g, const char *key, bool *out);
/* *out points into the reader (NUL-terminated); len may be NULL. */
rd_status rd_gguf_get_str(const struct rd_gguf *g, const char *key, const char **out,
                          uint64_t *len);
/* An array: its element type, count and elements (see struct rd_gguf_kv.arr). */
rd_status rd_gguf_get_arr(const struct rd_gguf *g, const char *key, enum rd_gguf_type *type,
                          uint64_t *n, const void **data);

int64_t rd_gguf_n_tensors(const struct rd_gguf *g);
const struct rd_gguf_tensor *rd_gguf_tensor_at(const struct rd_gguf *g, int64_t i);
const struct rd_gguf_tensor *rd_gguf_find_tensor(const struct rd_gguf *g, const char *name);
/* Number of elements of a tensor (product of ne). */
int64_t rd_gguf_tensor_nelements(const struct rd_gguf_tensor *t);

/* Copies bytes [offset, offset + nbytes) of tensor t into dst; RD_ERR_RANGE outside the
 * tensor (or outside the file for a tensor of unknown size). */
rd_status rd_gguf_read(const struct rd_gguf *g, const struct rd_gguf_tensor *t, uint64_t offset,
                       uint64_t nbytes, void *dst);
/* The tensor's bytes in the read-only mapping (valid until rd_gguf_close). */
const void *rd_gguf_tensor_data(const struct rd_gguf *g, const struct rd_gguf_tensor *t);

/* ggml type: block size (elements) and bytes per block; false for types ropedist does not
 * know. */
bool rd_gguf_ggml_type_size(uint32_t type, int64_t *block, int64_t *type_size);
const char *rd_gguf_ggml_type_name(uint32_t type); /* "f32", "q8_0", ... or "unknown" */
const char *rd_gguf_type_name(enum rd_gguf_type type);

#endif
