/* Parsing and validation of the model config (see config.h).
 *
 * Hugging Face writes the rope settings two ways: the hub style keeps rope_theta at the top
 * level and the scaling in rope_scaling (null for default rope; the type under "type" in old
 * files, "rope_type" in newer ones), while transformers 5 writes one rope_parameters object
 * that also holds rope_theta. Both end in the same struct rd_rope_config. */
#include "runtime/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"

#define FAIL(...)                                                                              \
    do {                                                                                       \
        if (err) snprintf(err, (size_t)err_len, __VA_ARGS__);                                  \
        return RD_ERR_CONFIG;                                                                  \
    } while (0)

static const char *const k_rope_names[] = {"default", "linear", "dynamic", "llama3", "yarn",
                                           "longrope"};
#define SUPPORTED_ROPE "default, linear, dynamic, llama3, yarn, longrope"

const char *rd_rope_type_name(enum rd_rope_type t)
{
    return (unsigned)t < sizeof k_rope_names / sizeof *k_rope_names ? k_rope_names[t] : "?";
}

void rd_config_defaults(struct rd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->rms_norm_eps = 1e-6;
    cfg->partial_rotary_factor = 1.0;
    cfg->max_position_embeddings = 2048;
    cfg->bos_token_id = -1;
    cfg->rope.type = RD_ROPE_TYPE_DEFAULT;
    cfg->rope.theta = 10000.0;
    cfg->rope.factor = 1.0;
    cfg->rope.low_freq_factor = 1.0;
    cfg->rope.high_freq_factor = 4.0;
    cfg->rope.beta_fast = 32.0;
    cfg->rope.beta_slow = 1.0;
    cfg->rope.truncate = true;
    cfg->rope_style = RD_ROPE_NEOX;
    cfg->dtype = RD_DTYPE_F32;
}

/* ---- typed field readers: each names the field on error ---- */

/* Reads an integer field. Returns 0 when absent (and leaves *out), 1 when read, -1 on error. */
static int get_int(const json_t *obj, const char *key, const char *where, int *out, char *err,
                   int err_len)
{
    const json_t *it = json_object_get(obj, key);
    if (!it || json_is_null(it)) return 0;
    int64_t v;
    if (!rd_json_int(it, -2147483647 - 1, 2147483647, &v)) {
        if (err) snprintf(err, (size_t)err_len, "config field %s%s must be an integer", where, key);
        return -1;
    }
    *out = (int)v;
    return 1;
}

static int get_num(const json_t *obj, const char *key, const char *where, double *out, char *err,
                   int err_len)
{
    const json_t *it = json_object_get(obj, key);
    if (!it || json_is_null(it)) return 0;
    if (!json_is_number(it) || !isfinite(json_number_value(it))) {
        if (err) snprintf(err, (size_t)err_len, "config field %s%s must be a number", where, key);
        return -1;
    }
    *out = json_number_value(it);
    return 1;
}

static int get_bool(const json_t *obj, const char *key, const char *where, bool *out, char *err,
                    int err_len)
{
    const json_t *it = json_object_get(obj, key);
    if (!it || json_is_null(it)) return 0;
    if (!json_is_boolean(it)) {
        if (err) snprintf(err, (size_t)err_len, "config field %s%s must be true or false", where, key);
        return -1;
    }
    *out = json_is_true(it);
    return 1;
}

/* Strings here are names and paths: one holding a NUL byte is refused, not cut short. */
static int get_str(const json_t *obj, const char *key, const char *where, const char **out,
                   char *err, int err_len)
{
    const json_t *it = json_object_get(obj, key);
    if (!it || json_is_null(it)) return 0;
    if (!json_is_string(it)) {
        if (err) snprintf(err, (size_t)err_len, "config field %s%s must be a string", where, key);
        return -1;
    }
    if (rd_json_has_nul(it)) {
        if (err)
            snprintf(err, (size_t)err_len, "config field %s%s holds a NUL byte (\\u0000)", where,
                     key);
        return -1;
    }
    *out = json_string_value(it);
    return 1;
}

#define REQ_INT(obj, key, dst)                                                                 \
    do {                                                                                       \
        int r_ = get_int(obj, key, "", dst, err, err_len);                                     \
        if (r_ < 0) return RD_ERR_CONFIG;                                                      \
        if (r_ == 0) FAIL("config field %s is missing", key);                                  \
    } while (0)
