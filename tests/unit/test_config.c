/* Unit test of the config parser (runtime/config.c) on configs it must accept; the cases it
 * must refuse are in test_config_errors.c.
 *
 * Configs are built from a small valid base with edits (config_cases.h), so each case says only
 * what it changes. Covered: both rope spellings (rope_parameters holding rope_theta; hub
 * rope_theta + rope_scaling null or an object typed by "type" or "rope_type"), every rope
 * type's fields, partial rotary (top level and inside rope_parameters), head_dim given or
 * derived, kv-head default, eos as int or list, tied embeddings, the "ropedist" section (paths
 * resolved against base_dir, rope_style, dtype, rotary_dim); rd_config_load on files (missing
 * file, paths relative to the config's folder, errors naming the file); rd_config_to_json
 * round trips; and the golden model configs in ../shared, whose two spellings must give
 * identical structs. Without ../shared only that last part is skipped (visibly). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_cases.h"
#include "runtime/config.h"
#include "test_util.h"

/* edits must parse */
#define PARSE_OK(cfg, ...)                                                                     \
    do {                                                                                       \
        char e_[ERR_LEN];                                                                      \
        rd_status s_ = parse_edit((cfg), e_, __VA_ARGS__, (const char *)NULL);                 \
        CHECK_MSG(s_ == RD_OK, "status %s: %s", rd_status_str(s_), e_);                        \
    } while (0)

static int near(double a, double b)
{
    return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1);
}

/* Compares the rope-related fields of two configs; prints which differ. */
static int same_rope(const struct rd_config *a, const struct rd_config *b, const char *what)
{
    const struct rd_rope_config *x = &a->rope, *y = &b->rope;
    int ok = 1;
#define SAME(f, cond)                                                                          \
    if (!(cond)) {                                                                             \
        fprintf(stderr, "  %s: field %s differs\n", what, f);                                  \
        ok = 0;                                                                                \
    }
    SAME("type", x->type == y->type);
    SAME("theta", near(x->theta, y->theta));
    SAME("factor", near(x->factor, y->factor));
    SAME("has_factor", x->has_factor == y->has_factor);
    SAME("original_max_pos", x->original_max_pos == y->original_max_pos);
    SAME("low_freq_factor", near(x->low_freq_factor, y->low_freq_factor));
    SAME("high_freq_factor", near(x->high_freq_factor, y->high_freq_factor));
    SAME("beta_fast", near(x->beta_fast, y->beta_fast));
    SAME("beta_slow", near(x->beta_slow, y->beta_slow));
    SAME("mscale", near(x->mscale, y->mscale));
    SAME("mscale_all_dim", near(x->mscale_all_dim, y->mscale_all_dim));
    SAME("has_attention_factor", x->has_attention_factor == y->has_attention_factor);
    SAME("attention_factor", !x->has_attention_factor || near(x->attention_factor, y->attention_factor));
    SAME("truncate", x->truncate == y->truncate);
    SAME("n_short", x->n_short == y->n_short);
    SAME("n_long", x->n_long == y->n_long);
    for (int i = 0; i < x->n_short && i < y->n_short; i++) SAME("short_factor[i]", near(x->short_factor[i], y->short_factor[i]));
    for (int i = 0; i < x->n_long && i < y->n_long; i++) SAME("long_factor[i]", near(x->long_factor[i], y->long_factor[i]));
    SAME("rope_style", a->rope_style == b->rope_style);
    SAME("rope_freq_dtype", a->rope_freq_dtype == b->rope_freq_dtype);
    SAME("rotary_dim", a->rotary_dim == b->rotary_dim);
    SAME("max_position_embeddings", a->max_position_embeddings == b->max_position_embeddings);
#undef SAME
    return ok;
}

static int same_sizes(const struct rd_config *a, const struct rd_config *b, const char *what)
{
    int ok = a->hidden_size == b->hidden_size && a->intermediate_size == b->intermediate_size &&
             a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
             a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
             a->vocab_size == b->vocab_size && near(a->rms_norm_eps, b->rms_norm_eps) &&
             a->tie_word_embeddings == b->tie_word_embeddings &&
             a->bos_token_id == b->bos_token_id && a->n_eos == b->n_eos &&
             a->dtype == b->dtype && a->dtype_given == b->dtype_given;
    for (int i = 0; ok && i < a->n_eos; i++) ok = a->eos_token_ids[i] == b->eos_token_ids[i];
    if (!ok) fprintf(stderr, "  %s: sizes / token ids / dtype differ\n", what);
    return ok;
}

