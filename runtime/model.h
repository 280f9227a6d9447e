/* The Llama model of one tensor-parallel rank: its weight shards, its KV cache, its
 * activation buffers, and the forward pass (the layer loop), written once against the backend
 * table (kernels/ops.h).
 *
 * Per layer: h = rmsnorm(x); qkv = h @ Wqkv^T (q, k, v of the rank's heads in one GEMM);
 * fused RoPE attention (rotate, append k/v to the cache, attend); partial o_proj; all-reduce;
 * x += o, h = rmsnorm(x) (fused); gate|up in one GEMM; swiglu; partial down_proj; all-reduce.
 * After the last layer: final norm and the rank's vocab rows of the LM head.
 *
 * Everything is allocated once by rd_model_init from the config and the limits (max tokens
 * per call, sequence slots, context per sequence); the forward pass never allocates.
 *
 * Graphs (on a backend with graph ops, i.e. cuda, unless RD_CUDA_GRAPHS=0, and no on_op hook
 * set): a decode-shaped call (1 <= T <= RD_MODEL_GRAPH_MAX_T tokens, all of them wanted,
 * n_out == T) uploads its batch arrays as usual, then replays a graph of the layer loop and
 * the LM head recorded for its shape instead of enqueueing the ops one by one. The shape is
 * what the graph freezes besides buffer pointers: T, out_idx, the rope attention factor and
 * the context bound given to attention (max_ctx: the call's largest n_ctx rounded up to a
 * power of two, at least RD_MODEL_GRAPH_MIN_CTX, at most lim.max_ctx; the kernels read the
 * true n_ctx from device memory). So a generation records one graph per power of two of
 * context it passes through. The first call of a shape runs eagerly as a warm-up (lazy
 * initialisation in cuBLAS, NCCL and module loading stays out of the recording), the second
 * records and replays; later ones replay. Above 512 tokens of context the rounded bound may
 * split decode attention differently from an eager call (logits may then differ in the last
 * bits; below, results are the eager ones). Graphs are dropped by rd_model_resize_cache and
 * rd_model_free. A recording that fails ends the call with an error (RD_CUDA_GRAPHS=0 runs
 * eagerly). */
#ifndef RD_MODEL_H
#define RD_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "parallel/comm.h"
#include "parallel/shard.h"
#include "runtime/config.h"
#include "runtime/rope.h"
#include "runtime/weights.h"

struct rd_layer_weights {
    void *attn_norm_d; /* (D) */
    void *wqkv_d;      /* (H_local*Dh + 2*Hkv_local*Dh, D): q rows, then k rows, then v rows */
    void *wo_d;        /* (D, H_local*Dh): the rank's columns of o_proj */
    void *mlp_norm_d;  /* (D) */
    void *wgu_d;       /* (2*F_local, D): gate rows, then up rows */
    void *wdown_d;     /* (D, F_local): the rank's columns of down_proj */
};

struct rd_model_limits {
    int max_tokens;   /* new tokens per forward call (prefill chunk) */
    int max_seqs;     /* sequence slots */
    int max_ctx;      /* tokens of cache per sequence */
    int block_size;   /* tokens per KV block */
    int n_blocks;     /* blocks in the KV pool; 0 = max_seqs * ceil(max_ctx / block_size), i.e.
                       * every slot can hold max_ctx tokens */
    int sink_tokens;  /* attention sinks: S first tokens kept ... */
    int window;       /* ... plus the last W - S; 0 = off (max_ctx must then equal W) */
};

/* The steps of one forward call, in the order they are enqueued, for the on_op hook. HOST_IN
 * and HOST_OUT are the host transfers (batch arrays and rope table up; logits or top-k down);
 * LM_HEAD includes the gather of the wanted rows; ALLREDUCE comes twice per layer (after
 * O_PROJ and after DOWN), as does ADD_RMSNORM (the second one applies the next layer's
 * attn_norm, or the final norm after the last layer). */
enum rd_model_op {
    RD_MODEL_OP_HOST_IN,
    RD_MODEL_OP_EMBED,
    RD_MODEL_OP_RMSNORM,
    RD_MODEL_OP_QKV,
    RD_MODEL_OP_ATTENTION,
    RD_MODEL_OP_O_PROJ,
    RD_MODEL_OP_ALLREDUCE,
    RD_MODEL_OP_ADD_RMSNORM,
    RD_MODEL_OP_GATE_UP,
    RD_MODEL_OP_SWIGLU,
    RD_MODEL_OP_DOWN,
    RD_MODEL_OP_LM_HEAD,
    RD_MODEL_OP_HOST_OUT,
    RD_MODEL_OP_COUNT
};

/* decode-shaped calls that may replay a graph: T <= RD_MODEL_GRAPH_MAX_T, at most
 * RD_MODEL_GRAPHS shapes per model (later shapes run eagerly) */
#define RD_MODEL_GRAPH_MAX_T 8
#define RD_MODEL_GRAPHS 64
#define RD_MODEL_GRAPH_MIN_CTX 256

/* one recorded shape of a decode-shaped forward call */
struct rd_model_graph {
    int T;                                 /* tokens = wanted rows (n_out == T) */
    int32_t out_idx[RD_MODEL_GRAPH_MAX_T]; /* the wanted rows, in order */
    float attention_factor;                /* rope scalar frozen in the graph */
    int max_ctx;                           /* attention's context bound frozen in the graph */
    int calls;                             /* calls of this shape so far (1st = eager warm-up) */
    void *graph;                           /* backend graph, NULL until recorded */
};

