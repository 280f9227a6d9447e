/* Loading of a rank's shard and the forward pass (see model.h). */
#include "runtime/model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* ---- loading ---- */

struct loader {
    struct rd_model *m;
    struct rd_weight_source *src;
    float *stage; /* host fp32 staging, big enough for the largest slice */
    size_t stage_n;
    char *err;
    int err_len;
};

/* Checks a tensor's full shape against what the config implies. */
static rd_status check_shape(struct loader *L, const char *name, int ndim, int64_t d0, int64_t d1)
{
    int nd = 0;
    int64_t dims[2] = {0, 0};
    RD_TRY(L->src->shape(L->src->ctx, name, &nd, dims, L->err, L->err_len));
    bool ok = nd == ndim && dims[0] == d0 && (ndim == 1 || dims[1] == d1);
    if (!ok) {
        if (ndim == 1)
            snprintf(L->err, L->err_len, "checkpoint tensor %s has shape %s[%lld%s%lld] but the config "
                     "implies [%lld]", name, "", (long long)dims[0], nd == 2 ? ", " : "",
                     nd == 2 ? (long long)dims[1] : 0LL, (long long)d0);
        else
            snprintf(L->err, L->err_len, "checkpoint tensor %s has shape [%lld, %lld] but the config "
                     "implies [%lld, %lld]", name, (long long)dims[0],
                     nd == 2 ? (long long)dims[1] : 0LL, (long long)d0, (long long)d1);
        return RD_ERR_FORMAT;
    }
    return RD_OK;
}

/* Before anything is sized from the config: its sizes against the checkpoint's own shapes,
 * naming the config field that disagrees, so a config of absurd sizes is refused here rather
 * than failing to allocate. */
static rd_status check_sizes(struct loader *L)
{
    const struct rd_config *c = &L->m->cfg;
    char last[96];
    snprintf(last, sizeof last, "model.layers.%d.input_layernorm.weight", c->n_layers - 1);
    const struct {
        const char *tensor, *field;
        int dim;
        int64_t want;
    } k[] = {
        {"model.embed_tokens.weight", "vocab_size", 0, c->vocab_size},
        {"model.embed_tokens.weight", "hidden_size", 1, c->hidden_size},
        {"model.layers.0.self_attn.q_proj.weight", "num_attention_heads x head_dim", 0,
         (int64_t)c->n_heads * c->head_dim},
        {"model.layers.0.self_attn.k_proj.weight", "num_key_value_heads x head_dim", 0,
         (int64_t)c->n_kv_heads * c->head_dim},
        {"model.layers.0.mlp.gate_proj.weight", "intermediate_size", 0, c->intermediate_size},
        {last, "num_hidden_layers", 2, 0}, /* only that the last layer is there */
    };
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        int nd = 0;
        int64_t dims[2] = {0, 0};
        char sub[512] = "";
        rd_status st = L->src->shape(L->src->ctx, k[i].tensor, &nd, dims, sub, sizeof sub);
        if (st != RD_OK && k[i].tensor == last) {
            snprintf(L->err, L->err_len, "config field num_hidden_layers (%d) does not match the "
                     "checkpoint: %s", c->n_layers, sub);
            return st;
        }
        if (st != RD_OK) {
            snprintf(L->err, L->err_len, "%s", sub);
            return st;
        }
        if (k[i].dim < nd && dims[k[i].dim] != k[i].want) {
            snprintf(L->err, L->err_len, "config field %s (%lld) does not match the checkpoint: "
                     "tensor %s has shape [%lld%s%lld]", k[i].field, (long long)k[i].want,
                     k[i].tensor, (long long)dims[0], nd == 2 ? ", " : "",
                     nd == 2 ? (long long)dims[1] : 0LL);
            return RD_ERR_FORMAT;
        }
    }
    return RD_OK;
}

/* Reads rows [r0, r0+nr) x cols [c0, c0+nc) of a [d0, d1] tensor into dst_h (fp32 host). */
static rd_status read_block(struct loader *L, const char *name, int64_t d0, int64_t d1, int64_t r0,
                            int64_t nr, int64_t c0, int64_t nc, float *dst_h)
{
    RD_TRY(check_shape(L, name, 2, d0, d1));
    return L->src->read(L->src->ctx, name, r0, nr, c0, nc, dst_h, L->err, L->err_len);
}