/* ---- defaults and plain fields ---- */

static void test_defaults(void)
{
    struct rd_config c;
    PARSE_OK(&c, NULL, NULL);
    CHECK(c.hidden_size == 64 && c.intermediate_size == 176 && c.n_layers == 2);
    CHECK(c.n_heads == 4 && c.vocab_size == 256);
    CHECK(c.n_kv_heads == 4); /* defaults to num_attention_heads */
    CHECK(c.head_dim == 16);  /* hidden_size / num_attention_heads */
    CHECK(c.rotary_dim == 16);
    CHECK(c.partial_rotary_factor == 1.0);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK(c.max_position_embeddings == 2048);
    CHECK(!c.tie_word_embeddings);
    CHECK(c.bos_token_id == -1 && c.n_eos == 0);
    CHECK(c.rope.type == RD_ROPE_TYPE_DEFAULT && c.rope.theta == 10000.0);
    CHECK(!c.rope.has_factor && !c.rope.has_attention_factor);
    CHECK(c.rope_style == RD_ROPE_NEOX);
    CHECK(c.dtype == RD_DTYPE_F32 && !c.dtype_given);
    CHECK(c.checkpoint_path[0] == 0 && c.tokenizer_path[0] == 0);

    /* model_type may be absent, or mistral */
    PARSE_OK(&c, "model_type", NULL);
    PARSE_OK(&c, "model_type", "\"mistral\"");
    /* hidden_act silu, biases false are accepted */
    PARSE_OK(&c, "hidden_act", "\"silu\"", "attention_bias", "false", "mlp_bias", "false");
    /* nulls are "absent" */
    PARSE_OK(&c, "num_key_value_heads", "null", "head_dim", "null", "rope_scaling", "null",
             "eos_token_id", "null", "bos_token_id", "null");
    CHECK(c.n_kv_heads == 4 && c.head_dim == 16 && c.n_eos == 0 && c.bos_token_id == -1);
    /* unknown fields are ignored */
    PARSE_OK(&c, "architectures", "[\"LlamaForCausalLM\"]", "use_cache", "true",
             "transformers_version", "\"5.17.0\"");
}

static void test_plain_fields(void)
{
    struct rd_config c;
    PARSE_OK(&c, "num_key_value_heads", "2", "rms_norm_eps", "1e-05",
             "max_position_embeddings", "4096", "bos_token_id", "1", "eos_token_id", "2",
             "tie_word_embeddings", "true");
    CHECK(c.n_kv_heads == 2);
    CHECK(c.rms_norm_eps == 1e-5);
    CHECK(c.max_position_embeddings == 4096);
    CHECK(c.bos_token_id == 1);
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 2);
    CHECK(c.tie_word_embeddings);
    PARSE_OK(&c, "tie_word_embeddings", "false");
    CHECK(!c.tie_word_embeddings);
    PARSE_OK(&c, "num_key_value_heads", "1");
    CHECK(c.n_kv_heads == 1);

    /* eos list (Llama 3 style) */
    PARSE_OK(&c, "eos_token_id", "[2, 5, 255]");
    CHECK(c.n_eos == 3 && c.eos_token_ids[0] == 2 && c.eos_token_ids[1] == 5 &&
          c.eos_token_ids[2] == 255);
    PARSE_OK(&c, "eos_token_id", "[]");
    CHECK(c.n_eos == 0);
    PARSE_OK(&c, "eos_token_id", "0");
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 0);
    /* integral floats are integers */
    PARSE_OK(&c, "hidden_size", "64.0");
    CHECK(c.hidden_size == 64);

    /* head_dim given (hidden_size not a multiple of heads x head_dim, as in Gemma / Qwen3) */
    PARSE_OK(&c, "hidden_size", "96", "num_attention_heads", "6", "num_key_value_heads", "1",
             "head_dim", "32");
    CHECK(c.head_dim == 32 && c.rotary_dim == 32 && c.n_heads == 6 && c.n_kv_heads == 1);
    /* head_dim given and equal to the derived one */
    PARSE_OK(&c, "head_dim", "16");
    CHECK(c.head_dim == 16);
    /* derived head_dim needs hidden_size % heads == 0; a given one does not */
    PARSE_OK(&c, "hidden_size", "104", "num_attention_heads", "4");
    CHECK(c.head_dim == 26 && c.rotary_dim == 26);
    PARSE_OK(&c, "hidden_size", "100", "num_attention_heads", "8", "head_dim", "12");
    CHECK(c.head_dim == 12 && c.rotary_dim == 12);
}

