/* `ropedist`'s results on rank 0 (text streamed as tokens come, ids, or one JSON object per
 * prompt) and the --prompts run through the paged engine, whose results arrive as prompts
 * finish and are printed in prompt order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "runtime/app_impl.h"
#include "runtime/engine.h"

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

void rd_app_on_token(void *ctx, int32_t id)
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

void rd_app_print_result(struct app *A, int i, const struct rd_gen_result *r)
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
        rd_app_print_result(o->A, index, res);
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
        rd_app_print_result(o->A, o->next, &o->held[o->next]);
        rd_gen_result_free(&o->held[o->next]);
        o->ready[o->next++] = false;
    }
}


/* ---- --prompts through the engine ---- */

struct offline_seq {
    struct in_order *ord;
    int index;
    bool started;  /* text output: the prompt has gone through the stream */
    float *logits; /* (n, V) kept rows (--with-logits) */
    int n_logits, cap_logits;
};

static void stream_prompt(struct offline_seq *q)
{
    struct app *A = q->ord->A;
    if (q->started || !A->stream) return;
    q->started = true;
    for (int j = 0; j < A->prompts.len[q->index]; j++)
        rd_app_on_token(A, A->prompts.ids[q->index][j]);
}

static void offline_token(void *user, const struct rd_engine_token *t)
{
    struct offline_seq *q = user;
    struct app *A = q->ord->A;
    stream_prompt(q);
    rd_app_on_token(A, t->id);
    if (!t->logits) return;
    const size_t V = (size_t)A->cfg.vocab_size;
    if (q->n_logits == q->cap_logits) {
        int cap = q->cap_logits ? q->cap_logits * 2 : 16;
        float *nl = realloc(q->logits, (size_t)cap * V * sizeof(float));
        if (!nl) return; /* the result then carries no logits */
        q->logits = nl;
        q->cap_logits = cap;
    }
    memcpy(q->logits + (size_t)q->n_logits++ * V, t->logits, V * sizeof(float));
}

static void offline_finish(void *user, const struct rd_engine_done *d)
{
    struct offline_seq *q = user;
    stream_prompt(q);
    static const char *const k_reasons[] = {"eos", "length", "context", "cancelled"};
    struct rd_gen_result r = {.n = d->n, .prefill_ms = d->prefill_ms, .decode_ms = d->decode_ms,
                              .finish_reason = k_reasons[d->why]};
    r.ids = malloc(((size_t)d->n + 1) * sizeof(int32_t));
    if (r.ids) memcpy(r.ids, d->ids, (size_t)d->n * sizeof(int32_t));
    if (q->logits && q->n_logits == d->n) {
        r.logits = q->logits;
        q->logits = NULL;
    }
    if (!r.ids) r.n = 0;
    print_in_order(q->ord, q->index, &r);
    rd_gen_result_free(&r);
    free(q->logits);
    q->logits = NULL;
}

rd_status rd_app_run_engine(struct app *A)
{
    const int n = A->prompts.n;
    struct rd_engine_cb cb = {.on_token = offline_token, .on_finish = offline_finish};
    struct rd_engine *e = NULL;
    RD_TRY(rd_engine_init(&e, &A->model, &cb));
    struct in_order ord = {.A = A, .n = n};
    struct offline_seq *qs = NULL;
    rd_status st = RD_OK;
    if (A->world.rank == 0) {
        ord.held = calloc((size_t)n, sizeof *ord.held);
        ord.ready = calloc((size_t)n, sizeof *ord.ready);
        qs = calloc((size_t)n, sizeof *qs);
        if (!ord.held || !ord.ready || !qs) st = RD_ERR_OOM;
        struct rd_engine_params p = {.max_tokens = A->args.max_new_tokens,
                                     .temperature = A->args.temperature, .top_k = A->args.top_k,
                                     .top_p = A->args.top_p, .seed = A->args.seed,
                                     .ignore_eos = A->args.ignore_eos, .logprobs = -1,
                                     .keep_logits = A->args.with_logits};
        char why[256];
        for (int i = 0; i < n && st == RD_OK; i++) {
            qs[i] = (struct offline_seq){.ord = &ord, .index = i};
            p.max_tokens = A->prompts.max_new[i] >= 0 ? A->prompts.max_new[i] : A->args.max_new_tokens;
            st = rd_engine_submit(e, A->prompts.ids[i], A->prompts.len[i], &p, &qs[i], NULL, why,
                                  sizeof why);
            if (st != RD_OK) RD_LOG_ERROR("prompt %d: %s", i + 1, why);
        }
        while (st == RD_OK && rd_engine_busy(e)) st = rd_engine_step(e, NULL);
        if (st == RD_OK) st = rd_engine_stop(e);
    } else {
        bool stopped = false;
        while (st == RD_OK && !stopped) st = rd_engine_step(e, &stopped);
    }
    if (ord.held)
        for (int i = 0; i < n; i++) rd_gen_result_free(&ord.held[i]);
    free(ord.held);
    free(ord.ready);
    for (int i = 0; qs && i < n; i++) free(qs[i].logits);
    free(qs);
    rd_engine_free(e);
    return st;
}

void rd_app_model_name(const char *config, char *out, size_t n)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", config);
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".gguf")) {
        snprintf(out, n, "%.*s", (int)(len - 5), base);
    } else if (len > 3 && !strcmp(base + len - 3, ".h5")) {
        snprintf(out, n, "%.*s", (int)(len - 3), base);
    } else if (slash) {
        *slash = 0;
        char *up = strrchr(buf, '/');
        snprintf(out, n, "%s", up ? up + 1 : buf);
        if (!*out || !strcmp(out, ".")) snprintf(out, n, "%.*s", (int)len, base);
    } else {
        snprintf(out, n, "%s", base);
    }
}
