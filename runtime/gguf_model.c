/* Llama models from GGUF files (see gguf_model.h). */
#include "runtime/gguf_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"

#define FAIL(st, ...)                                                                          \
    do {                                                                                       \
        if (err) snprintf(err, (size_t)err_len, __VA_ARGS__);                                  \
        return (st);                                                                           \
    } while (0)

static const struct {
    const char *hf, *gguf;
} k_layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

bool rd_gguf_model_tensor_name(const char *hf, char *out, size_t n)
{
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, n, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, n, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, n, "output.weight") > 0;
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used > 0) {
        for (size_t i = 0; i < sizeof k_layer_names / sizeof *k_layer_names; i++)
            if (!strcmp(hf + used, k_layer_names[i].hf))
                return snprintf(out, n, "blk.%d.%s", layer, k_layer_names[i].gguf) > 0;
    }
    return false;
}

/* An integer key within 1..max; required ones must be there, optional ones leave *out. */
static rd_status get_int_in(const struct rd_gguf *g, const char *key, bool required, int64_t max,
                            int *out, char *err, int err_len)
{
    int64_t v;
    if (rd_gguf_get_int(g, key, &v) != RD_OK) {
        if (!required) return RD_OK;
        FAIL(RD_ERR_CONFIG, "GGUF metadata %s is missing or not an integer", key);
    }
    if (v <= 0 || v > max)
        FAIL(RD_ERR_CONFIG, "GGUF metadata %s = %lld is out of range (1..%lld)", key, (long long)v,
             (long long)max);
    *out = (int)v;
    return RD_OK;
}
#define get_req_int(g, key, max, out) RD_TRY(get_int_in(g, key, true, max, out, err, err_len))
#define get_opt_int(g, key, max, out) RD_TRY(get_int_in(g, key, false, max, out, err, err_len))

