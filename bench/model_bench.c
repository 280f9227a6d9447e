/* A rank's model with synthetic weights for the benchmarks (see model_bench.h). */
#include "bench/model_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/weights_random.h"

rd_status bench_model_open(struct bench_model *bm, const struct bench_args *a,
                           struct rd_backend *be, int tp, int layers, int max_tokens, char *err,
                           int err_len)
{
    memset(bm, 0, sizeof *bm);
    RD_TRY(bench_config_load(a->model, &bm->cfg, err, err_len));
    bm->full_layers = bm->cfg.n_layers;
    if (layers > 0 && layers < bm->cfg.n_layers) bm->cfg.n_layers = layers;
    RD_TRY(rd_shard_compute(bm->cfg.n_heads, bm->cfg.n_kv_heads, bm->cfg.intermediate_size,
                            bm->cfg.vocab_size, tp, 0, &bm->shard, err, err_len));
    bm->world.rank = 0, bm->world.size = 1, bm->world.local_size = 1;
    snprintf(bm->world.host, sizeof bm->world.host, "bench");
    RD_TRY(rd_comm_init(&bm->comm, &bm->world, be, 0));
    RD_TRY(rd_weights_open_random(&bm->cfg, a->seed, 0, &bm->src, err, err_len));
    struct rd_model_limits lim = {.max_tokens = max_tokens, .max_seqs = 1, .max_ctx = 16,
                                  .block_size = 16};
    double t0 = bench_now_ms();
    rd_status st = rd_model_init(&bm->m, &bm->cfg, &bm->shard, &lim, be, &bm->comm, &bm->src, err,
                                 err_len);
    bm->load_s = (bench_now_ms() - t0) / 1e3;
    bm->ready = true; /* rd_model_free copes with a partial init */
    bm->cache_seqs = 1, bm->cache_ctx = 16;
    if (st != RD_OK && !err[0])
        snprintf(err, err_len, "building the %s shard (tp %d, %d layers): %s", a->model, tp,
                 bm->cfg.n_layers, rd_status_str(st));
    return st;
}

void bench_model_close(struct bench_model *bm)
{
    if (bm->ready) rd_model_free(&bm->m);
    if (bm->src.close) bm->src.close(bm->src.ctx);
    rd_comm_free(&bm->comm);
    memset(bm, 0, sizeof *bm);
}

double bench_kv_bytes(const struct bench_model *bm, int seqs, int ctx)
{
    const struct rd_model *m = &bm->m;
    const int B = m->lim.block_size;
    double tokens = (double)seqs * ((ctx + B - 1) / B) * B;
    return 2.0 * bm->cfg.n_layers * tokens * m->Hkv_local * m->Dh * rd_dtype_size(m->be->dtype);
}

rd_status bench_model_cache(struct bench_model *bm, int seqs, int ctx)
{
    struct rd_model *m = &bm->m;
    struct rd_backend *be = m->be;
    if (seqs == bm->cache_seqs && ctx == bm->cache_ctx) return RD_OK;
    bm->cache_seqs = bm->cache_ctx = 0;
    RD_TRY(rd_model_resize_cache(m, seqs, ctx));
    const size_t bytes = (size_t)m->n_blocks * m->lim.block_size * m->Hkv_local * m->Dh *
                         rd_dtype_size(be->dtype); /* one layer's k (or v) */
    for (int l = 0; l < m->cfg.n_layers; l++) {
        RD_TRY(bench_fill_random(be, m->k_cache_d[l], bytes, 100 + 2 * (uint64_t)l));
        RD_TRY(bench_fill_random(be, m->v_cache_d[l], bytes, 101 + 2 * (uint64_t)l));
    }
    bm->cache_seqs = seqs, bm->cache_ctx = ctx;
    return be->ops->sync(be);
}

/* ---- batches ---- */

static rd_status batch_alloc(struct rd_batch *b, int T)
{
    memset(b, 0, sizeof *b);
    int32_t *p = calloc((size_t)T * 6, sizeof(int32_t));
    if (!p) return RD_ERR_OOM;
    b->T = T;
    b->ids = p, b->pos = p + T, b->seq = p + 2 * T, b->slot = p + 3 * T, b->n_ctx = p + 4 * T;
    b->out_idx = p + 5 * T;
    return RD_OK;
}

