/* Synthetic weights of any Llama shape, generated on the fly from a seed, as a weight source
 * (runtime/weights.h): the benchmarks run the 8B or 70B shapes without a 16-140 GB file.
 *
 * Every element is a pure function of (seed, tensor name, row, column of the FULL tensor), a
 * counter-based hash, so any slice of any rank reads the same values as the whole tensor would:
 * tp=1 and tp=P runs of one seed are the same model. Projections and embeddings are uniform in
 * [-scale, scale] (scale 0.02 by default, HF's initializer_range); norm weights are
 * 1 +- scale. Large reads are split over threads (RD_RANDOM_THREADS, default: online cores, at
 * most 32), about 1 ns per element per core. */
#ifndef RD_WEIGHTS_RANDOM_H
#define RD_WEIGHTS_RANDOM_H

#include <stdint.h>

#include "common/status.h"
#include "runtime/config.h"
#include "runtime/weights.h"

/* Opens a synthetic source for cfg (the config is copied). scale <= 0 means 0.02. Tensor
 * names and shapes are Hugging Face's; a name the config does not imply is RD_ERR_FORMAT. */
rd_status rd_weights_open_random(const struct rd_config *cfg, uint64_t seed, float scale,
                                 struct rd_weight_source *src, char *err, int err_len);

/* The value the source gives element (r, c) of tensor name (exposed for tests). */
float rd_weights_random_value(uint64_t seed, const char *name, float scale, int64_t r, int64_t c,
                              int64_t cols);

#endif