struct rd_model {
    struct rd_config cfg;
    struct rd_shard shard;
    struct rd_model_limits lim;
    struct rd_backend *be;
    struct rd_comm *comm;
    int D, Dh, H_local, Hkv_local, F_local, V_local, qkv_n;
    int *v_counts;     /* (tp) vocab rows of every rank, for gathering logits on rank 0 */

    void *embed_d;     /* (V, D) full table on every rank */
    struct rd_layer_weights *layers;
    void *final_norm_d; /* (D) */
    void *lm_head_d;   /* (V_local, D): rows [v0, v0+V_local) of lm_head (or embed when tied) */
    uint64_t weight_bytes; /* bytes of weights this rank holds */
    uint64_t file_bytes;   /* bytes this rank read from the checkpoint */
    uint64_t kv_bytes;     /* bytes of this rank's KV cache (all layers, k and v) */

    /* KV cache: a pool of n_blocks blocks, per layer [n_blocks, B, Hkv_local, Dh]. Sequence
     * slot s reads logical block j (tokens [j*B, (j+1)*B)) from physical block
     * block_table[s][j]. Until a caller assigns blocks (rd_model_set_block, as the paged
     * scheduler of engine.h does), entry (s, j) is block (s * max_blocks + j) mod n_blocks:
     * each slot its own contiguous blocks when the pool holds every slot's full context. */
    int n_blocks, max_blocks;
    uint64_t kv_block_bytes; /* bytes of one block on this rank (all layers, k and v) */
    void **k_cache_d, **v_cache_d;
    int32_t *block_table_h; /* (max_seqs, max_blocks) */
    int32_t *block_table_d;
    int table_dirty_lo, table_dirty_hi; /* entries changed since the last upload, [lo, hi) */

    /* activations, [max_tokens, ...] */
    void *x_d, *h_d, *qkv_d, *attn_d, *proj_d, *gu_d, *act_d, *logits_d;
    /* a call's metadata, packed: ids, pos, seq, slot, n_ctx, each T long, one after another
     * (5 * max_tokens); one upload per call from meta_h, its host twin */
    int32_t *meta_d, *meta_h;
    float *inv_freq_d;
    struct rd_rope_table rope;
    int rope_built_len; /* seq_len the device table was built for; -1 = never */
    float *logits_h;    /* (max_tokens, V_local) staging for downloads */

    /* Hook called after each op of a forward call is enqueued (HOST_IN / HOST_OUT: after the
     * transfers are issued), with the layer for per-layer ops and -1 otherwise. A
     * status other than RD_OK ends the forward call with that status. NULL (as rd_model_init
     * leaves it) = off; the benchmarks use it to mark the clock between ops. */
    rd_status (*on_op)(void *ctx, enum rd_model_op op, int layer);
    void *on_op_ctx;

    /* graphs of decode-shaped calls (see above); use_graphs is set by rd_model_init from
     * the backend's graph ops (unless RD_CUDA_GRAPHS=0), and may be cleared by the caller */
    bool use_graphs;
    int n_graphs;
    struct rd_model_graph graphs[RD_MODEL_GRAPHS];
};

/* Loads the rank's shard. cfg must be validated; err names a missing/misshaped tensor. */
rd_status rd_model_init(struct rd_model *m, const struct rd_config *cfg,
                        const struct rd_shard *shard, const struct rd_model_limits *lim,
                        struct rd_backend *be, struct rd_comm *comm,
                        struct rd_weight_source *src, char *err, int err_len);
void rd_model_free(struct rd_model *m);

/* Re-sizes the KV cache to seqs slots of ctx tokens each (lim.max_seqs, lim.max_ctx and
 * kv_bytes follow); the cache contents are undefined afterwards, so every sequence starts
 * again. With a window (lim.window > 0) ctx must equal it. On failure the model keeps no
 * cache (max_seqs 0: every forward call is refused) until a later resize succeeds. */
rd_status rd_model_resize_cache(struct rd_model *m, int seqs, int ctx);
/* Re-sizes the KV pool to n_blocks blocks, keeping the slots and the context (lim.n_blocks
 * follows); the same rules as rd_model_resize_cache. */
rd_status rd_model_resize_pool(struct rd_model *m, int n_blocks);

/* Bytes of one KV block on a rank (all layers, k and v) for this config and shard, before
 * rd_model_init: how many blocks a memory budget holds. */
uint64_t rd_model_kv_block_bytes(const struct rd_config *cfg, const struct rd_shard *shard,
                                 int block_size, enum rd_dtype dtype);

/* Maps logical block j of sequence slot seq to physical block phys (host table; uploaded with
 * the next forward call). RD_ERR_RANGE when out of bounds. */
rd_status rd_model_set_block(struct rd_model *m, int seq, int j, int32_t phys);

/* One forward call over a flat batch of T new tokens: ids, rope positions, sequence slots,
 * cache slots and attended context lengths per token (host arrays). For the n_out token
 * indices out_idx, the rank's local logits (n_out, V_local) are written to logits_local_h. */
struct rd_batch {
    int T;
    const int32_t *ids, *pos, *seq, *slot, *n_ctx;
    int n_out;
    const int32_t *out_idx;
    /* sequence length the rope table is built for when it depends on it (dynamic NTK,
     * longrope); 0 or less than max(pos) + 1: max(pos) + 1. A prefill split into several
     * calls gives every call the prompt's length, as one unsplit call would have. */
    int rope_len;
};
rd_status rd_model_forward(struct rd_model *m, const struct rd_batch *b, float *logits_local_h);
/* The same forward, but only each wanted token's k best local logits and their global ids
 * (vocab offset added) reach the host: (n_out, k) values (descending) and ids. */
rd_status rd_model_forward_topk(struct rd_model *m, const struct rd_batch *b, int k, float *vals_h,
                                int32_t *ids_h);

#endif
