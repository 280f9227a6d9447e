/* Command-line parsing (see cli.h). */
#include "runtime/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"

void rd_cli_usage(FILE *f)
{
    fputs(
        "usage: mpirun -np N ropedist --config FILE [options]\n"
        "       mpirun -np N ropedist serve --config FILE [--port 8000] [options]\n"
        "\n"
        "Tensor-parallel Llama inference: each of the N MPI ranks holds 1/N of every layer.\n"
        "`serve` runs an OpenAI-compatible HTTP server on rank 0 (POST /v1/completions,\n"
        "/v1/chat/completions; GET /v1/models, /health, /metrics) with continuous batching.\n"
        "\n"
        "model\n"
        "  --config FILE          model config (required): a Hugging Face config.json, a .gguf\n"
        "                         (config, weights and tokenizer in one file), or an .h5\n"
        "                         checkpoint made by ropedist-convert (it stores its config)\n"
        "  --checkpoint FILE      weights (.h5 ropedist checkpoint or .gguf); default: the config's\n"
        "                         ropedist.checkpoint\n"
        "  --tokenizer FILE       tokenizer.json or .gguf; default: the config's ropedist.tokenizer,\n"
        "                         else tokenizer.json next to the config\n"
        "  --device cpu|cuda      backend (default: cuda when a GPU is visible, else cpu)\n"
        "  --dtype fp32|bf16|fp16 compute dtype (cpu: fp32 only; default: config's, else fp32 on\n"
        "                         cpu and bf16 on cuda)\n"
        "  --threads N            cpu: compute threads per rank (default: OMP_NUM_THREADS, else the\n"
        "                         node's cores / ranks on the node, within the rank's CPU binding)\n"
        "  --max-seq-len N        tokens of KV cache per sequence (default: max_position_embeddings,\n"
        "                         at most 8192)\n"
        "  --max-batch-tokens N   tokens per forward call (default 512)\n"
        "  --batch N              sequences decoded together: --prompts with --output ids|json\n"
        "                         (default 8; 1 = one after another) and serve (default 64). Each\n"
        "                         prompt's tokens are the same either way. dynamic/longrope rope\n"
        "                         and attention sinks run one at a time\n"
        "  --kv-cache-gb G        paged KV cache per rank, in GB (blocks of 16 tokens shared by\n"
        "                         all sequences; when full, new sequences wait and the newest\n"
        "                         running one is preempted and recomputed later). Default: room\n"
        "                         for --batch sequences of --max-seq-len tokens (serve: at most\n"
        "                         90% of the memory left after the weights)\n"
        "  --share-gpu            allow several ranks on one GPU (test mode)\n"
        "  --tp N                 expected tensor-parallel size; an error unless N ranks run\n"
        "                         (the tp size is always the number of ranks)\n"
        "\n"
        "input (one of)\n"
        "  --prompt TEXT          text prompt (\"\" = BOS only); needs a tokenizer\n"
        "  --prompt-ids 1,2,3     prompt as token ids\n"
        "  --prompts FILE.jsonl   one JSON object per line: {\"prompt_ids\": [...]} or {\"prompt\": \"...\"},\n"
        "                         optionally with \"max_new_tokens\": N for that prompt\n"
        "\n"
        "generation\n"
        "  --max-new-tokens N     tokens to generate (default 64)\n"
        "  --temperature T        0 = greedy (default 0)\n"
        "  --top-k K              keep the K most likely tokens (0 = off, default)\n"
        "  --top-p P              keep the smallest set with mass >= P (1 = off, default)\n"
        "  --seed S               sampling seed (default 0); same seed, same tokens at any tp\n"
        "  --ignore-eos           do not stop at EOS\n"
        "  --sink-tokens S        attention sinks: keep the first S tokens in the cache ...\n"
        "  --attention-window W   ... plus the last W-S (StreamingLLM); generation may then run\n"
        "                         past the cache size with bounded memory\n"
        "\n"
        "output (only rank 0 writes to stdout; every rank logs to stderr as [rank R/N])\n"
        "  --output text|ids|json text streams tokens as they are sampled (default with a\n"
        "                         tokenizer); ids prints one line of ids per prompt; json prints\n"
        "                         one object per prompt: prompt_ids, output_ids, text (when a\n"
        "                         tokenizer is known; special tokens skipped, as in the text\n"
        "                         output), finish_reason, timing\n"
        "  --with-logits          json only: add \"logits\", the full-vocabulary logits of every\n"
        "                         generated step (step 0 = right after the prompt)\n"
        "  --verbose              every rank logs what it owns (heads, kv heads, ffn columns, vocab\n"
        "                         rows, bytes of weights loaded)\n"
        "  --help                 this text\n"
        "\n"
        "serve (rank 0 listens; every rank runs every step)\n"
        "  --host ADDR            bind address (default 127.0.0.1: this machine only; binding\n"
        "                         another address, e.g. 0.0.0.0, exposes the server)\n"
        "  --port N               TCP port (default 8000; 0 = any free port, logged)\n"
        "  --api-key KEY          every request needs \"Authorization: Bearer KEY\" (default:\n"
        "                         RD_API_KEY from the environment, else none)\n"
        "  --served-model-name S  the model's name in /v1/models and responses (default: the\n"
        "                         config's folder, or the .gguf/.h5 file name)\n"
        "  --max-body-kb N        larger request bodies get 413 (default 4096)\n"
        "  --drain-timeout S      on SIGTERM/SIGINT stop accepting, give running requests S\n"
        "                         seconds to finish, then end every rank (default 30; a second\n"
        "                         signal ends at once)\n"
        "\n"
        "environment: RD_LOG_LEVEL=debug|info|warn|error, RD_DEBUG_SYNC=1 (cuda: sync after each op),\n"
        "  RD_CUDA_GRAPHS=0 (cuda: run decode steps eagerly, not as CUDA graphs), RD_WATCHDOG=0,\n"
        "  RD_API_KEY (serve: the API key when --api-key is not given)\n",
        f);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static bool parse_float(const char *s, float *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v)) return false;
    *out = (float)v;
    return true;
}

