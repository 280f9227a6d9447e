/* The HTTP side of `ropedist serve`, on libmicrohttpd with one thread per connection: routing,
 * the API key, body limits, turning a request into prompt ids (tokenizer, chat template), and
 * turning the engine's tokens back into text, with stop strings, as one JSON response or as
 * server-sent events. A thread blocks while its request runs and checks every 100 ms whether
 * its client is still there; a client that went away cancels its sequence, which the engine
 * drops at its next step. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "common/log.h"
#include "runtime/serve_impl.h"
#include "runtime/tokenizer.h"

enum route { R_NONE, R_COMPLETIONS, R_CHAT };

/* what a request's text looks like so far */
struct text {
    struct rd_detok_stream *ds;
    char *s;
    size_t n, cap;
    size_t emitted;   /* bytes sent (stream) */
    int used;         /* tokens consumed */
    size_t max_stop;  /* longest stop string */
    bool stopped;
    struct rd_api_logprob *lp; /* logprobs of tokens not yet reported */
    int n_lp, cap_lp;
};

struct conn {
    struct rd_serve *sv;
    struct MHD_Connection *c;
    enum route route;
    char *body;
    size_t n, cap;
    bool too_large;
    struct rd_sreq *q;
    struct rd_api_req req;
    char id[48];
    long long created;
    struct text t;
    int seen;          /* tokens of q taken */
    int took;          /* tokens taken by the last pull */
    bool first_chunk, over;
    char *pending;     /* SSE bytes not yet handed to MHD */
    size_t pend_n, pend_off;
};

/* ---- responses ---- */

static enum MHD_Result reply(struct conn *cn, struct MHD_Connection *c, int status,
                             const char *type, char *body)
{
    if (!body) {
        status = 500;
        body = rd_api_error("out of memory", "server_error", NULL, NULL);
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (cn) rd_serve_count_http(cn->sv, status);
    return ok;
}

static enum MHD_Result reply_error(struct conn *cn, struct MHD_Connection *c, int status,
                                   const char *msg, const char *param)
{
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 401   ? "invalid_api_key"
                       : status == 413 ? "request_too_large"
                       : status == 404 ? "not_found"
                                       : NULL;
    return reply(cn, c, status, "application/json", rd_api_error(msg, type, param, code));
}

/* ---- text ---- */

static void text_free(struct text *t)
{
    rd_detok_stream_free(t->ds);
    free(t->s);
    for (int i = 0; i < t->n_lp; i++) {
        free((char *)t->lp[i].text);
        for (int j = 0; j < t->lp[i].n_top; j++) free((char *)t->lp[i].top_text[j]);
    }
    free(t->lp);
    memset(t, 0, sizeof *t);
}

static bool append(struct text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->n + n + 1) cap *= 2;
        char *ns = realloc(t->s, cap);
        if (!ns) return false;
        t->s = ns;
        t->cap = cap;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
    return true;
}

/* cuts the text at the first stop string that starts at or after `from` */
static void check_stops(struct conn *cn, size_t from)
{
    struct text *t = &cn->t;
    for (int i = 0; i < cn->req.n_stop; i++) {
        const char *hit = memmem(t->s + from, t->n - from, cn->req.stop[i], strlen(cn->req.stop[i]));
        if (hit && (size_t)(hit - t->s) < t->n) {
            t->n = (size_t)(hit - t->s);
            t->s[t->n] = 0;
            t->stopped = true;
        }
    }
}

static char *token_text(const struct rd_tokenizer *tok, int32_t id)
{
    char *s = NULL;
    if (!tok || rd_tokenizer_decode_ex(tok, &id, 1, false, &s, NULL) != RD_OK) {
        s = malloc(24);
        if (s) snprintf(s, 24, "<%d>", id);
    }
    return s;
}

