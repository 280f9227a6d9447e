/* `ropedist serve` (see serve.h): every rank runs the engine's steps; rank 0 also runs the HTTP
 * server (serve_http.c) and, on its main thread, the loop that moves requests from the inbox
 * into the engine, steps it, and hands the tokens back to the requests' threads.
 *
 * Shutdown: SIGTERM or SIGINT on any rank asks rank 0 to drain (parallel/watchdog.h): it stops
 * accepting connections, answers new requests on open ones with 503, lets the running and
 * waiting requests finish for --drain-timeout seconds, cancels what is left, tells every rank
 * to stop, and all exit 0. A second signal ends a rank at once. A lost rank ends the server
 * through the watchdog as it ends the CLI. */
#include "runtime/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "parallel/watchdog.h"
#include "runtime/generate.h"
#include "runtime/serve_impl.h"
#include "runtime/tokenizer.h"

static const double k_step_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double k_ttft_le[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static atomic_int g_drain_signal;

static void observe(struct rd_histogram *h, double v)
{
    for (int i = 0; i < h->n; i++)
        if (v <= h->le[i]) h->count[i]++;
    h->total++;
    h->sum += v;
}

/* ---- requests ---- */

void rd_sreq_unref(struct rd_sreq *q)
{
    pthread_mutex_lock(&q->mu);
    int left = --q->refs;
    pthread_mutex_unlock(&q->mu);
    if (left) return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->prompt);
    free(q->toks);
    free(q);
}

