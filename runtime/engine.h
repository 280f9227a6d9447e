/* The serving engine: continuous batching of many sequences over the paged KV cache, run by
 * every rank in lockstep, one step at a time. It serves both `ropedist serve` (requests arrive
 * while it runs) and the offline `--prompts` path (all prompts submitted at once).
 *
 * The coordinator (rank 0) owns the scheduler and the block allocator (kv_pool.h). At every
 * step boundary it
 *   1. drops cancelled sequences (their blocks go back to the pool);
 *   2. gives each decoding sequence (oldest first) its next token's place, taking a new block
 *      when the token starts one; when the pool is empty the newest sequence not yet placed in
 *      this step is preempted (its blocks freed; it goes back to the front of the queue and is
 *      recomputed from its prompt and the tokens it already generated, its sampler state
 *      kept, so its output is what it would have been);
 *   3. admits waiting sequences in arrival order while a slot is free and the pool holds the
 *      blocks of everything the sequence must feed (admission control: a sequence that does
 *      not fit waits, and the ones behind it wait too);
 *   4. fills the rest of the step's token budget (--max-batch-tokens) with prefill chunks of
 *      admitted sequences, oldest first;
 * then broadcasts the step's plan (tokens, positions, slots, wanted rows, block-table changes)
 * to every rank in one broadcast, and all ranks run the forward call. Rank 0 gathers what
 * sampling needs (each rank's top-k candidates, or full logits when a sequence asks for
 * top-p, logprobs or logits), samples every finished row with that sequence's own seeded
 * sampler, and reports tokens and ends through callbacks. A sequence's tokens therefore do
 * not depend on what runs beside it.
 *
 * Not for attention sinks (the ring cache is one sequence's). For rope types whose table
 * depends on the sequence length (dynamic NTK, longrope) the caller runs one sequence at a
 * time (max_seqs 1), and the engine gives each prefill the sequence's length. */
#ifndef RD_ENGINE_H
#define RD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/model.h"

/* Per sequence, given at submission. */
struct rd_engine_params {
    int max_tokens;     /* tokens to generate; 0 = prefill only, finishes with LENGTH */
    float temperature;  /* 0 = greedy */
    int top_k;          /* 0 = off */
    float top_p;        /* 1 = off */
    uint64_t seed;
    bool ignore_eos;
    int logprobs;       /* -1: none; N >= 0: the chosen token's logprob and the N best */
    bool keep_logits;   /* on_token gets the full logits row */
};

enum rd_finish {
    RD_FINISH_EOS,       /* an EOS token was generated (it is the last token reported) */
    RD_FINISH_LENGTH,    /* max_tokens reached */
    RD_FINISH_CONTEXT,   /* the sequence filled max_ctx, or the whole pool */
    RD_FINISH_CANCELLED, /* rd_engine_cancel */
};

#define RD_ENGINE_MAX_LOGPROBS 20

struct rd_engine_token {
    int32_t id;
    int index;                 /* 0 for the first generated token */
    float logprob;             /* when logprobs >= 0: log-softmax of the raw logits */
    int n_top;                 /* the logprobs best alternatives, best first */
    int32_t top_ids[RD_ENGINE_MAX_LOGPROBS];
    float top_logprobs[RD_ENGINE_MAX_LOGPROBS];
    const float *logits;       /* (V) when keep_logits, else NULL */
};

struct rd_engine_done {
    enum rd_finish why;
    const int32_t *ids;        /* generated ids (n) */
    int n, n_prompt;
    int preemptions;
    double queue_ms;           /* submission to first admission */
    double prefill_ms;         /* first admission to the first token */
    double decode_ms;          /* first token to the end */
};

/* Callbacks on rank 0, from the thread that runs rd_engine_step. */
struct rd_engine_cb {
    void (*on_token)(void *user, const struct rd_engine_token *t);
    void (*on_finish)(void *user, const struct rd_engine_done *d);
};

/* What /metrics and --verbose show; rank 0. */
struct rd_engine_stats {
    int running, waiting;
    int blocks_used, blocks_free, block_size;
    int64_t preemptions;  /* total */
    int64_t steps;
    int64_t tokens_forwarded;  /* tokens through the model: prompts, recomputes, decode */
    int64_t tokens_generated;  /* tokens sampled */
    double last_step_ms;  /* wall time of the last step */
};

struct rd_engine;

/* Every rank. The model's limits set the slots (max_seqs), the step's token budget
 * (max_tokens, at least max_seqs) and the pool (n_blocks). */
rd_status rd_engine_init(struct rd_engine **out, struct rd_model *m, const struct rd_engine_cb *cb);
void rd_engine_free(struct rd_engine *e);

/* Rank 0: queues a sequence. RD_ERR_INVALID_ARG for bad params, RD_ERR_RANGE for a prompt that
 * is empty, longer than max_ctx, or needs more blocks than the pool has; *why says which. */
rd_status rd_engine_submit(struct rd_engine *e, const int32_t *prompt, int n,
                           const struct rd_engine_params *p, void *user, int64_t *id, char *why,
                           int why_len);
/* Rank 0: the sequence ends at the next step (RD_FINISH_CANCELLED); unknown ids are ignored. */
void rd_engine_cancel(struct rd_engine *e, int64_t id);
/* Rank 0: sequences waiting or running. */
bool rd_engine_busy(const struct rd_engine *e);
void rd_engine_stats(const struct rd_engine *e, struct rd_engine_stats *s);

/* Collective: one step (see above). Rank 0 plans it; the others receive its plan, waiting
 * without spinning while rank 0 has nothing to do. *stopped (non-root) is set when rank 0 sent
 * rd_engine_stop instead of a step. */
rd_status rd_engine_step(struct rd_engine *e, bool *stopped);
/* Rank 0: tells the other ranks (waiting in rd_engine_step) that there are no more steps. */
rd_status rd_engine_stop(struct rd_engine *e);

#endif
