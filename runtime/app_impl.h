/* Inside the `ropedist` program (app.c, app_output.c): the state one run holds, and the
 * output and generation helpers that app.c calls once everything is loaded. */
#ifndef RD_APP_IMPL_H
#define RD_APP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "parallel/bootstrap.h"
#include "parallel/comm.h"
#include "parallel/shard.h"
#include "parallel/watchdog.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/prompts.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/weights.h"

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
    bool use_engine; /* --prompts and serve: the paged engine */
    char *tokenizer_path; /* rank 0: the tokenizer file found (serve), malloc'd */
    struct rd_tokenizer *tok;
    struct rd_detok_stream *stream;
    struct rd_prompts prompts;
    struct rd_sampler sampler;
    struct rd_watchdog *watchdog;
    char threads_why[160]; /* cpu: what decided the thread count */
};

/* Rank 0: streams a token of --output text. */
void rd_app_on_token(void *ctx, int32_t id);
/* Rank 0: prints prompt i's result in the chosen output format. */
void rd_app_print_result(struct app *A, int i, const struct rd_gen_result *r);
/* Collective: every prompt through the paged engine (engine.h), results printed in prompt
 * order as they finish. */
rd_status rd_app_run_engine(struct app *A);
/* The model's name for serve: the config's folder (config.json) or file name (.gguf, .h5). */
void rd_app_model_name(const char *config, char *out, size_t n);

#endif
