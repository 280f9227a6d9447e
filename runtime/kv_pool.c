/* The KV block allocator (see kv_pool.h). */
#include "runtime/kv_pool.h"

#include <stdlib.h>
#include <string.h>

rd_status rd_kv_pool_init(struct rd_kv_pool *p, int n_blocks, int block_size, int max_seqs,
                          int max_blocks)
{
    memset(p, 0, sizeof *p);
    if (n_blocks < 1 || block_size < 1 || max_seqs < 1 || max_blocks < 1) return RD_ERR_INVALID_ARG;
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->max_seqs = max_seqs;
    p->max_blocks = max_blocks;
    p->free_ids = malloc((size_t)n_blocks * sizeof(int32_t));
    p->owned = malloc((size_t)max_seqs * max_blocks * sizeof(int32_t));
    p->n_owned = calloc((size_t)max_seqs, sizeof(int));
    if (!p->free_ids || !p->owned || !p->n_owned) {
        rd_kv_pool_free(p);
        return RD_ERR_OOM;
    }
    /* the top of the stack is the end of the array: push n-1 .. 0 so 0 comes out first */
    for (int i = 0; i < n_blocks; i++) p->free_ids[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    return RD_OK;
}

void rd_kv_pool_free(struct rd_kv_pool *p)
{
    if (!p) return;
    free(p->free_ids);
    free(p->owned);
    free(p->n_owned);
    memset(p, 0, sizeof *p);
}

int rd_kv_pool_blocks_for(const struct rd_kv_pool *p, int n_tokens)
{
    return n_tokens <= 0 ? 0 : (n_tokens + p->block_size - 1) / p->block_size;
}

bool rd_kv_pool_grow(struct rd_kv_pool *p, int slot, int n_tokens, int32_t *upd, int *n_upd)
{
    const int want = rd_kv_pool_blocks_for(p, n_tokens);
    const int have = p->n_owned[slot];
    if (want <= have) return true;
    if (want > p->max_blocks || want - have > p->n_free) return false;
    for (int j = have; j < want; j++) {
        int32_t b = p->free_ids[--p->n_free];
        p->owned[(size_t)slot * p->max_blocks + j] = b;
        if (upd) {
            int32_t *u = upd + 3 * (*n_upd)++;
            u[0] = slot;
            u[1] = j;
            u[2] = b;
        }
    }
    p->n_owned[slot] = want;
    return true;
}

void rd_kv_pool_release(struct rd_kv_pool *p, int slot)
{
    const int32_t *own = p->owned + (size_t)slot * p->max_blocks;
    /* pushed in reverse so the slot's first block is the next one handed out */
    for (int j = p->n_owned[slot] - 1; j >= 0; j--) p->free_ids[p->n_free++] = own[j];
    p->n_owned[slot] = 0;
}