/* ---- rope: both spellings, every type ---- */

static void test_rope_spellings(void)
{
    struct rd_config a, b;
    /* default rope: transformers-5 spelling and hub spelling (rope_scaling null or absent) */
    PARSE_OK(&a, "rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 500000.0}");
    CHECK(a.rope.type == RD_ROPE_TYPE_DEFAULT && a.rope.theta == 500000.0);
    PARSE_OK(&b, "rope_theta", "500000.0", "rope_scaling", "null");
    CHECK(same_rope(&a, &b, "default: rope_parameters vs rope_theta + null rope_scaling"));
    PARSE_OK(&b, "rope_theta", "500000.0");
    CHECK(same_rope(&a, &b, "default: rope_parameters vs rope_theta alone"));
    /* rope_parameters without rope_type is the default type */
    PARSE_OK(&b, "rope_parameters", "{\"rope_theta\": 500000.0}");
    CHECK(same_rope(&a, &b, "rope_parameters without rope_type"));
    /* rope_parameters without rope_theta: the top-level rope_theta is used */
    PARSE_OK(&b, "rope_theta", "500000.0", "rope_parameters", "{\"rope_type\": \"default\"}");
    CHECK(b.rope.theta == 500000.0);

    /* linear: "type" (old hub files), "rope_type" (newer), rope_parameters */
    PARSE_OK(&a, "rope_parameters", "{\"rope_type\": \"linear\", \"factor\": 2.0, \"rope_theta\": 10000.0}");
    CHECK(a.rope.type == RD_ROPE_TYPE_LINEAR && a.rope.factor == 2.0 && a.rope.has_factor);
    PARSE_OK(&b, "rope_theta", "10000.0", "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}");
    CHECK(same_rope(&a, &b, "linear: type"));
    PARSE_OK(&b, "rope_theta", "10000.0", "rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 2.0}");
    CHECK(same_rope(&a, &b, "linear: rope_type"));
    /* rope_type wins over type when both are there */
    PARSE_OK(&b, "rope_scaling", "{\"rope_type\": \"linear\", \"type\": \"dynamic\", \"factor\": 2.0}");
    CHECK(b.rope.type == RD_ROPE_TYPE_LINEAR);
    /* rope_parameters wins over rope_scaling */
    PARSE_OK(&b, "rope_parameters", "{\"rope_type\": \"linear\", \"factor\": 2.0}", "rope_scaling",
             "{\"rope_type\": \"dynamic\", \"factor\": 3.0}");
    CHECK(b.rope.type == RD_ROPE_TYPE_LINEAR && b.rope.factor == 2.0);
    /* linear accepts a factor below 1 (compression) */
    PARSE_OK(&b, "rope_parameters", "{\"rope_type\": \"linear\", \"factor\": 0.5}");
    CHECK(b.rope.factor == 0.5);
}

