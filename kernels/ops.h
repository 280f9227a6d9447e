/* The backend interface: one table of function pointers per backend (cpu, cuda).
 *
 * runtime/model.c is written once against this table and never branches on the backend.
 * A new op is added here, then to both backends, then tested cuda-vs-cpu.
 *
 * Buffers ("_d" pointers) belong to the backend: host memory for cpu, device memory for cuda.
 * Activations, weights and the KV cache are in the backend's dtype (be->dtype: fp32 on cpu;
 * fp32, bf16 or fp16 on cuda); accumulation and softmax are fp32 everywhere. Integer metadata
 * (token ids, positions, block tables) is int32. Every op is asynchronous on the backend's one
 * compute stream; download/sync wait for it.
 *
 * Dimension legend: T new tokens in a call, D hidden size, H / Hkv query / kv heads of this
 * rank, Dh head dim, F ffn columns of this rank, V vocab rows, S sequence slots, B block size
 * (tokens per KV block). Matrices are row-major; weights keep Hugging Face's [out, in]. */
#ifndef RD_OPS_H
#define RD_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/status.h"
#include "kernels/rope_table.h"

struct rd_backend;

/* One call of the fused RoPE attention op over a flat batch of new tokens.
 *
 * For each new token t (of sequence seq[t]): rotate its q heads and k heads with the rope
 * table at rope position pos[t], store the rotated k and the v at logical cache index
 * slot[t] of its sequence (block block_table[seq[t] * max_blocks + slot / B], row slot % B),
 * then attend: softmax(scale * q . k_j) over the logical cache entries j in [0, n_ctx[t]) of
 * its sequence, all of which are valid once this call's stores are done (tokens of this call
 * see each other causally through n_ctx). Query head h reads kv head h / (H / Hkv) (GQA).
 *
 * Attention sinks (StreamingLLM, window > 0): the cache of a sequence holds W = window entries,
 * the S = sink_tokens first tokens in entries [0, S) and the most recent ones cycling through
 * the ring [S, W) (R = W - S entries). Positions are taken within the cache, so keys are stored
 * unrotated and rotated when read: entry j < S sits at position j; ring entry j at
 * pos[t] - ((slot[t] - j + R) % R), i.e. ordered by age behind the query, whose own position
 * pos[t] is n_ctx[t] - 1. Before the ring wraps this equals plain attention. */
struct rd_attn_params {
    int T, H, Hkv, Dh;
    int rotary_dim;                 /* even, <= Dh */
    enum rd_rope_style style;
    const float *inv_freq_d;        /* [rotary_dim/2] fp32, rebuilt by the runtime when needed */
    float attention_factor;         /* multiplies cos and sin */
    float scale;                    /* softmax scale, 1/sqrt(Dh) */
    const void *qkv_d;              /* [T, (H + 2 Hkv) * Dh]: q heads, then k heads, then v */
    void *out_d;                    /* [T, H * Dh] */
    const int32_t *pos_d;           /* [T] rope position */
    const int32_t *seq_d;           /* [T] sequence slot */
    const int32_t *slot_d;          /* [T] logical cache index where the token's k/v go */
    const int32_t *n_ctx_d;         /* [T] cache entries the token attends to */
    const int32_t *block_table_d;   /* [S, max_blocks] physical block of each logical block */
    int max_blocks;                 /* blocks per sequence in the block table */
    int block_size;                 /* B */
    int max_ctx;                    /* upper bound of n_ctx over the call (host-known) */
    void *k_cache_d;                /* this layer: [n_blocks, B, Hkv, Dh] */
    void *v_cache_d;                /* this layer: [n_blocks, B, Hkv, Dh] */
    int sink_tokens;                /* S (attention sinks), used when window > 0 */
    int window;                     /* W; 0 = plain attention with rotated keys in the cache */
};

struct rd_ops {
    const char *name;
    void (*destroy)(struct rd_backend *be); /* frees the backend and its private state */
    /* the compute stream (cudaStream_t for cuda, NULL for cpu), for the communicator */
    void *(*stream)(struct rd_backend *be);

    /* memory */
    rd_status (*alloc)(struct rd_backend *be, size_t bytes, void **p_d);
    void (*free)(struct rd_backend *be, void *p_d); /* free(NULL) does nothing */
    rd_status (*upload)(struct rd_backend *be, void *dst_d, const void *src_h, size_t bytes);
    rd_status (*download)(struct rd_backend *be, void *dst_h, const void *src_d, size_t bytes);
    /* n fp32 host values into n elements of the backend dtype, and back */
    rd_status (*upload_f32)(struct rd_backend *be, void *dst_d, const float *src_h, size_t n);
    rd_status (*download_f32)(struct rd_backend *be, float *dst_h, const void *src_d, size_t n);
    rd_status (*zero)(struct rd_backend *be, void *p_d, size_t bytes);
    rd_status (*sync)(struct rd_backend *be);

