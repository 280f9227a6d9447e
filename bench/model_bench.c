/* A rank's model with synthetic weights for the benchmarks (see model_bench.h). */
#include "bench/model_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rope.h"
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
    for (int l = 0; l < m->cfg.n_layers; l++) {
        be->ops->free(be, m->k_cache_d[l]), be->ops->free(be, m->v_cache_d[l]);
        m->k_cache_d[l] = m->v_cache_d[l] = NULL;
    }
    be->ops->free(be, m->block_table_d);
    m->block_table_d = NULL;
    free(m->block_table_h);
    bm->cache_seqs = bm->cache_ctx = 0;
    const int B = m->lim.block_size;
    m->max_blocks = (ctx + B - 1) / B;
    m->n_blocks = m->max_blocks * seqs;
    m->lim.max_seqs = seqs;
    m->lim.max_ctx = ctx;
    const size_t n_tab = (size_t)seqs * m->max_blocks;
    m->block_table_h = malloc(n_tab * sizeof(int32_t));
    if (!m->block_table_h) return RD_ERR_OOM;
    for (size_t i = 0; i < n_tab; i++) m->block_table_h[i] = (int32_t)i;
    RD_TRY(be->ops->alloc(be, n_tab * sizeof(int32_t), (void **)&m->block_table_d));
    RD_TRY(be->ops->upload(be, m->block_table_d, m->block_table_h, n_tab * sizeof(int32_t)));
    const size_t bytes = (size_t)m->n_blocks * B * m->Hkv_local * m->Dh * rd_dtype_size(be->dtype);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        RD_TRY(be->ops->alloc(be, bytes, &m->k_cache_d[l]));
        RD_TRY(be->ops->alloc(be, bytes, &m->v_cache_d[l]));
        RD_TRY(bench_fill_random(be, m->k_cache_d[l], bytes, 100 + 2 * (uint64_t)l));
        RD_TRY(bench_fill_random(be, m->v_cache_d[l], bytes, 101 + 2 * (uint64_t)l));
    }
    m->kv_bytes = (uint64_t)2 * m->cfg.n_layers * bytes;
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

static const char *k_op_names[BOP_COUNT] = {
    "host_in", "embed", "rmsnorm", "qkv_proj", "rope_attn", "o_proj", "allreduce",
    "add_rmsnorm", "gate_up", "swiglu", "down_proj", "lm_head", "host_out"};

const char *bench_op_name(enum bench_op op) { return op < BOP_COUNT ? k_op_names[op] : "?"; }