static void test_rope_types(void)
{
    struct rd_config c;
    PARSE_OK(&c, "rope_parameters", "{\"rope_type\": \"dynamic\", \"factor\": 4.0, \"rope_theta\": 20000}");
    CHECK(c.rope.type == RD_ROPE_TYPE_DYNAMIC && c.rope.factor == 4.0 && c.rope.theta == 20000.0);

    PARSE_OK(&c, "rope_parameters",
             "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.5,"
             " \"high_freq_factor\": 3.0, \"original_max_position_embeddings\": 8192,"
             " \"rope_theta\": 500000.0}");
    CHECK(c.rope.type == RD_ROPE_TYPE_LLAMA3 && c.rope.factor == 8.0);
    CHECK(c.rope.low_freq_factor == 1.5 && c.rope.high_freq_factor == 3.0);
    CHECK(c.rope.original_max_pos == 8192 && c.rope.theta == 500000.0);
    /* llama3 defaults for the two band factors */
    PARSE_OK(&c, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0,"
                                 " \"original_max_position_embeddings\": 64}");
    CHECK(c.rope.low_freq_factor == 1.0 && c.rope.high_freq_factor == 4.0);

    /* yarn with every field */
    PARSE_OK(&c, "rope_parameters",
             "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 128,"
             " \"beta_fast\": 16, \"beta_slow\": 2, \"mscale\": 0.8, \"mscale_all_dim\": 0.5,"
             " \"attention_factor\": 1.25, \"truncate\": false}");
    CHECK(c.rope.type == RD_ROPE_TYPE_YARN && c.rope.factor == 4.0 && c.rope.original_max_pos == 128);
    CHECK(c.rope.beta_fast == 16.0 && c.rope.beta_slow == 2.0);
    CHECK(c.rope.mscale == 0.8 && c.rope.mscale_all_dim == 0.5);
    CHECK(c.rope.has_attention_factor && c.rope.attention_factor == 1.25);
    CHECK(!c.rope.truncate);
    /* yarn defaults */
    PARSE_OK(&c, "rope_scaling", "{\"type\": \"yarn\", \"factor\": 2.0}");
    CHECK(c.rope.type == RD_ROPE_TYPE_YARN && c.rope.beta_fast == 32.0 && c.rope.beta_slow == 1.0);
    CHECK(c.rope.mscale == 0 && c.rope.mscale_all_dim == 0 && !c.rope.has_attention_factor);
    CHECK(c.rope.truncate && c.rope.original_max_pos == 0);

    /* longrope: head_dim 16 -> 8 factors each; factor is optional */
    const char *lr = "{\"rope_type\": \"longrope\", \"original_max_position_embeddings\": 128,"
                     " \"short_factor\": [1, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35],"
                     " \"long_factor\": [1, 1.4, 1.8, 2.2, 2.6, 3, 3.4, 3.8]}";
    PARSE_OK(&c, "rope_parameters", lr, "max_position_embeddings", "512");
    CHECK(c.rope.type == RD_ROPE_TYPE_LONGROPE && !c.rope.has_factor);
    CHECK(c.rope.n_short == 8 && c.rope.n_long == 8);
    CHECK(c.rope.short_factor[1] == 1.05 && c.rope.short_factor[7] == 1.35);
    CHECK(c.rope.long_factor[0] == 1.0 && c.rope.long_factor[7] == 3.8);
    CHECK(c.rope.original_max_pos == 128);
    PARSE_OK(&c, "rope_scaling",
             "{\"type\": \"longrope\", \"factor\": 4.0, \"attention_factor\": 1.1,"
             " \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1], \"long_factor\": [2, 2, 2, 2, 2, 2, 2, 2]}");
    CHECK(c.rope.type == RD_ROPE_TYPE_LONGROPE && c.rope.has_factor && c.rope.factor == 4.0);
    CHECK(c.rope.has_attention_factor && c.rope.attention_factor == 1.1);
    /* Phi-3 style: original_max_position_embeddings at the top level */
    PARSE_OK(&c, "rope_scaling",
             "{\"type\": \"longrope\", \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1],"
             " \"long_factor\": [2, 2, 2, 2, 2, 2, 2, 2]}",
             "original_max_position_embeddings", "4096");
    CHECK(c.rope.original_max_pos == 4096);
    /* longrope with partial rotary: factor lists have rotary_dim / 2 entries */
    PARSE_OK(&c, "partial_rotary_factor", "0.5", "rope_scaling",
             "{\"type\": \"longrope\", \"short_factor\": [1, 1, 1, 1], \"long_factor\": [2, 2, 2, 2]}");
    CHECK(c.rotary_dim == 8 && c.rope.n_short == 4);
}

