/* Prompts on the coordinator: read from --prompt-ids, --prompts FILE.jsonl or --prompt TEXT
 * (tokenized), checked against the vocabulary and the context, and sent to every rank as one
 * flat int32 message. */
#ifndef RD_PROMPTS_H
#define RD_PROMPTS_H

#include <stdint.h>

#include "parallel/comm.h"
#include "runtime/cli.h"
#include "runtime/config.h"

struct rd_tokenizer;

struct rd_prompts {
    int n;
    int32_t **ids;
    int *len;
    char **text; /* original text when given as text (NULL entries otherwise) */
    int *max_new; /* per prompt ("max_new_tokens" of a --prompts line), -1: --max-new-tokens */
};

/* Rank 0: builds the prompts. tok may be NULL (then text prompts are an error). On failure p
 * is left empty (nothing to free). */
rd_status rd_prompts_read(const struct rd_args *a, const struct rd_config *cfg,
                          const struct rd_tokenizer *tok, int max_ctx, struct rd_prompts *p,
                          char *err, int err_len);
/* Collective: rank 0's prompts (or its failure, ok == false) to every rank. Returns
 * RD_ERR_INVALID_ARG on every rank when rank 0 failed. */
rd_status rd_prompts_bcast(struct rd_comm *c, bool ok, struct rd_prompts *p);
void rd_prompts_free(struct rd_prompts *p);

#endif