static rd_status upload(struct loader *L, void **dst_d, const float *h, size_t n)
{
    struct rd_backend *be = L->m->be;
    size_t bytes = n * rd_dtype_size(be->dtype);
    rd_status st = be->ops->alloc(be, bytes, dst_d);
    if (st != RD_OK) {
        snprintf(L->err, L->err_len, "out of %s memory for the weights: %.1f MB more needed after "
                 "%.1f MB loaded (fewer layers per rank: more ranks, or a smaller dtype)",
                 be->ops->name, bytes / 1e6, L->m->weight_bytes / 1e6);
        return st;
    }
    L->m->weight_bytes += bytes;
    return be->ops->upload_f32(be, *dst_d, h, n);
}

static rd_status load_vector(struct loader *L, const char *name, int64_t n, void **dst_d)
{
    RD_TRY(check_shape(L, name, 1, n, 0));
    RD_TRY(L->src->read(L->src->ctx, name, 0, 1, 0, n, L->stage, L->err, L->err_len));
    return upload(L, dst_d, L->stage, (size_t)n);
}

static rd_status load_layer(struct loader *L, int l)
{
    struct rd_model *m = L->m;
    const struct rd_config *c = &m->cfg;
    const struct rd_shard *s = &m->shard;
    struct rd_layer_weights *w = &m->layers[l];
    const int64_t D = c->hidden_size, Dh = c->head_dim, F = c->intermediate_size;
    const int64_t qr = (int64_t)s->h_local * Dh, kr = (int64_t)s->kv_local * Dh;
    char name[256];
#define NAME(fmt) (snprintf(name, sizeof name, "model.layers.%d." fmt, l), name)

    RD_TRY(load_vector(L, NAME("input_layernorm.weight"), D, &w->attn_norm_d));
    float *p = L->stage;
    RD_TRY(read_block(L, NAME("self_attn.q_proj.weight"), c->n_heads * Dh, D, s->h0 * Dh, qr, 0, D, p));
    RD_TRY(read_block(L, NAME("self_attn.k_proj.weight"), c->n_kv_heads * Dh, D, s->kv0 * Dh, kr, 0,
                      D, p + qr * D));
    RD_TRY(read_block(L, NAME("self_attn.v_proj.weight"), c->n_kv_heads * Dh, D, s->kv0 * Dh, kr, 0,
                      D, p + (qr + kr) * D));
    RD_TRY(upload(L, &w->wqkv_d, p, (size_t)(qr + 2 * kr) * D));
    RD_TRY(read_block(L, NAME("self_attn.o_proj.weight"), D, c->n_heads * Dh, 0, D, s->h0 * Dh, qr, p));
    RD_TRY(upload(L, &w->wo_d, p, (size_t)(D * qr)));
    RD_TRY(load_vector(L, NAME("post_attention_layernorm.weight"), D, &w->mlp_norm_d));
    RD_TRY(read_block(L, NAME("mlp.gate_proj.weight"), F, D, s->f0, s->f_local, 0, D, p));
    RD_TRY(read_block(L, NAME("mlp.up_proj.weight"), F, D, s->f0, s->f_local, 0, D,
                      p + (size_t)s->f_local * D));
    RD_TRY(upload(L, &w->wgu_d, p, (size_t)2 * s->f_local * D));
    RD_TRY(read_block(L, NAME("mlp.down_proj.weight"), D, F, 0, D, s->f0, s->f_local, p));
    RD_TRY(upload(L, &w->wdown_d, p, (size_t)D * s->f_local));
#undef NAME
    return RD_OK;
}

static rd_status alloc_act(struct rd_model *m, size_t n, void **p)
{
    return m->be->ops->alloc(m->be, n * rd_dtype_size(m->be->dtype), p);
}

static rd_status alloc_i32(struct rd_model *m, size_t n, int32_t **p)
{
    return m->be->ops->alloc(m->be, n * sizeof(int32_t), (void **)p);
}

