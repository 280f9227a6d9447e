/* The `ropedist` program (see app.h).
 *
 * Failure discipline: errors every rank sees alike (flags, config, shard rules) end every rank
 * before the first collective. Errors that may differ per rank (opening the checkpoint, reading
 * a slice, allocating) are agreed on with one collective (rd_world_agree: rank 0 prints the
 * cause, its own or the first failing rank's) so all ranks exit together. A failure in the middle of generation,
 * when peers may already wait in a collective, ends the job with MPI_Abort. */
#include "runtime/app.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "kernels/ops.h"
#include "parallel/bootstrap.h"
#include "parallel/comm.h"
#include "parallel/shard.h"
#include "parallel/watchdog.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/batch.h"
#include "runtime/generate.h"
#include "runtime/gguf_model.h"
#include "runtime/model.h"
#include "runtime/prompts.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/weights.h"

#define ERR_LEN 1024

struct app {
    struct rd_world world;
    struct rd_args args;
    struct rd_config cfg;
    struct rd_shard shard;
    struct rd_backend *be;
    struct rd_comm comm;
    bool comm_ready;
    struct rd_weight_source src;
    struct rd_model model;
    bool model_ready;
    struct rd_tokenizer *tok;
    struct rd_detok_stream *stream;
    struct rd_prompts prompts;
    struct rd_sampler sampler;
    struct rd_watchdog *watchdog;
};

static bool file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Config, checks that every rank sees alike. */
static rd_status load_config(struct app *A, char *err)
{
    const struct rd_args *a = &A->args;
    if (ends_with(a->config, ".gguf")) {
        RD_TRY(rd_gguf_model_load_config(a->config, &A->cfg, err, ERR_LEN));
        /* the tokenizer is in the same file */
        snprintf(A->cfg.tokenizer_path, RD_PATH_MAX, "%s", a->config);
    } else if (ends_with(a->config, ".h5")) {
        /* a ropedist checkpoint carries its config */
        struct rd_weight_source src = {0};
        char *json = NULL;
        RD_TRY(rd_weights_open_h5(a->config, &src, &json, err, ERR_LEN));
        src.close(src.ctx);
        char dir[RD_PATH_MAX], sub[ERR_LEN - 200];
        snprintf(dir, sizeof dir, "%s", a->config);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
        rd_status st = rd_config_parse(json, dir, &A->cfg, sub, sizeof sub);
        free(json);
        if (st != RD_OK) {
            snprintf(err, ERR_LEN, "%s: the stored config: %s", a->config, sub);
            return st;
        }
        snprintf(A->cfg.checkpoint_path, RD_PATH_MAX, "%s", a->config);
    } else {
        RD_TRY(rd_config_load(a->config, &A->cfg, err, ERR_LEN));
    }
    if (a->checkpoint) snprintf(A->cfg.checkpoint_path, RD_PATH_MAX, "%s", a->checkpoint);
    if (!A->cfg.checkpoint_path[0]) {
        snprintf(err, ERR_LEN, "no checkpoint: give --checkpoint FILE, or \"ropedist\": "
                 "{\"checkpoint\": ...} in %s", a->config);
        return RD_ERR_INVALID_ARG;
    }
    if (a->tp && a->tp != A->world.size) {
        snprintf(err, ERR_LEN, "--tp %d but %d rank(s) were started: the tensor-parallel size is "
                 "the number of ranks (start them with mpirun -np %d or srun -n %d)", a->tp,
                 A->world.size, a->tp, a->tp);
        return RD_ERR_INVALID_ARG;
    }
    RD_TRY(rd_shard_compute(A->cfg.n_heads, A->cfg.n_kv_heads, A->cfg.intermediate_size,
                            A->cfg.vocab_size, A->world.size, A->world.rank, &A->shard, err,
                            ERR_LEN));
    return RD_OK;
}

static int default_max_ctx(const struct rd_config *c)
{
    double n = c->max_position_embeddings;
    /* dynamic NTK exists to run past the trained length */
    if (c->rope.type == RD_ROPE_TYPE_DYNAMIC) n *= c->rope.factor;
    return n < 8192 ? (int)n : 8192;
}

