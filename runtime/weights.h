/* Where a rank's weights come from: an HDF5 checkpoint (runtime/ckpt.h) or a GGUF file.
 * The model loader only asks for a tensor's shape and for a slice of it as fp32, so each
 * format reads just the rows or columns the rank owns. */
#ifndef RD_WEIGHTS_H
#define RD_WEIGHTS_H

#include <stdint.h>

#include "common/status.h"

struct rd_weight_source {
    void *ctx;
    /* shape of a tensor by Hugging Face name; RD_ERR_FORMAT (err names it) when absent */
    rd_status (*shape)(void *ctx, const char *name, int *ndim, int64_t dims[2], char *err,
                       int err_len);
    /* rows [r0, r0+nr) x cols [c0, c0+nc) as fp32 row-major (1-D: r0 = 0, nr = 1) */
    rd_status (*read)(void *ctx, const char *name, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      float *dst, char *err, int err_len);
    uint64_t (*bytes_read)(void *ctx);
    void (*close)(void *ctx);
};

/* Opens an HDF5 checkpoint as a weight source; config_json_out (optional) gets the stored
 * config (malloc'd). */
rd_status rd_weights_open_h5(const char *path, struct rd_weight_source *src,
                             char **config_json_out, char *err, int err_len);

#endif