uint64_t rd_model_kv_block_bytes(const struct rd_config *cfg, const struct rd_shard *shard,
                                 int block_size, enum rd_dtype dtype)
{
    return (uint64_t)2 * cfg->n_layers * block_size * shard->kv_local * cfg->head_dim *
           rd_dtype_size(dtype);
}

/* The KV pool (lim.n_blocks blocks, or every slot's full context) and its block table. */
static rd_status alloc_cache(struct rd_model *m)
{
    struct rd_backend *be = m->be;
    const struct rd_model_limits *lim = &m->lim;
    m->max_blocks = (lim->max_ctx + lim->block_size - 1) / lim->block_size;
    m->n_blocks = lim->n_blocks > 0 ? lim->n_blocks : m->max_blocks * lim->max_seqs;
    const size_t cache_n = (size_t)m->n_blocks * lim->block_size * m->Hkv_local * m->Dh;
    const size_t n_tab = (size_t)lim->max_seqs * m->max_blocks;
    m->block_table_h = malloc(n_tab * sizeof(int32_t));
    if (!m->block_table_h) return RD_ERR_OOM;
    m->kv_block_bytes = rd_model_kv_block_bytes(&m->cfg, &m->shard, lim->block_size, be->dtype);
    m->kv_bytes = m->kv_block_bytes * (uint64_t)m->n_blocks;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        RD_TRY(alloc_act(m, cache_n, &m->k_cache_d[l]));
        RD_TRY(alloc_act(m, cache_n, &m->v_cache_d[l]));
    }
    for (size_t i = 0; i < n_tab; i++) m->block_table_h[i] = (int32_t)(i % (size_t)m->n_blocks);
    m->table_dirty_lo = m->table_dirty_hi = 0;
    RD_TRY(alloc_i32(m, n_tab, &m->block_table_d));
    return be->ops->upload(be, m->block_table_d, m->block_table_h, n_tab * sizeof(int32_t));
}

rd_status rd_model_set_block(struct rd_model *m, int seq, int j, int32_t phys)
{
    if (seq < 0 || seq >= m->lim.max_seqs || j < 0 || j >= m->max_blocks || phys < 0 ||
        phys >= m->n_blocks)
        return RD_ERR_RANGE;
    int i = seq * m->max_blocks + j;
    m->block_table_h[i] = phys;
    if (m->table_dirty_lo == m->table_dirty_hi) {
        m->table_dirty_lo = i;
        m->table_dirty_hi = i + 1;
    } else {
        if (i < m->table_dirty_lo) m->table_dirty_lo = i;
        if (i + 1 > m->table_dirty_hi) m->table_dirty_hi = i + 1;
    }
    return RD_OK;
}

static void free_cache(struct rd_model *m)
{
    struct rd_backend *be = m->be;
    if (m->k_cache_d)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            be->ops->free(be, m->k_cache_d[l]), be->ops->free(be, m->v_cache_d[l]);
            m->k_cache_d[l] = m->v_cache_d[l] = NULL;
        }
    be->ops->free(be, m->block_table_d);
    m->block_table_d = NULL;
    free(m->block_table_h);
    m->block_table_h = NULL;
    m->kv_bytes = 0;
}

static rd_status alloc_runtime(struct rd_model *m)
{
    struct rd_backend *be = m->be;
    const size_t T = (size_t)m->lim.max_tokens;
    m->k_cache_d = calloc((size_t)m->cfg.n_layers, sizeof(void *));
    m->v_cache_d = calloc((size_t)m->cfg.n_layers, sizeof(void *));
    m->logits_h = malloc(T * (size_t)m->V_local * sizeof(float));
    if (!m->k_cache_d || !m->v_cache_d || !m->logits_h) return RD_ERR_OOM;
    RD_TRY(alloc_cache(m));
    const size_t D = (size_t)m->D;
    RD_TRY(alloc_act(m, T * D, &m->x_d));
    RD_TRY(alloc_act(m, T * D, &m->h_d));
    RD_TRY(alloc_act(m, T * (size_t)m->qkv_n, &m->qkv_d));
    RD_TRY(alloc_act(m, T * (size_t)m->H_local * m->Dh, &m->attn_d));
    RD_TRY(alloc_act(m, T * D, &m->proj_d));
    RD_TRY(alloc_act(m, T * 2 * (size_t)m->F_local, &m->gu_d));
    RD_TRY(alloc_act(m, T * (size_t)m->F_local, &m->act_d));
    RD_TRY(alloc_act(m, T * (size_t)m->V_local, &m->logits_d));
    RD_TRY(alloc_i32(m, 5 * T, &m->meta_d));
    m->meta_h = malloc(5 * T * sizeof(int32_t));
    if (!m->meta_h) return RD_ERR_OOM;
    RD_TRY(be->ops->alloc(be, RD_MAX_ROPE_PAIRS * sizeof(float), (void **)&m->inv_freq_d));
    m->rope_built_len = -1;
    return RD_OK;
}

