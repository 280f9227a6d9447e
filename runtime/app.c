/* The `ropedist` program (see app.h).
 *
 * Failure discipline: errors every rank sees alike (flags, config, shard rules) end every rank
 * before the first collective. Errors that may differ per rank (opening the checkpoint, reading
 * a slice, allocating) are agreed on with one collective (rd_world_agree: rank 0 prints the
 * cause, its own or the first failing rank's) so all ranks exit together. A failure in the middle of generation,
 * when peers may already wait in a collective, ends the job with MPI_Abort. */
#include "runtime/app.h"
#include "runtime/app_impl.h"

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
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/gguf_model.h"
#include "runtime/model.h"
#include "runtime/prompts.h"
#include "runtime/sampler.h"
#include "runtime/serve.h"
#include "runtime/tokenizer.h"
#include "runtime/weights.h"

#define ERR_LEN 1024


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
        /* threads: --threads, else OMP_NUM_THREADS, else the node's cores shared by its ranks */
        o.threads = a->threads;
        if (o.threads > 0) snprintf(A->threads_why, sizeof A->threads_why, "--threads");
        else
            o.threads = rd_backend_cpu_default_threads(A->world.local_size, A->threads_why,
                                                       sizeof A->threads_why);
        rd_status st = rd_backend_cpu_create(&o, &A->be);
        if (st != RD_OK)
            snprintf(err, ERR_LEN, "cannot start the cpu backend on host %s: %s (see the error "
                     "above)", A->world.host, rd_status_str(st));
        return st;
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

/* serve without --kv-cache-gb: room for every slot's full context, at most 90% of the memory
 * the backend reports free once the weights are in (the smallest over the ranks). Collective. */
