/* The model config: a Hugging Face config.json of a Llama-family model, read as is, plus the
 * optional "ropedist" object of our own settings.
 *
 * Both rope styles of config are accepted: the hub style (rope_theta + rope_scaling) and the
 * newer transformers style (rope_parameters, which holds rope_theta too). Every missing or
 * invalid field is an error naming the field. */
#ifndef RD_CONFIG_H
#define RD_CONFIG_H

#include <stdbool.h>

#include "common/dtype.h"
#include "common/status.h"
#include "kernels/rope_table.h"

#define RD_PATH_MAX 4096
#define RD_MAX_EOS 8
#define RD_CONFIG_MAX_BYTES (64 << 20) /* a config file larger than this is refused */
/* Upper bounds of the sizes a config may give (each well above any released model's); a size
 * past them is an error naming the field, before anything is sized from it. */
#define RD_MAX_HIDDEN (1 << 18)       /* hidden_size */
#define RD_MAX_FFN (1 << 20)          /* intermediate_size */
#define RD_MAX_HEADS (1 << 12)        /* num_attention_heads, num_key_value_heads */
#define RD_MAX_LAYERS (1 << 12)       /* num_hidden_layers */
#define RD_MAX_VOCAB (1 << 22)        /* vocab_size */
#define RD_MAX_POSITIONS (1 << 26)    /* max_position_embeddings */
#define RD_MAX_ROPE_FACTORS RD_MAX_ROPE_PAIRS

enum rd_rope_type {
    RD_ROPE_TYPE_DEFAULT = 0,
    RD_ROPE_TYPE_LINEAR,
    RD_ROPE_TYPE_DYNAMIC,
    RD_ROPE_TYPE_LLAMA3,
    RD_ROPE_TYPE_YARN,
    RD_ROPE_TYPE_LONGROPE,
};


/* Everything the rope table builder reads. Fields not used by a type keep their defaults
 * (has_* flags say whether the config gave them). */
struct rd_rope_config {
    enum rd_rope_type type;
    double theta;                 /* rope_theta */
    double factor;                /* linear, dynamic, llama3, yarn, longrope */
    bool has_factor;              /* factor was given (longrope derives it otherwise) */
    int original_max_pos;         /* original_max_position_embeddings (0 = not given) */
    double low_freq_factor;       /* llama3 */
    double high_freq_factor;      /* llama3 */
    double beta_fast, beta_slow;  /* yarn (defaults 32, 1) */
    double mscale, mscale_all_dim; /* yarn (0 = not given) */
    bool has_attention_factor;
    double attention_factor;      /* yarn, longrope */
    bool truncate;                /* yarn (default true) */
    int n_short, n_long;          /* longrope factor counts (= rotary_dim / 2) */
    double short_factor[RD_MAX_ROPE_FACTORS];
    double long_factor[RD_MAX_ROPE_FACTORS];
};

struct rd_config {
    int hidden_size;        /* D */
    int intermediate_size;  /* F */
    int n_layers;
    int n_heads;            /* H */
    int n_kv_heads;         /* Hkv */
    int head_dim;           /* Dh (hidden_size / n_heads unless head_dim is given) */
    int vocab_size;         /* V */
    double rms_norm_eps;
    int max_position_embeddings;
    bool tie_word_embeddings;
    int bos_token_id;       /* -1 when absent */
    int n_eos;
    int eos_token_ids[RD_MAX_EOS];

    struct rd_rope_config rope;
    enum rd_rope_style rope_style;
    double partial_rotary_factor; /* 1 unless given (top level or inside rope_parameters) */
    int rotary_dim;         /* rotated dims per head, even, <= head_dim */
    /* dtype the inverse frequencies are rounded to. transformers keeps inv_freq as a buffer of
     * the model, so a checkpoint whose config says "dtype": "bfloat16" (or torch_dtype) runs
     * with bf16-rounded frequencies there; we match that unless ropedist.rope_freq_dtype says
     * otherwise. */
    enum rd_dtype rope_freq_dtype;

    /* "ropedist" section; paths are resolved relative to the config file's folder */
    char checkpoint_path[RD_PATH_MAX]; /* empty when not given */
    char tokenizer_path[RD_PATH_MAX];  /* empty when not given */
    enum rd_dtype dtype;               /* default compute dtype (fp32 unless given) */
    bool dtype_given;
};

/* Fills cfg with defaults (used by tests and by the gguf importer before it sets fields). */
void rd_config_defaults(struct rd_config *cfg);

/* Parses a config.json text. base_dir resolves relative paths of the "ropedist" section
 * (NULL = current dir). On error, err (if not NULL) holds a message naming the field. */
rd_status rd_config_parse(const char *json_text, const char *base_dir, struct rd_config *cfg,
                          char *err, int err_len);

/* Reads and parses a config file. */
rd_status rd_config_load(const char *path, struct rd_config *cfg, char *err, int err_len);

/* Checks values that must hold whatever the source (also used after gguf import). */
rd_status rd_config_validate(const struct rd_config *cfg, char *err, int err_len);

/* Writes the config as a config.json text (rope_parameters style plus "ropedist" section
 * without paths). Returns a malloc'd string. */
char *rd_config_to_json(const struct rd_config *cfg);

const char *rd_rope_type_name(enum rd_rope_type t);

#endif