/* takes one generated token into the text; false when out of memory */
static bool take_token(struct conn *cn, const struct rd_engine_token *tk)
{
    struct text *t = &cn->t;
    const struct rd_tokenizer *tok = cn->sv->setup->tok;
    if (t->stopped) return true;
    t->used++;
    const size_t before = t->n;
    if (tok && tk->id < rd_tokenizer_vocab_size(tok)) {
        const char *s;
        size_t n;
        if (rd_detok_stream_push(t->ds, tk->id, &s, &n) == RD_OK && n && !append(t, s, n))
            return false;
    }
    if (cn->req.logprobs >= 0) {
        if (t->n_lp == t->cap_lp) {
            int cap = t->cap_lp ? t->cap_lp * 2 : 16;
            struct rd_api_logprob *nl = realloc(t->lp, (size_t)cap * sizeof *nl);
            if (!nl) return false;
            t->lp = nl;
            t->cap_lp = cap;
        }
        struct rd_api_logprob *l = &t->lp[t->n_lp++];
        memset(l, 0, sizeof *l);
        l->text = token_text(tok, tk->id);
        l->logprob = tk->logprob;
        l->n_top = tk->n_top;
        for (int j = 0; j < tk->n_top; j++) {
            l->top_text[j] = token_text(tok, tk->top_ids[j]);
            l->top_logprob[j] = tk->top_logprobs[j];
        }
    }
    if (cn->req.n_stop) check_stops(cn, before >= t->max_stop ? before - t->max_stop + 1 : 0);
    return true;
}

/* the end of the sequence: what the stream held back */
static void take_end(struct conn *cn)
{
    struct text *t = &cn->t;
    const char *s;
    size_t n;
    if (t->stopped || !t->ds) return;
    const size_t before = t->n;
    if (rd_detok_stream_flush(t->ds, &s, &n) == RD_OK && n) append(t, s, n);
    if (cn->req.n_stop) check_stops(cn, before >= t->max_stop ? before - t->max_stop + 1 : 0);
}

/* ---- waiting for tokens ---- */

static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Takes the tokens that came since the last call (blocking until some come or the sequence
 * ends). Returns false when the client went away (the sequence is then cancelled). */
static bool pull(struct conn *cn, bool *finished)
{
    struct rd_sreq *q = cn->q;
    enum { BATCH = 64 };
    struct rd_engine_token got[BATCH];
    int n = 0;
    pthread_mutex_lock(&q->mu);
    while (q->n_toks == cn->seen && !q->finished) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        if (pthread_cond_timedwait(&q->cv, &q->mu, &until) == ETIMEDOUT && client_gone(cn->c)) {
            pthread_mutex_unlock(&q->mu);
            atomic_store(&q->cancel, true);
            return false;
        }
    }
    while (cn->seen < q->n_toks && n < BATCH) got[n++] = q->toks[cn->seen++];
    *finished = q->finished && cn->seen == q->n_toks;
    pthread_mutex_unlock(&q->mu);
    cn->took = n;
    for (int i = 0; i < n; i++)
        if (!take_token(cn, &got[i])) {
            atomic_store(&q->cancel, true);
            *finished = true;
            cn->t.stopped = true;
        }
    if (cn->t.stopped) atomic_store(&q->cancel, true); /* a stop string ends the sequence */
    if (*finished) take_end(cn);
    return true;
}

static const char *finish_reason(const struct conn *cn)
{
    if (cn->t.stopped || cn->q->why == RD_FINISH_EOS) return "stop";
    return "length";
}

static json_t *take_logprobs(struct conn *cn, size_t offset0)
{
    if (cn->req.logprobs < 0) return NULL;
    json_t *j = rd_api_logprobs_json(cn->req.chat, cn->t.lp, cn->t.n_lp, offset0);
    struct text *t = &cn->t;
    for (int i = 0; i < t->n_lp; i++) {
        free((char *)t->lp[i].text);
        for (int k = 0; k < t->lp[i].n_top; k++) free((char *)t->lp[i].top_text[k]);
    }
    t->n_lp = 0;
    return j;
}

static enum MHD_Result answer_whole(struct conn *cn, struct MHD_Connection *c)
{
    bool finished = false;
    while (!finished)
        if (!pull(cn, &finished)) return MHD_NO; /* the client left: close */
    struct rd_sreq *q = cn->q;
    if (q->error) return reply_error(cn, c, q->error_status, q->error, NULL);
    if (q->why == RD_FINISH_CANCELLED && !cn->t.stopped)
        return reply_error(cn, c, 503, "the server is shutting down", NULL);
    const struct rd_serve_setup *s = cn->sv->setup;
    json_t *lp = take_logprobs(cn, 0);
    return reply(cn, c, 200, "application/json",
                 rd_api_response(cn->req.chat, cn->id, cn->created, s->model_name, cn->t.s ? cn->t.s : "",
                                 cn->t.n, finish_reason(cn), lp, q->n_prompt, cn->t.used));
}