#define OPT(call)                                                                              \
    do {                                                                                       \
        if ((call) < 0) return RD_ERR_CONFIG;                                                  \
    } while (0)

static rd_status read_factors(const json_t *rope, const char *key, const char *where, double *dst,
                              int *n, char *err, int err_len)
{
    const json_t *arr = json_object_get(rope, key);
    *n = 0;
    if (!arr || json_is_null(arr)) return RD_OK;
    if (!json_is_array(arr)) FAIL("config field %s%s must be a list of numbers", where, key);
    size_t count = json_array_size(arr);
    if (count > RD_MAX_ROPE_FACTORS)
        FAIL("config field %s%s has too many entries (%zu; at most %d)", where, key, count,
             RD_MAX_ROPE_FACTORS);
    size_t i;
    const json_t *it;
    json_array_foreach(arr, i, it)
    {
        if (!json_is_number(it) || !(json_number_value(it) > 0) ||
            !isfinite(json_number_value(it)))
            FAIL("config field %s%s[%zu] must be a positive number", where, key, i);
        dst[i] = json_number_value(it);
    }
    *n = (int)count;
    return RD_OK;
}

/* rope: the object holding the scaling fields (rope_parameters or rope_scaling), may be NULL */
static rd_status parse_rope(const json_t *root, const json_t *rope, const char *where,
                            struct rd_config *cfg, char *err, int err_len)
{
    struct rd_rope_config *r = &cfg->rope;
    OPT(get_num(root, "rope_theta", "", &r->theta, err, err_len));
    if (!rope) return RD_OK;
    if (!json_is_object(rope)) FAIL("config field %s must be an object or null", where);
    char w[64];
    snprintf(w, sizeof w, "%s.", where);
    OPT(get_num(rope, "rope_theta", w, &r->theta, err, err_len));
    const char *type = NULL;
    OPT(get_str(rope, "rope_type", w, &type, err, err_len));
    if (!type) OPT(get_str(rope, "type", w, &type, err, err_len));
    if (!type) type = "default";
    int found = -1;
    for (int i = 0; i < (int)(sizeof k_rope_names / sizeof *k_rope_names); i++)
        if (!strcmp(type, k_rope_names[i])) found = i;
    /* "su" and "mrope"-style aliases are not Llama rope types; refuse them by name */
    if (found < 0)
        FAIL("config field %srope_type '%s' is not supported; supported rope types: " SUPPORTED_ROPE,
             w, type);
    r->type = (enum rd_rope_type)found;
    int has_factor = get_num(rope, "factor", w, &r->factor, err, err_len);
    if (has_factor < 0) return RD_ERR_CONFIG;
    r->has_factor = has_factor == 1;
    OPT(get_int(rope, "original_max_position_embeddings", w, &r->original_max_pos, err, err_len));
    OPT(get_num(rope, "low_freq_factor", w, &r->low_freq_factor, err, err_len));
    OPT(get_num(rope, "high_freq_factor", w, &r->high_freq_factor, err, err_len));
    OPT(get_num(rope, "beta_fast", w, &r->beta_fast, err, err_len));
    OPT(get_num(rope, "beta_slow", w, &r->beta_slow, err, err_len));
    OPT(get_num(rope, "mscale", w, &r->mscale, err, err_len));
    OPT(get_num(rope, "mscale_all_dim", w, &r->mscale_all_dim, err, err_len));
    int has_af = get_num(rope, "attention_factor", w, &r->attention_factor, err, err_len);
    if (has_af < 0) return RD_ERR_CONFIG;
    r->has_attention_factor = has_af == 1;
    OPT(get_bool(rope, "truncate", w, &r->truncate, err, err_len));
    RD_TRY(read_factors(rope, "short_factor", w, r->short_factor, &r->n_short, err, err_len));
    RD_TRY(read_factors(rope, "long_factor", w, r->long_factor, &r->n_long, err, err_len));
    OPT(get_num(rope, "partial_rotary_factor", w, &cfg->partial_rotary_factor, err, err_len));

