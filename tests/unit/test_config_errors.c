/* Unit test of the config parser (runtime/config.c) on configs it must refuse: every required
 * field missing, null or of the wrong kind; every optional field out of range or of the wrong
 * type (kv heads, head_dim, eps, token ids, unsupported architectures, every rope type's
 * fields, partial rotary, the "ropedist" section); text that is not a JSON object; and a NULL
 * or short error buffer. Each refusal must be RD_ERR_CONFIG with a message naming the field.
 * Configs are the small valid base of config_cases.h with edits; the accepted ones are in
 * test_config.c. */
#include <stdio.h>
#include <string.h>

#include "config_cases.h"
#include "runtime/config.h"
#include "test_util.h"

/* edits must fail with RD_ERR_CONFIG and a message containing needle */
#define EXPECT_ERR(needle, ...)                                                                \
    do {                                                                                       \
        char e_[ERR_LEN];                                                                      \
        struct rd_config c_;                                                                   \
        rd_status s_ = parse_edit(&c_, e_, __VA_ARGS__, (const char *)NULL);                   \
        CHECK_MSG(s_ == RD_ERR_CONFIG, "expected RD_ERR_CONFIG naming '%s', got %s ('%s')",     \
                  (needle), rd_status_str(s_), e_);                                            \
        CHECK_MSG(strstr(e_, (needle)) != NULL, "error '%s' does not name '%s'", e_, (needle)); \
    } while (0)

/* raw text must fail with RD_ERR_CONFIG and a message containing needle */
static void expect_text_err(const char *text, const char *needle)
{
    struct rd_config c;
    char e[ERR_LEN] = "";
    rd_status st = rd_config_parse(text, NULL, &c, e, ERR_LEN);
    CHECK_MSG(st == RD_ERR_CONFIG, "text '%s': got %s", text, rd_status_str(st));
    CHECK_MSG(strstr(e, needle) != NULL, "text '%s': error '%s' does not name '%s'", text, e, needle);
}

/* ---- partial rotary and the "ropedist" section ---- */

static void test_partial_rotary_errors(void)
{
    EXPECT_ERR("partial_rotary_factor", "partial_rotary_factor", "0");
    EXPECT_ERR("partial_rotary_factor", "partial_rotary_factor", "-0.5");
    EXPECT_ERR("partial_rotary_factor", "partial_rotary_factor", "1.5");
    EXPECT_ERR("partial_rotary_factor", "partial_rotary_factor", "\"half\"");
    EXPECT_ERR("partial_rotary_factor", "rope_parameters",
               "{\"rope_type\": \"default\", \"partial_rotary_factor\": 2}");
    EXPECT_ERR("partial_rotary_factor", "rope_parameters",
               "{\"rope_type\": \"default\", \"partial_rotary_factor\": \"x\"}");
    /* 16 * 0.3125 = 5: odd */
    EXPECT_ERR("rotary dim 5", "partial_rotary_factor", "0.3125");
    /* 16 * 0.05 = 0.8 -> 0 */
    EXPECT_ERR("rotary dim 0", "partial_rotary_factor", "0.05");
}

static void test_ropedist_errors(void)
{
    EXPECT_ERR("ropedist.rope_freq_dtype", "ropedist", "{\"rope_freq_dtype\": \"float64\"}");
    EXPECT_ERR("ropedist.rope_freq_dtype", "ropedist", "{\"rope_freq_dtype\": 16}");
    EXPECT_ERR("dtype", "dtype", "16");
    EXPECT_ERR("torch_dtype", "torch_dtype", "[]");

    EXPECT_ERR("ropedist.rope_style", "ropedist", "{\"rope_style\": \"rotate_half\"}");
    EXPECT_ERR("ropedist.rope_style", "ropedist", "{\"rope_style\": \"NEOX\"}");
    EXPECT_ERR("ropedist.rope_style", "ropedist", "{\"rope_style\": 1}");
    EXPECT_ERR("ropedist.dtype", "ropedist", "{\"dtype\": \"int8\"}");
    EXPECT_ERR("ropedist.dtype", "ropedist", "{\"dtype\": 32}");
    EXPECT_ERR("ropedist.checkpoint", "ropedist", "{\"checkpoint\": 5}");
    EXPECT_ERR("ropedist.tokenizer", "ropedist", "{\"tokenizer\": [\"a\"]}");
    EXPECT_ERR("ropedist.rotary_dim", "ropedist", "{\"rotary_dim\": 0}");
    EXPECT_ERR("ropedist.rotary_dim", "ropedist", "{\"rotary_dim\": -2}");
    EXPECT_ERR("ropedist.rotary_dim", "ropedist", "{\"rotary_dim\": 7.5}");
    EXPECT_ERR("ropedist.rotary_dim", "ropedist", "{\"rotary_dim\": \"8\"}");
    EXPECT_ERR("rotary dim 7", "ropedist", "{\"rotary_dim\": 7}");
    EXPECT_ERR("rotary dim 32", "ropedist", "{\"rotary_dim\": 32}");
    EXPECT_ERR("ropedist", "ropedist", "\"gptj\"");
    EXPECT_ERR("ropedist", "ropedist", "[1]");
}