rd_status rd_model_init(struct rd_model *m, const struct rd_config *cfg,
                        const struct rd_shard *shard, const struct rd_model_limits *lim,
                        struct rd_backend *be, struct rd_comm *comm,
                        struct rd_weight_source *src, char *err, int err_len)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->shard = *shard;
    m->lim = *lim;
    m->be = be;
    m->comm = comm;
    m->D = cfg->hidden_size;
    m->Dh = cfg->head_dim;
    m->H_local = shard->h_local;
    m->Hkv_local = shard->kv_local;
    m->F_local = shard->f_local;
    m->V_local = shard->v_local;
    m->qkv_n = (m->H_local + 2 * m->Hkv_local) * m->Dh;
    m->v_counts = calloc((size_t)shard->tp, sizeof(int));
    if (!m->v_counts) return RD_ERR_OOM;
    for (int r = 0; r < shard->tp; r++) {
        struct rd_shard s;
        if (rd_shard_compute(cfg->n_heads, cfg->n_kv_heads, cfg->intermediate_size,
                             cfg->vocab_size, shard->tp, r, &s, err, err_len) != RD_OK)
            return RD_ERR_CONFIG;
        m->v_counts[r] = s.v_local;
    }

    const int64_t D = m->D, V = cfg->vocab_size;
    size_t stage_n = (size_t)(V > 1 ? V : 1) * D; /* the embedding is the largest read */
    size_t per_layer = (size_t)m->qkv_n * D;
    if ((size_t)2 * m->F_local * D > per_layer) per_layer = (size_t)2 * m->F_local * D;
    if ((size_t)D * m->H_local * m->Dh > per_layer) per_layer = (size_t)D * m->H_local * m->Dh;
    if (per_layer > stage_n) stage_n = per_layer;
    struct loader L = {.m = m, .src = src, .err = err, .err_len = err_len};
    RD_TRY(check_sizes(&L));
    L.stage = malloc(stage_n * sizeof(float));
    L.stage_n = stage_n;
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    rd_status st = RD_OK;
    if (!L.stage || !m->layers) {
        snprintf(err, err_len, "out of host memory staging %zu weights (%.1f GB: vocab_size %lld x "
                 "hidden_size %lld, or a layer's slice)", stage_n, stage_n * 4.0 / 1e9,
                 (long long)V, (long long)D);
        st = RD_ERR_OOM;
        goto done;
    }
    RD_TRY_GOTO(read_block(&L, "model.embed_tokens.weight", V, D, 0, V, 0, D, L.stage), st, done);
    RD_TRY_GOTO(upload(&L, &m->embed_d, L.stage, (size_t)(V * D)), st, done);
    for (int l = 0; l < cfg->n_layers; l++) RD_TRY_GOTO(load_layer(&L, l), st, done);
    RD_TRY_GOTO(load_vector(&L, "model.norm.weight", D, &m->final_norm_d), st, done);
    const char *head = cfg->tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    RD_TRY_GOTO(read_block(&L, head, V, D, shard->v0, shard->v_local, 0, D, L.stage), st, done);
    RD_TRY_GOTO(upload(&L, &m->lm_head_d, L.stage, (size_t)shard->v_local * D), st, done);
    m->file_bytes = src->bytes_read ? src->bytes_read(src->ctx) : 0;
    const bool has_graphs = be->ops->graph_begin && be->ops->graph_end &&
                            be->ops->graph_launch && be->ops->graph_free;
    if (has_graphs) {
        m->use_graphs = rd_env_int("RD_CUDA_GRAPHS", 1) != 0;
        RD_LOG_INFO(m->use_graphs ? "decode steps (up to %d tokens) replay %s graphs "
                                    "(RD_CUDA_GRAPHS=0 runs them eagerly)"
                                  : "decode steps (up to %d tokens) run eagerly on %s "
                                    "(RD_CUDA_GRAPHS=0)",
                    RD_MODEL_GRAPH_MAX_T, be->ops->name);
    }
    st = alloc_runtime(m);
    if (st != RD_OK && !err[0])
        snprintf(err, err_len, "out of %s memory for the KV cache and activations (%.1f MB of KV "
                 "cache: %d blocks of %d tokens, after %.1f MB of weights): lower --kv-cache-gb, "
                 "--max-seq-len or --max-batch-tokens", be->ops->name,
                 (double)rd_model_kv_block_bytes(cfg, shard, lim->block_size, be->dtype) *
                     (lim->n_blocks > 0 ? lim->n_blocks
                                        : lim->max_seqs * ((lim->max_ctx + lim->block_size - 1) /
                                                           lim->block_size)) / 1e6,
                 lim->n_blocks > 0 ? lim->n_blocks
                                   : lim->max_seqs * ((lim->max_ctx + lim->block_size - 1) /
                                                      lim->block_size),
                 lim->block_size, m->weight_bytes / 1e6);