    bool needs_factor = r->type == RD_ROPE_TYPE_LINEAR || r->type == RD_ROPE_TYPE_DYNAMIC ||
                        r->type == RD_ROPE_TYPE_LLAMA3 || r->type == RD_ROPE_TYPE_YARN;
    if (needs_factor && !json_object_get(rope, "factor"))
        FAIL("config field %sfactor is missing (required by rope_type '%s')", w, type);
    if (needs_factor && !(r->factor >= 1.0 || (r->type == RD_ROPE_TYPE_LINEAR && r->factor > 0)))
        FAIL("config field %sfactor must be >= 1 for rope_type '%s' (got %g)", w, type, r->factor);
    if (r->type == RD_ROPE_TYPE_LLAMA3 && r->original_max_pos <= 0)
        FAIL("config field %soriginal_max_position_embeddings is missing (required by rope_type "
             "'llama3')", w);
    if (r->type == RD_ROPE_TYPE_LONGROPE && (r->n_short == 0 || r->n_long == 0))
        FAIL("config field %sshort_factor and long_factor are required by rope_type 'longrope'", w);
    return RD_OK;
}

static void join_path(char *dst, const char *base, const char *rel)
{
    if (rel[0] == '/' || !base || !*base)
        snprintf(dst, RD_PATH_MAX, "%s", rel);
    else
        snprintf(dst, RD_PATH_MAX, "%s/%s", base, rel);
}

static rd_status parse_ropedist(const json_t *rd, const char *base_dir, struct rd_config *cfg,
                                char *err, int err_len)
{
    if (!rd || json_is_null(rd)) return RD_OK;
    if (!json_is_object(rd)) FAIL("config field ropedist must be an object");
    const char *s = NULL;
    OPT(get_str(rd, "checkpoint", "ropedist.", &s, err, err_len));
    if (s) join_path(cfg->checkpoint_path, base_dir, s);
    s = NULL;
    OPT(get_str(rd, "tokenizer", "ropedist.", &s, err, err_len));
    if (s) join_path(cfg->tokenizer_path, base_dir, s);
    s = NULL;
    OPT(get_str(rd, "rope_style", "ropedist.", &s, err, err_len));
    if (s) {
        if (!strcmp(s, "neox")) cfg->rope_style = RD_ROPE_NEOX;
        else if (!strcmp(s, "gptj")) cfg->rope_style = RD_ROPE_GPTJ;
        else FAIL("config field ropedist.rope_style must be \"neox\" or \"gptj\" (got \"%s\")", s);
    }
    s = NULL;
    OPT(get_str(rd, "dtype", "ropedist.", &s, err, err_len));
    if (s) {
        int d = rd_dtype_parse(s);
        if (d < 0) FAIL("config field ropedist.dtype must be fp32, bf16 or fp16 (got \"%s\")", s);
        cfg->dtype = (enum rd_dtype)d;
        cfg->dtype_given = true;
    }
    s = NULL;
    OPT(get_str(rd, "rope_freq_dtype", "ropedist.", &s, err, err_len));
    if (s) {
        int d = rd_dtype_parse(s);
        if (d < 0) FAIL("config field ropedist.rope_freq_dtype must be fp32, bf16 or fp16 (got \"%s\")", s);
        cfg->rope_freq_dtype = (enum rd_dtype)d;
    }
    int rot = 0;
    int r = get_int(rd, "rotary_dim", "ropedist.", &rot, err, err_len);
    if (r < 0) return RD_ERR_CONFIG;
    if (r == 1) {
        if (rot <= 0) FAIL("config field ropedist.rotary_dim must be positive (got %d)", rot);
        cfg->rotary_dim = rot;
    }
    return RD_OK;
}