    /* out[T, D] = table[ids[t], :]; table [V, D] */
    rd_status (*embed)(struct rd_backend *be, void *out_d, const void *table_d,
                       const int32_t *ids_d, int T, int D);
    /* out[T, D] = x / rms(x) * w */
    rd_status (*rmsnorm)(struct rd_backend *be, void *out_d, const void *x_d, const void *w_d,
                         int T, int D, float eps);
    /* resid += delta (in place), then out = rmsnorm(resid) * w */
    rd_status (*add_rmsnorm)(struct rd_backend *be, void *out_d, void *resid_d,
                             const void *delta_d, const void *w_d, int T, int D, float eps);
    /* y[T, N] = x[T, K] @ w[N, K]^T */
    rd_status (*matmul)(struct rd_backend *be, void *y_d, const void *x_d, const void *w_d, int T,
                        int N, int K);
    /* out[T, F] = silu(gu[t, 0:F]) * gu[t, F:2F]; gu [T, 2F] */
    rd_status (*swiglu)(struct rd_backend *be, void *out_d, const void *gu_d, int T, int F);
    /* fused RoPE attention, see struct rd_attn_params */
    rd_status (*rope_attention)(struct rd_backend *be, const struct rd_attn_params *p);
    /* dst[n] = src[n] (same dtype), e.g. one row of logits */
    rd_status (*copy)(struct rd_backend *be, void *dst_d, const void *src_d, size_t bytes);
    /* Sampling candidates: for each of the T rows of logits_d [T, V] (backend dtype), the k
     * largest values as fp32 in descending order (ties: the smaller id first; NaN counts as
     * -inf) into vals_h [T, k] and their column + vocab_offset into ids_h [T, k]. vals_h and
     * ids_h are HOST arrays; the op waits for the stream. Rows with fewer than k columns
     * (V < k) are padded with -inf and id -1. k = 1 is the argmax (greedy). 1 <= k; the cuda
     * backend takes k <= 64. */
    rd_status (*topk)(struct rd_backend *be, float *vals_h, int32_t *ids_h, const void *logits_d,
                      int T, int V, int k, int vocab_offset);

    /* Graphs (optional; NULL = not supported, and the model runs every call eagerly, as the cpu
     * backend does). graph_begin starts recording the compute stream: the ops enqueued until
     * graph_end are not run but recorded, with their arguments (pointers AND host-side scalars
     * such as T or max_ctx) frozen, into *graph, which graph_launch then replays on the stream
     * as often as wanted; the data the ops read from device memory (ids, positions, n_ctx,
     * weights, the cache) is read anew at each launch. Between begin and end only
     * capture-safe ops may be enqueued: every op except upload/download(_f32), sync and topk
     * (which wait for the stream) and alloc/free; an all-reduce on the stream is allowed (the
     * communicator skips its wait while the stream is recording). graph_end always ends the
     * recording; on failure *graph is NULL. graph_free(NULL) does nothing. cuda: CUDA graphs
     * (stream capture, thread-local mode). */
    rd_status (*graph_begin)(struct rd_backend *be);
    rd_status (*graph_end)(struct rd_backend *be, void **graph);
    rd_status (*graph_launch)(struct rd_backend *be, void *graph);
    void (*graph_free)(struct rd_backend *be, void *graph);

    /* Memory the backend may still allocate (optional; NULL = unknown): cuda, the device's
     * free and total bytes (cudaMemGetInfo); cpu, the host's available and total memory. Sizes
     * the paged KV cache when no size is given. */
    rd_status (*mem_info)(struct rd_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* upload without waiting (optional; NULL = use upload): src_h is copied into staging
     * memory the backend owns (page-locked on cuda, used as a ring) and the copy to dst_d is
     * enqueued on the stream, so the caller may reuse src_h at once and the host does not wait
     * for the stream. The staged bytes are not rewritten while a copy from them may still be
     * pending. Not while a graph is being recorded. Small transfers (per-step metadata);
     * larger ones fall back to upload. */
    rd_status (*upload_async)(struct rd_backend *be, void *dst_d, const void *src_h,
                              size_t bytes);
};

struct rd_backend {
    const struct rd_ops *ops;
    enum rd_dtype dtype; /* dtype of weights, activations and KV cache */
    int device;          /* GPU ordinal, -1 for cpu */
    void *impl;          /* backend-private state (streams, handles) */
};

struct rd_backend_opts {
    enum rd_dtype dtype;
    int device;          /* cuda: device ordinal to bind */
    int threads;         /* cpu: compute threads (OpenMP team and BLAS); <= 0: the default,
                          * rd_backend_cpu_default_threads(1, ...) */
};

/* cpu backend (kernels/cpu): fp32 only; GEMMs through OpenBLAS, other ops on an OpenMP team */
rd_status rd_backend_cpu_create(const struct rd_backend_opts *opts, struct rd_backend **out);
/* The cpu backend's thread count when none is asked for: OMP_NUM_THREADS when set, else the
 * node's online cores shared among ranks_on_node ranks (at least 1), and never more than the
 * CPUs this process may run on (a launcher that binds each rank to one core gets one thread).
 * why (optional) gets the rule that decided, for the log. */
int rd_backend_cpu_default_threads(int ranks_on_node, char *why, int why_len);
/* The CPUs this process may run on (its affinity mask). */
int rd_backend_cpu_allowed_cpus(void);
/* One line for the log: threads, BLAS library, its build and kernels. */
void rd_backend_cpu_describe(const struct rd_backend *be, char *buf, int len);
/* cuda backend (kernels/cuda): available when built with ROPEDIST_CUDA; otherwise returns
 * RD_ERR_UNSUPPORTED */
rd_status rd_backend_cuda_create(const struct rd_backend_opts *opts, struct rd_backend **out);
/* number of visible CUDA devices (0 when built without CUDA or none visible) */
int rd_backend_cuda_device_count(void);
void rd_backend_free(struct rd_backend *be); /* NULL does nothing */

#endif