rd_status bench_batch_decode(struct rd_batch *b, int seqs, int ctx, int vocab)
{
    RD_TRY(batch_alloc(b, seqs));
    int32_t *p = (int32_t *)b->ids;
    for (int s = 0; s < seqs; s++) {
        p[s] = (int32_t)((7919u * (unsigned)s + 13u) % (unsigned)vocab);
        p[seqs + s] = ctx - 1;     /* pos */
        p[2 * seqs + s] = s;       /* seq */
        p[3 * seqs + s] = ctx - 1; /* slot */
        p[4 * seqs + s] = ctx;     /* n_ctx */
        p[5 * seqs + s] = s;       /* out_idx */
    }
    b->n_out = seqs;
    return RD_OK;
}

rd_status bench_batch_prefill(struct rd_batch *b, int T, int vocab)
{
    RD_TRY(batch_alloc(b, T));
    int32_t *p = (int32_t *)b->ids;
    for (int t = 0; t < T; t++) {
        p[t] = (int32_t)((7919u * (unsigned)t + 13u) % (unsigned)vocab);
        p[T + t] = t, p[2 * T + t] = 0, p[3 * T + t] = t, p[4 * T + t] = t + 1;
    }
    p[5 * T] = T - 1;
    b->n_out = 1;
    return RD_OK;
}

void bench_batch_free(struct rd_batch *b)
{
    free((void *)b->ids);
    memset(b, 0, sizeof *b);
}

/* ---- accounting ---- */

static const char *k_op_names[RD_MODEL_OP_COUNT] = {
    "host_in", "embed", "rmsnorm", "qkv_proj", "rope_attn", "o_proj", "allreduce",
    "add_rmsnorm", "gate_up", "swiglu", "down_proj", "lm_head", "host_out"};

const char *bench_op_name(enum rd_model_op op)
{
    return op < RD_MODEL_OP_COUNT ? k_op_names[op] : "?";
}

bool bench_op_per_layer(enum rd_model_op op)
{
    return op >= RD_MODEL_OP_QKV && op <= RD_MODEL_OP_DOWN;
}

double bench_allreduce_ms(const struct bench_args *a, int P, double bytes)
{
    if (P <= 1) return 0;
    return a->ar_latency_us * 1e-3 + 2.0 * (P - 1) / P * bytes / (a->ar_busbw_gbs * 1e9) * 1e3;
}

double bench_layer_weight_bytes(const struct bench_model *bm)
{
    const struct rd_model *m = &bm->m;
    const double D = m->D, es = (double)rd_dtype_size(m->be->dtype);
    return es * (2 * D + (double)m->qkv_n * D + D * m->H_local * m->Dh + 3.0 * m->F_local * D);
}

double bench_step_bytes(const struct bench_model *bm, int seqs, int ctx)
{
    const struct rd_model *m = &bm->m;
    const double D = m->D, es = (double)rd_dtype_size(m->be->dtype), L = bm->cfg.n_layers;
    double kv = 2.0 * L * seqs * (double)ctx * m->Hkv_local * m->Dh * es;
    return L * bench_layer_weight_bytes(bm) + es * (D + (double)m->V_local * D + seqs * D) + kv;
}

double bench_prefill_flops(const struct bench_model *bm, int T)
{
    const struct rd_model *m = &bm->m;
    const double D = m->D, L = bm->cfg.n_layers;
    double gemm = 2.0 * T * ((double)m->qkv_n * D + D * m->H_local * m->Dh + 3.0 * m->F_local * D);
    double attn = 2.0 * m->Dh * m->H_local * (double)T * (T + 1);
    return L * (gemm + attn) + 2.0 * (double)m->V_local * D;
}

/* ---- the timed forward ---- */

/* Least bytes each op of the forward of b moves, and its FLOPs (summed over layers). */
static rd_status op_counts(const struct bench_model *bm, const struct rd_batch *b,
                           struct bench_op_times *t)
{
    const struct rd_model *m = &bm->m;
    const int L = m->cfg.n_layers;
    double ctx_sum = 0, kv_unique = 0;
    int *seq_max = calloc((size_t)m->lim.max_seqs, sizeof(int));
    if (!seq_max) return RD_ERR_OOM;
    for (int i = 0; i < b->T; i++) {
        ctx_sum += b->n_ctx[i];
        if (b->seq[i] >= 0 && b->seq[i] < m->lim.max_seqs && b->n_ctx[i] > seq_max[b->seq[i]])
            seq_max[b->seq[i]] = b->n_ctx[i];
    }
    for (int s = 0; s < m->lim.max_seqs; s++) kv_unique += seq_max[s];
    free(seq_max);

