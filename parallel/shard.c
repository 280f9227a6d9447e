/* Shard math (see shard.h). */
#include "parallel/shard.h"

#include <stdio.h>

static void range(int n, int tp, int r, int *start, int *count)
{
    long a = (long)n * r / tp, b = (long)n * (r + 1) / tp;
    *start = (int)a;
    *count = (int)(b - a);
}

rd_status rd_shard_compute(int H, int Hkv, int F, int V, int tp, int r, struct rd_shard *s,
                           char *err, int err_len)
{
    if (tp < 1 || r < 0 || r >= tp) {
        snprintf(err, err_len, "invalid tensor-parallel size %d / rank %d", tp, r);
        return RD_ERR_INVALID_ARG;
    }
    if (H < 1 || Hkv < 1 || H % Hkv != 0) {
        snprintf(err, err_len,
                 "num_attention_heads (%d) must be a positive multiple of num_key_value_heads (%d)",
                 H, Hkv);
        return RD_ERR_CONFIG;
    }
    if (H % tp != 0) {
        snprintf(err, err_len,
                 "tensor parallelism %d does not divide num_attention_heads %d: run with a number "
                 "of ranks that divides %d",
                 tp, H, H);
        return RD_ERR_CONFIG;
    }
    if (tp <= Hkv ? Hkv % tp != 0 : tp % Hkv != 0) {
        snprintf(err, err_len,
                 "tensor parallelism %d does not fit num_key_value_heads %d: tp must divide the "
                 "kv heads, or be a multiple of them (kv heads are then replicated)",
                 tp, Hkv);
        return RD_ERR_CONFIG;
    }
    if (F < tp || V < tp) {
        snprintf(err, err_len, "tensor parallelism %d exceeds intermediate_size %d or vocab_size %d",
                 tp, F, V);
        return RD_ERR_CONFIG;
    }
    s->tp = tp;
    s->rank = r;
    s->h_local = H / tp;
    s->h0 = r * s->h_local;
    if (tp <= Hkv) {
        s->kv_local = Hkv / tp;
        s->kv0 = r * s->kv_local;
    } else {
        s->kv_local = 1;
        s->kv0 = r / (tp / Hkv);
    }
    range(F, tp, r, &s->f0, &s->f_local);
    range(V, tp, r, &s->v0, &s->v_local);
    return RD_OK;
}
