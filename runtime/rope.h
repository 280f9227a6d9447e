/* The rotation table: built on the host from the config by this one function, shared by
 * both backends. Kernels only rotate with it.
 *
 * For a rotated pair i (0 <= i < rotary_dim/2) at position p the angle is p * inv_freq[i];
 * the kernel multiplies cos and sin by attention_factor (as transformers does), so q.k picks
 * up attention_factor^2 for yarn/longrope. Types whose frequencies depend on the sequence
 * length (dynamic NTK, longrope) are rebuilt by the runtime before each forward call with
 * seq_len = the largest position in the call + 1, as transformers does; keys already in the
 * cache are not re-rotated. */
#ifndef RD_ROPE_H
#define RD_ROPE_H

#include "kernels/rope_table.h"
#include "runtime/config.h"

/* seq_len: the sequence length the forward call reaches (max position + 1). Fills table.
 * Fails with RD_ERR_UNSUPPORTED for a rope_type outside the README's table. Computation is
 * done in double and rounded once to float, matching transformers' float32 results to ~1e-7. */
rd_status rd_rope_build(const struct rd_config *cfg, int seq_len, struct rd_rope_table *table);

/* True when the table depends on seq_len (so it must be rebuilt as the sequence grows). */
int rd_rope_depends_on_len(const struct rd_config *cfg);

#endif