bool bench_op_per_layer(enum bench_op op)
{
    return op >= BOP_QKV && op <= BOP_DOWN;
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

struct ctx_t {
    struct bench_clock *clk;
    struct bench_op_times *t;
    int *op_of; /* op of the interval that ends at mark i */
};

static rd_status mark(struct ctx_t *c, enum bench_op op)
{
    RD_TRY(bench_clock_mark(c->clk));
    c->op_of[bench_clock_count(c->clk) - 1] = op;
    c->t->calls[op]++;
    return RD_OK;
}

#define STEP(op, expr)                                                                         \
    do {                                                                                       \
        RD_TRY_GOTO(expr, st, done);                                                           \
        RD_TRY_GOTO(mark(&c, op), st, done);                                                   \
    } while (0)

rd_status bench_forward_timed(struct bench_model *bm, const struct rd_batch *b,
                              struct bench_clock *clk, double ar_ms, float *logits_h,
                              struct bench_op_times *t)
{
    struct rd_model *m = &bm->m;
    struct rd_backend *be = m->be;
    const struct rd_ops *o = be->ops;
    const int T = b->T, D = m->D, L = m->cfg.n_layers;
    const float eps = (float)m->cfg.rms_norm_eps;
    const double es = (double)rd_dtype_size(be->dtype);
    memset(t, 0, sizeof *t);
    if (T < 1 || T > m->lim.max_tokens || b->n_out > T) return RD_ERR_INVALID_ARG;
    int max_pos = 0, max_ctx = 0;
    double ctx_sum = 0, kv_unique = 0;
    int *seq_max = calloc((size_t)m->lim.max_seqs, sizeof(int));
    int *op_of = calloc((size_t)16 * L + 64, sizeof(int));
    if (!seq_max || !op_of) {
        free(seq_max), free(op_of);
        return RD_ERR_OOM;
    }
    for (int i = 0; i < T; i++) {
        if (b->pos[i] > max_pos) max_pos = b->pos[i];
        if (b->n_ctx[i] > max_ctx) max_ctx = b->n_ctx[i];
        ctx_sum += b->n_ctx[i];
        if (b->seq[i] >= 0 && b->seq[i] < m->lim.max_seqs && b->n_ctx[i] > seq_max[b->seq[i]])
            seq_max[b->seq[i]] = b->n_ctx[i];
    }
    for (int s = 0; s < m->lim.max_seqs; s++) kv_unique += seq_max[s];
    free(seq_max);

    rd_status st = RD_OK;
    struct ctx_t c = {.clk = clk, .t = t, .op_of = op_of};
    bench_clock_reset(clk);
    RD_TRY_GOTO(bench_clock_mark(clk), st, done);
    const size_t ti = (size_t)T * sizeof(int32_t);
    RD_TRY_GOTO(o->upload(be, m->ids_d, b->ids, ti), st, done);
    RD_TRY_GOTO(o->upload(be, m->pos_d, b->pos, ti), st, done);
    RD_TRY_GOTO(o->upload(be, m->seq_d, b->seq, ti), st, done);
    RD_TRY_GOTO(o->upload(be, m->slot_d, b->slot, ti), st, done);
    RD_TRY_GOTO(o->upload(be, m->nctx_d, b->n_ctx, ti), st, done);
    if (m->rope_built_len < 0 ||
        (rd_rope_depends_on_len(&m->cfg) && max_pos + 1 != m->rope_built_len)) {
        RD_TRY_GOTO(rd_rope_build(&m->cfg, max_pos + 1, &m->rope), st, done);
        m->rope_built_len = max_pos + 1;
        RD_TRY_GOTO(o->upload(be, m->inv_freq_d, m->rope.inv_freq,
                              (size_t)m->rope.n_pairs * sizeof(float)), st, done);
    }
    RD_TRY_GOTO(mark(&c, BOP_HOST_IN), st, done);

    struct rd_attn_params ap = {
        .T = T, .H = m->H_local, .Hkv = m->Hkv_local, .Dh = m->Dh,
        .rotary_dim = m->cfg.rotary_dim, .style = m->cfg.rope_style,
        .inv_freq_d = m->inv_freq_d, .attention_factor = m->rope.attention_factor,
        .scale = (float)(1.0 / sqrt((double)m->Dh)),
        .qkv_d = m->qkv_d, .out_d = m->attn_d,
        .pos_d = m->pos_d, .seq_d = m->seq_d, .slot_d = m->slot_d, .n_ctx_d = m->nctx_d,
        .block_table_d = m->block_table_d, .max_blocks = m->max_blocks,
        .block_size = m->lim.block_size, .max_ctx = max_ctx,
        .sink_tokens = m->lim.sink_tokens, .window = m->lim.window,
    };
    const int HD = m->H_local * m->Dh, F = m->F_local;
    const bool real_ar = bm->comm.size > 1;
    STEP(BOP_EMBED, o->embed(be, m->x_d, m->embed_d, m->ids_d, T, D));
    STEP(BOP_RMSNORM, o->rmsnorm(be, m->h_d, m->x_d, m->layers[0].attn_norm_d, T, D, eps));
    for (int l = 0; l < L; l++) {
        const struct rd_layer_weights *w = &m->layers[l];
        STEP(BOP_QKV, o->matmul(be, m->qkv_d, m->h_d, w->wqkv_d, T, m->qkv_n, D));
        ap.k_cache_d = m->k_cache_d[l];
        ap.v_cache_d = m->v_cache_d[l];
        STEP(BOP_ATTN, o->rope_attention(be, &ap));
        STEP(BOP_O_PROJ, o->matmul(be, m->proj_d, m->attn_d, w->wo_d, T, D, HD));
        if (real_ar) STEP(BOP_ALLREDUCE, rd_comm_allreduce_sum(&bm->comm, m->proj_d, (size_t)T * D));
        else t->ms[BOP_ALLREDUCE] += ar_ms, t->calls[BOP_ALLREDUCE]++;
        STEP(BOP_ADD_RMSNORM, o->add_rmsnorm(be, m->h_d, m->x_d, m->proj_d, w->mlp_norm_d, T, D, eps));
        STEP(BOP_GATE_UP, o->matmul(be, m->gu_d, m->h_d, w->wgu_d, T, 2 * F, D));
        STEP(BOP_SWIGLU, o->swiglu(be, m->act_d, m->gu_d, T, F));
        STEP(BOP_DOWN, o->matmul(be, m->proj_d, m->act_d, w->wdown_d, T, D, F));
        if (real_ar) STEP(BOP_ALLREDUCE, rd_comm_allreduce_sum(&bm->comm, m->proj_d, (size_t)T * D));
        else t->ms[BOP_ALLREDUCE] += ar_ms, t->calls[BOP_ALLREDUCE]++;
        const void *next = l + 1 < L ? m->layers[l + 1].attn_norm_d : m->final_norm_d;
        STEP(BOP_ADD_RMSNORM, o->add_rmsnorm(be, m->h_d, m->x_d, m->proj_d, next, T, D, eps));
    }
    if (b->n_out > 0) {
        const size_t row = (size_t)D * rd_dtype_size(be->dtype);
        for (int i = 0; i < b->n_out; i++)
            RD_TRY_GOTO(o->copy(be, (char *)m->proj_d + i * row,
                                (const char *)m->h_d + b->out_idx[i] * row, row), st, done);
        STEP(BOP_LM_HEAD, o->matmul(be, m->logits_d, m->proj_d, m->lm_head_d, b->n_out, m->V_local, D));
        STEP(BOP_HOST_OUT, o->download_f32(be, logits_h, m->logits_d, (size_t)b->n_out * m->V_local));
    }
    RD_TRY_GOTO(bench_clock_wait(clk), st, done);
    for (int i = 1; i < bench_clock_count(clk); i++) t->ms[op_of[i]] += bench_clock_ms(clk, i - 1, i);
    t->total_ms = bench_clock_ms(clk, 0, bench_clock_count(clk) - 1) + t->ms[BOP_ALLREDUCE] *
                  !real_ar;

    /* least bytes each op moves, and its FLOPs (summed over layers) */
    const double Dd = D, Td = T, Fd = F, qn = m->qkv_n, V = m->V_local, no = b->n_out;
    const double kvrow = 2.0 * m->Hkv_local * m->Dh * es;
    t->bytes[BOP_EMBED] = 2 * Td * Dd * es;
    t->bytes[BOP_RMSNORM] = (2 * Td * Dd + Dd) * es;
    t->bytes[BOP_QKV] = L * es * (qn * Dd + Td * (Dd + qn));
    t->flops[BOP_QKV] = L * 2 * Td * qn * Dd;
    t->bytes[BOP_ATTN] = L * (kv_unique * kvrow + es * Td * (qn + HD));
    t->flops[BOP_ATTN] = L * 4.0 * m->Dh * m->H_local * ctx_sum;
    t->bytes[BOP_O_PROJ] = L * es * (Dd * HD + Td * (HD + Dd));
    t->flops[BOP_O_PROJ] = L * 2 * Td * Dd * HD;
    t->bytes[BOP_ADD_RMSNORM] = 2 * L * es * (4 * Td * Dd + Dd);
    t->bytes[BOP_GATE_UP] = L * es * (2 * Fd * Dd + Td * (Dd + 2 * Fd));
    t->flops[BOP_GATE_UP] = L * 2 * Td * 2 * Fd * Dd;
    t->bytes[BOP_SWIGLU] = L * es * 3 * Td * Fd;
    t->bytes[BOP_DOWN] = L * es * (Dd * Fd + Td * (Fd + Dd));
    t->flops[BOP_DOWN] = L * 2 * Td * Dd * Fd;
    t->bytes[BOP_LM_HEAD] = es * (V * Dd + no * (2 * Dd + V));
    t->flops[BOP_LM_HEAD] = 2 * no * V * Dd;
done:
    free(op_of);
    return st;
}