static void test_partial_rotary(void)
{
    struct rd_config c;
    PARSE_OK(&c, "partial_rotary_factor", "0.5");
    CHECK(c.partial_rotary_factor == 0.5 && c.rotary_dim == 8 && c.head_dim == 16);
    PARSE_OK(&c, "rope_parameters", "{\"rope_type\": \"default\", \"partial_rotary_factor\": 0.25}");
    CHECK(c.partial_rotary_factor == 0.25 && c.rotary_dim == 4);
    PARSE_OK(&c, "rope_theta", "10000", "rope_scaling",
             "{\"type\": \"linear\", \"factor\": 2.0}", "partial_rotary_factor", "0.75");
    CHECK(c.rotary_dim == 12 && c.rope.type == RD_ROPE_TYPE_LINEAR);
    PARSE_OK(&c, "partial_rotary_factor", "1");
    CHECK(c.rotary_dim == 16);
    /* int(head_dim * factor), as transformers: 32 * 0.4 = 12.8 -> 12 */
    PARSE_OK(&c, "hidden_size", "128", "partial_rotary_factor", "0.4");
    CHECK(c.head_dim == 32 && c.rotary_dim == 12);
    /* ropedist.rotary_dim overrides the factor */
    PARSE_OK(&c, "partial_rotary_factor", "0.5", "ropedist", "{\"rotary_dim\": 6}");
    CHECK(c.rotary_dim == 6);
}

static void test_ropedist_section(void)
{
    struct rd_config c;
    PARSE_OK(&c, "ropedist",
             "{\"checkpoint\": \"model.h5\", \"tokenizer\": \"tok/tokenizer.json\","
             " \"rope_style\": \"gptj\", \"dtype\": \"bf16\", \"rotary_dim\": 8}");
    CHECK_MSG(!strcmp(c.checkpoint_path, BASE_DIR "/model.h5"), "%s", c.checkpoint_path);
    CHECK_MSG(!strcmp(c.tokenizer_path, BASE_DIR "/tok/tokenizer.json"), "%s", c.tokenizer_path);
    CHECK(c.rope_style == RD_ROPE_GPTJ);
    CHECK(c.dtype == RD_DTYPE_BF16 && c.dtype_given);
    CHECK(c.rotary_dim == 8);
    PARSE_OK(&c, "ropedist", "{\"rope_style\": \"neox\", \"dtype\": \"fp16\"}");
    CHECK(c.rope_style == RD_ROPE_NEOX && c.dtype == RD_DTYPE_F16 && c.dtype_given);
    CHECK(c.checkpoint_path[0] == 0 && c.tokenizer_path[0] == 0 && c.rotary_dim == 16);
    PARSE_OK(&c, "ropedist", "{\"dtype\": \"fp32\"}");
    CHECK(c.dtype == RD_DTYPE_F32 && c.dtype_given);
    PARSE_OK(&c, "ropedist", "{}");
    CHECK(!c.dtype_given && c.rope_style == RD_ROPE_NEOX);
    /* absolute paths are kept */
    PARSE_OK(&c, "ropedist", "{\"checkpoint\": \"/abs/m.h5\", \"tokenizer\": \"/abs/t.json\"}");
    CHECK_MSG(!strcmp(c.checkpoint_path, "/abs/m.h5"), "%s", c.checkpoint_path);
    CHECK_MSG(!strcmp(c.tokenizer_path, "/abs/t.json"), "%s", c.tokenizer_path);
    /* base_dir NULL: relative to the current directory */
    char e[ERR_LEN];
    rd_status st = rd_config_parse("{\"hidden_size\": 64, \"intermediate_size\": 8, "
                                   "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
                                   "\"vocab_size\": 10, \"ropedist\": {\"checkpoint\": \"m.h5\"}}",
                                   NULL, &c, e, ERR_LEN);
    CHECK_MSG(st == RD_OK, "%s", e);
    CHECK_MSG(!strcmp(c.checkpoint_path, "m.h5"), "%s", c.checkpoint_path);

    /* rope_freq_dtype: from the model's dtype / torch_dtype, overridden by the ropedist section */
    PARSE_OK(&c, NULL, NULL);
    CHECK(c.rope_freq_dtype == RD_DTYPE_F32);
    PARSE_OK(&c, "dtype", "\"bfloat16\"");
    CHECK(c.rope_freq_dtype == RD_DTYPE_BF16 && !c.dtype_given);
    PARSE_OK(&c, "torch_dtype", "\"float16\"");
    CHECK(c.rope_freq_dtype == RD_DTYPE_F16);
    PARSE_OK(&c, "dtype", "\"float32\"");
    CHECK(c.rope_freq_dtype == RD_DTYPE_F32);
    PARSE_OK(&c, "dtype", "\"bfloat16\"", "ropedist", "{\"rope_freq_dtype\": \"fp32\"}");
    CHECK(c.rope_freq_dtype == RD_DTYPE_F32);
    PARSE_OK(&c, "ropedist", "{\"rope_freq_dtype\": \"bf16\"}");
    CHECK(c.rope_freq_dtype == RD_DTYPE_BF16 && !c.dtype_given);
}