static rd_status parse_root(const json_t *root, const char *base_dir, struct rd_config *cfg,
                            char *err, int err_len)
{
    if (!json_is_object(root)) FAIL("config must be a JSON object");
    const char *mt = NULL;
    OPT(get_str(root, "model_type", "", &mt, err, err_len));
    if (mt && strcmp(mt, "llama") != 0 && strcmp(mt, "mistral") != 0)
        FAIL("config field model_type '%s' is not a Llama-family model (supported: llama, mistral)",
             mt);
    const char *act = NULL;
    OPT(get_str(root, "hidden_act", "", &act, err, err_len));
    if (act && strcmp(act, "silu") != 0)
        FAIL("config field hidden_act '%s' is not supported (Llama models use silu)", act);
    bool b = false;
    OPT(get_bool(root, "attention_bias", "", &b, err, err_len));
    if (b) FAIL("config field attention_bias=true is not supported");
    b = false;
    OPT(get_bool(root, "mlp_bias", "", &b, err, err_len));
    if (b) FAIL("config field mlp_bias=true is not supported");

    REQ_INT(root, "hidden_size", &cfg->hidden_size);
    REQ_INT(root, "intermediate_size", &cfg->intermediate_size);
    REQ_INT(root, "num_hidden_layers", &cfg->n_layers);
    REQ_INT(root, "num_attention_heads", &cfg->n_heads);
    REQ_INT(root, "vocab_size", &cfg->vocab_size);
    cfg->n_kv_heads = cfg->n_heads;
    OPT(get_int(root, "num_key_value_heads", "", &cfg->n_kv_heads, err, err_len));
    cfg->head_dim = 0;
    OPT(get_int(root, "head_dim", "", &cfg->head_dim, err, err_len));
    OPT(get_num(root, "rms_norm_eps", "", &cfg->rms_norm_eps, err, err_len));
    OPT(get_int(root, "max_position_embeddings", "", &cfg->max_position_embeddings, err, err_len));
    OPT(get_bool(root, "tie_word_embeddings", "", &cfg->tie_word_embeddings, err, err_len));
    OPT(get_int(root, "bos_token_id", "", &cfg->bos_token_id, err, err_len));

    const json_t *eos = json_object_get(root, "eos_token_id");
    if (eos && json_is_array(eos)) {
        size_t i;
        const json_t *it;
        json_array_foreach(eos, i, it)
        {
            int64_t v;
            if (!rd_json_int(it, 0, 2147483647, &v))
                FAIL("config field eos_token_id must be an integer or a list of integers");
            if (cfg->n_eos == RD_MAX_EOS)
                FAIL("config field eos_token_id has more than %d entries", RD_MAX_EOS);
            cfg->eos_token_ids[cfg->n_eos++] = (int)v;
        }
    } else if (eos && !json_is_null(eos)) {
        int v = 0;
        if (get_int(root, "eos_token_id", "", &v, err, err_len) < 0 || v < 0)
            FAIL("config field eos_token_id must be an integer or a list of integers");
        cfg->eos_token_ids[cfg->n_eos++] = v;
    }

    const json_t *params = json_object_get(root, "rope_parameters");
    const json_t *scaling = json_object_get(root, "rope_scaling");
    if (params && !json_is_null(params)) {
        RD_TRY(parse_rope(root, params, "rope_parameters", cfg, err, err_len));
    } else {
        RD_TRY(parse_rope(root, (scaling && !json_is_null(scaling)) ? scaling : NULL,
                          "rope_scaling", cfg, err, err_len));
    }
    /* a top-level original_max_position_embeddings (Phi-3 style) wins, as in transformers */
    OPT(get_int(root, "original_max_position_embeddings", "", &cfg->rope.original_max_pos, err,
                err_len));

    /* partial rotary: top-level (hub) or inside rope_parameters (encoded above) */
    OPT(get_num(root, "partial_rotary_factor", "", &cfg->partial_rotary_factor, err, err_len));
    double prf = cfg->partial_rotary_factor;
    if (!(prf > 0 && prf <= 1.0))
        FAIL("config field partial_rotary_factor must be in (0, 1] (got %g)", prf);

    const char *model_dtype = NULL;
    OPT(get_str(root, "dtype", "", &model_dtype, err, err_len));
    if (!model_dtype) OPT(get_str(root, "torch_dtype", "", &model_dtype, err, err_len));
    if (model_dtype && !strcmp(model_dtype, "bfloat16")) cfg->rope_freq_dtype = RD_DTYPE_BF16;
    if (model_dtype && !strcmp(model_dtype, "float16")) cfg->rope_freq_dtype = RD_DTYPE_F16;

    RD_TRY(parse_ropedist(json_object_get(root, "ropedist"), base_dir, cfg, err,
                          err_len));

    if (cfg->hidden_size <= 0) FAIL("config field hidden_size must be positive");
    if (cfg->n_heads <= 0) FAIL("config field num_attention_heads must be positive");
    if (cfg->head_dim == 0) {
        if (cfg->hidden_size % cfg->n_heads != 0)
            FAIL("config field hidden_size (%d) is not divisible by num_attention_heads (%d); give "
                 "head_dim",
                 cfg->hidden_size, cfg->n_heads);
        cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    }
    if (cfg->rotary_dim == 0) {
        /* transformers: int(head_dim * partial_rotary_factor) */
        cfg->rotary_dim = (int)((double)cfg->head_dim * prf);
    }
    return rd_config_validate(cfg, err, err_len);
}