void rd_serve_enqueue(struct rd_serve *sv, struct rd_sreq *q)
{
    pthread_mutex_lock(&sv->mu);
    q->next_inbox = NULL;
    if (sv->inbox_tail) sv->inbox_tail->next_inbox = q;
    else sv->inbox_head = q;
    sv->inbox_tail = q;
    pthread_cond_signal(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
}

/* ends a request that never reached the engine */
static void fail(struct rd_sreq *q, int status, const char *msg)
{
    pthread_mutex_lock(&q->mu);
    q->error = msg;
    q->error_status = status;
    q->finished = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    rd_sreq_unref(q);
}

struct loop {
    struct rd_serve *sv;
    struct rd_sreq *live; /* submitted to the engine */
};

static void on_token(void *user, const struct rd_engine_token *t)
{
    struct rd_sreq *q = user;
    pthread_mutex_lock(&q->mu);
    if (q->n_toks == q->cap_toks) {
        int cap = q->cap_toks ? q->cap_toks * 2 : 64;
        struct rd_engine_token *nt = realloc(q->toks, (size_t)cap * sizeof *nt);
        if (nt) {
            q->toks = nt;
            q->cap_toks = cap;
        }
    }
    if (q->n_toks < q->cap_toks) {
        q->toks[q->n_toks] = *t;
        q->toks[q->n_toks++].logits = NULL;
    } else {
        q->cancel = true; /* out of memory: end it rather than lose tokens */
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static struct loop *g_loop; /* the callbacks' way back to the live list (main thread only) */

static void on_finish(void *user, const struct rd_engine_done *d)
{
    struct rd_sreq *q = user;
    struct rd_serve *sv = g_loop->sv;
    for (struct rd_sreq **pp = &g_loop->live; *pp; pp = &(*pp)->next_live)
        if (*pp == q) {
            *pp = q->next_live;
            break;
        }
    pthread_mutex_lock(&sv->mx);
    sv->generation_tokens += (uint64_t)d->n;
    if (d->n > 0) observe(&sv->ttft_s, (d->queue_ms + d->prefill_ms) / 1e3);
    pthread_mutex_unlock(&sv->mx);
    pthread_mutex_lock(&q->mu);
    q->finished = true;
    q->why = d->why;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    rd_sreq_unref(q);
}

/* moves the inbox into the engine and passes cancellations on */
static void take_inbox(struct loop *L)
{
    struct rd_serve *sv = L->sv;
    pthread_mutex_lock(&sv->mu);
    struct rd_sreq *q = sv->inbox_head;
    sv->inbox_head = sv->inbox_tail = NULL;
    pthread_mutex_unlock(&sv->mu);
    while (q) {
        struct rd_sreq *next = q->next_inbox;
        char why[256];
        if (atomic_load(&sv->draining)) {
            fail(q, 503, "the server is shutting down");
        } else if (rd_engine_submit(sv->engine, q->prompt, q->n_prompt, &q->ep, q, &q->engine_id,
                                    why, sizeof why) != RD_OK) {
            fail(q, 400, "the request does not fit the KV cache");
        } else {
            pthread_mutex_lock(&sv->mx);
            sv->prompt_tokens += (uint64_t)q->n_prompt;
            pthread_mutex_unlock(&sv->mx);
            q->next_live = L->live;
            L->live = q;
        }
        q = next;
    }
    for (q = L->live; q; q = q->next_live)
        if (!q->cancel_sent && atomic_load(&q->cancel)) {
            rd_engine_cancel(sv->engine, q->engine_id);
            q->cancel_sent = true;
        }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* rank 0's loop; returns when drained */
static void main_loop(struct rd_serve *sv, bool verbose, int drain_timeout_s)
{
    struct loop L = {.sv = sv};
    g_loop = &L;
    double deadline = 0, last_log = now_s();
    for (;;) {
        int sig = atomic_load(&g_drain_signal);
        if (sig && !atomic_load(&sv->draining)) {
            atomic_store(&sv->draining, true);
            rd_serve_http_quiesce(sv);
            deadline = now_s() + drain_timeout_s;
            struct rd_engine_stats es;
            rd_engine_stats(sv->engine, &es);
            RD_LOG_INFO("signal %d: draining (%d running, %d waiting; at most %d s; a second "
                        "signal ends at once)", sig, es.running, es.waiting, drain_timeout_s);
        }
        take_inbox(&L);
        if (atomic_load(&sv->draining)) {
            if (!rd_engine_busy(sv->engine)) break;
            if (now_s() > deadline) {
                RD_LOG_WARN("drain timeout: cancelling the requests still running");
                for (struct rd_sreq *q = L.live; q; q = q->next_live) atomic_store(&q->cancel, true);
                deadline = 1e300;
                continue;
            }
        }
        if (!rd_engine_busy(sv->engine)) {
            pthread_mutex_lock(&sv->mu);
            if (!sv->inbox_head) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 50 * 1000000L;
                if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&sv->cv, &sv->mu, &until);
            }
            pthread_mutex_unlock(&sv->mu);
            continue;
        }
        rd_status st = rd_engine_step(sv->engine, NULL);
        if (st != RD_OK) {
            char msg[160];
            snprintf(msg, sizeof msg, "serving step failed on rank 0: %s", rd_status_str(st));
            rd_world_abort(sv->setup->world, 1, msg);
        }
        struct rd_engine_stats es;
        rd_engine_stats(sv->engine, &es);
        pthread_mutex_lock(&sv->mx);
        bool stepped = es.steps != sv->es.steps;
        sv->es = es;
        if (stepped) observe(&sv->step_s, es.last_step_ms / 1e3);
        pthread_mutex_unlock(&sv->mx);
        if (verbose && now_s() - last_log > 5) {
            last_log = now_s();
            RD_LOG_INFO("running %d, waiting %d; KV blocks %d used, %d free; %lld preemptions",
                        es.running, es.waiting, es.blocks_used, es.blocks_free,
                        (long long)es.preemptions);
        }
    }
    g_loop = NULL;
}

/* ---- prompts ---- */

const char *rd_serve_prompt_ids(struct rd_serve *sv, struct rd_api_req *r, int32_t **ids, int *n,
                                char *msg, size_t msg_len)
{
    const struct rd_serve_setup *s = sv->setup;
    *ids = NULL;
    *n = 0;
    if (r->chat) {
        if (sv->chat.style == RD_CHAT_UNKNOWN) {
            snprintf(msg, msg_len, "chat completions are unavailable: the model's chat template "
                     "is not one ropedist renders (%.300s); use /v1/completions", sv->chat_why);
            return msg;
        }
        if (!s->tok) return "chat completions need a tokenizer";
        char *text = NULL, why[256];
        if (rd_chat_render(&sv->chat, r->msgs, r->n_msgs, true, &text, why, sizeof why) != RD_OK) {
            snprintf(msg, msg_len, "the chat template refuses the conversation: %s", why);
            return msg;
        }
        rd_status st = rd_tokenizer_encode(s->tok, text, strlen(text), false, ids, n);
        free(text);
        if (st != RD_OK) return "the messages are not valid UTF-8";
    } else if (r->prompt_text) {
        if (!s->tok) return "text prompts need a tokenizer; give token ids";
        if (!r->prompt_len) { /* "" means BOS only, as on the command line */
            int32_t bos = rd_tokenizer_bos(s->tok);
            if (bos < 0) bos = s->cfg->bos_token_id;
            if (bos < 0) return "an empty prompt means BOS only, but the model has no BOS token";
            if (!(*ids = malloc(sizeof(int32_t)))) return "out of memory";
            (*ids)[0] = bos;
            *n = 1;
        } else if (rd_tokenizer_encode(s->tok, r->prompt_text, r->prompt_len, true, ids, n) !=
                   RD_OK) {
            return "the prompt is not valid UTF-8";
        }
    } else {
        *ids = r->prompt_ids;
        *n = r->n_prompt_ids;
        r->prompt_ids = NULL;
        for (int i = 0; i < *n; i++)
            if ((*ids)[i] >= s->cfg->vocab_size) {
                snprintf(msg, msg_len, "prompt token id %d is out of range: the vocabulary has %d "
                         "tokens", (*ids)[i], s->cfg->vocab_size);
                return msg;
            }
    }
    if (*n < 1) return "the prompt is empty";
    if (*n > sv->max_ctx) {
        snprintf(msg, msg_len, "This model's maximum context length is %d tokens. However, your "
                 "prompt has %d tokens.", sv->max_ctx, *n);
        return msg;
    }
    if (*n > sv->pool_tokens) {
        snprintf(msg, msg_len, "the prompt has %d tokens but the KV cache holds %d", *n,
                 sv->pool_tokens);
        return msg;
    }
    return NULL;
}

/* ---- metrics ---- */

void rd_serve_count_http(struct rd_serve *sv, int status)
{
    pthread_mutex_lock(&sv->mx);
    int d = status / 100;
    sv->http_by_code[d >= 2 && d <= 5 ? d : 0]++;
    pthread_mutex_unlock(&sv->mx);
}

static void put_hist(char **p, size_t *left, const char *name, const char *help,
                     const struct rd_histogram *h)
{
    int k = snprintf(*p, *left, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    *p += k, *left -= (size_t)k;
    for (int i = 0; i < h->n; i++) {
        k = snprintf(*p, *left, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i],
                     (unsigned long long)h->count[i]);
        *p += k, *left -= (size_t)k;
    }
    k = snprintf(*p, *left, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                 (unsigned long long)h->total, name, h->sum, name, (unsigned long long)h->total);
    *p += k, *left -= (size_t)k;
}

char *rd_serve_metrics_text(struct rd_serve *sv)
{
    const size_t cap = 8192;
    char *out = malloc(cap), *p = out;
    if (!out) return NULL;
    size_t left = cap;
    pthread_mutex_lock(&sv->mx);
    const struct rd_engine_stats *es = &sv->es;
    int k = snprintf(p, left,
        "# HELP ropedist_requests_total Completion requests received, by endpoint.\n"
        "# TYPE ropedist_requests_total counter\n"
        "ropedist_requests_total{endpoint=\"completions\"} %llu\n"
        "ropedist_requests_total{endpoint=\"chat_completions\"} %llu\n"
        "# HELP ropedist_http_responses_total HTTP responses, by status class.\n"
        "# TYPE ropedist_http_responses_total counter\n"
        "ropedist_http_responses_total{code=\"2xx\"} %llu\n"
        "ropedist_http_responses_total{code=\"4xx\"} %llu\n"
        "ropedist_http_responses_total{code=\"5xx\"} %llu\n"
        "# HELP ropedist_prompt_tokens_total Prompt tokens of the requests admitted.\n"
        "# TYPE ropedist_prompt_tokens_total counter\n"
        "ropedist_prompt_tokens_total %llu\n"
        "# HELP ropedist_generation_tokens_total Tokens generated.\n"
        "# TYPE ropedist_generation_tokens_total counter\n"
        "ropedist_generation_tokens_total %llu\n"
        "# HELP ropedist_requests_running Sequences in the running batch.\n"
        "# TYPE ropedist_requests_running gauge\n"
        "ropedist_requests_running %d\n"
        "# HELP ropedist_requests_waiting Sequences waiting for a slot or KV blocks.\n"
        "# TYPE ropedist_requests_waiting gauge\n"
        "ropedist_requests_waiting %d\n"
        "# HELP ropedist_kv_blocks_used KV cache blocks held by sequences (per rank).\n"
        "# TYPE ropedist_kv_blocks_used gauge\n"
        "ropedist_kv_blocks_used %d\n"
        "# HELP ropedist_kv_blocks_free KV cache blocks free (per rank).\n"
        "# TYPE ropedist_kv_blocks_free gauge\n"
        "ropedist_kv_blocks_free %d\n"
        "# HELP ropedist_kv_block_size_tokens Tokens per KV cache block.\n"
        "# TYPE ropedist_kv_block_size_tokens gauge\n"
        "ropedist_kv_block_size_tokens %d\n"
        "# HELP ropedist_preemptions_total Sequences preempted (blocks freed, recomputed later).\n"
        "# TYPE ropedist_preemptions_total counter\n"
        "ropedist_preemptions_total %lld\n"
        "# HELP ropedist_steps_total Engine steps run.\n"
        "# TYPE ropedist_steps_total counter\n"
        "ropedist_steps_total %lld\n",
        (unsigned long long)sv->req_completions, (unsigned long long)sv->req_chat,
        (unsigned long long)sv->http_by_code[2], (unsigned long long)sv->http_by_code[4],
        (unsigned long long)sv->http_by_code[5], (unsigned long long)sv->prompt_tokens,
        (unsigned long long)sv->generation_tokens, es->running, es->waiting, es->blocks_used,
        es->blocks_free, sv->block_size, (long long)es->preemptions, (long long)es->steps);
    p += k, left -= (size_t)k;
    put_hist(&p, &left, "ropedist_step_seconds", "Wall time of one engine step.", &sv->step_s);
    put_hist(&p, &left, "ropedist_time_to_first_token_seconds",
             "Arrival to the first generated token.", &sv->ttft_s);
    pthread_mutex_unlock(&sv->mx);
    return out;
}

/* ---- start-up ---- */

/* tokenizer_config.json beside the tokenizer, else beside the config */
static void load_chat_template(struct rd_serve *sv)
{
    const struct rd_serve_setup *s = sv->setup;
    const char *bases[2] = {s->tokenizer_path, s->args->config};
    char path[4096], why[200] = "no tokenizer_config.json beside the tokenizer or the config";
    for (int i = 0; i < 2; i++) {
        if (!bases[i] || !*bases[i]) continue;
        snprintf(path, sizeof path, "%s", bases[i]);
        char *slash = strrchr(path, '/');
        if (slash) snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "tokenizer_config.json");
        else snprintf(path, sizeof path, "tokenizer_config.json");
        FILE *f = fopen(path, "r");
        if (!f) continue;
        fclose(f);
        if (rd_chat_template_load(path, &sv->chat, why, sizeof why) == RD_OK) {
            RD_LOG_INFO("chat template: %s (%s)", rd_chat_style_name(sv->chat.style), path);
            return;
        }
        snprintf(sv->chat_why, sizeof sv->chat_why, "%.300s: %.200s", path, why);
        RD_LOG_WARN("chat completions unavailable: %s (completions still work)", sv->chat_why);
        return;
    }
    snprintf(sv->chat_why, sizeof sv->chat_why, "%s", why);
    RD_LOG_WARN("chat completions unavailable: %s (completions still work)", sv->chat_why);
}

int rd_serve_run(const struct rd_serve_setup *s)
{
    const int rank = s->world->rank;
    static struct rd_serve sv; /* the HTTP threads reach it through the daemon's closure */
    memset(&sv, 0, sizeof sv);
    sv.setup = s;
    sv.max_ctx = s->model->lim.max_ctx;
    sv.block_size = s->model->lim.block_size;
    sv.pool_tokens = s->model->n_blocks * s->model->lim.block_size;
    sv.step_s = (struct rd_histogram){.n = 13, .le = k_step_le};
    sv.ttft_s = (struct rd_histogram){.n = 12, .le = k_ttft_le};
    pthread_mutex_init(&sv.mu, NULL);
    pthread_cond_init(&sv.cv, NULL);
    pthread_mutex_init(&sv.mx, NULL);
    struct rd_engine_cb cb = {.on_token = on_token, .on_finish = on_finish};
    rd_status st = rd_engine_init(&sv.engine, s->model, &cb);
    char why[512] = "";
    if (st != RD_OK) snprintf(why, sizeof why, "cannot start the engine: %s", rd_status_str(st));
    if (st == RD_OK && rank == 0) {
        if (!s->tok)
            RD_LOG_WARN("no tokenizer: only token-id prompts are served (chat needs a tokenizer)");
        load_chat_template(&sv);
        st = rd_serve_http_start(&sv, why, sizeof why);
    }
    /* every rank learns whether rank 0 is listening before the first step */
    int ok = st == RD_OK, all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, s->world->comm) != MPI_SUCCESS)
        rd_world_abort(s->world, 1, "MPI_Allreduce failed at server start");
    if (!all) {
        if (!ok) rd_log_user_error("%s", why);
        rd_engine_free(sv.engine);
        rd_chat_template_free(&sv.chat);
        return 1;
    }
    rd_watchdog_drain_on_signal(&g_drain_signal);
    if (rank == 0) {
        RD_LOG_INFO("serving %s on http://%s:%d/v1 (%d rank(s); %s)", s->model_name, s->args->host,
                    sv.port, s->world->size,
                    s->args->api_key ? "API key required" : "no API key");
        main_loop(&sv, s->args->verbose, s->args->drain_timeout_s);
        st = rd_engine_stop(sv.engine);
        rd_serve_http_stop(&sv);
        RD_LOG_INFO("drained; every rank ends");
    } else {
        bool stopped = false;
        while (!stopped && (st = rd_engine_step(sv.engine, &stopped)) == RD_OK) {
        }
        if (st != RD_OK) {
            char msg[160];
            snprintf(msg, sizeof msg, "serving step failed on rank %d: %s", rank, rd_status_str(st));
            rd_world_abort(s->world, 1, msg);
        }
    }
    rd_engine_free(sv.engine);
    rd_chat_template_free(&sv.chat);
    return st == RD_OK ? 0 : 1;
}