/* fills cn->pending with the next events of a stream */
static bool produce(struct conn *cn)
{
    const struct rd_serve_setup *s = cn->sv->setup;
    struct text *t = &cn->t;
    bool finished = false;
    if (!pull(cn, &finished)) return false;
    struct rd_sreq *q = cn->q;
    char *parts[4] = {0};
    int np = 0;
    if (finished && (q->error || (q->why == RD_FINISH_CANCELLED && !t->stopped))) {
        char *e = rd_api_error(q->error ? q->error : "the server is shutting down", "server_error",
                               NULL, NULL);
        if (e && (parts[np] = malloc(strlen(e) + 9))) sprintf(parts[np++], "data: %s\n\n", e);
        free(e);
    } else {
        /* hold back what could still become a stop string, on a UTF-8 boundary */
        size_t upto = t->n;
        if (!finished && !t->stopped && t->max_stop > 1)
            upto = t->n > t->max_stop - 1 ? t->n - (t->max_stop - 1) : 0;
        while (upto > t->emitted && upto < t->n && ((unsigned char)t->s[upto] & 0xc0) == 0x80) upto--;
        if (upto < t->emitted) upto = t->emitted;
        const bool done = finished || t->stopped;
        /* one chunk per batch of tokens, even when they add no text yet (a token held back, or
         * one without text): clients see every step's progress */
        if (upto > t->emitted || cn->first_chunk || t->n_lp || (cn->took && !done)) {
            json_t *lp = take_logprobs(cn, t->emitted);
            parts[np++] = rd_api_chunk(cn->req.chat, cn->id, cn->created, s->model_name,
                                       t->s ? t->s + t->emitted : "", upto - t->emitted,
                                       cn->first_chunk, NULL, lp);
            t->emitted = upto;
            cn->first_chunk = false;
        }
        if (done) {
            parts[np++] = rd_api_chunk(cn->req.chat, cn->id, cn->created, s->model_name, "", 0,
                                       false, finish_reason(cn), NULL);
            if (cn->req.include_usage)
                parts[np++] = rd_api_usage_chunk(cn->req.chat, cn->id, cn->created, s->model_name,
                                                 q->n_prompt, t->used);
        }
    }
    if (finished || t->stopped) {
        parts[np++] = strdup("data: [DONE]\n\n");
        cn->over = true;
    }
    size_t total = 0;
    for (int i = 0; i < np; i++) total += parts[i] ? strlen(parts[i]) : 0;
    free(cn->pending);
    cn->pending = malloc(total + 1);
    cn->pend_n = cn->pend_off = 0;
    for (int i = 0; i < np; i++) {
        if (parts[i] && cn->pending) {
            memcpy(cn->pending + cn->pend_n, parts[i], strlen(parts[i]));
            cn->pend_n += strlen(parts[i]);
        }
        free(parts[i]);
    }
    return cn->pending != NULL;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct conn *cn = cls;
    for (;;) {
        if (cn->pend_off < cn->pend_n) {
            size_t k = cn->pend_n - cn->pend_off < max ? cn->pend_n - cn->pend_off : max;
            memcpy(buf, cn->pending + cn->pend_off, k);
            cn->pend_off += k;
            return (ssize_t)k;
        }
        if (cn->over) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!produce(cn)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static enum MHD_Result answer_stream(struct conn *cn, struct MHD_Connection *c)
{
    cn->first_chunk = true;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               stream_reader, cn, NULL);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    rd_serve_count_http(cn->sv, 200);
    return ok;
}

/* ---- a request ---- */

static enum MHD_Result handle_completion(struct conn *cn, struct MHD_Connection *c)
{
    struct rd_serve *sv = cn->sv;
    const struct rd_serve_setup *s = sv->setup;
    pthread_mutex_lock(&sv->mx);
    if (cn->route == R_CHAT) sv->req_chat++;
    else sv->req_completions++;
    pthread_mutex_unlock(&sv->mx);
    if (atomic_load(&sv->draining)) return reply_error(cn, c, 503, "the server is shutting down", NULL);
    char why[512];
    const char *param = NULL;
    rd_status st = rd_api_parse(cn->body ? cn->body : "", cn->n, cn->route == R_CHAT, &cn->req, why,
                                sizeof why, &param);
    if (st == RD_ERR_OOM) return reply_error(cn, c, 500, "out of memory", NULL);
    if (st != RD_OK) return reply_error(cn, c, 400, why, param);
    struct rd_api_req *r = &cn->req;
    if (r->model && strcmp(r->model, s->model_name)) {
        snprintf(why, sizeof why, "The model `%s` does not exist (this server serves `%s`).",
                 r->model, s->model_name);
        return reply_error(cn, c, 404, why, "model");
    }
    int32_t *ids;
    int n;
    const char *bad = rd_serve_prompt_ids(sv, &cn->req, &ids, &n, why, sizeof why);
    if (bad) {
        free(ids);
        return reply_error(cn, c, 400, bad, r->chat ? "messages" : "prompt");
    }
    struct rd_sreq *q = calloc(1, sizeof *q);
    if (!q || (s->tok && rd_detok_stream_new(s->tok, true, &cn->t.ds) != RD_OK)) {
        free(q);
        free(ids);
        return reply_error(cn, c, 500, "out of memory", NULL);
    }
    q->chat = r->chat;
    q->prompt = ids;
    q->n_prompt = n;
    int max_tokens = r->max_tokens > 0 ? r->max_tokens : r->chat ? sv->max_ctx - n + 1 : 16;
    q->ep = (struct rd_engine_params){
        .max_tokens = max_tokens, .temperature = r->temperature, .top_k = r->top_k,
        .top_p = r->top_p, .ignore_eos = r->ignore_eos, .logprobs = r->logprobs,
        .seed = r->seed_given ? r->seed
                              : (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^
                                    (uint64_t)atomic_fetch_add(&sv->next_id, 1),
    };
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->refs = 2; /* this thread and the main loop */
    cn->q = q;
    for (int i = 0; i < r->n_stop; i++)
        if (strlen(r->stop[i]) > cn->t.max_stop) cn->t.max_stop = strlen(r->stop[i]);
    snprintf(cn->id, sizeof cn->id, "%s-%llx%06llx", r->chat ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)atomic_fetch_add(&sv->next_id, 1));
    cn->created = (long long)time(NULL);
    rd_serve_enqueue(sv, q);
    return r->stream ? answer_stream(cn, c) : answer_whole(cn, c);
}

static enum MHD_Result handle_get(struct conn *cn, struct MHD_Connection *c, const char *url)
{
    struct rd_serve *sv = cn->sv;
    const struct rd_serve_setup *s = sv->setup;
    if (!strcmp(url, "/health")) {
        if (atomic_load(&sv->draining))
            return reply(cn, c, 503, "application/json", strdup("{\"status\":\"draining\"}"));
        char *b = malloc(96);
        if (b) snprintf(b, 96, "{\"status\":\"ok\",\"ranks\":%d}", s->world->size);
        return reply(cn, c, 200, "application/json", b);
    }
    if (!strcmp(url, "/metrics"))
        return reply(cn, c, 200, "text/plain; version=0.0.4", rd_serve_metrics_text(sv));
    if (!strcmp(url, "/v1/models")) {
        json_t *j = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:i}]}", "object", "list", "data",
                              "id", s->model_name, "object", "model", "created",
                              (json_int_t)time(NULL), "owned_by", "ropedist", "max_model_len",
                              sv->max_ctx);
        char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        return reply(cn, c, 200, "application/json", body);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "Not found: GET %.200s", url);
    return reply_error(cn, c, 404, msg, NULL);
}