done:
    free(L.stage);
    return st;
}

/* Drops every recorded graph (they hold the buffer pointers and shapes of their time). */
static void free_graphs(struct rd_model *m)
{
    for (int i = 0; i < m->n_graphs; i++)
        if (m->graphs[i].graph) m->be->ops->graph_free(m->be, m->graphs[i].graph);
    memset(m->graphs, 0, sizeof m->graphs);
    m->n_graphs = 0;
}

void rd_model_free(struct rd_model *m)
{
    if (!m || !m->be) return;
    struct rd_backend *be = m->be;
    free_graphs(m);
    void (*f)(struct rd_backend *, void *) = be->ops->free;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            struct rd_layer_weights *w = &m->layers[l];
            f(be, w->attn_norm_d), f(be, w->wqkv_d), f(be, w->wo_d);
            f(be, w->mlp_norm_d), f(be, w->wgu_d), f(be, w->wdown_d);
        }
        free(m->layers);
    }
    free_cache(m);
    free(m->k_cache_d);
    free(m->v_cache_d);
    f(be, m->embed_d), f(be, m->final_norm_d), f(be, m->lm_head_d);
    f(be, m->x_d), f(be, m->h_d), f(be, m->qkv_d), f(be, m->attn_d), f(be, m->proj_d);
    f(be, m->gu_d), f(be, m->act_d), f(be, m->logits_d);
    f(be, m->meta_d);
    free(m->meta_h);
    f(be, m->inv_freq_d);
    free(m->logits_h);
    free(m->v_counts);
    memset(m, 0, sizeof *m);
}

static rd_status resize(struct rd_model *m, int seqs, int ctx, int n_blocks)
{
    if (seqs < 1 || ctx < 1 || n_blocks < 0 || (m->lim.window > 0 && ctx != m->lim.window))
        return RD_ERR_INVALID_ARG;
    free_graphs(m); /* they point into the old cache and were recorded for the old max_ctx */
    free_cache(m);
    m->lim.max_seqs = seqs;
    m->lim.max_ctx = ctx;
    m->lim.n_blocks = n_blocks;
    rd_status st = alloc_cache(m);
    if (st != RD_OK) {
        free_cache(m);
        m->lim.max_seqs = m->lim.max_ctx = 0;
        m->max_blocks = m->n_blocks = 0;
    }
    return st;
}

rd_status rd_model_resize_cache(struct rd_model *m, int seqs, int ctx)
{
    return resize(m, seqs, ctx, 0);
}

rd_status rd_model_resize_pool(struct rd_model *m, int n_blocks)
{
    if (n_blocks < 1) return RD_ERR_INVALID_ARG;
    return resize(m, m->lim.max_seqs, m->lim.max_ctx, n_blocks);
}