rd_status rd_gguf_model_config(const struct rd_gguf *g, struct rd_config *cfg, char *err,
                               int err_len)
{
    rd_config_defaults(cfg);
    const char *arch = NULL;
    uint64_t len = 0;
    if (rd_gguf_get_str(g, "general.architecture", &arch, &len) != RD_OK)
        FAIL(RD_ERR_CONFIG, "GGUF metadata general.architecture is missing");
    if (strcmp(arch, "llama") != 0)
        FAIL(RD_ERR_CONFIG, "GGUF architecture '%s' is not supported (ropedist runs llama)", arch);
    /* each size is checked under its GGUF key, so an error names the key, not a field derived
     * from it */
    get_req_int(g, "llama.embedding_length", RD_MAX_HIDDEN, &cfg->hidden_size);
    get_req_int(g, "llama.feed_forward_length", RD_MAX_FFN, &cfg->intermediate_size);
    get_req_int(g, "llama.block_count", RD_MAX_LAYERS, &cfg->n_layers);
    get_req_int(g, "llama.attention.head_count", RD_MAX_HEADS, &cfg->n_heads);
    cfg->n_kv_heads = cfg->n_heads;
    get_opt_int(g, "llama.attention.head_count_kv", RD_MAX_HEADS, &cfg->n_kv_heads);
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        FAIL(RD_ERR_CONFIG, "GGUF metadata llama.attention.head_count_kv (%d) does not divide "
             "llama.attention.head_count (%d)", cfg->n_kv_heads, cfg->n_heads);
    cfg->head_dim = 0;
    get_opt_int(g, "llama.attention.key_length", 4096, &cfg->head_dim);
    if (!cfg->head_dim) {
        cfg->head_dim = cfg->hidden_size / cfg->n_heads;
        if (cfg->hidden_size % cfg->n_heads != 0 || cfg->head_dim > 4096)
            FAIL(RD_ERR_CONFIG, "GGUF metadata llama.embedding_length (%d) / "
                 "llama.attention.head_count (%d) is not a head size in 1..4096 (and "
                 "llama.attention.key_length is not given)", cfg->hidden_size, cfg->n_heads);
    }
    cfg->rotary_dim = cfg->head_dim;
    get_opt_int(g, "llama.rope.dimension_count", cfg->head_dim, &cfg->rotary_dim);
    int64_t v;
    double f;
    if (rd_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f) == RD_OK)
        cfg->rms_norm_eps = f;
    if (rd_gguf_get_f64(g, "llama.rope.freq_base", &f) == RD_OK) cfg->rope.theta = f;
    get_opt_int(g, "llama.context_length", RD_MAX_POSITIONS, &cfg->max_position_embeddings);

    const char *scaling = NULL;
    if (rd_gguf_get_str(g, "llama.rope.scaling.type", &scaling, &len) == RD_OK &&
        strcmp(scaling, "none") != 0) {
        if (!strcmp(scaling, "linear")) cfg->rope.type = RD_ROPE_TYPE_LINEAR;
        else if (!strcmp(scaling, "yarn")) cfg->rope.type = RD_ROPE_TYPE_YARN;
        else FAIL(RD_ERR_CONFIG, "GGUF rope scaling '%s' is not supported (none, linear, yarn)", scaling);
        if (rd_gguf_get_f64(g, "llama.rope.scaling.factor", &f) != RD_OK)
            FAIL(RD_ERR_CONFIG, "GGUF metadata llama.rope.scaling.factor is missing");
        cfg->rope.factor = f;
        cfg->rope.has_factor = true;
        get_opt_int(g, "llama.rope.scaling.original_context_length", RD_MAX_POSITIONS,
                    &cfg->rope.original_max_pos);
    }

    /* llama.cpp stores Llama 3.1-style frequency scaling as a tensor; refuse rather than run
     * with unscaled frequencies */
    if (rd_gguf_find_tensor(g, "rope_freqs.weight"))
        FAIL(RD_ERR_UNSUPPORTED, "GGUF rope scaling stored as rope_freqs.weight (Llama 3.1 style) "
             "is not supported yet; convert the Hugging Face model instead");
    const struct rd_gguf_tensor *emb = rd_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) FAIL(RD_ERR_FORMAT, "GGUF tensor token_embd.weight is missing");
    if (emb->ne[0] != cfg->hidden_size)
        FAIL(RD_ERR_CONFIG, "GGUF metadata llama.embedding_length (%d) does not match tensor "
             "token_embd.weight (%lld x %lld)", cfg->hidden_size, (long long)emb->ne[0],
             (long long)emb->ne[1]);
    if (emb->ne[1] <= 0 || emb->ne[1] > RD_MAX_VOCAB)
        FAIL(RD_ERR_CONFIG, "GGUF tensor token_embd.weight has %lld rows (the vocabulary), "
             "outside 1..%d", (long long)emb->ne[1], RD_MAX_VOCAB);
    cfg->vocab_size = (int)emb->ne[1];
    get_opt_int(g, "llama.vocab_size", RD_MAX_VOCAB, &cfg->vocab_size);
    if (cfg->vocab_size != emb->ne[1])
        FAIL(RD_ERR_CONFIG, "GGUF metadata llama.vocab_size (%d) does not match tensor "
             "token_embd.weight (%lld rows)", cfg->vocab_size, (long long)emb->ne[1]);
    cfg->tie_word_embeddings = rd_gguf_find_tensor(g, "output.weight") == NULL;
    if (rd_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) == RD_OK && v >= 0 && v < cfg->vocab_size)
        cfg->bos_token_id = (int)v;
    if (rd_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v) == RD_OK && v >= 0 && v < cfg->vocab_size)
        cfg->eos_token_ids[cfg->n_eos++] = (int)v;
    cfg->rope_style = RD_ROPE_GPTJ; /* Meta's interleaved q/k rows, used as stored */
    return rd_config_validate(cfg, err, err_len);
}

rd_status rd_gguf_model_load_config(const char *path, struct rd_config *cfg, char *err,
                                    int err_len)
{
    struct rd_gguf *g = NULL;
    char sub[512] = "";
    rd_status st = rd_gguf_open(path, &g, sub, sizeof sub); /* its message names the file */
    if (st != RD_OK) FAIL(st, "%s", sub);
    st = rd_gguf_model_config(g, cfg, sub, sizeof sub);
    rd_gguf_close(g);
    if (st != RD_OK) FAIL(st, "%s: %s", path, sub);
    snprintf(cfg->checkpoint_path, RD_PATH_MAX, "%s", path);
    return RD_OK;
}

/* ---- weight source ---- */

struct gguf_src {
    struct rd_gguf *g;
    char path[RD_PATH_MAX];
    uint64_t bytes;
};

static const struct rd_gguf_tensor *find(struct gguf_src *s, const char *hf, char *err, int err_len)
{
    char name[256];
    if (!rd_gguf_model_tensor_name(hf, name, sizeof name)) {
        if (err) snprintf(err, (size_t)err_len, "%s: tensor %s has no GGUF name", s->path, hf);
        return NULL;
    }
    const struct rd_gguf_tensor *t = rd_gguf_find_tensor(s->g, name);
    if (!t && err) snprintf(err, (size_t)err_len, "%s: tensor %s (%s) is missing", s->path, name, hf);
    return t;
}

