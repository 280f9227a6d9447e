/* The rope_attention entry of the cuda backend: checks the call and picks the path.
 *
 *   decode  (T <= RD_ATTN_DECODE_MAX_T, default 64): one fused launch (+ a split-K merge
 *           for long contexts), attn_decode.cu;
 *   prefill (larger T): kv store (attn_prefill.cu), then attention on tensor cores for
 *           bf16/fp16 (attn_prefill_mma.cu) or the scalar tiled kernel (fp32, attention
 *           sinks, head dims whose rows are not 16-byte multiples; attn_prefill.cu).
 *
 * Both paths are correct for any call (several tokens per sequence, flat batches of several
 * sequences, chunked prefill); the choice is only about speed. RD_ATTN_PATH=decode|prefill
 * forces one (the decode path still needs T <= 64), which the gpu tests use to run every case
 * through both kernels, and RD_ATTN_PATH=prefill_scalar the scalar prefill kernel;
 * RD_ATTN_SPLITS=N forces the decode split count. Both paths implement
 * attention sinks (window > 0: keys stored unrotated, rotated when read; see ops.h).
 *
 * Dimension legend: T tokens, H / Hkv heads, Dh head dim. */
#include <string.h>

#include "kernels/cuda/attn_common.cuh"

extern "C" rd_status rd_cuda_rope_attention(struct rd_backend *be, const struct rd_attn_params *p)
{
    if (p->T <= 0) return RD_OK;
    RD_REQUIRE(p->H > 0 && p->Hkv > 0 && p->H % p->Hkv == 0, RD_ERR_INVALID_ARG,
               "rope_attention: H must be a positive multiple of Hkv");
    RD_REQUIRE(p->Dh > 0 && p->Dh <= ATTN_MAX_DH, RD_ERR_UNSUPPORTED,
               "rope_attention: head dim must be in [1, 256]");
    RD_REQUIRE(p->rotary_dim >= 0 && p->rotary_dim % 2 == 0 && p->rotary_dim <= p->Dh &&
                   p->rotary_dim / 2 <= RD_MAX_ROPE_PAIRS,
               RD_ERR_INVALID_ARG, "rope_attention: rotary_dim must be even and <= Dh");
    RD_REQUIRE(p->rotary_dim == 0 || p->inv_freq_d, RD_ERR_INVALID_ARG,
               "rope_attention: inv_freq_d is NULL");
    RD_REQUIRE(p->block_size > 0 && p->max_blocks > 0, RD_ERR_INVALID_ARG,
               "rope_attention: block_size and max_blocks must be positive");
    RD_REQUIRE(p->window == 0 || (p->window > 0 && p->sink_tokens >= 0 &&
                                  p->sink_tokens < p->window),
               RD_ERR_INVALID_ARG, "rope_attention: need 0 <= sink_tokens < window (or window 0)");
    RD_REQUIRE(p->qkv_d && p->out_d && p->pos_d && p->seq_d && p->slot_d && p->n_ctx_d &&
                   p->block_table_d && p->k_cache_d && p->v_cache_d,
               RD_ERR_INVALID_ARG, "rope_attention: a buffer is NULL");

    const char *path = rd_env_str("RD_ATTN_PATH", "auto");
    int decode_max = rd_env_int("RD_ATTN_DECODE_MAX_T", ATTN_DECODE_MAX_T);
    if (decode_max > ATTN_DECODE_MAX_T) decode_max = ATTN_DECODE_MAX_T;
    bool decode = p->T <= decode_max;
    const bool scalar = !strcmp(path, "prefill_scalar");
    if (!strcmp(path, "decode")) decode = p->T <= ATTN_DECODE_MAX_T;
    else if (!strcmp(path, "prefill") || scalar) decode = false;
    return decode ? rd_attn_decode(be, *p) : rd_attn_prefill(be, *p, !scalar);
}