/* ---- forward ---- */

/* the on_op hook: one branch when it is unset */
#define ON_OP(m, op, layer)                                                                        \
    RD_TRY((m)->on_op ? (m)->on_op((m)->on_op_ctx, RD_MODEL_OP_##op, (layer)) : RD_OK)

/* an upload the host does not wait for, where the backend has one */
static rd_status upload_nowait(struct rd_model *m, void *dst_d, const void *src_h, size_t bytes)
{
    struct rd_backend *be = m->be;
    if (be->ops->upload_async) return be->ops->upload_async(be, dst_d, src_h, bytes);
    return be->ops->upload(be, dst_d, src_h, bytes);
}

static rd_status update_rope(struct rd_model *m, int seq_len)
{
    if (m->rope_built_len >= 0 && (!rd_rope_depends_on_len(&m->cfg) || seq_len == m->rope_built_len))
        return RD_OK;
    RD_TRY(rd_rope_build(&m->cfg, seq_len, &m->rope));
    m->rope_built_len = seq_len;
    return upload_nowait(m, m->inv_freq_d, m->rope.inv_freq, (size_t)m->rope.n_pairs * sizeof(float));
}

/* The layer loop and the LM head of a checked batch whose arrays are on the device: local
 * logits of the n_out wanted tokens in m->logits_d. Only enqueues (no host transfer), so it
 * may be recorded into a graph; max_ctx bounds the batch's n_ctx. */
static rd_status enqueue_layers(struct rd_model *m, const struct rd_batch *b, int max_ctx)
{
    struct rd_backend *be = m->be;
    const struct rd_ops *o = be->ops;
    const int T = b->T, D = m->D;
    const float eps = (float)m->cfg.rms_norm_eps;
    /* the packed metadata of this call (forward_to_logits) */
    const int32_t *ids_d = m->meta_d, *pos_d = ids_d + T, *seq_d = pos_d + T;
    const int32_t *slot_d = seq_d + T, *nctx_d = slot_d + T;
    struct rd_attn_params ap = {
        .T = T, .H = m->H_local, .Hkv = m->Hkv_local, .Dh = m->Dh,
        .rotary_dim = m->cfg.rotary_dim, .style = m->cfg.rope_style,
        .inv_freq_d = m->inv_freq_d, .attention_factor = m->rope.attention_factor,
        .scale = (float)(1.0 / sqrt((double)m->Dh)),
        .qkv_d = m->qkv_d, .out_d = m->attn_d,
        .pos_d = pos_d, .seq_d = seq_d, .slot_d = slot_d, .n_ctx_d = nctx_d,
        .block_table_d = m->block_table_d, .max_blocks = m->max_blocks,
        .block_size = m->lim.block_size, .max_ctx = max_ctx,
        .sink_tokens = m->lim.sink_tokens, .window = m->lim.window,
    };

    RD_TRY(o->embed(be, m->x_d, m->embed_d, ids_d, T, D));
    ON_OP(m, EMBED, -1);
    RD_TRY(o->rmsnorm(be, m->h_d, m->x_d, m->layers[0].attn_norm_d, T, D, eps));
    ON_OP(m, RMSNORM, -1);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct rd_layer_weights *w = &m->layers[l];
        RD_TRY(o->matmul(be, m->qkv_d, m->h_d, w->wqkv_d, T, m->qkv_n, D));
        ON_OP(m, QKV, l);
        ap.k_cache_d = m->k_cache_d[l];
        ap.v_cache_d = m->v_cache_d[l];
        RD_TRY(o->rope_attention(be, &ap));
        ON_OP(m, ATTENTION, l);
        RD_TRY(o->matmul(be, m->proj_d, m->attn_d, w->wo_d, T, D, m->H_local * m->Dh));
        ON_OP(m, O_PROJ, l);
        RD_TRY(rd_comm_allreduce_sum(m->comm, m->proj_d, (size_t)T * D));
        ON_OP(m, ALLREDUCE, l);
        RD_TRY(o->add_rmsnorm(be, m->h_d, m->x_d, m->proj_d, w->mlp_norm_d, T, D, eps));
        ON_OP(m, ADD_RMSNORM, l);
        RD_TRY(o->matmul(be, m->gu_d, m->h_d, w->wgu_d, T, 2 * m->F_local, D));
        ON_OP(m, GATE_UP, l);
        RD_TRY(o->swiglu(be, m->act_d, m->gu_d, T, m->F_local));
        ON_OP(m, SWIGLU, l);
        RD_TRY(o->matmul(be, m->proj_d, m->act_d, w->wdown_d, T, D, m->F_local));
        ON_OP(m, DOWN, l);
        RD_TRY(rd_comm_allreduce_sum(m->comm, m->proj_d, (size_t)T * D));
        ON_OP(m, ALLREDUCE, l);
        const void *next_norm =
            l + 1 < m->cfg.n_layers ? m->layers[l + 1].attn_norm_d : m->final_norm_d;
        RD_TRY(o->add_rmsnorm(be, m->h_d, m->x_d, m->proj_d, next_norm, T, D, eps));
        ON_OP(m, ADD_RMSNORM, l);
    }
    if (b->n_out == 0) return RD_OK;
    /* gather the rows whose logits are wanted, then the rank's vocab rows of the LM head */
    const size_t row = (size_t)D * rd_dtype_size(be->dtype);
    for (int i = 0; i < b->n_out; i++)
        RD_TRY(o->copy(be, (char *)m->proj_d + i * row, (const char *)m->h_d + b->out_idx[i] * row,
                       row));
    RD_TRY(o->matmul(be, m->logits_d, m->proj_d, m->lm_head_d, b->n_out, m->V_local, D));
    ON_OP(m, LM_HEAD, -1);
    return RD_OK;
}

/* The graph of a decode-shaped call (see model.h) whose largest n_ctx is max_ctx, NULL when
 * the call runs eagerly. */
static struct rd_model_graph *graph_of(struct rd_model *m, const struct rd_batch *b, int max_ctx)
{
    if (!m->use_graphs || m->on_op || b->T > RD_MODEL_GRAPH_MAX_T || b->n_out != b->T)
        return NULL;
    /* a bound that changes once per doubling of the context, so graphs are few, yet attention
     * splits the context about as an eager call would */
    int bound = RD_MODEL_GRAPH_MIN_CTX;
    while (bound < max_ctx && bound <= INT_MAX / 2) bound *= 2;
    if (bound > m->lim.max_ctx) bound = m->lim.max_ctx;
    const float af = m->rope.attention_factor;
    const size_t idx_bytes = (size_t)b->T * sizeof(int32_t);
    for (int i = 0; i < m->n_graphs; i++) {
        struct rd_model_graph *g = &m->graphs[i];
        if (g->T == b->T && g->max_ctx == bound && !memcmp(g->out_idx, b->out_idx, idx_bytes) &&
            !memcmp(&g->attention_factor, &af, sizeof af))
            return g;
    }
    if (m->n_graphs == RD_MODEL_GRAPHS) return NULL; /* that many shapes: the rest run eagerly */
    struct rd_model_graph *g = &m->graphs[m->n_graphs++];
    memset(g, 0, sizeof *g);
    g->T = b->T;
    memcpy(g->out_idx, b->out_idx, idx_bytes);
    g->attention_factor = af;
    g->max_ctx = bound;
    return g;
}

/* A decode-shaped call through its graph: eager warm-up the first time, recorded the second,
 * replayed from then on. All three give attention the graph's bound g->max_ctx, so they run
 * the same kernels. */
static rd_status forward_graph(struct rd_model *m, const struct rd_batch *b,
                               struct rd_model_graph *g)
{
    struct rd_backend *be = m->be;
    const struct rd_ops *o = be->ops;
    if (!g->graph && g->calls++ == 0) return enqueue_layers(m, b, g->max_ctx);
    if (!g->graph) {
        rd_status st = o->graph_begin(be);
        if (st == RD_OK) {
            st = enqueue_layers(m, b, g->max_ctx);
            rd_status st_end = o->graph_end(be, &g->graph); /* ends the recording in any case */
            if (st == RD_OK) st = st_end;
        }
        if (st != RD_OK) {
            o->graph_free(be, g->graph);
            g->graph = NULL;
            m->use_graphs = false;
            RD_LOG_ERROR("recording the decode step (T=%d, context bound %d) as a graph "
                         "failed: %s; run with RD_CUDA_GRAPHS=0 to go without graphs",
                         b->T, g->max_ctx, rd_status_str(st));
            return st;
        }
        RD_LOG_DEBUG("recorded the decode step of %d token(s), context bound %d, as a graph "
                     "(%d shape(s))",
                     b->T, g->max_ctx, m->n_graphs);
    }
    return o->graph_launch(be, g->graph);
}

/* Checks the batch, uploads its arrays (and the rope table when it changes), then enqueues
 * the layer loop and the LM head, eagerly or through a graph: local logits of the n_out wanted
 * tokens in m->logits_d. */
static rd_status forward_to_logits(struct rd_model *m, const struct rd_batch *b)
{
    const int T = b->T;
    if (T < 1 || T > m->lim.max_tokens || b->n_out < 0 || b->n_out > T) return RD_ERR_INVALID_ARG;
    int max_pos = 0, max_ctx = 0;
    for (int t = 0; t < T; t++) {
        if (b->pos[t] > max_pos) max_pos = b->pos[t];
        if (b->n_ctx[t] > max_ctx) max_ctx = b->n_ctx[t];
        if (b->slot[t] < 0 || b->slot[t] >= m->lim.max_ctx || b->n_ctx[t] < 1 ||
            b->n_ctx[t] > m->lim.max_ctx || (m->lim.window == 0 && b->n_ctx[t] > b->slot[t] + 1) ||
            b->seq[t] < 0 || b->seq[t] >= m->lim.max_seqs)
            return RD_ERR_RANGE;
    }
    /* one packed copy of the metadata (the host does not wait for it) */
    const size_t ti = (size_t)T * sizeof(int32_t);
    memcpy(m->meta_h, b->ids, ti);
    memcpy(m->meta_h + T, b->pos, ti);
    memcpy(m->meta_h + 2 * T, b->seq, ti);
    memcpy(m->meta_h + 3 * T, b->slot, ti);
    memcpy(m->meta_h + 4 * T, b->n_ctx, ti);
    RD_TRY(upload_nowait(m, m->meta_d, m->meta_h, 5 * ti));
    if (m->table_dirty_hi > m->table_dirty_lo) {
        const int lo = m->table_dirty_lo, n = m->table_dirty_hi - lo;
        RD_TRY(upload_nowait(m, m->block_table_d + lo, m->block_table_h + lo,
                             (size_t)n * sizeof(int32_t)));
        m->table_dirty_lo = m->table_dirty_hi = 0;
    }
    RD_TRY(update_rope(m, b->rope_len > max_pos + 1 ? b->rope_len : max_pos + 1));
    ON_OP(m, HOST_IN, -1);

    struct rd_model_graph *g = graph_of(m, b, max_ctx);
    return g ? forward_graph(m, b, g) : enqueue_layers(m, b, max_ctx);
}

rd_status rd_model_forward(struct rd_model *m, const struct rd_batch *b, float *logits_local_h)
{
    RD_TRY(forward_to_logits(m, b));
    RD_TRY(rd_comm_wait(m->comm)); /* the step's one wait, watching the all-reduces */
    if (b->n_out == 0) return m->be->ops->sync(m->be);
    RD_TRY(m->be->ops->download_f32(m->be, logits_local_h, m->logits_d,
                                    (size_t)b->n_out * m->V_local));
    ON_OP(m, HOST_OUT, -1);
    return RD_OK;
}

rd_status rd_model_forward_topk(struct rd_model *m, const struct rd_batch *b, int k, float *vals_h,
                                int32_t *ids_h)
{
    RD_TRY(forward_to_logits(m, b));
    RD_TRY(rd_comm_wait(m->comm));
    if (b->n_out == 0) return m->be->ops->sync(m->be);
    RD_TRY(
        m->be->ops->topk(m->be, vals_h, ids_h, m->logits_d, b->n_out, m->V_local, k, m->shard.v0));
    ON_OP(m, HOST_OUT, -1);
    return RD_OK;
}
