/* ropedist-convert: builds a ropedist HDF5 checkpoint (runtime/ckpt.h) either from a Hugging
 * Face model folder (config.json + model.safetensors, or shards listed in
 * model.safetensors.index.json) or, with --random, from a config alone with deterministic
 * random weights (for tests and benchmarks of models nobody has trained).
 *
 * Every tensor the Llama forward pass needs is checked against the config before the output
 * is created, so a bad folder fails with a message naming the tensor and leaves no file behind;
 * tensors the model does not use (rotary inv_freq buffers, a tied lm_head) are skipped.
 * Random weights are normal with std 0.08 (norm weights uniform in [0.8, 1.2]) from splitmix64
 * seeded per tensor by the seed and the tensor's name, so a tensor's values do not depend on
 * the order of writing or on the other tensors. An output that is one of the files read is
 * refused even with --force: the checkpoint is renamed into place and would replace it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "common/json.h"
#include "runtime/ckpt.h"
#include "runtime/config.h"
#include "runtime/gguf_model.h"
#include "runtime/safetensors.h"
#include "tools/convert.h"

#define PROG RD_CONV_PROG
#define NAME_LEN RD_CONV_NAME_LEN
#define RANDOM_STD 0.08

static const char *USAGE =
    "usage: " PROG " HF_DIR -o MODEL.h5 [--dtype fp32|bf16|fp16] [--force]\n"
    "       " PROG " --random --config CONFIG.json [--seed S] -o MODEL.h5 [--dtype ...] "
    "[--force]\n"
    "\n"
    "Builds a ropedist checkpoint (one HDF5 file) for a Llama-family model.\n"
    "\n"
    "  HF_DIR             a Hugging Face folder: config.json and model.safetensors, or the\n"
    "                     shards named by model.safetensors.index.json\n"
    "  -o, --output FILE  the checkpoint to write (refused if it exists, unless --force;\n"
    "                     always refused when it is one of the files the conversion reads)\n"
    "  --dtype T          store every tensor as fp32, bf16 or fp16 (default: as stored;\n"
    "                     fp32 with --random)\n"
    "  --force            replace an existing output file\n"
    "  --random           random weights for --config instead of a Hugging Face folder:\n"
    "                     normal(0, 0.08), norm weights uniform [0.8, 1.2]\n"
    "  --config FILE      the config.json for --random\n"
    "  --seed S           seed for --random (non-negative integer, default 0); the same seed\n"
    "                     gives the same weights\n"
    "  -h, --help         this text\n";

struct options {
    const char *hf_dir;
    const char *output;
    const char *config;
    int dtype; /* -1: as stored */
    bool force, random;
    uint64_t seed;
};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run " PROG " --help for usage)\n");
    exit(2);
}

static void parse_args(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->dtype = -1;
    bool seed_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        /* options that take a value accept "--opt VALUE" and "--opt=VALUE" */
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        char key[64];
        snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        bool takes = !strcmp(key, "-o") || !strcmp(key, "--output") ||
                     !strcmp(key, "--dtype") || !strcmp(key, "--config") ||
                     !strcmp(key, "--seed");
        if (takes) {
            if (eq) val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else die_usage("%s needs a value", key);
        } else if (eq) {
            die_usage("%s does not take a value", key);
        }
        if (!strcmp(key, "-h") || !strcmp(key, "--help")) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (!strcmp(key, "-o") || !strcmp(key, "--output")) {
            o->output = val;
        } else if (!strcmp(key, "--dtype")) {
            o->dtype = rd_dtype_parse(val);
            if (o->dtype < 0) die_usage("unknown --dtype '%s' (fp32, bf16 or fp16)", val);
        } else if (!strcmp(key, "--config")) {
            o->config = val;
        } else if (!strcmp(key, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (!*val || *end || errno || val[0] == '-')
                die_usage("--seed must be a non-negative integer (got '%s')", val);
            o->seed = s;
            seed_given = true;
        } else if (!strcmp(key, "--force")) {
            o->force = true;
        } else if (!strcmp(key, "--random")) {
            o->random = true;
        } else if (a[0] == '-' && a[1]) {
            die_usage("unknown option '%s'", a);
        } else if (!o->hf_dir) {
            o->hf_dir = a;
        } else {
            die_usage("unexpected argument '%s' (one HF_DIR only)", a);
        }
    }
    if (!o->output) die_usage("missing -o MODEL.h5");
    if (o->random) {
        if (!o->config) die_usage("--random needs --config CONFIG.json");
        if (o->hf_dir) die_usage("--random takes no HF_DIR (got '%s')", o->hf_dir);
    } else {
        if (!o->hf_dir) die_usage("missing HF_DIR (or --random --config FILE)");
        if (o->config) die_usage("--config is for --random; HF_DIR/config.json is used");
        if (seed_given) die_usage("--seed is for --random");
    }
}

