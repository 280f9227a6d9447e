/* The HDF5 checkpoint as a weight source (see weights.h). */
#include "runtime/weights.h"

#include "runtime/ckpt.h"

static rd_status h5_shape(void *ctx, const char *name, int *ndim, int64_t dims[2], char *err,
                          int err_len)
{
    enum rd_dtype dt;
    return rd_ckpt_shape(ctx, name, ndim, dims, &dt, err, err_len);
}

static rd_status h5_read(void *ctx, const char *name, int64_t r0, int64_t nr, int64_t c0,
                         int64_t nc, float *dst, char *err, int err_len)
{
    return rd_ckpt_read_slice(ctx, name, r0, nr, c0, nc, dst, err, err_len);
}

static uint64_t h5_bytes(void *ctx) { return rd_ckpt_bytes_read(ctx); }
static void h5_close(void *ctx) { rd_ckpt_close(ctx); }

rd_status rd_weights_open_h5(const char *path, struct rd_weight_source *src,
                             char **config_json_out, char *err, int err_len)
{
    struct rd_ckpt *ck = NULL;
    RD_TRY(rd_ckpt_open(path, &ck, err, err_len));
    if (config_json_out) {
        rd_status st = rd_ckpt_config_json(ck, config_json_out, err, err_len);
        if (st != RD_OK) {
            rd_ckpt_close(ck);
            return st;
        }
    }
    src->ctx = ck;
    src->shape = h5_shape;
    src->read = h5_read;
    src->bytes_read = h5_bytes;
    src->close = h5_close;
    return RD_OK;
}