static bool authorized(struct rd_serve *sv, struct MHD_Connection *c)
{
    const char *key = sv->setup->args->api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    /* compared in full whatever the first difference, so timing does not tell it */
    const char *g = h + 7;
    size_t lk = strlen(key), lg = strlen(g);
    unsigned diff = (unsigned)(lk != lg);
    for (size_t i = 0; i < lg; i++) diff |= (unsigned char)g[i] ^ (unsigned char)key[i % (lk ? lk : 1)];
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct rd_serve *sv = cls;
    struct conn *cn = *con_cls;
    if (!cn) { /* headers are in: decide what this is before any body */
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->sv = sv;
        cn->c = c;
        *con_cls = cn;
        const bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
        if (!strcmp(url, "/v1/completions")) cn->route = R_COMPLETIONS;
        else if (!strcmp(url, "/v1/chat/completions")) cn->route = R_CHAT;
        if (!strncmp(url, "/v1/", 4) && !authorized(sv, c))
            return reply_error(cn, c, 401, "Incorrect API key provided: give it as "
                               "\"Authorization: Bearer KEY\".", NULL);
        if (cn->route != R_NONE && !post)
            return reply_error(cn, c, 405, "use POST for this endpoint", NULL);
        if (cn->route == R_NONE && strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, "HEAD")) {
            char msg[300];
            snprintf(msg, sizeof msg, "Not found: %.16s %.200s", method, url);
            return reply_error(cn, c, 404, msg, NULL);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)sv->setup->args->max_body_kb * 1024)
            return reply_error(cn, c, 413, "the request body is larger than --max-body-kb", NULL);
        return MHD_YES;
    }
    if (*upload_data_size) { /* a piece of the body */
        size_t k = *upload_data_size;
        *upload_data_size = 0;
        if (cn->too_large || cn->n + k > (size_t)sv->setup->args->max_body_kb * 1024) {
            cn->too_large = true;
            return MHD_YES;
        }
        if (cn->n + k + 1 > cn->cap) {
            size_t cap = cn->cap ? cn->cap : 4096;
            while (cap < cn->n + k + 1) cap *= 2;
            char *nb = realloc(cn->body, cap);
            if (!nb) return MHD_NO;
            cn->body = nb;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->n, upload_data, k);
        cn->n += k;
        cn->body[cn->n] = 0;
        return MHD_YES;
    }
    if (cn->too_large)
        return reply_error(cn, c, 413, "the request body is larger than --max-body-kb", NULL);
    if (cn->route == R_NONE) return handle_get(cn, c, url);
    return handle_completion(cn, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c;
    struct conn *cn = *con_cls;
    if (!cn) return;
    *con_cls = NULL;
    if (cn->q) {
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) atomic_store(&cn->q->cancel, true);
        rd_sreq_unref(cn->q);
    }
    text_free(&cn->t);
    rd_api_req_free(&cn->req);
    free(cn->pending);
    free(cn->body);
    free(cn);
}