/* A size field no larger than max (positivity is checked with its own message). */
#define CHECK_MAX(value, name, max)                                                            \
    do {                                                                                       \
        if ((value) > (max))                                                                   \
            FAIL("config field %s (%d) is out of range: at most %d", name, (value), (max));     \
    } while (0)

rd_status rd_config_validate(const struct rd_config *cfg, char *err, int err_len)
{
    if (cfg->hidden_size <= 0) FAIL("config field hidden_size must be positive (got %d)", cfg->hidden_size);
    if (cfg->intermediate_size <= 0)
        FAIL("config field intermediate_size must be positive (got %d)", cfg->intermediate_size);
    if (cfg->n_layers <= 0) FAIL("config field num_hidden_layers must be positive (got %d)", cfg->n_layers);
    if (cfg->n_heads <= 0) FAIL("config field num_attention_heads must be positive (got %d)", cfg->n_heads);
    if (cfg->n_kv_heads <= 0 || cfg->n_heads % cfg->n_kv_heads != 0)
        FAIL("config field num_key_value_heads (%d) must be positive and divide "
             "num_attention_heads (%d)",
             cfg->n_kv_heads, cfg->n_heads);
    CHECK_MAX(cfg->hidden_size, "hidden_size", RD_MAX_HIDDEN);
    CHECK_MAX(cfg->intermediate_size, "intermediate_size", RD_MAX_FFN);
    CHECK_MAX(cfg->n_layers, "num_hidden_layers", RD_MAX_LAYERS);
    CHECK_MAX(cfg->n_heads, "num_attention_heads", RD_MAX_HEADS);
    CHECK_MAX(cfg->n_kv_heads, "num_key_value_heads", RD_MAX_HEADS);
    CHECK_MAX(cfg->vocab_size, "vocab_size", RD_MAX_VOCAB);
    CHECK_MAX(cfg->max_position_embeddings, "max_position_embeddings", RD_MAX_POSITIONS);
    if (cfg->head_dim <= 0 || cfg->head_dim > 4096)
        FAIL("config field head_dim must be in 1..4096 (got %d)", cfg->head_dim);
    if (cfg->vocab_size <= 0) FAIL("config field vocab_size must be positive (got %d)", cfg->vocab_size);
    if (!(cfg->rms_norm_eps > 0 && cfg->rms_norm_eps < 1))
        FAIL("config field rms_norm_eps must be in (0, 1) (got %g)", cfg->rms_norm_eps);
    if (cfg->max_position_embeddings <= 0)
        FAIL("config field max_position_embeddings must be positive (got %d)",
             cfg->max_position_embeddings);
    if (cfg->bos_token_id >= cfg->vocab_size)
        FAIL("config field bos_token_id (%d) is outside the vocabulary (%d)", cfg->bos_token_id,
             cfg->vocab_size);
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_token_ids[i] >= cfg->vocab_size)
            FAIL("config field eos_token_id (%d) is outside the vocabulary (%d)",
                 cfg->eos_token_ids[i], cfg->vocab_size);
    if (!(cfg->rope.theta > 0)) FAIL("config field rope_theta must be positive (got %g)", cfg->rope.theta);
    if (cfg->rotary_dim <= 0 || cfg->rotary_dim % 2 != 0 || cfg->rotary_dim > cfg->head_dim)
        FAIL("rotary dim %d (head_dim x partial_rotary_factor, or ropedist.rotary_dim) must be even, "
             "positive and at most head_dim %d",
             cfg->rotary_dim, cfg->head_dim);
    if (cfg->rotary_dim / 2 > RD_MAX_ROPE_PAIRS) FAIL("rotary dim %d is too large", cfg->rotary_dim);
    const struct rd_rope_config *r = &cfg->rope;
    if (r->type == RD_ROPE_TYPE_LONGROPE &&
        (r->n_short != cfg->rotary_dim / 2 || r->n_long != cfg->rotary_dim / 2))
        FAIL("config field short_factor/long_factor must have rotary_dim/2 = %d entries (got %d "
             "and %d)",
             cfg->rotary_dim / 2, r->n_short, r->n_long);
    if ((r->type == RD_ROPE_TYPE_YARN || r->type == RD_ROPE_TYPE_LLAMA3) && r->original_max_pos < 0)
        FAIL("config field original_max_position_embeddings must be positive");
    /* what rd_rope_build refuses must be refused here, before the first collective */
    if (r->type == RD_ROPE_TYPE_DYNAMIC && cfg->rotary_dim <= 2)
        FAIL("rope_type 'dynamic' needs a rotary dim above 2 (got %d)", cfg->rotary_dim);
    if (r->type == RD_ROPE_TYPE_LLAMA3 &&
        !(r->low_freq_factor > 0 && r->high_freq_factor >= r->low_freq_factor))
        FAIL("config field low_freq_factor/high_freq_factor must satisfy 0 < low_freq_factor <= "
             "high_freq_factor for rope_type 'llama3' (got %g and %g)",
             r->low_freq_factor, r->high_freq_factor);
    if (r->type == RD_ROPE_TYPE_LONGROPE &&
        (r->original_max_pos > 0 ? r->original_max_pos : cfg->max_position_embeddings) <= 1)
        FAIL("rope_type 'longrope' needs original_max_position_embeddings > 1");
    return RD_OK;
}

