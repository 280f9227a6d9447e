/* Llama models from llama.cpp GGUF files: the config from the llama.* metadata, and the file
 * as a weight source that maps Hugging Face tensor names to GGUF ones and reads each rank's
 * slice (F32, F16 and BF16 directly; Q8_0 dequantized at load).
 *
 * GGUF llama files keep the q/k projection rows in Meta's original interleaved order, so the
 * config gets rope_style gptj (rotate adjacent pairs) and the weights are used as stored. */
#ifndef RD_GGUF_MODEL_H
#define RD_GGUF_MODEL_H

#include "runtime/config.h"
#include "runtime/gguf.h"
#include "runtime/weights.h"

/* Config from metadata (general.architecture must be "llama"). */
rd_status rd_gguf_model_config(const struct rd_gguf *g, struct rd_config *cfg, char *err,
                               int err_len);
/* Opens path and fills cfg from it (the checkpoint path is set to path itself). */
rd_status rd_gguf_model_load_config(const char *path, struct rd_config *cfg, char *err,
                                    int err_len);
/* Opens path as a weight source with Hugging Face tensor names. */
rd_status rd_weights_open_gguf(const char *path, struct rd_weight_source *src, char *err,
                               int err_len);
/* The GGUF name of a Hugging Face tensor name ("model.layers.3.mlp.up_proj.weight" ->
 * "blk.3.ffn_up.weight"); false when the name has no GGUF counterpart. */
bool rd_gguf_model_tensor_name(const char *hf, char *out, size_t n);

#endif