    const double es = (double)rd_dtype_size(m->be->dtype);
    const double Dd = m->D, Td = b->T, Fd = m->F_local, qn = m->qkv_n, V = m->V_local;
    const double HD = (double)m->H_local * m->Dh, no = b->n_out;
    const double kvrow = 2.0 * m->Hkv_local * m->Dh * es;
    t->bytes[RD_MODEL_OP_EMBED] = 2 * Td * Dd * es;
    t->bytes[RD_MODEL_OP_RMSNORM] = (2 * Td * Dd + Dd) * es;
    t->bytes[RD_MODEL_OP_QKV] = L * es * (qn * Dd + Td * (Dd + qn));
    t->flops[RD_MODEL_OP_QKV] = L * 2 * Td * qn * Dd;
    t->bytes[RD_MODEL_OP_ATTENTION] = L * (kv_unique * kvrow + es * Td * (qn + HD));
    t->flops[RD_MODEL_OP_ATTENTION] = L * 4.0 * m->Dh * m->H_local * ctx_sum;
    t->bytes[RD_MODEL_OP_O_PROJ] = L * es * (Dd * HD + Td * (HD + Dd));
    t->flops[RD_MODEL_OP_O_PROJ] = L * 2 * Td * Dd * HD;
    t->bytes[RD_MODEL_OP_ADD_RMSNORM] = 2 * L * es * (4 * Td * Dd + Dd);
    t->bytes[RD_MODEL_OP_GATE_UP] = L * es * (2 * Fd * Dd + Td * (Dd + 2 * Fd));
    t->flops[RD_MODEL_OP_GATE_UP] = L * 2 * Td * 2 * Fd * Dd;
    t->bytes[RD_MODEL_OP_SWIGLU] = L * es * 3 * Td * Fd;
    t->bytes[RD_MODEL_OP_DOWN] = L * es * (Dd * Fd + Td * (Fd + Dd));
    t->flops[RD_MODEL_OP_DOWN] = L * 2 * Td * Dd * Fd;
    t->bytes[RD_MODEL_OP_LM_HEAD] = es * (V * Dd + no * (2 * Dd + V));
    t->flops[RD_MODEL_OP_LM_HEAD] = 2 * no * V * Dd;
    return RD_OK;
}

struct timed {
    struct bench_clock *clk;
    struct bench_op_times *t;
    int *op_of;   /* op of the interval that ends at mark i */
    bool real_ar; /* several ranks: the all-reduce runs and is marked */
    double ar_ms; /* else its modelled cost per call */
};

/* the model's on_op hook: a clock mark after each op */
static rd_status mark(void *ctx, enum rd_model_op op, int layer)
{
    struct timed *c = ctx;
    (void)layer;
    c->t->calls[op]++;
    if (op == RD_MODEL_OP_ALLREDUCE && !c->real_ar) {
        c->t->ms[op] += c->ar_ms; /* a one-rank all-reduce is a no-op: no mark */
        return RD_OK;
    }
    RD_TRY(bench_clock_mark(c->clk));
    c->op_of[bench_clock_count(c->clk) - 1] = op;
    return RD_OK;
}

rd_status bench_forward_timed(struct bench_model *bm, const struct rd_batch *b,
                              struct bench_clock *clk, double ar_ms, float *logits_h,
                              struct bench_op_times *t)
{
    struct rd_model *m = &bm->m;
    memset(t, 0, sizeof *t);
    int *op_of = calloc((size_t)16 * m->cfg.n_layers + 64, sizeof(int));
    if (!op_of) return RD_ERR_OOM;
    struct timed c = {.clk = clk, .t = t, .op_of = op_of, .real_ar = bm->comm.size > 1,
                      .ar_ms = ar_ms};
    bench_clock_reset(clk);
    rd_status st = bench_clock_mark(clk);
    if (st == RD_OK) {
        m->on_op = mark, m->on_op_ctx = &c;
        st = rd_model_forward(m, b, logits_h);
        m->on_op = NULL, m->on_op_ctx = NULL;
    }
    if (st == RD_OK) st = bench_clock_wait(clk);
    if (st == RD_OK) {
        for (int i = 1; i < bench_clock_count(clk); i++)
            t->ms[op_of[i]] += bench_clock_ms(clk, i - 1, i);
        t->total_ms = bench_clock_ms(clk, 0, bench_clock_count(clk) - 1) +
                      t->ms[RD_MODEL_OP_ALLREDUCE] * !c.real_ar;
        st = op_counts(bm, b, t);
    }
    free(op_of);
    return st;
}
