/* A rank's model with synthetic weights, for the benchmarks: rank 0's shard of a P-way group
 * built in one process (--simulate-tp P; its communicator has one rank, so the all-reduces
 * are no-ops and their cost is added from the model below), a KV cache re-sized per table
 * row, the forward pass timed op by op through the model's on_op hook (per-op breakdown), and
 * the byte / FLOP counts the floors need.
 *
 * All-reduce model (NCCL ring/NVLS on 8xH100 NVSwitch, nccl-tests figures):
 *   t(bytes, P) = 0 for P = 1, else latency + 2 (P-1)/P * bytes / busbw
 * with latency ~20 us (the flat 8-64 KB region) and busbw ~370-480 GB/s for large messages
 * (default 400); both are flags (--ar-latency-us, --ar-busbw). */
#ifndef RD_BENCH_MODEL_H
#define RD_BENCH_MODEL_H

#include "bench/common.h"
#include "parallel/bootstrap.h"
#include "parallel/comm.h"
#include "runtime/model.h"

struct bench_model {
    struct rd_config cfg;   /* with n_layers = the layers built */
    int full_layers;        /* the shape's real layer count */
    struct rd_shard shard;
    struct rd_world world;  /* a one-rank world: no MPI call is made */
    struct rd_comm comm;
    struct rd_weight_source src;
    struct rd_model m;
    bool ready;
    double load_s;
    int cache_seqs, cache_ctx; /* what the KV cache holds now */
};

/* Builds rank 0's shard of a tp-way group with up to max_tokens tokens per call. layers > 0
 * builds only that many layers (the rest is extrapolated by the caller). */
rd_status bench_model_open(struct bench_model *bm, const struct bench_args *a,
                           struct rd_backend *be, int tp, int layers, int max_tokens, char *err,
                           int err_len);
void bench_model_close(struct bench_model *bm);

/* Bytes a KV cache of seqs x ctx tokens takes (all built layers). */
double bench_kv_bytes(const struct bench_model *bm, int seqs, int ctx);
/* Re-sizes the KV cache to seqs slots of ctx tokens (rd_model_resize_cache) and fills it with
 * random values; nothing to do when it already has that size. */
rd_status bench_model_cache(struct bench_model *bm, int seqs, int ctx);

/* A decode batch: seqs sequences, each adding its token at position ctx - 1 (attending to
 * ctx entries), all logits wanted. A prefill batch: one sequence of T prompt tokens. The
 * arrays are malloc'd in b (bench_batch_free). */
rd_status bench_batch_decode(struct rd_batch *b, int seqs, int ctx, int vocab);
rd_status bench_batch_prefill(struct rd_batch *b, int T, int vocab);
void bench_batch_free(struct rd_batch *b);

/* ---- per-op timing ---- */

/* Ops are the model's steps (enum rd_model_op); the table names them here. */
const char *bench_op_name(enum rd_model_op op);
/* whether the op runs once per layer (the part extrapolated with --layers) */
bool bench_op_per_layer(enum rd_model_op op);

struct bench_op_times {
    double ms[RD_MODEL_OP_COUNT];
    int calls[RD_MODEL_OP_COUNT];
    double bytes[RD_MODEL_OP_COUNT]; /* bytes the op must move at least (weights, KV, activations) */
    double flops[RD_MODEL_OP_COUNT];
    double total_ms; /* first mark to last (plus the modelled all-reduces) */
};

/* All-reduce model cost of n elements of es bytes over P ranks (ms). */
double bench_allreduce_ms(const struct bench_args *a, int P, double bytes);

/* rd_model_forward with a clock mark after each op (the model's on_op hook). The all-reduce
 * runs and is marked when the communicator has several ranks; with --simulate-tp (one rank,
 * a no-op) its modelled cost (ar_ms each) is added to RD_MODEL_OP_ALLREDUCE instead. logits_h
 * gets the rank's logits from rd_model_forward. clk needs >= 16 * layers + 16 marks. */
rd_status bench_forward_timed(struct bench_model *bm, const struct rd_batch *b,
                              struct bench_clock *clk, double ar_ms, float *logits_h,
                              struct bench_op_times *t);

/* Bytes one decode step must read at least: the layer weights, the final norm, the LM head
 * rows, the embedding rows of the batch, and the KV entries attended (built layers). */
double bench_step_bytes(const struct bench_model *bm, int seqs, int ctx);
/* FLOPs of a prefill of T tokens (GEMMs, causal attention, the LM head row). */
double bench_prefill_flops(const struct bench_model *bm, int T);
/* Weight bytes of one layer of the shard, and of everything else (embed, norm, LM head). */
double bench_layer_weight_bytes(const struct bench_model *bm);

#endif