/* --max-seq-len past the positions the model was trained for (its max_position_embeddings,
 * times the factor for dynamic NTK, the one rope type that stretches at run time) is allowed but
 * said once: output past that length is usually garbage. */
static void warn_past_trained_length(const struct rd_config *c, int max_seq_len)
{
    double trained = c->max_position_embeddings;
    if (c->rope.type == RD_ROPE_TYPE_DYNAMIC) trained *= c->rope.factor;
    if (max_seq_len > trained)
        RD_LOG_WARN("--max-seq-len %d is past the %.0f positions the model was trained for "
                    "(max_position_embeddings %d, rope_type %s): tokens beyond position %.0f are "
                    "likely to be garbage", max_seq_len, trained, c->max_position_embeddings,
                    rd_rope_type_name(c->rope.type), trained);
}

static rd_status make_backend(struct app *A, char *err)
{
    const struct rd_args *a = &A->args;
    int n_gpu = rd_backend_cuda_device_count();
    bool cuda = a->device == RD_DEVICE_CUDA || (a->device == RD_DEVICE_AUTO && n_gpu > 0);
    struct rd_backend_opts o = {.dtype = RD_DTYPE_F32, .device = -1};
    if (a->dtype >= 0) o.dtype = (enum rd_dtype)a->dtype;
    else if (A->cfg.dtype_given) o.dtype = A->cfg.dtype;
    else if (cuda) o.dtype = RD_DTYPE_BF16;
    if (!cuda) {
        if (o.dtype != RD_DTYPE_F32) {
            snprintf(err, ERR_LEN, "the cpu backend computes in fp32 only (asked for %s); use "
                     "--dtype fp32 or --device cuda", rd_dtype_name(o.dtype));
            return RD_ERR_UNSUPPORTED;
        }
        return rd_backend_cpu_create(&o, &A->be);
    }
    if (n_gpu == 0) {
        snprintf(err, ERR_LEN, "--device cuda: no CUDA device is visible%s",
#ifdef RD_WITH_CUDA
                 " (check CUDA_VISIBLE_DEVICES and the driver)"
#else
                 " (this ropedist was built without CUDA)"
#endif
        );
        return RD_ERR_UNSUPPORTED;
    }
    if (A->world.gpu_per_rank) {
        o.device = 0; /* the launcher gave this rank its own GPU(s) */
    } else if (A->world.local_size > n_gpu && !a->share_gpu) {
        snprintf(err, ERR_LEN, "%d ranks on host %s but only %d visible GPU(s) (CUDA_VISIBLE_DEVICES"
                 "=%s): run at most one rank per GPU (or --share-gpu, a test mode)",
                 A->world.local_size, A->world.host, n_gpu,
                 A->world.visible_devices[0] ? A->world.visible_devices : "unset");
        return RD_ERR_INVALID_ARG;
    } else {
        o.device = A->world.local_rank % n_gpu;
    }
    rd_status st = rd_backend_cuda_create(&o, &A->be);
    if (st != RD_OK)
        snprintf(err, ERR_LEN, "cannot open GPU %d on host %s: %s", o.device, A->world.host,
                 rd_status_str(st));
    else
        rd_log_set_rank(A->world.rank, A->world.size, o.device);
    return st;
}