/* ---- errors ---- */

static void test_required_fields(void)
{
    static const char *const req[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "vocab_size"};
    for (int i = 0; i < 5; i++) {
        const char *f = req[i];
        EXPECT_ERR(f, f, NULL);                  /* missing */
        EXPECT_ERR(f, f, "null");                /* null is missing */
        EXPECT_ERR(f, f, "-4");                  /* negative */
        EXPECT_ERR(f, f, "0");                   /* zero */
        EXPECT_ERR(f, f, "2.5");                 /* not an integer */
        EXPECT_ERR(f, f, "\"64\"");              /* string for a number */
        EXPECT_ERR(f, f, "true");
        EXPECT_ERR(f, f, "[64]");
        EXPECT_ERR(f, f, "{}");
        EXPECT_ERR(f, f, "1e12");                /* does not fit an int */
    }
    /* the "missing" message says missing */
    struct rd_config c;
    char e[ERR_LEN];
    CHECK(parse_edit(&c, e, "vocab_size", (const char *)NULL, (const char *)NULL) == RD_ERR_CONFIG);
    CHECK_MSG(strstr(e, "missing") != NULL, "%s", e);
}

static void test_invalid_fields(void)
{
    /* kv heads */
    EXPECT_ERR("num_key_value_heads", "num_key_value_heads", "3");
    EXPECT_ERR("num_key_value_heads", "num_key_value_heads", "8");
    EXPECT_ERR("num_key_value_heads", "num_key_value_heads", "0");
    EXPECT_ERR("num_key_value_heads", "num_key_value_heads", "-2");
    EXPECT_ERR("num_key_value_heads", "num_key_value_heads", "1.5");
    EXPECT_ERR("num_key_value_heads", "num_key_value_heads", "\"2\"");
    /* head_dim */
    EXPECT_ERR("head_dim", "head_dim", "-16");
    EXPECT_ERR("head_dim", "head_dim", "16.5");
    EXPECT_ERR("head_dim", "head_dim", "\"16\"");
    EXPECT_ERR("head_dim", "head_dim", "100000");
    EXPECT_ERR("head_dim", "hidden_size", "66"); /* 66 % 4 != 0 and no head_dim: says give head_dim */
    EXPECT_ERR("hidden_size", "hidden_size", "66");
    /* other numbers */
    EXPECT_ERR("rms_norm_eps", "rms_norm_eps", "0");
    EXPECT_ERR("rms_norm_eps", "rms_norm_eps", "-1e-6");
    EXPECT_ERR("rms_norm_eps", "rms_norm_eps", "2");
    EXPECT_ERR("rms_norm_eps", "rms_norm_eps", "\"1e-6\"");
    EXPECT_ERR("max_position_embeddings", "max_position_embeddings", "0");
    EXPECT_ERR("max_position_embeddings", "max_position_embeddings", "-5");
    EXPECT_ERR("max_position_embeddings", "max_position_embeddings", "100.5");
    EXPECT_ERR("bos_token_id", "bos_token_id", "256"); /* outside the vocabulary */
    EXPECT_ERR("bos_token_id", "bos_token_id", "\"<s>\"");
    EXPECT_ERR("bos_token_id", "bos_token_id", "1.5");
    EXPECT_ERR("eos_token_id", "eos_token_id", "300");
    EXPECT_ERR("eos_token_id", "eos_token_id", "-1");
    EXPECT_ERR("eos_token_id", "eos_token_id", "\"</s>\"");
    EXPECT_ERR("eos_token_id", "eos_token_id", "2.5");
    EXPECT_ERR("eos_token_id", "eos_token_id", "[2, \"x\"]");
    EXPECT_ERR("eos_token_id", "eos_token_id", "[2, -1]");
    EXPECT_ERR("eos_token_id", "eos_token_id", "[2, 256]");
    EXPECT_ERR("eos_token_id", "eos_token_id", "[2, 3.5]");
    EXPECT_ERR("eos_token_id", "eos_token_id", "{}");
    /* more ids than RD_MAX_EOS must not be dropped silently (generation would not stop on them) */
    EXPECT_ERR("eos_token_id", "eos_token_id", "[1, 2, 3, 4, 5, 6, 7, 8, 9]");
    EXPECT_ERR("tie_word_embeddings", "tie_word_embeddings", "1");
    EXPECT_ERR("tie_word_embeddings", "tie_word_embeddings", "\"true\"");
    /* unsupported architectures */
    EXPECT_ERR("hidden_act", "hidden_act", "\"gelu\"");
    EXPECT_ERR("hidden_act", "hidden_act", "\"gelu_pytorch_tanh\"");
    EXPECT_ERR("hidden_act", "hidden_act", "3");
    EXPECT_ERR("attention_bias", "attention_bias", "true");
    EXPECT_ERR("attention_bias", "attention_bias", "\"no\"");
    EXPECT_ERR("mlp_bias", "mlp_bias", "true");
    EXPECT_ERR("model_type", "model_type", "\"gpt2\"");
    EXPECT_ERR("model_type", "model_type", "7");

    /* rope */
    EXPECT_ERR("rope_theta", "rope_theta", "-1");
    EXPECT_ERR("rope_theta", "rope_theta", "0");
    EXPECT_ERR("rope_theta", "rope_theta", "\"10000\"");
    EXPECT_ERR("rope_theta", "rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 0}");
    EXPECT_ERR("rope_parameters.rope_theta", "rope_parameters", "{\"rope_theta\": \"big\"}");
    EXPECT_ERR("rope_scaling", "rope_scaling", "\"linear\"");
    EXPECT_ERR("rope_scaling", "rope_scaling", "2.0");
    EXPECT_ERR("rope_parameters", "rope_parameters", "[1]");
    EXPECT_ERR("rope_type", "rope_parameters", "{\"rope_type\": 3}");
    EXPECT_ERR("type", "rope_scaling", "{\"type\": false}");
    /* unknown rope types: the message lists the supported ones */
    static const char *const bad_types[] = {"su", "mrope", "ntk", "Linear", ""};
    for (int i = 0; i < 5; i++) {
        char v[64];
        snprintf(v, sizeof v, "{\"rope_type\": \"%s\", \"factor\": 2.0}", bad_types[i]);
        static const char *const names[] = {"rope_type",  "default", "linear", "dynamic",
                                            "llama3", "yarn",    "longrope"};
        for (int j = 0; j < 7; j++) EXPECT_ERR(names[j], "rope_parameters", v);
        EXPECT_ERR("rope_scaling.rope_type", "rope_scaling", v);
    }
    /* factor required, >= 1 (linear: > 0), a number */
    static const char *const needs_factor[] = {"linear", "dynamic", "llama3", "yarn"};
    for (int i = 0; i < 4; i++) {
        char v[160];
        snprintf(v, sizeof v, "{\"rope_type\": \"%s\", \"original_max_position_embeddings\": 64}",
                 needs_factor[i]);
        EXPECT_ERR("factor", "rope_parameters", v);
        snprintf(v, sizeof v,
                 "{\"rope_type\": \"%s\", \"factor\": \"2\", \"original_max_position_embeddings\": 64}",
                 needs_factor[i]);
        EXPECT_ERR("rope_parameters.factor", "rope_parameters", v);
        snprintf(v, sizeof v,
                 "{\"rope_type\": \"%s\", \"factor\": 0, \"original_max_position_embeddings\": 64}",
                 needs_factor[i]);
        EXPECT_ERR("factor", "rope_parameters", v);
        snprintf(v, sizeof v,
                 "{\"rope_type\": \"%s\", \"factor\": -2, \"original_max_position_embeddings\": 64}",
                 needs_factor[i]);
        EXPECT_ERR("factor", "rope_scaling", v);
    }
    EXPECT_ERR("factor", "rope_parameters", "{\"rope_type\": \"dynamic\", \"factor\": 0.5}");
    EXPECT_ERR("factor", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 0.5}");
    EXPECT_ERR("factor", "rope_parameters",
               "{\"rope_type\": \"llama3\", \"factor\": 0.5, \"original_max_position_embeddings\": 64}");
    /* llama3 needs original_max_position_embeddings */
    EXPECT_ERR("original_max_position_embeddings", "rope_parameters",
               "{\"rope_type\": \"llama3\", \"factor\": 8}");
    EXPECT_ERR("original_max_position_embeddings", "rope_parameters",
               "{\"rope_type\": \"llama3\", \"factor\": 8, \"original_max_position_embeddings\": 6.5}");
    EXPECT_ERR("low_freq_factor", "rope_parameters",
               "{\"rope_type\": \"llama3\", \"factor\": 8, \"original_max_position_embeddings\": 64,"
               " \"low_freq_factor\": \"1\"}");
    EXPECT_ERR("high_freq_factor", "rope_parameters",
               "{\"rope_type\": \"llama3\", \"factor\": 8, \"original_max_position_embeddings\": 64,"
               " \"high_freq_factor\": []}");
    /* yarn fields */
    EXPECT_ERR("beta_fast", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2, \"beta_fast\": \"32\"}");
    EXPECT_ERR("beta_slow", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2, \"beta_slow\": true}");
    EXPECT_ERR("mscale", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2, \"mscale\": \"1\"}");
    EXPECT_ERR("mscale_all_dim", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2, \"mscale_all_dim\": {}}");
    EXPECT_ERR("attention_factor", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2, \"attention_factor\": \"x\"}");
    EXPECT_ERR("truncate", "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2, \"truncate\": \"yes\"}");
    EXPECT_ERR("original_max_position_embeddings", "rope_parameters",
               "{\"rope_type\": \"yarn\", \"factor\": 2, \"original_max_position_embeddings\": -1}");
    /* longrope factor lists */
    EXPECT_ERR("short_factor", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"long_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}");
    EXPECT_ERR("long_factor", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}");
    EXPECT_ERR("long_factor", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1],"
               " \"long_factor\": [1, 1, 1]}"); /* wrong length: 8 needed */
    EXPECT_ERR("short_factor", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1, 1],"
               " \"long_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}");
    EXPECT_ERR("short_factor[2]", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"short_factor\": [1, 1, -1, 1, 1, 1, 1, 1],"
               " \"long_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}");
    EXPECT_ERR("long_factor[0]", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1],"
               " \"long_factor\": [\"1\", 1, 1, 1, 1, 1, 1, 1]}");
    EXPECT_ERR("short_factor", "rope_parameters",
               "{\"rope_type\": \"longrope\", \"short_factor\": 1.0,"
               " \"long_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}");

    /* not JSON, not an object */
    expect_text_err("", "JSON");
    expect_text_err("{\"hidden_size\": 64,", "JSON");
    expect_text_err("{hidden_size: 64}", "JSON");
    expect_text_err("[1, 2]", "object");
    expect_text_err("42", "object");
    expect_text_err("\"config\"", "object");
    expect_text_err("null", "object");

    /* err may be NULL; a short err buffer is truncated, not overrun */
    struct rd_config c;
    CHECK(rd_config_parse("{}", NULL, &c, NULL, 0) == RD_ERR_CONFIG);
    char small[12];
    memset(small, 'x', sizeof small);
    CHECK(rd_config_parse("{}", NULL, &c, small, 8) == RD_ERR_CONFIG);
    CHECK(strlen(small) == 7 && small[8] == 'x');
}

int main(void)
{
    test_partial_rotary_errors();
    test_ropedist_errors();
    test_required_fields();
    test_invalid_fields();
    return rd_test_finish("test_config_errors");
}
