/* Reader of Hugging Face safetensors files: an 8-byte little-endian header length, a JSON
 * header naming each tensor's dtype, shape and byte range, then the raw data.
 * Every header field is checked (sizes, offsets, overlaps) so a corrupt file is an error,
 * never a crash. */
#ifndef RD_SAFETENSORS_H
#define RD_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "common/dtype.h"
#include "common/status.h"

#define RD_ST_MAX_DIMS 8

struct rd_st_tensor {
    char *name;
    enum rd_dtype dtype;          /* F32, BF16, F16 (other dtypes are refused) */
    int ndim;
    int64_t shape[RD_ST_MAX_DIMS];
    uint64_t begin, end;          /* byte range within the data section */
};

struct rd_safetensors {
    FILE *f;
    char *path;
    uint64_t data_offset;         /* 8 + header length */
    uint64_t file_size;
    int n_tensors;
    struct rd_st_tensor *tensors;
};

/* Opens and validates. err (if not NULL) names the problem. */
rd_status rd_st_open(const char *path, struct rd_safetensors **out, char *err, int err_len);
/* Index of a tensor by name, -1 when absent. */
int rd_st_find(const struct rd_safetensors *st, const char *name);
/* Reads the raw bytes of tensor idx into dst (end - begin bytes). */
rd_status rd_st_read(struct rd_safetensors *st, int idx, void *dst);
void rd_st_close(struct rd_safetensors *st); /* NULL does nothing */

#endif