#define NEED_VALUE()                                                                           \
    do {                                                                                       \
        if (i + 1 >= argc) {                                                                   \
            snprintf(err, err_len, "flag %s needs a value", flag);                             \
            return RD_ERR_INVALID_ARG;                                                         \
        }                                                                                      \
        val = argv[++i];                                                                       \
    } while (0)
#define BAD(...)                                                                               \
    do {                                                                                       \
        snprintf(err, err_len, __VA_ARGS__);                                                   \
        return RD_ERR_INVALID_ARG;                                                             \
    } while (0)

rd_status rd_cli_parse(int argc, char **argv, struct rd_args *a, char *err, int err_len)
{
    memset(a, 0, sizeof *a);
    a->dtype = -1;
    a->max_new_tokens = 64;
    a->top_p = 1.0f;
    a->max_batch_tokens = 512;
    a->output = RD_OUTPUT_TEXT;
    a->port = 8000;
    a->max_body_kb = 4096;
    a->drain_timeout_s = 30;
    int first = 1, serve_flags = 0;
    if (argc > 1 && !strcmp(argv[1], "serve")) {
        a->serve = true;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        const char *flag = argv[i], *val = NULL;
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            a->help = true;
        } else if (!strcmp(flag, "--config")) {
            NEED_VALUE();
            a->config = val;
        } else if (!strcmp(flag, "--checkpoint")) {
            NEED_VALUE();
            a->checkpoint = val;
        } else if (!strcmp(flag, "--tokenizer")) {
            NEED_VALUE();
            a->tokenizer = val;
        } else if (!strcmp(flag, "--device")) {
            NEED_VALUE();
            if (!strcmp(val, "cpu")) a->device = RD_DEVICE_CPU;
            else if (!strcmp(val, "cuda")) a->device = RD_DEVICE_CUDA;
            else BAD("--device must be cpu or cuda (got \"%s\")", val);
        } else if (!strcmp(flag, "--dtype")) {
            NEED_VALUE();
            a->dtype = rd_dtype_parse(val);
            if (a->dtype < 0) BAD("--dtype must be fp32, bf16 or fp16 (got \"%s\")", val);
        } else if (!strcmp(flag, "--threads")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 4096, &a->threads))
                BAD("--threads must be an integer in 1..4096 (got \"%s\")", val);
        } else if (!strcmp(flag, "--prompt")) {
            NEED_VALUE();
            a->prompt = val;
            a->have_prompt = true;
        } else if (!strcmp(flag, "--prompt-ids")) {
            NEED_VALUE();
            a->prompt_ids = val;
        } else if (!strcmp(flag, "--prompts")) {
            NEED_VALUE();
            a->prompts_file = val;
        } else if (!strcmp(flag, "--max-new-tokens")) {
            NEED_VALUE();
            if (!parse_int(val, 0, INT_MAX, &a->max_new_tokens))
                BAD("--max-new-tokens must be a non-negative integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--temperature")) {
            NEED_VALUE();
            if (!parse_float(val, &a->temperature) || a->temperature < 0)
                BAD("--temperature must be a number >= 0 (got \"%s\")", val);
        } else if (!strcmp(flag, "--top-k")) {
            NEED_VALUE();
            if (!parse_int(val, 0, INT_MAX, &a->top_k))
                BAD("--top-k must be a non-negative integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--top-p")) {
            NEED_VALUE();
            if (!parse_float(val, &a->top_p) || !(a->top_p > 0 && a->top_p <= 1))
                BAD("--top-p must be in (0, 1] (got \"%s\")", val);
        } else if (!strcmp(flag, "--seed")) {
            NEED_VALUE();
            char *end;
            errno = 0;
            unsigned long long v = strtoull(val, &end, 10);
            if (!*val || *end || errno || val[0] == '-')
                BAD("--seed must be a non-negative integer (got \"%s\")", val);
            a->seed = v;
        } else if (!strcmp(flag, "--ignore-eos")) {
            a->ignore_eos = true;
        } else if (!strcmp(flag, "--output")) {
            NEED_VALUE();
            if (!strcmp(val, "text")) a->output = RD_OUTPUT_TEXT;
            else if (!strcmp(val, "ids")) a->output = RD_OUTPUT_IDS;
            else if (!strcmp(val, "json")) a->output = RD_OUTPUT_JSON;
            else BAD("--output must be text, ids or json (got \"%s\")", val);
            a->output_given = true;
        } else if (!strcmp(flag, "--with-logits")) {
            a->with_logits = true;
        } else if (!strcmp(flag, "--verbose") || !strcmp(flag, "-v")) {
            a->verbose = true;
        } else if (!strcmp(flag, "--max-seq-len")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1 << 24, &a->max_seq_len))
                BAD("--max-seq-len must be a positive integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--max-batch-tokens")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1 << 20, &a->max_batch_tokens))
                BAD("--max-batch-tokens must be a positive integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--tp")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1 << 20, &a->tp))
                BAD("--tp must be a positive integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--batch")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 4096, &a->batch))
                BAD("--batch must be an integer in 1..4096 (got \"%s\")", val);
        } else if (!strcmp(flag, "--share-gpu")) {
            a->share_gpu = true;
        } else if (!strcmp(flag, "--sink-tokens")) {
            NEED_VALUE();
            if (!parse_int(val, 0, 1 << 24, &a->sink_tokens))
                BAD("--sink-tokens must be a non-negative integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--attention-window")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1 << 24, &a->attention_window))
                BAD("--attention-window must be a positive integer (got \"%s\")", val);
        } else if (!strcmp(flag, "--host")) {
            NEED_VALUE();
            if (!*val) BAD("--host needs an address");
            a->host = val;
            serve_flags++;
        } else if (!strcmp(flag, "--port")) {
            NEED_VALUE();
            if (!parse_int(val, 0, 65535, &a->port))
                BAD("--port must be an integer in 0..65535 (got \"%s\")", val);
            serve_flags++;
        } else if (!strcmp(flag, "--api-key")) {
            NEED_VALUE();
            if (!*val) BAD("--api-key must not be empty");
            a->api_key = val;
            serve_flags++;
        } else if (!strcmp(flag, "--served-model-name")) {
            NEED_VALUE();
            if (!*val) BAD("--served-model-name must not be empty");
            a->model_name = val;
            serve_flags++;
        } else if (!strcmp(flag, "--max-body-kb")) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1 << 20, &a->max_body_kb))
                BAD("--max-body-kb must be a positive integer (got \"%s\")", val);
            serve_flags++;
        } else if (!strcmp(flag, "--drain-timeout")) {
            NEED_VALUE();
            if (!parse_int(val, 0, 86400, &a->drain_timeout_s))
                BAD("--drain-timeout must be a number of seconds in 0..86400 (got \"%s\")", val);
            serve_flags++;
        } else if (!strcmp(flag, "--kv-cache-gb")) {
            NEED_VALUE();
            float gb;
            if (!parse_float(val, &gb) || !(gb > 0))
                BAD("--kv-cache-gb must be a positive number of GB (got \"%s\")", val);
            a->kv_cache_gb = gb;
        } else if (!strcmp(flag, "serve")) {
            BAD("\"serve\" must come first: ropedist serve --config FILE ...");
        } else {
            BAD("unknown flag \"%s\" (see --help)", flag);
        }
    }
    if (a->help) return RD_OK;
    if (!a->config) BAD("--config FILE is required (see --help)");
    if (a->serve) {
        if (a->have_prompt || a->prompt_ids || a->prompts_file)
            BAD("serve takes prompts over HTTP, not --prompt/--prompt-ids/--prompts");
        if (a->output_given || a->with_logits) BAD("serve answers in JSON: drop --output/--with-logits");
        if (a->attention_window) BAD("serve does not run attention sinks (--attention-window)");
        if (!a->api_key) {
            const char *k = getenv("RD_API_KEY");
            if (k && *k) a->api_key = k;
        }
        if (!a->host) a->host = "127.0.0.1";
        return RD_OK;
    }
    if (serve_flags) BAD("--host, --port, --api-key, --served-model-name, --max-body-kb and "
                         "--drain-timeout are flags of `ropedist serve`");
    int inputs = (a->have_prompt ? 1 : 0) + (a->prompt_ids ? 1 : 0) + (a->prompts_file ? 1 : 0);
    if (inputs == 0) BAD("give a prompt: --prompt TEXT, --prompt-ids 1,2,3 or --prompts FILE.jsonl");
    if (inputs > 1) BAD("give only one of --prompt, --prompt-ids and --prompts");
    if (a->with_logits && a->output != RD_OUTPUT_JSON) BAD("--with-logits needs --output json");
    if (a->sink_tokens && !a->attention_window) BAD("--sink-tokens needs --attention-window W");
    if (a->attention_window && a->sink_tokens >= a->attention_window)
        BAD("--sink-tokens (%d) must be smaller than --attention-window (%d)", a->sink_tokens,
            a->attention_window);
    return RD_OK;
}

rd_status rd_cli_parse_ids(const char *s, int32_t **ids, int *n, char *err, int err_len)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 16;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return RD_ERR_OOM;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            BAD("--prompt-ids must be a comma-separated list of non-negative integers (near \"%.20s\")",
                p);
        }
        if ((size_t)*n == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return RD_ERR_OOM;
            }
            v = nv;
        }
        v[(*n)++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    *ids = v;
    return RD_OK;
}