static rd_status src_shape(void *ctx, const char *hf, int *ndim, int64_t dims[2], char *err,
                           int err_len)
{
    const struct rd_gguf_tensor *t = find(ctx, hf, err, err_len);
    if (!t) return RD_ERR_FORMAT;
    if (t->n_dims == 1) {
        *ndim = 1;
        dims[0] = t->ne[0];
        dims[1] = 1;
    } else if (t->n_dims == 2) {
        *ndim = 2;
        dims[0] = t->ne[1]; /* ggml ne[0] is the fastest (input) dimension */
        dims[1] = t->ne[0];
    } else {
        FAIL(RD_ERR_FORMAT, "GGUF tensor %s has %d dimensions", t->name, t->n_dims);
    }
    return RD_OK;
}

/* Converts n elements starting at element e0 of a row of type `type` at row_data. */
static rd_status convert_row(uint32_t type, const uint8_t *row, int64_t e0, int64_t n, float *dst)
{
    switch (type) {
    case RD_GGML_TYPE_F32: memcpy(dst, (const float *)row + e0, (size_t)n * 4); return RD_OK;
    case RD_GGML_TYPE_F16: rd_convert_to_f32(dst, (const uint16_t *)row + e0, RD_DTYPE_F16, (size_t)n); return RD_OK;
    case RD_GGML_TYPE_BF16: rd_convert_to_f32(dst, (const uint16_t *)row + e0, RD_DTYPE_BF16, (size_t)n); return RD_OK;
    case RD_GGML_TYPE_Q8_0: /* blocks of 32: an fp16 scale then 32 int8 */
        for (int64_t i = 0; i < n; i++) {
            int64_t e = e0 + i;
            const uint8_t *blk = row + (e / 32) * 34;
            uint16_t d;
            memcpy(&d, blk, 2);
            dst[i] = rd_f16_to_f32(d) * (float)(int8_t)blk[2 + e % 32];
        }
        return RD_OK;
    default: return RD_ERR_UNSUPPORTED;
    }
}

static rd_status src_read(void *ctx, const char *hf, int64_t r0, int64_t nr, int64_t c0,
                          int64_t nc, float *dst, char *err, int err_len)
{
    struct gguf_src *s = ctx;
    const struct rd_gguf_tensor *t = find(s, hf, err, err_len);
    if (!t) return RD_ERR_FORMAT;
    int64_t block, tsize;
    if (!rd_gguf_ggml_type_size(t->type, &block, &tsize) ||
        !(t->type == RD_GGML_TYPE_F32 || t->type == RD_GGML_TYPE_F16 ||
          t->type == RD_GGML_TYPE_BF16 || t->type == RD_GGML_TYPE_Q8_0))
        FAIL(RD_ERR_UNSUPPORTED, "%s: tensor %s has type %s (ggml type %u); supported: f32, f16, "
             "bf16, q8_0", s->path, t->name, rd_gguf_ggml_type_name(t->type), t->type);
    const int64_t cols = t->ne[0], rows = t->n_dims == 2 ? t->ne[1] : 1;
    if (r0 < 0 || nr < 0 || c0 < 0 || nc < 0 || r0 + nr > rows || c0 + nc > cols)
        FAIL(RD_ERR_RANGE, "%s: slice outside tensor %s", s->path, t->name);
    if (cols % block) FAIL(RD_ERR_FORMAT, "%s: tensor %s rows are not whole blocks", s->path, t->name);
    const uint64_t row_bytes = (uint64_t)(cols / block) * (uint64_t)tsize;
    const uint8_t *data = rd_gguf_tensor_data(s->g, t);
    if (!data) FAIL(RD_ERR_IO, "%s: cannot map tensor %s", s->path, t->name);
    for (int64_t r = 0; r < nr; r++)
        RD_TRY(convert_row(t->type, data + (uint64_t)(r0 + r) * row_bytes, c0, nc, dst + r * nc));
    s->bytes += (uint64_t)nr * (uint64_t)nc * (uint64_t)tsize / (uint64_t)block;
    return RD_OK;
}

static uint64_t src_bytes(void *ctx) { return ((struct gguf_src *)ctx)->bytes; }

static void src_close(void *ctx)
{
    struct gguf_src *s = ctx;
    if (!s) return;
    rd_gguf_close(s->g);
    free(s);
}

rd_status rd_weights_open_gguf(const char *path, struct rd_weight_source *src, char *err,
                               int err_len)
{
    struct gguf_src *s = calloc(1, sizeof *s);
    if (!s) return RD_ERR_OOM;
    snprintf(s->path, sizeof s->path, "%s", path);
    char sub[512] = "";
    rd_status st = rd_gguf_open(path, &s->g, sub, sizeof sub);
    if (st != RD_OK) {
        free(s);
        FAIL(st, "%s", sub);
    }
    src->ctx = s;
    src->shape = src_shape;
    src->read = src_read;
    src->bytes_read = src_bytes;
    src->close = src_close;
    return RD_OK;
}
