/* Command-line flags of `ropedist` (every flag is documented by --help, printed from
 * rd_cli_usage). Every rank parses the same argv, so a bad flag is seen alike everywhere and
 * ends every rank before any collective. */
#ifndef RD_CLI_H
#define RD_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

enum rd_output { RD_OUTPUT_TEXT = 0, RD_OUTPUT_IDS, RD_OUTPUT_JSON };
enum rd_device_kind { RD_DEVICE_AUTO = 0, RD_DEVICE_CPU, RD_DEVICE_CUDA };

struct rd_args {
    const char *config;
    const char *checkpoint;  /* NULL: from the config's ropedist.checkpoint */
    const char *tokenizer;   /* NULL: next to the config / from the config */
    enum rd_device_kind device;
    int dtype;               /* -1: config default */
    int threads;             /* cpu: compute threads per rank; 0: the backend's default */
    const char *prompt;      /* --prompt TEXT ("" = BOS only) */
    bool have_prompt;
    const char *prompt_ids;  /* --prompt-ids 1,2,3 */
    const char *prompts_file;/* --prompts FILE.jsonl */
    int max_new_tokens;
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
    bool ignore_eos;
    enum rd_output output;
    bool output_given;
    bool with_logits;
    bool verbose;
    int max_seq_len;         /* 0: from the config */
    int max_batch_tokens;    /* prefill chunk */
    int batch;               /* sequences decoded together for --prompts (0: default 8) */
    bool share_gpu;
    int tp;                  /* 0: the number of ranks; else must equal it */
    int sink_tokens;         /* 0: off */
    int attention_window;    /* 0: off */
    bool help;
    /* `ropedist serve`: an OpenAI-compatible HTTP server on rank 0 */
    bool serve;
    const char *host;        /* bind address (default 127.0.0.1) */
    int port;                /* default 8000; 0 = any free port (logged) */
    const char *api_key;     /* --api-key, else RD_API_KEY; NULL = no authentication */
    const char *model_name;  /* --served-model-name; NULL = from the config path */
    int max_body_kb;         /* request bodies above this get 413 (default 4096) */
    int drain_timeout_s;     /* SIGTERM: seconds running requests get to finish (default 30) */
    double kv_cache_gb;      /* KV pool per rank in GB (1e9 bytes); 0 = default */
};

/* Parses argv. On error returns RD_ERR_INVALID_ARG with a message naming the flag. */
rd_status rd_cli_parse(int argc, char **argv, struct rd_args *a, char *err, int err_len);
void rd_cli_usage(FILE *f);

/* Parses "1,2,3" into a malloc'd array. */
rd_status rd_cli_parse_ids(const char *s, int32_t **ids, int *n, char *err, int err_len);

#endif
