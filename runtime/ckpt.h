/* ropedist checkpoints: one HDF5 file.
 *
 * Root attributes: "ropedist_format" (integer version, RD_CKPT_FORMAT) and "config" (the
 * model config as a JSON string). Tensors keep Hugging Face names and layouts
 * ("model.layers.0.self_attn.q_proj.weight" is [out_features, in_features]) and are stored
 * as datasets in groups by their dotted path (/model/layers/0/self_attn/q_proj/weight).
 * fp32 is stored as native float; bf16 and fp16 as 16-bit unsigned integers with a string
 * attribute "dtype" ("bf16" / "fp16"). Readers take hyperslabs, so each rank reads only its
 * own rows or columns. HDF5's own error printing is off; its errors come back as
 * RD_ERR_HDF5 with a message naming the file and tensor. */
#ifndef RD_CKPT_H
#define RD_CKPT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"

#define RD_CKPT_FORMAT 1

struct rd_ckpt;

rd_status rd_ckpt_open(const char *path, struct rd_ckpt **out, char *err, int err_len);
void rd_ckpt_close(struct rd_ckpt *ck); /* NULL does nothing */
/* The config JSON stored in the file (malloc'd, caller frees). A file without a string
 * "config" attribute is RD_ERR_FORMAT with a message naming the file and the attribute. */
rd_status rd_ckpt_config_json(struct rd_ckpt *ck, char **json_out, char *err, int err_len);
/* Shape of a tensor; RD_ERR_FORMAT with a message naming it when absent. ndim <= 2. */
rd_status rd_ckpt_shape(struct rd_ckpt *ck, const char *name, int *ndim, int64_t dims[2],
                        enum rd_dtype *dtype, char *err, int err_len);
/* Reads rows [row0, row0+nrows) x cols [col0, col0+ncols) of a 2-D tensor (for a 1-D tensor
 * use row0 = 0, nrows = 1 and the element range as columns) into dst as fp32, row-major
 * [nrows, ncols]. */
rd_status rd_ckpt_read_slice(struct rd_ckpt *ck, const char *name, int64_t row0, int64_t nrows,
                             int64_t col0, int64_t ncols, float *dst, char *err, int err_len);
/* Bytes that read_slice calls have read from the file so far (for --verbose). */
uint64_t rd_ckpt_bytes_read(const struct rd_ckpt *ck);

struct rd_ckpt_writer;

/* Creates path (writing to "path.tmp.<pid>" and renaming at finish). An existing path is
 * RD_ERR_EXISTS unless force. */
rd_status rd_ckpt_create(const char *path, bool force, const char *config_json,
                         struct rd_ckpt_writer **out, char *err, int err_len);
/* data is ndim-dimensional (1 or 2) in dtype; stored as dtype. On failure the message
 * naming the file and tensor is in rd_ckpt_writer_error(w). */
rd_status rd_ckpt_write(struct rd_ckpt_writer *w, const char *name, int ndim,
                        const int64_t *dims, enum rd_dtype dtype, const void *data);
/* Message of the last failed rd_ckpt_write ("" when none); owned by w. */
const char *rd_ckpt_writer_error(const struct rd_ckpt_writer *w);
/* Closes and renames into place; on failure removes the temporary file. */
rd_status rd_ckpt_finish(struct rd_ckpt_writer *w, char *err, int err_len);
void rd_ckpt_abort(struct rd_ckpt_writer *w); /* removes the temporary file; NULL ok */

#endif
