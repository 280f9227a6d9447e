/* `ropedist serve`: an OpenAI-compatible HTTP server on rank 0 in front of the paged engine
 * (engine.h) that every rank runs. See serve.c. */
#ifndef RD_SERVE_H
#define RD_SERVE_H

#include "parallel/bootstrap.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/model.h"

struct rd_tokenizer;

struct rd_serve_setup {
    const struct rd_world *world;
    const struct rd_args *args;
    const struct rd_config *cfg;
    struct rd_model *model;
    const struct rd_tokenizer *tok; /* rank 0; NULL: only token-id prompts are served */
    const char *tokenizer_path;     /* rank 0: where tokenizer_config.json is looked for */
    const char *model_name;
};

/* Collective. Serves until SIGTERM/SIGINT (drained) or a fatal error; returns the exit code. */
int rd_serve_run(const struct rd_serve_setup *s);

#endif