/* ---- files ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void test_load(void)
{
    struct rd_config c;
    char e[ERR_LEN] = "";
    const char *missing = "/nonexistent/dir/config.json";
    rd_status st = rd_config_load(missing, &c, e, ERR_LEN);
    CHECK_MSG(st == RD_ERR_IO, "got %s", rd_status_str(st));
    CHECK_MSG(strstr(e, missing) != NULL, "'%s' does not name the path", e);

    char dir[512], path[1024], want[1200];
    rd_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 2,"
                     " \"num_attention_heads\": 4, \"vocab_size\": 256,"
                     " \"ropedist\": {\"checkpoint\": \"model.h5\", \"tokenizer\": \"../tok.json\"}}");
    st = rd_config_load(path, &c, e, ERR_LEN);
    CHECK_MSG(st == RD_OK, "%s", e);
    snprintf(want, sizeof want, "%s/model.h5", dir);
    CHECK_MSG(!strcmp(c.checkpoint_path, want), "%s != %s", c.checkpoint_path, want);
    snprintf(want, sizeof want, "%s/../tok.json", dir);
    CHECK_MSG(!strcmp(c.tokenizer_path, want), "%s != %s", c.tokenizer_path, want);

    /* a parse error names the file and the field */
    write_file(path, "{\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 2,"
                     " \"vocab_size\": 256}");
    st = rd_config_load(path, &c, e, ERR_LEN);
    CHECK(st == RD_ERR_CONFIG);
    CHECK_MSG(strstr(e, path) && strstr(e, "num_attention_heads"), "%s", e);
    write_file(path, "not json");
    st = rd_config_load(path, &c, e, ERR_LEN);
    CHECK(st == RD_ERR_CONFIG);
    CHECK_MSG(strstr(e, path) && strstr(e, "JSON"), "%s", e);
    /* a directory is not a config */
    st = rd_config_load(dir, &c, e, ERR_LEN);
    CHECK_MSG(st != RD_OK, "loading a directory succeeded");
    remove(path);
    rmdir(dir);
}

/* ---- rd_config_to_json ---- */

static void roundtrip(const char *what, const struct rd_config *a)
{
    char *txt = rd_config_to_json(a);
    CHECK_MSG(txt != NULL, "%s: to_json failed", what);
    if (!txt) return;
    struct rd_config b;
    char e[ERR_LEN];
    rd_status st = rd_config_parse(txt, NULL, &b, e, ERR_LEN);
    CHECK_MSG(st == RD_OK, "%s: reparse: %s\n%s", what, e, txt);
    if (st == RD_OK) {
        CHECK_MSG(same_sizes(a, &b, what), "%s: round trip changed sizes\n%s", what, txt);
        CHECK_MSG(same_rope(a, &b, what), "%s: round trip changed rope\n%s", what, txt);
    }
    free(txt);
}

