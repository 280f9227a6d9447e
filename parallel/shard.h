/* Shard math (Megatron style): which heads, kv heads, ffn columns and vocab rows rank r of a
 * tp-way group owns.
 *
 *  - q heads: [r*H/tp, (r+1)*H/tp); H % tp == 0 is required.
 *  - kv heads: split like q heads when tp <= Hkv (Hkv % tp == 0 required); when tp > Hkv each
 *    kv head is replicated on tp/Hkv ranks (tp % Hkv == 0 required) and rank r owns kv head
 *    r / (tp/Hkv).
 *  - ffn columns and vocab rows: balanced contiguous ranges [r*N/tp, (r+1)*N/tp). */
#ifndef RD_SHARD_H
#define RD_SHARD_H

#include "common/status.h"

struct rd_shard {
    int tp, rank;
    int h0, h_local;    /* q heads */
    int kv0, kv_local;  /* kv heads */
    int f0, f_local;    /* ffn columns */
    int v0, v_local;    /* vocab rows of the LM head */
};

/* err names the rule that failed ("num_attention_heads (6) is not divisible by tp (4)"). */
rd_status rd_shard_compute(int n_heads, int n_kv_heads, int ffn, int vocab, int tp, int rank,
                           struct rd_shard *s, char *err, int err_len);

#endif
