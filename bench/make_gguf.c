/* bench_make_gguf: writes a random Llama model as an F32 GGUF file that both ropedist and
 * llama.cpp load, so the two can be timed on the same bytes (bench/compare_llamacpp.py).
 *
 * The weights are runtime/weights_random.c's (uniform +-0.02, norms 1 +- 0.02, a pure function
 * of seed, tensor name and element), stored under llama.cpp's tensor names with the output
 * layer tied to the embedding. The vocabulary is a made-up SentencePiece one (<unk>, <s>, </s>,
 * the 256 byte tokens, then "▁t<i>") so llama.cpp's loader accepts it; the benchmarks feed
 * token ids and never tokenize text. The default shape (dim 768, 12 layers, 12 heads, ffn 2048,
 * vocab 32000) has 110M parameters, 85M of them in the layers. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "runtime/config.h"
#include "runtime/gguf_model.h"
#include "runtime/weights_random.h"

#define MAX_KV 32

struct shape {
    int dim, layers, heads, kv_heads, ffn, vocab, ctx;
};

static void usage(FILE *f)
{
    fputs("usage: bench_make_gguf -o FILE.gguf [--dim 768] [--layers 12] [--heads 12]\n"
          "                       [--kv-heads 12] [--ffn 2048] [--vocab 32000] [--ctx 2048]\n"
          "                       [--seed 0] [--force]\n"
          "Writes a random Llama model (F32, output tied to the embedding) that ropedist and\n"
          "llama.cpp both load. An existing FILE is kept unless --force.\n",
          f);
}

static struct rd_gguf_kv *kv_new(struct rd_gguf_kv *pool, int *n, const char *key,
                                 enum rd_gguf_type type)
{
    struct rd_gguf_kv *kv = &pool[(*n)++];
    memset(kv, 0, sizeof *kv);
    kv->key = (char *)key;
    kv->type = type;
    return kv;
}

static void kv_u32(struct rd_gguf_kv *pool, int *n, const char *key, uint64_t v)
{
    kv_new(pool, n, key, RD_GGUF_TYPE_UINT32)->v.u64 = v;
}

static void kv_f32(struct rd_gguf_kv *pool, int *n, const char *key, double v)
{
    kv_new(pool, n, key, RD_GGUF_TYPE_FLOAT32)->v.f64 = v;
}

static void kv_str(struct rd_gguf_kv *pool, int *n, const char *key, const char *s)
{
    struct rd_gguf_kv *kv = kv_new(pool, n, key, RD_GGUF_TYPE_STRING);
    kv->v.str.data = (char *)s;
    kv->v.str.len = strlen(s);
}

static void kv_arr(struct rd_gguf_kv *pool, int *n, const char *key, enum rd_gguf_type type,
                   uint64_t count, void *data)
{
    struct rd_gguf_kv *kv = kv_new(pool, n, key, RD_GGUF_TYPE_ARRAY);
    kv->arr_type = type;
    kv->n = count;
    kv->arr = data;
}

/* The made-up SentencePiece vocabulary: token strings, scores and types (llama.cpp's
 * 1 normal, 2 unknown, 3 control, 6 byte). */
