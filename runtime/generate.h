/* The generation loop, run by every rank in lockstep: prefill of the prompt in chunks, then
 * one token per step. Rank 0 (the coordinator) gathers the vocab-parallel logits, samples,
 * decides when to stop and broadcasts the token and the decision; the other ranks follow. */
#ifndef RD_GENERATE_H
#define RD_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/model.h"
#include "runtime/sampler.h"

struct rd_gen_opts {
    int max_new_tokens;
    bool ignore_eos;
    bool keep_logits;   /* rank 0 keeps the full logits of every generated step */
    int sink_tokens;    /* attention sinks (0 = off) */
    int window;         /* attention window W in tokens (0 = off: the cache holds everything) */
};

struct rd_gen_result {
    int32_t *ids;          /* generated ids (rank 0), malloc'd */
    int n;
    float *logits;         /* (n, V) when keep_logits (rank 0), malloc'd */
    double prefill_ms, decode_ms;
    const char *finish_reason; /* "eos", "length" (max_new_tokens) or "context" (cache full) */
};

/* Called on rank 0 for every generated token as soon as it is chosen. */
typedef void (*rd_token_cb)(void *ctx, int32_t id);

/* Collective. prompt/n_prompt must be the same on every rank; sampler is used on rank 0. */
rd_status rd_generate(struct rd_model *m, const int32_t *prompt, int n_prompt,
                      const struct rd_gen_opts *opts, struct rd_sampler *sampler, rd_token_cb cb,
                      void *cb_ctx, struct rd_gen_result *res);
void rd_gen_result_free(struct rd_gen_result *r);

/* ---- shared by the generation loops (generate.c, batch.c) ---- */

#define RD_GEN_MAX_CAND 64 /* largest k of per-rank sampling candidates */
#define RD_GEN_MAX_RANKS 64 /* candidates are used up to this many ranks */

double rd_gen_now_ms(void);
bool rd_gen_is_eos(const struct rd_config *c, int32_t id);
/* Rank 0: of n gathered candidates (every rank's k best; id -1 is padding), the k best sorted by
 * value (descending), then id (ascending), into vals/ids. Returns how many are valid. */
int rd_gen_merge_candidates(const float *v, const int32_t *id, int n, int k, float *vals,
                            int32_t *ids);

#endif