/* len bytes of text (a file may hold NUL bytes: they are not the end of it) */
static rd_status parse_text(const char *json_text, size_t len, const char *base_dir,
                            struct rd_config *cfg, char *err, int err_len)
{
    rd_config_defaults(cfg);
    if (err && err_len > 0) err[0] = 0;
    char why[256];
    json_t *root = rd_json_parse(json_text, len, RD_JSON_ANY, why, sizeof why);
    if (!root) FAIL("config is not valid JSON: %s", why);
    rd_status st = parse_root(root, base_dir, cfg, err, err_len);
    json_decref(root);
    return st;
}

rd_status rd_config_parse(const char *json_text, const char *base_dir, struct rd_config *cfg,
                          char *err, int err_len)
{
    return parse_text(json_text, json_text ? strlen(json_text) : 0, base_dir, cfg, err, err_len);
}

rd_status rd_config_load(const char *path, struct rd_config *cfg, char *err, int err_len)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (err) snprintf(err, (size_t)err_len, "config %s is a directory, not a JSON file", path);
        return RD_ERR_IO;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err)
            snprintf(err, (size_t)err_len, "cannot open config file %s: %s", path, strerror(errno));
        return RD_ERR_IO;
    }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        if (err) snprintf(err, (size_t)err_len, "config file %s cannot be read (not a regular file)", path);
        return RD_ERR_IO;
    }
    if (n > RD_CONFIG_MAX_BYTES) {
        fclose(f);
        if (err)
            snprintf(err, (size_t)err_len, "config file %s is %ld bytes, over the %d MB limit for a "
                     "config", path, n, RD_CONFIG_MAX_BYTES >> 20);
        return RD_ERR_IO;
    }
    char *txt = malloc((size_t)n + 1);
    if (!txt || fread(txt, 1, (size_t)n, f) != (size_t)n) {
        free(txt);
        fclose(f);
        if (err) snprintf(err, (size_t)err_len, "cannot read config file %s", path);
        return RD_ERR_IO;
    }
    fclose(f);
    txt[n] = 0;
    char base[RD_PATH_MAX];
    snprintf(base, sizeof base, "%s", path);
    char *slash = strrchr(base, '/');
    if (slash) *slash = 0;
    else strcpy(base, ".");
    char sub[1024] = "";
    rd_status st = parse_text(txt, (size_t)n, base, cfg, sub, sizeof sub);
    free(txt);
    if (st != RD_OK && err) snprintf(err, (size_t)err_len, "%s: %s", path, sub);
    return st;
}

/* Members of the JSON written out; any failed allocation sets bad (json_object_set_new returns
 * -1 for a NULL value), and then nothing is returned. */