static void find_tokenizer(struct app *A, char *path, size_t n)
{
    path[0] = 0;
    if (A->args.tokenizer) {
        snprintf(path, n, "%s", A->args.tokenizer);
    } else if (A->cfg.tokenizer_path[0]) {
        snprintf(path, n, "%s", A->cfg.tokenizer_path);
    } else {
        char dir[RD_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", A->args.config);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
        snprintf(path, n, "%s/tokenizer.json", dir);
        if (!file_exists(path)) path[0] = 0;
    }
}

/* ---- output (rank 0) ---- */

static void json_escape(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

static void print_ids(FILE *f, const int32_t *ids, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", ids[i]);
    fputc(']', f);
}

static void on_token(void *ctx, int32_t id)
{
    struct app *A = ctx;
    if (A->args.output != RD_OUTPUT_TEXT || !A->stream) return;
    const char *s;
    size_t n;
    if (rd_detok_stream_push(A->stream, id, &s, &n) == RD_OK && n) {
        fwrite(s, 1, n, stdout);
        fflush(stdout);
    }
}

static void print_result(struct app *A, int i, const struct rd_gen_result *r)
{
    const int32_t *pids = A->prompts.ids[i];
    const int plen = A->prompts.len[i];
    const int V = A->cfg.vocab_size;
    if (A->args.output == RD_OUTPUT_IDS) {
        for (int j = 0; j < r->n; j++) printf(j ? " %d" : "%d", r->ids[j]);
        printf("\n");
    } else if (A->args.output == RD_OUTPUT_TEXT) {
        const char *s;
        size_t n;
        if (A->stream && rd_detok_stream_flush(A->stream, &s, &n) == RD_OK && n) fwrite(s, 1, n, stdout);
        printf("\n");
    } else {
        printf("{\"prompt_ids\": ");
        print_ids(stdout, pids, plen);
        printf(", \"output_ids\": ");
        print_ids(stdout, r->ids, r->n);
        if (A->tok) {
            char *text = NULL;
            size_t n = 0;
            /* ids past the tokenizer's vocabulary (a model may have more rows) have no text */
            int32_t *known = malloc(((size_t)r->n + 1) * sizeof *known);
            int n_known = 0;
            for (int i = 0; known && i < r->n; i++)
                if (r->ids[i] < rd_tokenizer_vocab_size(A->tok)) known[n_known++] = r->ids[i];
            if (known && rd_tokenizer_decode_ex(A->tok, known, n_known, true, &text, &n) == RD_OK) {
                printf(", \"text\": ");
                json_escape(stdout, text, n);
            }
            free(known);
            free(text);
        }
        printf(", \"finish_reason\": \"%s\"", r->finish_reason);
        double decode_tps = r->n > 1 && r->decode_ms > 0 ? (r->n - 1) / (r->decode_ms / 1e3) : 0;
        printf(", \"timing\": {\"prefill_ms\": %.3f, \"decode_ms\": %.3f, \"prefill_tokens\": %d, "
               "\"decode_tokens_per_s\": %.2f, \"tp\": %d, \"device\": \"%s\", \"dtype\": \"%s\"}",
               r->prefill_ms, r->decode_ms, plen, decode_tps, A->world.size, A->be->ops->name,
               rd_dtype_name(A->be->dtype));
        if (A->args.with_logits && r->logits) {
            printf(", \"logits\": [");
            for (int s = 0; s < r->n; s++) {
                printf(s ? ", [" : "[");
                const float *l = r->logits + (size_t)s * V;
                for (int v = 0; v < V; v++) {
                    if (v) fputs(", ", stdout);
                    /* JSON has no NaN or Infinity */
                    if (isfinite(l[v])) printf("%.9g", l[v]);
                    else fputs("null", stdout);
                }
                printf("]");
            }
            printf("]");
        }
        printf("}\n");
    }
    fflush(stdout);
}

/* Results of a batched run arrive as prompts finish; they are printed in prompt order. */
struct in_order {
    struct app *A;
    int n, next;
    struct rd_gen_result *held; /* copies of results that came early */
    bool *ready;
};

static void print_in_order(void *ctx, int index, const struct rd_gen_result *res)
{
    struct in_order *o = ctx;
    if (index == o->next) {
        print_result(o->A, index, res);
        o->next++;
    } else {
        struct rd_gen_result *h = &o->held[index];
        *h = *res;
        h->ids = malloc(((size_t)res->n + 1) * sizeof(int32_t));
        if (h->ids && res->n > 0) memcpy(h->ids, res->ids, (size_t)res->n * sizeof(int32_t));
        h->logits = NULL;
        if (res->logits) {
            size_t bytes = (size_t)res->n * o->A->cfg.vocab_size * sizeof(float);
            h->logits = malloc(bytes ? bytes : 1);
            if (h->logits && bytes) memcpy(h->logits, res->logits, bytes);
        }
        o->ready[index] = true;
    }
    while (o->next < o->n && o->ready[o->next]) {
        print_result(o->A, o->next, &o->held[o->next]);
        rd_gen_result_free(&o->held[o->next]);
        o->ready[o->next++] = false;
    }
}

static void log_ownership(struct app *A)
{
    const struct rd_shard *s = &A->shard;
    const struct rd_model *m = &A->model;
    RD_LOG_INFO("host %s local rank %d/%d device %s: q heads [%d, %d) of %d, kv heads [%d, %d) of "
                "%d, ffn columns [%d, %d) of %d, vocab rows [%d, %d) of %d, weights %.2f MB held, "
                "%.2f MB read from %s; kv cache %.2f MB (%d entries per sequence)", A->world.host, A->world.local_rank, A->world.local_size,
                A->be->ops->name, s->h0, s->h0 + s->h_local, A->cfg.n_heads, s->kv0,
                s->kv0 + s->kv_local, A->cfg.n_kv_heads, s->f0, s->f0 + s->f_local,
                A->cfg.intermediate_size, s->v0, s->v0 + s->v_local, A->cfg.vocab_size,
                m->weight_bytes / 1e6, m->file_bytes / 1e6, A->cfg.checkpoint_path,
                m->kv_bytes / 1e6, m->lim.max_ctx);
}

/* The environment settings in effect, once, from rank 0 (unset ones show their default). */
static void log_settings(void)
{
    static const char *const k_names[] = {"RD_LOG_LEVEL", "RD_DEBUG_SYNC", "RD_WATCHDOG",
                                          "RD_NCCL_POLL", "RD_NCCL_TIMEOUT_S", "RD_ATTN_PATH",
                                          "RD_CUDA_GRAPHS"};
    static const char *const k_defaults[] = {"info", "0", "1", "1", "600", "auto", "0"};
    char line[512] = "settings:";
    for (size_t i = 0; i < sizeof k_names / sizeof *k_names; i++) {
        size_t l = strlen(line);
        snprintf(line + l, sizeof line - l, " %s=%s", k_names[i],
                 rd_env_str(k_names[i], k_defaults[i]));
    }
    RD_LOG_INFO("%s", line);
}

static void cleanup(struct app *A)
{
    rd_sampler_free(&A->sampler);
    rd_prompts_free(&A->prompts);
    rd_detok_stream_free(A->stream);
    rd_tokenizer_free(A->tok);
    if (A->model_ready) rd_model_free(&A->model);
    if (A->src.close) A->src.close(A->src.ctx);
    if (A->comm_ready) rd_comm_free(&A->comm);
    rd_backend_free(A->be);
}

int rd_app_main(int argc, char **argv)
{
    static struct app A; /* large; zero-initialised */
    char err[ERR_LEN] = "";
    if (rd_world_init(&argc, &argv, &A.world) != RD_OK) return 1;
    const int rank = A.world.rank;
    int code = 0;

    /* 1. flags and config: the same on every rank, so every rank decides alike */
    if (rd_cli_parse(argc, argv, &A.args, err, sizeof err) != RD_OK) {
        if (rank == 0) rd_log_user_error("%s", err);
        rd_world_finalize(&A.world);
        return 2;
    }
    if (A.args.help) {
        if (rank == 0) rd_cli_usage(stdout);
        rd_world_finalize(&A.world);
        return 0;
    }
    if (A.args.verbose) rd_log_set_all_ranks(true);
    if (rank == 0) log_settings();
    /* from here on a rank that dies is named by the others and ends the job */
    if (rd_watchdog_start(&A.world, &A.watchdog) != RD_OK)
        rd_world_abort(&A.world, 1, "cannot start the liveness watchdog");
    rd_status st = load_config(&A, err);
    if (!rd_world_agree(&A.world, st == RD_OK, err, "reading the config")) {
        code = 1;
        goto out;
    }

    /* 2. backend and communicator */
    st = make_backend(&A, err);
    if (!rd_world_agree(&A.world, st == RD_OK, err, "opening the device")) {
        code = 1;
        goto out;
    }
    st = rd_comm_init(&A.comm, &A.world, A.be, A.args.share_gpu);
    if (st != RD_OK) rd_world_abort(&A.world, 1, "cannot set up the communicator");
    A.comm_ready = true;
    char where[160] = "cpu";
    if (A.be->device >= 0)
        snprintf(where, sizeof where, "gpu %d (CUDA_VISIBLE_DEVICES=%s)", A.be->device,
                 rd_env_str("CUDA_VISIBLE_DEVICES", "unset"));
    rd_log_every_rank(__FILE__, __LINE__, "host %s, local rank %d/%d, device %s", A.world.host,
                      A.world.local_rank, A.world.local_size, where);

    /* 3. the rank's shard of the weights */
    if (ends_with(A.cfg.checkpoint_path, ".gguf")) {
        st = rd_weights_open_gguf(A.cfg.checkpoint_path, &A.src, err, sizeof err);
    } else {
        /* the stored config is not needed here: the config came from --config */
        st = rd_weights_open_h5(A.cfg.checkpoint_path, &A.src, NULL, err, sizeof err);
    }
    if (!rd_world_agree(&A.world, st == RD_OK, err, "opening the checkpoint")) {
        code = 1;
        goto out;
    }
    int max_ctx = A.args.max_seq_len ? A.args.max_seq_len : default_max_ctx(&A.cfg);
    if (rank == 0 && A.args.max_seq_len && !A.args.attention_window)
        warn_past_trained_length(&A.cfg, A.args.max_seq_len);
    /* with attention sinks the cache holds exactly the window, and prompts may be longer */
    int max_prompt = max_ctx;
    if (A.args.attention_window) {
        max_ctx = A.args.attention_window;
        max_prompt = 1 << 30;
    }
    struct rd_model_limits lim = {.max_tokens = A.args.max_batch_tokens, .max_seqs = 1,
                                  .max_ctx = max_ctx, .block_size = 16,
                                  .sink_tokens = A.args.sink_tokens,
                                  .window = A.args.attention_window};
    if (lim.max_tokens > max_ctx) lim.max_tokens = max_ctx;
    /* many prompts decode together when the output does not stream and one rope table per
     * call serves every sequence */
    const bool batchable = A.args.prompts_file && A.args.output_given &&
                           A.args.output != RD_OUTPUT_TEXT && !A.args.attention_window &&
                           !rd_rope_depends_on_len(&A.cfg);
    if (batchable) lim.max_seqs = A.args.batch ? A.args.batch : 8;
    else if (A.args.batch > 1 && rank == 0)
        RD_LOG_WARN("--batch %d ignored: batching needs --prompts with --output ids|json, and "
                    "runs neither dynamic/longrope rope nor attention sinks", A.args.batch);
    if (lim.max_tokens < lim.max_seqs) lim.max_tokens = lim.max_seqs;
    char lerr[ERR_LEN] = "";
    st = rd_model_init(&A.model, &A.cfg, &A.shard, &lim, A.be, &A.comm, &A.src, lerr, sizeof lerr);
    A.model_ready = true;
    if (st != RD_OK) {
        /* weight sources name the file themselves */
        if (lerr[0] && strstr(lerr, A.cfg.checkpoint_path))
            snprintf(err, sizeof err, "%s", lerr);
        else
            snprintf(err, sizeof err, "loading %s: %s", A.cfg.checkpoint_path,
                     lerr[0] ? lerr : rd_status_str(st));
    }
    if (!rd_world_agree(&A.world, st == RD_OK, err, "loading the weights")) {
        code = 1;
        goto out;
    }
    if (A.args.verbose) log_ownership(&A);

    /* 4. tokenizer and prompts on the coordinator */
    bool ok = true;
    if (rank == 0) {
        char tpath[RD_PATH_MAX];
        find_tokenizer(&A, tpath, sizeof tpath);
        if (tpath[0]) {
            char terr[512] = "";
            st = rd_tokenizer_load(tpath, &A.tok, terr, sizeof terr);
            if (st != RD_OK) {
                snprintf(err, sizeof err, "cannot load tokenizer %s: %s", tpath, terr);
                ok = false;
            } else if (rd_tokenizer_vocab_size(A.tok) > A.cfg.vocab_size) {
                snprintf(err, sizeof err, "tokenizer %s has %d tokens but the model's vocabulary "
                         "has %d", tpath, rd_tokenizer_vocab_size(A.tok), A.cfg.vocab_size);
                ok = false;
            }
        }
        if (ok && !A.args.output_given && !A.tok) A.args.output = RD_OUTPUT_IDS;
        if (ok && A.args.output == RD_OUTPUT_TEXT && !A.tok) {
            snprintf(err, sizeof err, "--output text needs a tokenizer (give --tokenizer FILE, or "
                     "use --output ids|json)");
            ok = false;
        }
        if (ok) ok = rd_prompts_read(&A.args, &A.cfg, A.tok, max_prompt, &A.prompts, err,
                                     sizeof err) == RD_OK;
        if (ok && A.tok && A.args.output == RD_OUTPUT_TEXT &&
            rd_detok_stream_new(A.tok, true, &A.stream) != RD_OK) {
            snprintf(err, sizeof err, "out of memory for the text stream");
            ok = false;
        }
        if (ok && rd_sampler_init(&A.sampler, A.cfg.vocab_size, A.args.temperature, A.args.top_k,
                                  A.args.top_p, A.args.seed) != RD_OK) {
            snprintf(err, sizeof err, "out of memory for the sampler (%d tokens)", A.cfg.vocab_size);
            ok = false;
        }
        if (!ok) rd_log_user_error("%s", err);
    }
    st = rd_prompts_bcast(&A.comm, ok, &A.prompts);
    if (st == RD_ERR_INVALID_ARG) { /* rank 0 failed and said so: every rank knows */
        code = 1;
        goto out;
    }
    /* anything else failed on this rank alone, while peers go on into collectives */
    if (st != RD_OK) {
        snprintf(err, sizeof err, "cannot receive the prompts on rank %d: %s", rank,
                 rd_status_str(st));
        rd_world_abort(&A.world, 1, err);
    }

    /* 5. generation, one prompt after another */
    struct rd_gen_opts go = {.max_new_tokens = A.args.max_new_tokens,
                             .ignore_eos = A.args.ignore_eos,
                             .keep_logits = A.args.with_logits,
                             .sink_tokens = A.args.sink_tokens,
                             .window = A.args.attention_window};
    if (A.model.lim.max_seqs > 1) {
        struct rd_sampling sp = {.temperature = A.args.temperature, .top_k = A.args.top_k,
                                 .top_p = A.args.top_p, .seed = A.args.seed};
        struct in_order ord = {.A = &A, .n = A.prompts.n};
        ord.held = calloc((size_t)A.prompts.n, sizeof *ord.held);
        ord.ready = calloc((size_t)A.prompts.n, sizeof *ord.ready);
        st = ord.held && ord.ready
                 ? rd_generate_many(&A.model, A.prompts.n, A.prompts.ids, A.prompts.len, &go, &sp,
                                    print_in_order, &ord)
                 : RD_ERR_OOM;
        for (int i = 0; i < A.prompts.n && ord.held; i++) rd_gen_result_free(&ord.held[i]);
        free(ord.held);
        free(ord.ready);
        if (st != RD_OK) {
            snprintf(err, sizeof err, "generation failed on rank %d: %s", rank, rd_status_str(st));
            rd_world_abort(&A.world, 1, err);
        }
        goto out;
    }
    for (int i = 0; i < A.prompts.n; i++) {
        struct rd_gen_result r;
        /* every prompt samples from the same seed, batched or not */
        if (rank == 0) rd_sampler_reseed(&A.sampler, A.args.seed);
        if (rank == 0 && A.stream) {
            /* the prompt goes through the same stream, so the decoder sees the whole sequence
             * (SentencePiece strips only the very first space) and the text reads on */
            for (int j = 0; j < A.prompts.len[i]; j++) on_token(&A, A.prompts.ids[i][j]);
        }
        st = rd_generate(&A.model, A.prompts.ids[i], A.prompts.len[i], &go, &A.sampler, on_token,
                         &A, &r);
        if (st != RD_OK) {
            snprintf(err, sizeof err, "generation failed on rank %d: %s", rank, rd_status_str(st));
            rd_world_abort(&A.world, 1, err);
        }
        if (rank == 0) print_result(&A, i, &r);
        rd_gen_result_free(&r);
    }
out:
    cleanup(&A);
    rd_watchdog_stop(A.watchdog);
    rd_world_finalize(&A.world);
    return code;
}