static void test_to_json(void)
{
    static const struct {
        const char *name, *key, *val, *key2, *val2;
    } cases[] = {
        {"plain", NULL, NULL, NULL, NULL},
        {"gqa eos list tied", "num_key_value_heads", "2", "eos_token_id", "[2, 7]"},
        {"tied bos", "tie_word_embeddings", "true", "bos_token_id", "1"},
        {"eps and max pos", "rms_norm_eps", "1e-05", "max_position_embeddings", "8192"},
        {"linear", "rope_parameters", "{\"rope_type\": \"linear\", \"factor\": 2.5, \"rope_theta\": 1e6}", NULL, NULL},
        {"dynamic", "rope_scaling", "{\"type\": \"dynamic\", \"factor\": 4}", "rope_theta", "20000"},
        {"llama3", "rope_parameters",
         "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.5, \"high_freq_factor\": 3.0,"
         " \"original_max_position_embeddings\": 8192, \"rope_theta\": 500000.0}", NULL, NULL},
        {"yarn", "rope_parameters",
         "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 128,"
         " \"beta_fast\": 16, \"beta_slow\": 2, \"mscale\": 0.8, \"mscale_all_dim\": 0.5,"
         " \"attention_factor\": 1.25, \"truncate\": false}", NULL, NULL},
        {"yarn defaults", "rope_scaling", "{\"type\": \"yarn\", \"factor\": 2.0}", NULL, NULL},
        {"longrope", "rope_parameters",
         "{\"rope_type\": \"longrope\", \"original_max_position_embeddings\": 128,"
         " \"short_factor\": [1, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35],"
         " \"long_factor\": [1, 1.4, 1.8, 2.2, 2.6, 3, 3.4, 3.8]}", "max_position_embeddings", "512"},
        {"longrope with factor", "rope_parameters",
         "{\"rope_type\": \"longrope\", \"factor\": 4.0, \"original_max_position_embeddings\": 128,"
         " \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1], \"long_factor\": [2, 2, 2, 2, 2, 2, 2, 2]}",
         NULL, NULL},
        {"gptj bf16", "ropedist", "{\"rope_style\": \"gptj\", \"dtype\": \"bf16\"}", NULL, NULL},
        {"partial rotary", "partial_rotary_factor", "0.5", "ropedist", "{\"rope_style\": \"gptj\"}"},
        {"rotary_dim", "ropedist", "{\"rotary_dim\": 6}", NULL, NULL},
        {"head_dim", "head_dim", "32", "num_key_value_heads", "1"},
        {"bf16 model dtype", "dtype", "\"bfloat16\"", NULL, NULL},
        {"rope_freq_dtype override", "dtype", "\"bfloat16\"", "ropedist", "{\"rope_freq_dtype\": \"fp32\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct rd_config a;
        PARSE_OK(&a, cases[i].key, cases[i].val, cases[i].key2, cases[i].val2);
        roundtrip(cases[i].name, &a);
    }
}

/* ---- the golden model configs ---- */

/* every number in the rope object of config.json must be in the struct */
static void check_rope_json(const char *what, const json_t *rp, const struct rd_config *c)
{
    const char *k;
    const json_t *it;
    json_object_foreach((json_t *)rp, k, it)
    {
        double v = json_number_value(it);
        if (!strcmp(k, "rope_type")) CHECK_MSG(!strcmp(rd_rope_type_name(c->rope.type), json_string_value(it)), "%s", what);
        else if (!strcmp(k, "rope_theta")) CHECK_MSG(c->rope.theta == v, "%s theta", what);
        else if (!strcmp(k, "factor")) CHECK_MSG(c->rope.factor == v && c->rope.has_factor, "%s factor", what);
        else if (!strcmp(k, "original_max_position_embeddings")) CHECK_MSG(c->rope.original_max_pos == (int)v, "%s", what);
        else if (!strcmp(k, "low_freq_factor")) CHECK_MSG(c->rope.low_freq_factor == v, "%s", what);
        else if (!strcmp(k, "high_freq_factor")) CHECK_MSG(c->rope.high_freq_factor == v, "%s", what);
        else if (!strcmp(k, "beta_fast")) CHECK_MSG(c->rope.beta_fast == v, "%s", what);
        else if (!strcmp(k, "beta_slow")) CHECK_MSG(c->rope.beta_slow == v, "%s", what);
        else if (!strcmp(k, "attention_factor")) CHECK_MSG(c->rope.attention_factor == v, "%s", what);
        else if (!strcmp(k, "short_factor") || !strcmp(k, "long_factor")) {
            const double *f = k[0] == 's' ? c->rope.short_factor : c->rope.long_factor;
            int n = k[0] == 's' ? c->rope.n_short : c->rope.n_long;
            CHECK_MSG(n == (int)json_array_size(it), "%s %s count", what, k);
            for (int i = 0; i < n && i < (int)json_array_size(it); i++)
                CHECK_MSG(f[i] == json_number_value(json_array_get(it, i)), "%s %s[%d]", what, k, i);
        }
    }
}

static int json_int(const json_t *o, const char *k)
{
    const json_t *it = json_object_get(o, k);
    return json_is_number(it) ? (int)json_number_value(it) : -12345;
}

static void test_golden_configs(void)
{
    const char *shared = rd_test_shared_dir();
    if (!shared) {
        printf("SKIP: golden model configs (no ../shared); the other parts ran\n");
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/golden/models", shared);
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int n_models = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p1[4400], p2[4400], e[ERR_LEN];
        snprintf(p1, sizeof p1, "%s/%s/config.json", dir, de->d_name);
        snprintf(p2, sizeof p2, "%s/%s/config.hub.json", dir, de->d_name);
        struct stat sb;
        if (stat(p1, &sb) != 0) continue;
        n_models++;
        struct rd_config a, b;
        rd_status st = rd_config_load(p1, &a, e, ERR_LEN);
        CHECK_MSG(st == RD_OK, "%s: %s", p1, e);
        if (st != RD_OK) continue;
        json_t *j = rd_test_load_json(p1);
        CHECK_MSG(j != NULL, "%s is not JSON", p1);
        if (j) {
            CHECK_MSG(a.hidden_size == json_int(j, "hidden_size") &&
                          a.intermediate_size == json_int(j, "intermediate_size") &&
                          a.n_layers == json_int(j, "num_hidden_layers") &&
                          a.n_heads == json_int(j, "num_attention_heads") &&
                          a.n_kv_heads == json_int(j, "num_key_value_heads") &&
                          a.head_dim == json_int(j, "head_dim") &&
                          a.vocab_size == json_int(j, "vocab_size") &&
                          a.max_position_embeddings == json_int(j, "max_position_embeddings"),
                      "%s: sizes differ from the JSON", de->d_name);
            CHECK_MSG(a.tie_word_embeddings ==
                          json_is_true(json_object_get(j, "tie_word_embeddings")),
                      "%s: tie_word_embeddings", de->d_name);
            CHECK(a.bos_token_id == json_int(j, "bos_token_id"));
            CHECK(a.n_eos == 1 && a.eos_token_ids[0] == json_int(j, "eos_token_id"));
            CHECK(a.rotary_dim == a.head_dim);
            const json_t *dt = json_object_get(j, "dtype");
            if (json_is_string(dt)) {
                enum rd_dtype want = !strcmp(json_string_value(dt), "bfloat16") ? RD_DTYPE_BF16
                                     : !strcmp(json_string_value(dt), "float16") ? RD_DTYPE_F16
                                                                           : RD_DTYPE_F32;
                CHECK_MSG(a.rope_freq_dtype == want, "%s: rope_freq_dtype %d for dtype %s",
                          de->d_name, a.rope_freq_dtype, json_string_value(dt));
            }
            check_rope_json(de->d_name, json_object_get(j, "rope_parameters"), &a);
            json_decref(j);
        }
        if (stat(p2, &sb) != 0) {
            printf("note: %s has no config.hub.json\n", de->d_name);
            continue;
        }
        st = rd_config_load(p2, &b, e, ERR_LEN);
        CHECK_MSG(st == RD_OK, "%s: %s", p2, e);
        if (st != RD_OK) continue;
        CHECK_MSG(same_rope(&a, &b, de->d_name), "%s: config.json and config.hub.json differ in rope",
                  de->d_name);
        CHECK_MSG(same_sizes(&a, &b, de->d_name), "%s: config.json and config.hub.json differ in sizes",
                  de->d_name);
        CHECK_MSG(a.partial_rotary_factor == b.partial_rotary_factor, "%s", de->d_name);
        roundtrip(de->d_name, &a);
        printf("golden config %-26s ok: %s, theta %g, rotary_dim %d\n", de->d_name,
               rd_rope_type_name(a.rope.type), a.rope.theta, a.rotary_dim);
    }
    closedir(d);
    CHECK_MSG(n_models >= 8, "only %d golden model configs found in %s", n_models, dir);
}

int main(void)
{
    test_defaults();
    test_plain_fields();
    test_rope_spellings();
    test_rope_types();
    test_partial_rotary();
    test_ropedist_section();
    test_load();
    test_to_json();
    test_golden_configs();
    return rd_test_finish("test_config");
}
