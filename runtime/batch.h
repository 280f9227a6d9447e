/* Many prompts at once: continuous batching over the model's sequence slots. Every step builds
 * one flat batch out of one new token of each decoding sequence plus prompt chunks of sequences
 * still in prefill (up to the model's tokens per call); a sequence that ends frees its slot for
 * the next prompt at once. Run by every rank in lockstep, like rd_generate; rank 0 samples every
 * sequence with its own sampler, seeded afresh per prompt, so a prompt's tokens do not depend on
 * what else runs beside it.
 *
 * Not for rope types whose table depends on the sequence length (dynamic NTK, longrope: one table
 * per call cannot serve sequences of different lengths) nor for attention sinks; the caller runs
 * those one prompt at a time. */
#ifndef RD_BATCH_H
#define RD_BATCH_H

#include "runtime/generate.h"

struct rd_sampling {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
};

/* Called on rank 0 when prompt `index` has finished; res is freed after the call. */
typedef void (*rd_done_cb)(void *ctx, int index, const struct rd_gen_result *res);

/* Collective. prompts/lens the same on every rank. */
rd_status rd_generate_many(struct rd_model *m, int n_prompts, int32_t *const *prompts,
                           const int *lens, const struct rd_gen_opts *opts,
                           const struct rd_sampling *sp, rd_done_cb done, void *ctx);

#endif