rd_status rd_serve_http_start(struct rd_serve *sv, char *why, int why_len)
{
    const struct rd_args *a = sv->setup->args;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)a->port)};
    const struct sockaddr *sa;
    if (inet_pton(AF_INET, a->host, &v4.sin_addr) == 1) {
        sa = (const struct sockaddr *)&v4;
    } else if (inet_pton(AF_INET6, a->host, &v6.sin6_addr) == 1) {
        sa = (const struct sockaddr *)&v6;
        flags |= MHD_USE_IPv6;
    } else {
        rd_err_set(why, why_len, "--host %s is not an IPv4 or IPv6 address", a->host);
        return RD_ERR_INVALID_ARG;
    }
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)a->port, NULL, NULL, on_request, sv,
                                            MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_NOTIFY_COMPLETED,
                                            on_completed, sv, MHD_OPTION_CONNECTION_LIMIT,
                                            (unsigned)1000, MHD_OPTION_END);
    if (!d) {
        rd_err_set(why, why_len, "cannot listen on %s port %d (in use? another server running?)",
                   a->host, a->port);
        return RD_ERR_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    sv->port = di ? di->port : a->port;
    sv->daemon = d;
    return RD_OK;
}

void rd_serve_http_quiesce(struct rd_serve *sv)
{
    if (sv->daemon) {
        MHD_socket s = MHD_quiesce_daemon(sv->daemon);
        if (s != MHD_INVALID_SOCKET) close(s);
    }
}

void rd_serve_http_stop(struct rd_serve *sv)
{
    if (sv->daemon) MHD_stop_daemon(sv->daemon);
    sv->daemon = NULL;
}