static rd_status size_pool(struct app *A, char *err)
{
    struct rd_model *m = &A->model;
    long long want = (long long)m->lim.max_seqs * m->max_blocks, all = 0;
    size_t free_b = 0, total_b = 0;
    if (A->be->ops->mem_info && A->be->ops->mem_info(A->be, &free_b, &total_b) == RD_OK) {
        double fits = 0.9 * ((double)free_b + (double)m->kv_bytes) / (double)m->kv_block_bytes;
        if (fits < (double)want) want = (long long)fits;
    }
    if (MPI_Allreduce(&want, &all, 1, MPI_LONG_LONG, MPI_MIN, A->world.comm) != MPI_SUCCESS)
        rd_world_abort(&A->world, 1, "MPI_Allreduce failed while sizing the KV cache");
    if (all < 1) {
        snprintf(err, ERR_LEN, "no %s memory left for the KV cache after the weights (%.1f MB "
                 "free): use more ranks, a smaller dtype, or --kv-cache-gb", A->be->ops->name,
                 free_b / 1e6);
        return RD_ERR_OOM;
    }
    if (all > 1000000000LL) all = 1000000000LL;
    if (all == m->n_blocks) return RD_OK;
    rd_status st = rd_model_resize_pool(m, (int)all);
    if (st != RD_OK)
        snprintf(err, ERR_LEN, "out of %s memory for a KV cache of %lld blocks (%.1f MB): give "
                 "--kv-cache-gb", A->be->ops->name, all, all * (double)m->kv_block_bytes / 1e6);
    return st;
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
                                          "RD_CUDA_GRAPHS", "OMP_NUM_THREADS",
                                          "OPENBLAS_CORETYPE", "RD_OPENBLAS_LIB"};
    static const char *const k_defaults[] = {"info", "0",     "1",     "0",    "600",
                                             "auto", "1",     "unset", "unset", "unset"};
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
    free(A->tokenizer_path);
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
    char where[768] = "cpu";
    if (A.be->device >= 0) {
        snprintf(where, sizeof where, "gpu %d (CUDA_VISIBLE_DEVICES=%s)", A.be->device,
                 rd_env_str("CUDA_VISIBLE_DEVICES", "unset"));
    } else {
        char desc[400];
        rd_backend_cpu_describe(A.be, desc, sizeof desc);
        snprintf(where, sizeof where, "cpu, %s; threads from %s", desc, A.threads_why);
        const int allowed = rd_backend_cpu_allowed_cpus();
        if (A.args.threads > allowed)
            RD_LOG_WARN("--threads %d but this rank may run on only %d CPU(s), so its threads "
                        "share them (the launcher bound the rank: mpirun --bind-to none, or "
                        "srun --cpus-per-task, gives it more)", A.args.threads, allowed);
    }
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
    /* --prompts and serve go through the paged engine (engine.h); several sequences at once
     * unless the output streams text or one rope table per call cannot serve them all */
    const bool one_rope = rd_rope_depends_on_len(&A.cfg);
    A.use_engine = A.args.serve || (A.args.prompts_file && !A.args.attention_window);
    const bool batchable = A.use_engine && !one_rope &&
                           (A.args.serve || (A.args.output_given && A.args.output != RD_OUTPUT_TEXT));
    if (batchable) lim.max_seqs = A.args.batch ? A.args.batch : A.args.serve ? 64 : 8;
    else if (A.args.batch > 1 && rank == 0)
        RD_LOG_WARN("--batch %d ignored: %s", A.args.batch,
                    one_rope ? "dynamic/longrope rope runs one sequence at a time"
                             : "batching needs --prompts with --output ids|json (attention sinks "
                               "run one at a time)");
    if (lim.max_tokens < lim.max_seqs) lim.max_tokens = lim.max_seqs;
    if (A.args.kv_cache_gb > 0) {
        uint64_t bb = rd_model_kv_block_bytes(&A.cfg, &A.shard, lim.block_size,
                                              A.be->dtype);
        double n = A.args.kv_cache_gb * 1e9 / (double)bb;
        if (n < 1) {
            if (rank == 0)
                rd_log_user_error("--kv-cache-gb %g holds no KV block (one block of %d tokens is "
                                  "%llu bytes per rank)", A.args.kv_cache_gb, lim.block_size,
                                  (unsigned long long)bb);
            code = 1;
            goto out;
        }
        lim.n_blocks = n > 1e9 ? 1000000000 : (int)n;
    } else if (A.args.serve) {
        lim.n_blocks = (max_ctx + lim.block_size - 1) / lim.block_size; /* sized after loading */
    }
    char lerr[ERR_LEN] = "";
    st = rd_model_init(&A.model, &A.cfg, &A.shard, &lim, A.be, &A.comm, &A.src, lerr, sizeof lerr);
    A.model_ready = true;
    if (st != RD_OK) {
        /* weight sources name the file themselves */
        if (lerr[0] && strstr(lerr, A.cfg.checkpoint_path))
            snprintf(err, sizeof err, "%s", lerr);
        else
            /* bounded so that both parts fit the message (a path can be PATH_MAX long) */
            snprintf(err, sizeof err, "loading %.400s: %.600s", A.cfg.checkpoint_path,
                     lerr[0] ? lerr : rd_status_str(st));
    }
    if (!rd_world_agree(&A.world, st == RD_OK, err, "loading the weights")) {
        code = 1;
        goto out;
    }
    if (A.args.serve && A.args.kv_cache_gb <= 0) {
        st = size_pool(&A, err);
        if (!rd_world_agree(&A.world, st == RD_OK, err, "sizing the KV cache")) {
            code = 1;
            goto out;
        }
    }
    if (A.args.verbose) log_ownership(&A);
    if (rank == 0 && A.use_engine)
        RD_LOG_INFO("KV cache: %d blocks of %d tokens (%.1f MB per rank) for up to %d sequences "
                    "of up to %d tokens, %d tokens per step", A.model.n_blocks,
                    A.model.lim.block_size, A.model.kv_bytes / 1e6, A.model.lim.max_seqs,
                    A.model.lim.max_ctx, A.model.lim.max_tokens);

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
        if (ok && A.args.serve) {
            A.tokenizer_path = strdup(tpath);
        } else {
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
        for (int i = 0; ok && A.use_engine && i < A.prompts.n; i++)
            if ((A.prompts.len[i] + A.model.lim.block_size - 1) / A.model.lim.block_size >
                A.model.n_blocks) {
                snprintf(err, sizeof err, "prompt %d has %d tokens but the KV cache holds %d "
                         "(--kv-cache-gb)", i + 1, A.prompts.len[i],
                         A.model.n_blocks * A.model.lim.block_size);
                ok = false;
            }
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

    /* 5. serving, or generation */
    if (A.args.serve) {
        struct rd_serve_setup ss = {.world = &A.world, .args = &A.args, .cfg = &A.cfg,
                                    .model = &A.model, .tok = A.tok,
                                    .tokenizer_path = A.tokenizer_path,
                                    .model_name = A.args.model_name};
        char name[256];
        if (!ss.model_name) {
            rd_app_model_name(A.args.config, name, sizeof name);
            ss.model_name = name;
        }
        code = rd_serve_run(&ss);
        goto out;
    }
    if (A.use_engine) {
        st = rd_app_run_engine(&A);
        if (st != RD_OK) {
            snprintf(err, sizeof err, "generation failed on rank %d: %s", rank, rd_status_str(st));
            rd_world_abort(&A.world, 1, err);
        }
        goto out;
    }
    struct rd_gen_opts go = {.max_new_tokens = A.args.max_new_tokens,
                             .ignore_eos = A.args.ignore_eos,
                             .keep_logits = A.args.with_logits,
                             .sink_tokens = A.args.sink_tokens,
                             .window = A.args.attention_window};
    for (int i = 0; i < A.prompts.n; i++) {
        struct rd_gen_result r;
        /* every prompt samples from the same seed, batched or not */
        if (rank == 0) rd_sampler_reseed(&A.sampler, A.args.seed);
        go.max_new_tokens = A.prompts.max_new[i] >= 0 ? A.prompts.max_new[i] : A.args.max_new_tokens;
        if (rank == 0 && A.stream) {
            /* the prompt goes through the same stream, so the decoder sees the whole sequence
             * (SentencePiece strips only the very first space) and the text reads on */
            for (int j = 0; j < A.prompts.len[i]; j++) rd_app_on_token(&A, A.prompts.ids[i][j]);
        }
        st = rd_generate(&A.model, A.prompts.ids[i], A.prompts.len[i], &go, &A.sampler,
                         rd_app_on_token, &A, &r);
        if (st != RD_OK) {
            snprintf(err, sizeof err, "generation failed on rank %d: %s", rank, rd_status_str(st));
            rd_world_abort(&A.world, 1, err);
        }
        if (rank == 0) rd_app_print_result(&A, i, &r);
        rd_gen_result_free(&r);
    }
out:
    cleanup(&A);
    rd_watchdog_stop(A.watchdog);
    rd_world_finalize(&A.world);
    return code;
}
