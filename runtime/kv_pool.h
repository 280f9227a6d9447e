/* The paged KV cache's allocator, on the coordinator: a pool of fixed-size blocks handed to
 * sequence slots as they grow and returned when they end (vLLM's PagedAttention block
 * manager, without prefix sharing). It only does the bookkeeping; the blocks themselves are
 * the model's cache (model.h), and every assignment it makes is recorded as a (slot, logical
 * block, physical block) triple that the caller forwards to every rank's block table.
 *
 * Free blocks are a stack that starts as 0, 1, 2, ...: a fresh pool hands out low ids first,
 * and a block freed last is reused first. */
#ifndef RD_KV_POOL_H
#define RD_KV_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

struct rd_kv_pool {
    int n_blocks, block_size, max_seqs, max_blocks;
    int32_t *free_ids; /* (n_blocks) stack; free_ids[0, n_free) are free */
    int n_free;
    int32_t *owned;    /* (max_seqs, max_blocks) physical blocks of each slot, in logical order */
    int *n_owned;      /* (max_seqs) */
};

rd_status rd_kv_pool_init(struct rd_kv_pool *p, int n_blocks, int block_size, int max_seqs,
                          int max_blocks);
void rd_kv_pool_free(struct rd_kv_pool *p);

/* Blocks that n_tokens tokens occupy. */
int rd_kv_pool_blocks_for(const struct rd_kv_pool *p, int n_tokens);

/* Gives slot enough blocks for n_tokens tokens. When the pool has too few free blocks (or
 * n_tokens exceeds max_blocks blocks) nothing is taken and false is returned. Each new block
 * appends (slot, logical index, physical id) to upd (3 int32 each) and counts in *n_upd. */
bool rd_kv_pool_grow(struct rd_kv_pool *p, int slot, int n_tokens, int32_t *upd, int *n_upd);

/* Returns every block of slot to the pool. */
void rd_kv_pool_release(struct rd_kv_pool *p, int slot);

static inline int rd_kv_pool_used(const struct rd_kv_pool *p) { return p->n_blocks - p->n_free; }

#endif