/* The tensors of a Llama model in writing order, with their shapes from the config. */
static struct rd_conv_want *expected_tensors(const struct rd_config *c, int *n_out)
{
    int64_t D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    int n = 2 + 9 * c->n_layers + (c->tie_word_embeddings ? 0 : 1);
    struct rd_conv_want *w = calloc((size_t)n, sizeof *w);
    if (!w) return NULL;
    int k = 0;
#define ADD(nd, d0, d1, isnorm, ...)                                                           \
    do {                                                                                       \
        snprintf(w[k].name, NAME_LEN, __VA_ARGS__);                                            \
        w[k].ndim = (nd), w[k].dims[0] = (d0), w[k].dims[1] = (d1), w[k].norm = (isnorm);      \
        k++;                                                                                   \
    } while (0)
    ADD(2, V, D, false, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        ADD(1, D, 1, true, "model.layers.%d.input_layernorm.weight", l);
        ADD(2, Q, D, false, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(2, KV, D, false, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(2, KV, D, false, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(2, D, Q, false, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(1, D, 1, true, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(2, F, D, false, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(2, F, D, false, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(2, D, F, false, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(1, D, 1, true, "model.norm.weight");
    if (!c->tie_word_embeddings) ADD(2, V, D, false, "lm_head.weight");
#undef ADD
    *n_out = k;
    return w;
}

/* Converts n elements from src (type s) to dst (type d) through a small fp32 scratch. */
static void convert(void *dst, enum rd_dtype d, const void *src, enum rd_dtype s, size_t n)
{
    enum { CHUNK = 1 << 16 };
    static float scratch[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        rd_convert_to_f32(scratch, (const char *)src + i * rd_dtype_size(s), s, m);
        rd_convert_from_f32((char *)dst + i * rd_dtype_size(d), scratch, d, m);
    }
}

/* ---- random weights ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1]: never 0, so log() below is finite */
static double unit(uint64_t *s) { return ((double)(splitmix64(s) >> 11) + 1.0) / 9007199254740992.0; }

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void random_fill(float *x, size_t n, uint64_t seed, const struct rd_conv_want *t)
{
    uint64_t s = seed ^ fnv1a(t->name);
    if (t->norm) {
        for (size_t i = 0; i < n; i++) x[i] = (float)(0.8 + 0.4 * unit(&s));
        return;
    }
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) { /* Box-Muller: two normals per pair of uniforms */
        double r = sqrt(-2.0 * log(unit(&s))), th = two_pi * unit(&s);
        x[i] = (float)(RANDOM_STD * r * cos(th));
        if (i + 1 < n) x[i + 1] = (float)(RANDOM_STD * r * sin(th));
    }
}

/* The config text with "ropedist": {"random_weights": true, "seed": S} merged in; NULL when
 * the text is not a JSON object. */
static char *random_config_text(const char *text, uint64_t seed)
{
    json_t *root = rd_json_parse(text, strlen(text), 0, NULL, 0);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_t *rd = json_object_get(root, "ropedist");
    int bad = 0;
    if (!json_is_object(rd)) {
        rd = json_object();
        bad |= json_object_set_new(root, "ropedist", rd);
    }
    bad |= json_object_set_new(rd, "random_weights", json_true());
    if (seed <= (uint64_t)INT64_MAX) {
        bad |= json_object_set_new(rd, "seed", json_integer((json_int_t)seed));
    } else { /* beyond a JSON integer that readers keep exactly */
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
        bad |= json_object_set_new(rd, "seed", json_string(buf));
    }
    char *out = bad ? NULL : rd_json_dump(root);
    json_decref(root);
    return out;
}

/* ---- main ---- */

/* Whether the output is one of the files read: the config (or GGUF), the index, the shards. */
static bool output_is_input(const char *output, const char *cfg_path, const struct rd_conv_hf *hf,
                            const char *dir)
{
    int n = 0;
    char **paths = calloc((size_t)hf->n_shards + 2, sizeof *paths);
    bool ok = paths && (paths[n++] = strdup(cfg_path));
    if (ok && hf->index_path) ok = (paths[n++] = strdup(hf->index_path)) != NULL;
    for (int i = 0; ok && i < hf->n_shards; i++) {
        size_t len = strlen(dir) + strlen(hf->shard_names[i]) + 2;
        ok = (paths[n] = malloc(len)) != NULL;
        if (ok) snprintf(paths[n++], len, "%s/%s", dir, hf->shard_names[i]);
    }
    bool is_input = true; /* out of memory: refuse rather than risk the input */
    if (ok) is_input = rd_conv_output_is_input(output, (const char *const *)paths, n);
    else rd_conv_fail("out of memory");
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    return is_input;
}

int main(int argc, char **argv)
{
    struct options o;
    parse_args(argc, argv, &o);

    char cfg_path[RD_PATH_MAX], err[1024] = "";
    size_t in_len = o.hf_dir ? strlen(o.hf_dir) : 0;
    const bool gguf = !o.random && in_len > 5 && !strcmp(o.hf_dir + in_len - 5, ".gguf");
    struct rd_weight_source gsrc = {0};
    if (o.random) snprintf(cfg_path, sizeof cfg_path, "%s", o.config);
    else if (gguf) snprintf(cfg_path, sizeof cfg_path, "%s", o.hf_dir);
    else snprintf(cfg_path, sizeof cfg_path, "%s/config.json", o.hf_dir);
    struct rd_config cfg;
    rd_status cst = gguf ? rd_gguf_model_load_config(cfg_path, &cfg, err, sizeof err)
                         : rd_config_load(cfg_path, &cfg, err, sizeof err);
    if (cst != RD_OK) {
        rd_conv_fail("%s", err[0] ? err : cfg_path);
        return 1;
    }
    if (gguf) {
        cfg.checkpoint_path[0] = 0;
        if (rd_weights_open_gguf(o.hf_dir, &gsrc, err, sizeof err) != RD_OK) {
            rd_conv_fail("%s", err);
            return 1;
        }
    }
    /* a GGUF's config is written out from its metadata (with rope_style gptj) */
    char *cfg_text = gguf ? rd_config_to_json(&cfg) : rd_conv_read_text(cfg_path, NULL);
    if (!cfg_text) {
        rd_conv_fail("cannot read %s", cfg_path);
        return 1;
    }
    if (o.random) {
        char *t = random_config_text(cfg_text, o.seed);
        free(cfg_text);
        if (!(cfg_text = t)) {
            rd_conv_fail("%s: not a JSON object", cfg_path);
            return 1;
        }
    }

    int n_want = 0;
    struct rd_conv_want *want = expected_tensors(&cfg, &n_want);
    struct rd_conv_hf hf = {0};
    struct rd_ckpt_writer *w = NULL;
    void *raw = NULL, *out = NULL;
    int status = 1;
    if (!want) {
        rd_conv_fail("out of memory");
        goto done;
    }
    if (!o.random && !gguf &&
        rd_conv_hf_open(&hf, o.hf_dir, want, n_want, cfg.tie_word_embeddings) != RD_OK)
        goto done;
    if (output_is_input(o.output, cfg_path, &hf, o.hf_dir)) goto done;

    if (rd_ckpt_create(o.output, o.force, cfg_text, &w, err, sizeof err) != RD_OK) {
        rd_conv_fail("%s", err);
        goto done;
    }
    uint64_t total_bytes = 0;
    int per_dtype[3] = {0, 0, 0};
    for (int k = 0; k < n_want; k++) {
        const struct rd_conv_want *t = &want[k];
        size_t n = (size_t)t->dims[0] * (size_t)t->dims[1];
        enum rd_dtype src_dt, dst_dt;
        if (o.random || gguf) { /* GGUF tensors are read (dequantized) as fp32 */
            src_dt = RD_DTYPE_F32;
            dst_dt = o.dtype < 0 ? RD_DTYPE_F32 : (enum rd_dtype)o.dtype;
        } else {
            src_dt = hf.shards[t->shard]->tensors[t->idx].dtype;
            dst_dt = o.dtype < 0 ? src_dt : (enum rd_dtype)o.dtype;
        }
        raw = malloc(n * rd_dtype_size(src_dt) + 1);
        if (!raw) {
            rd_conv_fail("out of memory for tensor '%s'", t->name);
            goto done;
        }
        if (o.random) {
            random_fill(raw, n, o.seed, t);
        } else if (gguf) {
            int nd;
            int64_t dims[2];
            if (gsrc.shape(gsrc.ctx, t->name, &nd, dims, err, sizeof err) != RD_OK ||
                nd != t->ndim || dims[0] != t->dims[0] || (nd == 2 && dims[1] != t->dims[1])) {
                rd_conv_fail("%s", err[0] ? err : "GGUF tensor shape does not match its metadata");
                goto done;
            }
            if (gsrc.read(gsrc.ctx, t->name, 0, nd == 2 ? dims[0] : 1, 0,
                          nd == 2 ? dims[1] : dims[0], raw, err, sizeof err) != RD_OK) {
                rd_conv_fail("%s", err);
                goto done;
            }
        } else if (rd_st_read(hf.shards[t->shard], t->idx, raw) != RD_OK) {
            rd_conv_fail("cannot read tensor '%s' from %s/%s", t->name, o.hf_dir,
                 hf.shard_names[t->shard]);
            goto done;
        }
        const void *data = raw;
        if (dst_dt != src_dt) {
            if (!(out = malloc(n * rd_dtype_size(dst_dt) + 1))) {
                rd_conv_fail("out of memory for tensor '%s'", t->name);
                goto done;
            }
            convert(out, dst_dt, raw, src_dt, n);
            data = out;
        }
        if (rd_ckpt_write(w, t->name, t->ndim, t->dims, dst_dt, data) != RD_OK) {
            rd_conv_fail("%s", rd_ckpt_writer_error(w));
            goto done;
        }
        free(raw), raw = NULL;
        free(out), out = NULL;
        total_bytes += (uint64_t)n * rd_dtype_size(dst_dt);
        per_dtype[dst_dt]++;
    }
    struct rd_ckpt_writer *pending = w;
    w = NULL;
    if (rd_ckpt_finish(pending, err, sizeof err) != RD_OK) {
        rd_conv_fail("%s", err);
        goto done;
    }
    char dts[96] = "";
    size_t off = 0;
    for (int d = 0; d < 3; d++)
        if (per_dtype[d])
            off += (size_t)snprintf(dts + off, sizeof dts - off, "%s%s x%d", off ? ", " : "",
                                    rd_dtype_name((enum rd_dtype)d), per_dtype[d]);
    printf("wrote %s: %d tensors, %llu bytes, dtype %s (%s)%s\n", o.output, n_want,
           (unsigned long long)total_bytes, o.dtype >= 0 ? rd_dtype_name((enum rd_dtype)o.dtype)
           : o.random ? "fp32" : "as stored", dts, o.random ? ", random weights" : "");
    status = 0;
done:
    free(raw);
    free(out);
    rd_ckpt_abort(w);
    rd_conv_hf_close(&hf);
    if (gsrc.close) gsrc.close(gsrc.ctx);
    free(want);
    free(cfg_text);
    return status;
}
