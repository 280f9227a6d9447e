/* Inside `ropedist serve` (serve.c: the main loop on rank 0 and the engine's callbacks;
 * serve_http.c: the HTTP side). A request lives in a struct rd_sreq that both sides hold: the
 * HTTP thread of its connection fills it and queues it in the inbox; the main thread submits it
 * to the engine and appends the tokens the engine reports; the HTTP thread turns them into text
 * and answers. The last side to let go frees it. */
#ifndef RD_SERVE_IMPL_H
#define RD_SERVE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/serve.h"
#include "runtime/serve_api.h"

struct rd_sreq {
    /* set by the HTTP thread before queueing, read-only afterwards */
    bool chat;
    int32_t *prompt; /* malloc'd */
    int n_prompt;
    struct rd_engine_params ep;
    /* engine -> HTTP, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rd_engine_token *toks; /* (n_toks) without logits */
    int n_toks, cap_toks;
    bool finished;
    enum rd_finish why;
    const char *error;            /* set instead of tokens when the engine refused it */
    int error_status;
    /* HTTP -> main */
    atomic_bool cancel;
    /* main thread only */
    int64_t engine_id;
    bool cancel_sent;
    struct rd_sreq *next_live, *next_inbox;
    int refs;                     /* under mu */
};

struct rd_histogram {
    int n;                        /* buckets (upper bounds), +Inf implied */
    const double *le;
    uint64_t count[16];
    uint64_t total;
    double sum;
};

struct rd_serve {
    const struct rd_serve_setup *setup;
    struct rd_engine *engine;
    struct rd_chat_template chat;
    char chat_why[512];           /* why chat is unavailable ("" when it is) */
    void *daemon;                 /* struct MHD_Daemon * */
    int port;
    int max_ctx, pool_tokens, block_size;
    /* inbox: HTTP threads -> main thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rd_sreq *inbox_head, *inbox_tail;
    atomic_bool draining;
    atomic_llong next_id;
    /* metrics, under mx */
    pthread_mutex_t mx;
    uint64_t http_by_code[6];     /* 2xx..5xx by the first digit; [0] other */
    uint64_t http_401, http_400, http_404, http_413, http_503;
    uint64_t req_completions, req_chat;
    uint64_t finished_by[4];      /* stop, length, cancelled, error */
    uint64_t prompt_tokens, generation_tokens;
    struct rd_engine_stats es;
    struct rd_histogram step_s, ttft_s;
};

/* serve_http.c */
rd_status rd_serve_http_start(struct rd_serve *sv, char *why, int why_len);
void rd_serve_http_quiesce(struct rd_serve *sv);
void rd_serve_http_stop(struct rd_serve *sv);

/* serve.c, called from HTTP threads */
void rd_serve_enqueue(struct rd_serve *sv, struct rd_sreq *q);
void rd_sreq_unref(struct rd_sreq *q);
void rd_serve_count_http(struct rd_serve *sv, int status);
char *rd_serve_metrics_text(struct rd_serve *sv);
/* The prompt ids of a parsed request (tokenized, or rendered with the chat template first) into
 * *ids (malloc'd); NULL, or the message of a 400 (msg may hold it). */
const char *rd_serve_prompt_ids(struct rd_serve *sv, struct rd_api_req *r, int32_t **ids, int *n,
                                char *msg, size_t msg_len);

#endif