static int make_vocab(int V, struct rd_gguf_str **tokens, float **scores, int32_t **types)
{
    *tokens = calloc((size_t)V, sizeof **tokens);
    *scores = calloc((size_t)V, sizeof **scores);
    *types = calloc((size_t)V, sizeof **types);
    if (!*tokens || !*scores || !*types) return -1;
    for (int i = 0; i < V; i++) {
        char s[32];
        int32_t type = 1;
        if (i == 0)
            snprintf(s, sizeof s, "<unk>"), type = 2;
        else if (i == 1)
            snprintf(s, sizeof s, "<s>"), type = 3;
        else if (i == 2)
            snprintf(s, sizeof s, "</s>"), type = 3;
        else if (i < 3 + 256)
            snprintf(s, sizeof s, "<0x%02X>", i - 3), type = 6;
        else
            snprintf(s, sizeof s, "\xe2\x96\x81t%d", i); /* U+2581, SentencePiece's space */
        (*tokens)[i].data = strdup(s);
        (*tokens)[i].len = strlen(s);
        if (!(*tokens)[i].data) return -1;
        (*scores)[i] = type == 1 ? -(float)i : 0.0f;
        (*types)[i] = type;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct shape s = {768, 12, 12, 12, 2048, 32000, 2048};
    const char *out = NULL;
    unsigned long long seed = 0;
    int force = 0;
    enum { O_DIM = 1000, O_LAYERS, O_HEADS, O_KV, O_FFN, O_VOCAB, O_CTX, O_SEED, O_FORCE };
    static const struct option opts[] = {{"dim", required_argument, 0, O_DIM},
                                         {"layers", required_argument, 0, O_LAYERS},
                                         {"heads", required_argument, 0, O_HEADS},
                                         {"kv-heads", required_argument, 0, O_KV},
                                         {"ffn", required_argument, 0, O_FFN},
                                         {"vocab", required_argument, 0, O_VOCAB},
                                         {"ctx", required_argument, 0, O_CTX},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"force", no_argument, 0, O_FORCE},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_DIM: s.dim = atoi(optarg); break;
        case O_LAYERS: s.layers = atoi(optarg); break;
        case O_HEADS: s.heads = atoi(optarg); break;
        case O_KV: s.kv_heads = atoi(optarg); break;
        case O_FFN: s.ffn = atoi(optarg); break;
        case O_VOCAB: s.vocab = atoi(optarg); break;
        case O_CTX: s.ctx = atoi(optarg); break;
        case O_SEED: seed = strtoull(optarg, NULL, 10); break;
        case O_FORCE: force = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!out || optind < argc) {
        usage(stderr);
        return 2;
    }
    struct stat sb;
    if (!force && stat(out, &sb) == 0) {
        fprintf(stderr, "bench_make_gguf: %s exists (--force to overwrite)\n", out);
        return 1;
    }
    if (s.vocab < 3 + 256) {
        fprintf(stderr, "bench_make_gguf: --vocab must be at least 259 (specials and bytes)\n");
        return 2;
    }

    struct rd_config cfg;
    rd_config_defaults(&cfg);
    cfg.hidden_size = s.dim;
    cfg.intermediate_size = s.ffn;
    cfg.n_layers = s.layers;
    cfg.n_heads = s.heads;
    cfg.n_kv_heads = s.kv_heads;
    cfg.head_dim = s.heads > 0 ? s.dim / s.heads : 0;
    cfg.rotary_dim = cfg.head_dim;
    cfg.vocab_size = s.vocab;
    cfg.max_position_embeddings = s.ctx;
    cfg.tie_word_embeddings = true;
    char err[512] = "";
    if (s.heads <= 0 || s.dim % s.heads || rd_config_validate(&cfg, err, sizeof err) != RD_OK) {
        fprintf(stderr, "bench_make_gguf: bad shape: %s\n", err[0] ? err : "dim % heads != 0");
        return 2;
    }
    struct rd_weight_source src;
    if (rd_weights_open_random(&cfg, seed, 0.0f, &src, err, sizeof err) != RD_OK) {
        fprintf(stderr, "bench_make_gguf: %s\n", err);
        return 1;
    }

    /* tensors, in llama.cpp's order: embedding, the layers, the final norm */
    static const char *const k_layer[] = {
        "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};
    const int n_per = (int)(sizeof k_layer / sizeof *k_layer), n_t = 2 + n_per * s.layers;
    struct rd_test_gguf_tensor *t = calloc((size_t)n_t, sizeof *t);
    char(*names)[96] = calloc((size_t)n_t, sizeof *names);
    if (!t || !names) return 1;
    uint64_t params = 0;
    for (int i = 0; i < n_t; i++) {
        char hf[128];
        if (i == 0)
            snprintf(hf, sizeof hf, "model.embed_tokens.weight");
        else if (i == n_t - 1)
            snprintf(hf, sizeof hf, "model.norm.weight");
        else
            snprintf(hf, sizeof hf, "model.layers.%d.%s", (i - 1) / n_per,
                     k_layer[(i - 1) % n_per]);
        int nd = 0;
        int64_t dims[2] = {1, 1};
        if (src.shape(src.ctx, hf, &nd, dims, err, sizeof err) != RD_OK ||
            !rd_gguf_model_tensor_name(hf, names[i], sizeof names[i])) {
            fprintf(stderr, "bench_make_gguf: %s: %s\n", hf, err);
            return 1;
        }
        const int64_t rows = nd == 2 ? dims[0] : 1, cols = nd == 2 ? dims[1] : dims[0];
        float *data = malloc((size_t)(rows * cols) * sizeof(float));
        if (!data || src.read(src.ctx, hf, 0, rows, 0, cols, data, err, sizeof err) != RD_OK) {
            fprintf(stderr, "bench_make_gguf: reading %s: %s\n", hf, data ? err : "out of memory");
            return 1;
        }
        t[i] = (struct rd_test_gguf_tensor){.name = names[i],
                                            .n_dims = nd,
                                            .type = RD_GGML_TYPE_F32,
                                            .data = data,
                                            .nbytes = (uint64_t)(rows * cols) * 4};
        t[i].ne[0] = cols; /* ggml order: the row length first */
        t[i].ne[1] = rows;
        params += (uint64_t)(rows * cols);
    }
    src.close(src.ctx);

    struct rd_gguf_str *tokens;
    float *scores;
    int32_t *types;
    if (make_vocab(s.vocab, &tokens, &scores, &types) != 0) return 1;
    struct rd_gguf_kv pool[MAX_KV];
    int n_kv = 0;
    kv_str(pool, &n_kv, "general.architecture", "llama");
    kv_str(pool, &n_kv, "general.name", "ropedist random llama");
    kv_u32(pool, &n_kv, "general.file_type", 0); /* all F32 */
    kv_u32(pool, &n_kv, "llama.context_length", (uint64_t)s.ctx);
    kv_u32(pool, &n_kv, "llama.embedding_length", (uint64_t)s.dim);
    kv_u32(pool, &n_kv, "llama.block_count", (uint64_t)s.layers);
    kv_u32(pool, &n_kv, "llama.feed_forward_length", (uint64_t)s.ffn);
    kv_u32(pool, &n_kv, "llama.rope.dimension_count", (uint64_t)cfg.head_dim);
    kv_u32(pool, &n_kv, "llama.attention.head_count", (uint64_t)s.heads);
    kv_u32(pool, &n_kv, "llama.attention.head_count_kv", (uint64_t)s.kv_heads);
    kv_f32(pool, &n_kv, "llama.attention.layer_norm_rms_epsilon", 1e-5);
    kv_f32(pool, &n_kv, "llama.rope.freq_base", 10000.0);
    kv_u32(pool, &n_kv, "llama.vocab_size", (uint64_t)s.vocab);
    kv_str(pool, &n_kv, "tokenizer.ggml.model", "llama");
    kv_arr(pool, &n_kv, "tokenizer.ggml.tokens", RD_GGUF_TYPE_STRING, (uint64_t)s.vocab, tokens);
    kv_arr(pool, &n_kv, "tokenizer.ggml.scores", RD_GGUF_TYPE_FLOAT32, (uint64_t)s.vocab, scores);
    kv_arr(pool, &n_kv, "tokenizer.ggml.token_type", RD_GGUF_TYPE_INT32, (uint64_t)s.vocab, types);
    kv_u32(pool, &n_kv, "tokenizer.ggml.unknown_token_id", 0);
    kv_u32(pool, &n_kv, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(pool, &n_kv, "tokenizer.ggml.eos_token_id", 2);
    const struct rd_gguf_kv *kvs[MAX_KV];
    for (int i = 0; i < n_kv; i++)
        kvs[i] = &pool[i];

    /* write beside the target, then rename: a failed run leaves no half file under its name */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    bool ok = rd_test_gguf_write(tmp, kvs, n_kv, t, n_t);
    if (ok && rename(tmp, out) != 0) {
        fprintf(stderr, "bench_make_gguf: cannot rename %s to %s: %s\n", tmp, out, strerror(errno));
        ok = false;
    }
    if (!ok)
        remove(tmp);
    else
        printf("%s: %.1fM parameters (%.1fM in the layers), %.0f MB\n", out, params / 1e6,
               (params - (uint64_t)s.vocab * s.dim - (uint64_t)s.dim) / 1e6, params * 4 / 1e6);
    for (int i = 0; i < n_t; i++)
        free((void *)t[i].data);
    for (int i = 0; i < s.vocab; i++)
        free(tokens[i].data);
    free(tokens), free(scores), free(types), free(t), free(names);
    return ok ? 0 : 1;
}
