/* Next-token choice on the coordinator: greedy (temperature 0) or sampling with temperature,
 * top-k and top-p, in that order, as Hugging Face's generate applies them. The random stream
 * comes from the seed alone, so the same seed gives the same tokens whatever the tp. */
#ifndef RD_SAMPLER_H
#define RD_SAMPLER_H

#include <stdint.h>

#include "common/status.h"

struct rd_sampler {
    int V;
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    uint64_t state;    /* xoshiro-style state seeded by splitmix64 */
    float *probs;      /* (V) scratch */
    int32_t *order;    /* (V) scratch */
};

rd_status rd_sampler_init(struct rd_sampler *s, int V, float temperature, int top_k, float top_p,
                          uint64_t seed);
void rd_sampler_free(struct rd_sampler *s);
/* Restarts the random stream from seed (each prompt starts from the same seed). */
void rd_sampler_reseed(struct rd_sampler *s, uint64_t seed);
/* Index of the largest logit (the first one on ties, like torch.argmax). */
int rd_sampler_argmax(const float *logits, int V);
/* Chooses the next token from logits[V]. */
int rd_sampler_sample(struct rd_sampler *s, const float *logits);
/* Chooses the next token from n candidates (values descending, ties by smaller id), e.g. the
 * top-k of every rank merged: the same result as rd_sampler_sample on the full logits when the
 * candidates are the top_k best (greedy: n >= 1). Draws the same random numbers. */
int rd_sampler_sample_candidates(struct rd_sampler *s, const float *vals, const int32_t *ids,
                                 int n);
/* Uniform double in [0, 1) from the sampler's stream (exposed for tests). */
double rd_sampler_uniform(struct rd_sampler *s);

#endif
