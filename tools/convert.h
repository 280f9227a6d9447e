/* What the two halves of ropedist-convert share: the list of tensors a Llama model needs, the
 * Hugging Face folder reader (tools/convert_hf.c) and the check that the output is none of the
 * files the conversion reads. */
#ifndef RD_CONVERT_H
#define RD_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "runtime/safetensors.h"

#define RD_CONV_PROG "ropedist-convert"
#define RD_CONV_NAME_LEN 160

/* One tensor the model needs: name, shape from the config, whether it is a norm weight. */
struct rd_conv_want {
    char name[RD_CONV_NAME_LEN];
    int ndim;
    int64_t dims[2];
    bool norm;
    int shard, idx; /* where it is in the Hugging Face files */
};

/* The safetensors files of a Hugging Face folder, opened. */
struct rd_conv_hf {
    int n_shards;
    struct rd_safetensors **shards;
    char **shard_names; /* as named in the folder (or its index) */
    char *index_path;   /* model.safetensors.index.json when the folder has one, else NULL */
};

/* "ropedist-convert: error: ..." on stderr. */
void rd_conv_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A whole file as a NUL-terminated string (malloc'd), *len its length; NULL on error. */
char *rd_conv_read_text(const char *path, size_t *len);

/* Opens the safetensors files of dir and finds every wanted tensor, checking shapes; tensors
 * the model does not use are noted (biases refused). Failures are reported. */
rd_status rd_conv_hf_open(struct rd_conv_hf *h, const char *dir, struct rd_conv_want *want,
                          int n_want, bool tied);
void rd_conv_hf_close(struct rd_conv_hf *h);

/* Whether output names one of the n files in inputs: the same file (st_dev/st_ino, so links
 * and hard links count) or, when output does not exist yet, the same path once its folder is
 * resolved. On a match the input is reported and true returned. */
bool rd_conv_output_is_input(const char *output, const char *const *inputs, int n);

#endif