#define SET_NEW(o, k, v) (bad |= json_object_set_new(o, k, v))
#define SET_INT(o, k, v) SET_NEW(o, k, json_integer(v))
#define SET_REAL(o, k, v) SET_NEW(o, k, json_real(v))
#define SET_STR(o, k, v) SET_NEW(o, k, json_string(v))
#define SET_BOOL(o, k, v) SET_NEW(o, k, json_boolean(v))

static json_t *real_array(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_real(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

char *rd_config_to_json(const struct rd_config *cfg)
{
    json_t *o = json_object(), *rp = json_object(), *rd = json_object();
    char *s = NULL;
    int bad = 0;
    if (!o || !rp || !rd) goto done;
    SET_STR(o, "model_type", "llama");
    SET_INT(o, "hidden_size", cfg->hidden_size);
    SET_INT(o, "intermediate_size", cfg->intermediate_size);
    SET_INT(o, "num_hidden_layers", cfg->n_layers);
    SET_INT(o, "num_attention_heads", cfg->n_heads);
    SET_INT(o, "num_key_value_heads", cfg->n_kv_heads);
    SET_INT(o, "head_dim", cfg->head_dim);
    SET_INT(o, "vocab_size", cfg->vocab_size);
    SET_REAL(o, "rms_norm_eps", cfg->rms_norm_eps);
    SET_INT(o, "max_position_embeddings", cfg->max_position_embeddings);
    SET_BOOL(o, "tie_word_embeddings", cfg->tie_word_embeddings);
    if (cfg->bos_token_id >= 0) SET_INT(o, "bos_token_id", cfg->bos_token_id);
    if (cfg->n_eos == 1) {
        SET_INT(o, "eos_token_id", cfg->eos_token_ids[0]);
    } else if (cfg->n_eos > 1) {
        json_t *a = json_array();
        for (int i = 0; a && i < cfg->n_eos; i++)
            bad |= json_array_append_new(a, json_integer(cfg->eos_token_ids[i]));
        SET_NEW(o, "eos_token_id", a);
    }
    const struct rd_rope_config *r = &cfg->rope;
    SET_STR(rp, "rope_type", rd_rope_type_name(r->type));
    SET_REAL(rp, "rope_theta", r->theta);
    if (r->type != RD_ROPE_TYPE_DEFAULT && (r->type != RD_ROPE_TYPE_LONGROPE || r->has_factor))
        SET_REAL(rp, "factor", r->factor);
    if (r->original_max_pos > 0)
        SET_INT(rp, "original_max_position_embeddings", r->original_max_pos);
    if (r->type == RD_ROPE_TYPE_LLAMA3) {
        SET_REAL(rp, "low_freq_factor", r->low_freq_factor);
        SET_REAL(rp, "high_freq_factor", r->high_freq_factor);
    }
    if (r->type == RD_ROPE_TYPE_YARN) {
        SET_REAL(rp, "beta_fast", r->beta_fast);
        SET_REAL(rp, "beta_slow", r->beta_slow);
        if (r->mscale) SET_REAL(rp, "mscale", r->mscale);
        if (r->mscale_all_dim) SET_REAL(rp, "mscale_all_dim", r->mscale_all_dim);
        SET_BOOL(rp, "truncate", r->truncate);
    }
    if (r->has_attention_factor) SET_REAL(rp, "attention_factor", r->attention_factor);
    if (r->type == RD_ROPE_TYPE_LONGROPE) {
        SET_NEW(rp, "short_factor", real_array(r->short_factor, r->n_short));
        SET_NEW(rp, "long_factor", real_array(r->long_factor, r->n_long));
    }
    SET_STR(rd, "rope_style", cfg->rope_style == RD_ROPE_GPTJ ? "gptj" : "neox");
    SET_INT(rd, "rotary_dim", cfg->rotary_dim);
    if (cfg->dtype_given) SET_STR(rd, "dtype", rd_dtype_name(cfg->dtype));
    SET_STR(rd, "rope_freq_dtype", rd_dtype_name(cfg->rope_freq_dtype));
    bad |= json_object_set(o, "rope_parameters", rp);
    bad |= json_object_set(o, "ropedist", rd);
    if (!bad) s = rd_json_dump(o);
done:
    json_decref(rp);
    json_decref(rd);
    json_decref(o);
    return s;
}
