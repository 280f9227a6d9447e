/* The serving engine (see engine.h): the coordinator's scheduler and the step every rank runs.
 *
 * The plan of a step is one int32 message: a header [kind, T, n_out, k, n_upd, rope_len], then
 * ids[T], pos[T], seq[T], out_idx[n_out] and n_upd block-table changes (slot, logical,
 * physical). Its first PLAN_HEAD entries travel in the step's one broadcast (received without
 * spinning, see rd_comm_bcast_host_idle); a longer plan (a big prefill, many new blocks)
 * sends the rest in a second broadcast. Positions are the cache entries (no window), so a
 * token at position p attends to p + 1 entries. */
#include "runtime/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "runtime/generate.h"
#include "runtime/kv_pool.h"
#include "runtime/sampler.h"

#define PLAN_HEAD 1024
enum { KIND_STEP = 1, KIND_STOP = 2 };
enum { H_KIND, H_T, H_NOUT, H_K, H_NUPD, H_ROPE, H_LEN };

struct seq {
    int64_t id;
    void *user;
    int32_t *tokens; /* prompt, then generated tokens */
    int n_tokens, cap, n_prompt;
    int n_cached;    /* tokens whose k/v are in the cache */
    int slot;        /* -1 while waiting */
    int64_t admitted; /* admission stamp: larger = newer */
    struct rd_engine_params p;
    struct rd_sampler smp; /* its scratch is the engine's */
    bool cancelled, placed;
    int preemptions;
    double t_submit, t_admit, t_first;
    struct seq *next; /* waiting queue */
};

struct rd_engine {
    struct rd_model *m;
    struct rd_engine_cb cb;
    int rank, P, S, chunk, cap, V;
    bool one_rope; /* the rope table depends on the length: one sequence at a time */
    /* every rank: the plan and the batch arrays */
    int32_t *plan;
    size_t plan_cap;
    int32_t *stage; /* rank 0: ids, pos, seq (chunk each), wanted rows (S), updates (3 each) */
    int32_t *slot, *nctx;
    float *cv;          /* (S, RD_GEN_MAX_CAND) local candidates */
    int32_t *ci;
    int *counts;
    /* rank 0 */
    struct rd_kv_pool pool;
    struct seq **running; /* (S) by slot */
    struct seq *wait_head, *wait_tail;
    int n_running, n_waiting;
    int64_t next_id, admissions;
    struct seq **out_seq; /* (S) sequence of each wanted row */
    struct seq **order;   /* (S) running sequences by admission */
    float *all_v;         /* (P, S, RD_GEN_MAX_CAND) */
    int32_t *all_i;
    float *full;          /* (S, V) gathered logits, rank blocks */
    float *row;           /* (V) */
    float *probs;         /* (V) sampler scratch */
    int32_t *sorder;      /* (V) */
    struct rd_engine_stats st;
};

static double now_ms(void) { return rd_gen_now_ms(); }

rd_status rd_engine_init(struct rd_engine **out, struct rd_model *m, const struct rd_engine_cb *cb)
{
    *out = NULL;
    const struct rd_model_limits *lim = &m->lim;
    if (lim->window > 0 || lim->max_tokens < lim->max_seqs) return RD_ERR_INVALID_ARG;
    struct rd_engine *e = calloc(1, sizeof *e);
    if (!e) return RD_ERR_OOM;
    e->m = m;
    if (cb) e->cb = *cb;
    e->rank = m->comm->rank;
    e->P = m->comm->size;
    e->S = lim->max_seqs;
    e->chunk = lim->max_tokens;
    e->cap = lim->max_ctx;
    e->V = m->cfg.vocab_size;
    e->one_rope = rd_rope_depends_on_len(&m->cfg);
    const int S = e->S, V = e->V, P = e->P, K = RD_GEN_MAX_CAND;
    const size_t body = 3 * (size_t)e->chunk + S + 3 * (size_t)m->n_blocks;
    e->plan_cap = H_LEN + body < PLAN_HEAD ? PLAN_HEAD : H_LEN + body;
    e->plan = malloc(e->plan_cap * sizeof(int32_t));
    e->stage = malloc(body * sizeof(int32_t));
    e->slot = malloc((size_t)e->chunk * sizeof(int32_t));
    e->nctx = malloc((size_t)e->chunk * sizeof(int32_t));
    e->cv = malloc((size_t)S * K * sizeof(float));
    e->ci = malloc((size_t)S * K * sizeof(int32_t));
    e->counts = malloc((size_t)P * sizeof(int));
    bool ok = e->plan && e->stage && e->slot && e->nctx && e->cv && e->ci && e->counts;
    if (ok && e->rank == 0) {
        ok = rd_kv_pool_init(&e->pool, m->n_blocks, lim->block_size, S, m->max_blocks) == RD_OK;
        e->running = calloc((size_t)S, sizeof *e->running);
        e->out_seq = calloc((size_t)S, sizeof *e->out_seq);
        e->order = calloc((size_t)S, sizeof *e->order);
        e->all_v = malloc((size_t)P * S * K * sizeof(float));
        e->all_i = malloc((size_t)P * S * K * sizeof(int32_t));
        e->full = malloc((size_t)S * V * sizeof(float));
        e->row = malloc((size_t)V * sizeof(float));
        e->probs = malloc((size_t)V * sizeof(float));
        e->sorder = malloc((size_t)V * sizeof(int32_t));
        ok = ok && e->running && e->out_seq && e->order && e->all_v && e->all_i && e->full &&
             e->row && e->probs && e->sorder;
        e->st.block_size = lim->block_size;
    }
    if (!ok) {
        rd_engine_free(e);
        return RD_ERR_OOM;
    }
    *out = e;
    return RD_OK;
}

static void seq_free(struct seq *q)
{
    if (!q) return;
    free(q->tokens);
    free(q);
}

void rd_engine_free(struct rd_engine *e)
{
    if (!e) return;
    if (e->running)
        for (int s = 0; s < e->S; s++) seq_free(e->running[s]);
    for (struct seq *q = e->wait_head, *n; q; q = n) {
        n = q->next;
        seq_free(q);
    }
    rd_kv_pool_free(&e->pool);
    free(e->plan), free(e->stage), free(e->slot), free(e->nctx), free(e->cv), free(e->ci), free(e->counts);
    free(e->running), free(e->out_seq), free(e->order), free(e->all_v), free(e->all_i);
    free(e->full), free(e->row), free(e->probs), free(e->sorder);
    free(e);
}

/* ---- rank 0: queue ---- */

static void wait_push(struct rd_engine *e, struct seq *q, bool front)
{
    q->next = NULL;
    if (!e->wait_head) {
        e->wait_head = e->wait_tail = q;
    } else if (front) {
        q->next = e->wait_head;
        e->wait_head = q;
    } else {
        e->wait_tail->next = q;
        e->wait_tail = q;
    }
    e->n_waiting++;
}

static struct seq *wait_pop(struct rd_engine *e)
{
    struct seq *q = e->wait_head;
    if (!q) return NULL;
    e->wait_head = q->next;
    if (!e->wait_head) e->wait_tail = NULL;
    q->next = NULL;
    e->n_waiting--;
    return q;
}

rd_status rd_engine_submit(struct rd_engine *e, const int32_t *prompt, int n,
                           const struct rd_engine_params *p, void *user, int64_t *id, char *why,
                           int why_len)
{
    if (n < 1 || n > e->cap) {
        rd_err_set(why, why_len, "the prompt has %d tokens; the context holds 1 to %d", n, e->cap);
        return RD_ERR_RANGE;
    }
    if (rd_kv_pool_blocks_for(&e->pool, n) > e->pool.n_blocks) {
        rd_err_set(why, why_len, "the prompt has %d tokens but the KV cache holds %d (%d blocks of "
                   "%d)", n, e->pool.n_blocks * e->pool.block_size, e->pool.n_blocks,
                   e->pool.block_size);
        return RD_ERR_RANGE;
    }
    if (p->max_tokens < 0 || !(p->temperature >= 0 && isfinite(p->temperature)) || p->top_k < 0 ||
        !(p->top_p > 0 && p->top_p <= 1) || p->logprobs > RD_ENGINE_MAX_LOGPROBS) {
        rd_err_set(why, why_len, "invalid sampling parameters");
        return RD_ERR_INVALID_ARG;
    }
    struct seq *q = calloc(1, sizeof *q);
    int cap = n + (p->max_tokens < 64 ? p->max_tokens : 64) + 1;
    if (q) q->tokens = malloc((size_t)cap * sizeof(int32_t));
    if (!q || !q->tokens) {
        seq_free(q);
        rd_err_set(why, why_len, "out of host memory");
        return RD_ERR_OOM;
    }
    memcpy(q->tokens, prompt, (size_t)n * sizeof(int32_t));
    q->n_tokens = q->n_prompt = n;
    q->cap = cap;
    q->slot = -1;
    q->p = *p;
    q->user = user;
    q->id = ++e->next_id;
    q->t_submit = now_ms();
    q->smp = (struct rd_sampler){.V = e->V, .temperature = p->temperature, .top_k = p->top_k,
                                 .top_p = p->top_p, .probs = e->probs, .order = e->sorder};
    rd_sampler_reseed(&q->smp, p->seed);
    wait_push(e, q, false);
    if (id) *id = q->id;
    return RD_OK;
}

void rd_engine_cancel(struct rd_engine *e, int64_t id)
{
    for (int s = 0; s < e->S; s++)
        if (e->running[s] && e->running[s]->id == id) e->running[s]->cancelled = true;
    for (struct seq *q = e->wait_head; q; q = q->next)
        if (q->id == id) q->cancelled = true;
}

bool rd_engine_busy(const struct rd_engine *e) { return e->n_running + e->n_waiting > 0; }

void rd_engine_stats(const struct rd_engine *e, struct rd_engine_stats *s)
{
    *s = e->st;
    s->running = e->n_running;
    s->waiting = e->n_waiting;
    s->blocks_used = rd_kv_pool_used(&e->pool);
    s->blocks_free = e->pool.n_free;
}

/* ---- rank 0: scheduling ---- */

static void finish(struct rd_engine *e, struct seq *q, enum rd_finish why)
{
    if (q->slot >= 0) {
        rd_kv_pool_release(&e->pool, q->slot);
        e->running[q->slot] = NULL;
        e->n_running--;
    }
    double end = now_ms();
    struct rd_engine_done d = {
        .why = why, .ids = q->tokens + q->n_prompt, .n = q->n_tokens - q->n_prompt,
        .n_prompt = q->n_prompt, .preemptions = q->preemptions,
        .queue_ms = q->t_admit ? q->t_admit - q->t_submit : end - q->t_submit,
        .prefill_ms = q->t_admit ? (q->t_first ? q->t_first : end) - q->t_admit : 0,
        .decode_ms = q->t_first ? end - q->t_first : 0,
    };
    if (e->cb.on_finish) e->cb.on_finish(q->user, &d);
    seq_free(q);
}

static void preempt(struct rd_engine *e, struct seq *q)
{
    rd_kv_pool_release(&e->pool, q->slot);
    e->running[q->slot] = NULL;
    e->n_running--;
    q->slot = -1;
    q->n_cached = 0;
    q->preemptions++;
    e->st.preemptions++;
    RD_LOG_DEBUG("KV pool full: sequence %lld (%d tokens) preempted, to be recomputed; %d of %d "
                 "blocks used", (long long)q->id, q->n_tokens, rd_kv_pool_used(&e->pool),
                 e->pool.n_blocks);
    wait_push(e, q, true);
}

static int by_admission(const void *a, const void *b)
{
    const struct seq *x = *(struct seq *const *)a, *y = *(struct seq *const *)b;
    return (x->admitted > y->admitted) - (x->admitted < y->admitted);
}

/* Running sequences by admission, oldest first, into e->order; returns how many. */
static int sort_running(struct rd_engine *e)
{
    int n = 0;
    for (int s = 0; s < e->S; s++)
        if (e->running[s]) e->order[n++] = e->running[s];
    qsort(e->order, (size_t)n, sizeof *e->order, by_admission);
    return n;
}

/* Adds tokens [n_cached, n_cached + c) of q to the plan. */
static void place_tokens(struct rd_engine *e, struct seq *q, int c, int *T)
{
    int32_t *ids = e->stage, *pos = ids + e->chunk, *sq = pos + e->chunk;
    for (int i = 0; i < c; i++, (*T)++) {
        ids[*T] = q->tokens[q->n_cached + i];
        pos[*T] = q->n_cached + i;
        sq[*T] = q->slot;
    }
    q->n_cached += c;
    q->placed = true;
}

/* Builds the step's plan; returns T (0: nothing to run). Sets the wanted rows, e->out_seq. */
static int plan_step(struct rd_engine *e, int32_t *upd, int *n_upd, int *n_out, int *rope_len)
{
    *n_upd = *n_out = *rope_len = 0;
    /* 1. cancelled sequences */
    for (int s = 0; s < e->S; s++)
        if (e->running[s] && e->running[s]->cancelled) finish(e, e->running[s], RD_FINISH_CANCELLED);
    for (struct seq **pp = &e->wait_head; *pp;) {
        struct seq *q = *pp;
        if (!q->cancelled) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        if (e->wait_tail == q) {
            e->wait_tail = NULL;
            for (struct seq *t = e->wait_head; t; t = t->next) e->wait_tail = t;
        }
        e->n_waiting--;
        finish(e, q, RD_FINISH_CANCELLED);
    }
    int T = 0;
    int32_t *out_idx = e->stage + 3 * e->chunk;
    /* 2. decoding sequences, oldest first; the newest not yet placed yields its blocks */
    int n = sort_running(e);
    for (int i = 0; i < n; i++) e->order[i]->placed = false;
    for (int i = 0; i < n; i++) {
        struct seq *q = e->order[i];
        if (!q || q->n_tokens - q->n_cached != 1) continue;
        while (!rd_kv_pool_grow(&e->pool, q->slot, q->n_cached + 1, upd, n_upd)) {
            int v = n - 1;
            while (v > i && (!e->order[v] || e->order[v]->placed)) v--;
            if (v == i && e->n_running == 1) {
                /* alone and the pool is full: nothing to wait for */
                finish(e, q, RD_FINISH_CONTEXT);
                q = NULL;
                break;
            }
            struct seq *victim = e->order[v];
            e->order[v] = NULL;
            preempt(e, victim);
            if (victim == q) {
                q = NULL;
                break;
            }
        }
        if (!q) {
            e->order[i] = NULL;
            continue;
        }
        if (q->p.max_tokens > 0) { /* (a prefill-only sequence may have one token left) */
            out_idx[*n_out] = T;
            e->out_seq[(*n_out)++] = q;
        }
        place_tokens(e, q, 1, &T);
    }
    /* 3. admission: a free slot and room for everything the sequence must feed */
    while (e->wait_head && e->n_running < e->S) {
        struct seq *q = e->wait_head;
        const int need = rd_kv_pool_blocks_for(&e->pool, q->n_tokens);
        const int watermark = e->n_running ? e->pool.n_blocks / 100 : 0;
        if (need > e->pool.n_free - watermark) break;
        int s = 0;
        while (e->running[s]) s++;
        if (!rd_kv_pool_grow(&e->pool, s, q->n_tokens, upd, n_upd)) break;
        wait_pop(e);
        q->slot = s;
        q->admitted = ++e->admissions;
        if (!q->t_admit) q->t_admit = now_ms();
        e->running[s] = q;
        e->n_running++;
    }
    /* 4. prefill chunks within the token budget, oldest first */
    n = sort_running(e);
    for (int i = 0; i < n && T < e->chunk; i++) {
        struct seq *q = e->order[i];
        int left = q->n_tokens - q->n_cached;
        if (q->placed || left < 1) continue;
        if (e->one_rope) *rope_len = q->n_tokens;
        int c = left < e->chunk - T ? left : e->chunk - T;
        place_tokens(e, q, c, &T);
        if (q->n_cached == q->n_tokens && q->p.max_tokens > 0) {
            out_idx[*n_out] = T - 1;
            e->out_seq[(*n_out)++] = q;
        }
    }
    return T;
}

/* Which logits rank 0 needs this step: k candidates per row, or 0 = full logits. */
static int step_k(const struct rd_engine *e, int n_out)
{
    int k = 1;
    if (e->P > RD_GEN_MAX_RANKS) return 0;
    for (int o = 0; o < n_out; o++) {
        const struct rd_engine_params *p = &e->out_seq[o]->p;
        if (p->keep_logits || p->logprobs >= 0) return 0;
        if (p->temperature == 0.0f) continue;
        if (p->top_k < 1 || p->top_k > RD_GEN_MAX_CAND) return 0;
        if (p->top_k > k) k = p->top_k;
    }
    return k;
}

/* ---- rank 0: sampling ---- */

/* log-softmax of the raw logits: the chosen token's value and the n best (value desc, id asc) */
static void logprobs_of(const float *row, int V, int32_t chosen, int n, struct rd_engine_token *t)
{
    float mx = -INFINITY;
    for (int v = 0; v < V; v++)
        if (row[v] > mx) mx = row[v];
    double sum = 0;
    for (int v = 0; v < V; v++)
        if (!isnan(row[v])) sum += exp((double)row[v] - mx);
    const double lse = mx + log(sum);
    t->logprob = isnan(row[chosen]) ? -INFINITY : (float)(row[chosen] - lse);
    t->n_top = 0;
    for (int v = 0; v < V && n > 0; v++) {
        float x = isnan(row[v]) ? -INFINITY : row[v];
        if (t->n_top == n && !(x > t->top_logprobs[n - 1])) continue;
        int j = t->n_top < n ? t->n_top++ : n - 1;
        while (j > 0 && x > t->top_logprobs[j - 1]) {
            t->top_logprobs[j] = t->top_logprobs[j - 1];
            t->top_ids[j] = t->top_ids[j - 1];
            j--;
        }
        t->top_logprobs[j] = x;
        t->top_ids[j] = v;
    }
    for (int j = 0; j < t->n_top; j++) t->top_logprobs[j] = (float)(t->top_logprobs[j] - lse);
}

static rd_status push_token(struct seq *q, int32_t id)
{
    if (q->n_tokens == q->cap) {
        int cap = q->cap * 2;
        int32_t *nt = realloc(q->tokens, (size_t)cap * sizeof(int32_t));
        if (!nt) return RD_ERR_OOM;
        q->tokens = nt;
        q->cap = cap;
    }
    q->tokens[q->n_tokens++] = id;
    return RD_OK;
}

/* Samples row o of the step for its sequence, reports the token and ends the sequence when it
 * is done. */
static rd_status sample_row(struct rd_engine *e, int o, int n_out, int k)
{
    struct seq *q = e->out_seq[o];
    const int P = e->P, V = e->V;
    const int *vloc = e->m->v_counts;
    struct rd_engine_token t = {.index = q->n_tokens - q->n_prompt};
    if (k) {
        float cand_v[RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS], rv[RD_GEN_MAX_CAND];
        int32_t cand_i[RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS], ri[RD_GEN_MAX_CAND];
        int c = 0;
        for (int r = 0; r < P; r++)
            for (int j = 0; j < k; j++, c++) {
                cand_v[c] = e->all_v[((size_t)r * n_out + o) * k + j];
                cand_i[c] = e->all_i[((size_t)r * n_out + o) * k + j];
            }
        int want = q->p.temperature == 0.0f ? 1 : q->p.top_k;
        int valid = rd_gen_merge_candidates(cand_v, cand_i, c, want, rv, ri);
        t.id = rd_sampler_sample_candidates(&q->smp, rv, ri, valid);
    } else {
        /* rank r's block is (n_out, V_local of r) */
        size_t off = 0;
        int v0 = 0;
        for (int r = 0; r < P; r++) {
            memcpy(e->row + v0, e->full + off + (size_t)o * vloc[r], (size_t)vloc[r] * sizeof(float));
            off += (size_t)n_out * vloc[r];
            v0 += vloc[r];
        }
        t.id = rd_sampler_sample(&q->smp, e->row);
        if (q->p.logprobs >= 0) logprobs_of(e->row, V, t.id, q->p.logprobs, &t);
        if (q->p.keep_logits) t.logits = e->row;
    }
    RD_TRY(push_token(q, t.id));
    if (!q->t_first) q->t_first = now_ms();
    e->st.tokens_generated++;
    if (e->cb.on_token) e->cb.on_token(q->user, &t);
    const int n_gen = q->n_tokens - q->n_prompt;
    if (!q->p.ignore_eos && rd_gen_is_eos(&e->m->cfg, t.id)) finish(e, q, RD_FINISH_EOS);
    else if (n_gen >= q->p.max_tokens) finish(e, q, RD_FINISH_LENGTH);
    else if (q->n_cached >= e->cap) finish(e, q, RD_FINISH_CONTEXT);
    return RD_OK;
}

/* ---- every rank: the step ---- */

static size_t plan_len(const int32_t *h)
{
    return h[H_KIND] == KIND_STOP ? H_LEN
                                  : (size_t)H_LEN + 3 * (size_t)h[H_T] + h[H_NOUT] + 3 * (size_t)h[H_NUPD];
}

static rd_status send_plan(struct rd_engine *e)
{
    /* the head always; the rest only when the plan is longer */
    RD_TRY(rd_comm_bcast_host_idle(e->m->comm, e->plan, PLAN_HEAD * sizeof(int32_t), 0));
    const size_t len = plan_len(e->plan);
    if (len > e->plan_cap) return RD_ERR_INTERNAL;
    if (len > PLAN_HEAD)
        RD_TRY(rd_comm_bcast_host(e->m->comm, e->plan + PLAN_HEAD,
                                  (len - PLAN_HEAD) * sizeof(int32_t), 0));
    return RD_OK;
}

rd_status rd_engine_stop(struct rd_engine *e)
{
    memset(e->plan, 0, PLAN_HEAD * sizeof(int32_t));
    e->plan[H_KIND] = KIND_STOP;
    return send_plan(e);
}

rd_status rd_engine_step(struct rd_engine *e, bool *stopped)
{
    struct rd_model *m = e->m;
    if (stopped) *stopped = false;
    double t0 = now_ms();
    int32_t *h = e->plan;
    if (e->rank == 0) {
        const int chunk = e->chunk;
        int32_t *upd = e->stage + 3 * chunk + e->S;
        int n_upd, n_out, rope_len;
        const int T = plan_step(e, upd, &n_upd, &n_out, &rope_len);
        if (T == 0) return RD_OK; /* only ends (cancellations) this time: nothing to run */
        h[H_KIND] = KIND_STEP, h[H_T] = T, h[H_NOUT] = n_out, h[H_K] = step_k(e, n_out);
        h[H_NUPD] = n_upd, h[H_ROPE] = rope_len;
        int32_t *p = h + H_LEN;
        for (int a = 0; a < 3; a++, p += T) memcpy(p, e->stage + (size_t)a * chunk, (size_t)T * sizeof(int32_t));
        memcpy(p, e->stage + 3 * chunk, (size_t)n_out * sizeof(int32_t));
        memcpy(p + n_out, upd, (size_t)n_upd * 3 * sizeof(int32_t));
    }
    RD_TRY(send_plan(e));
    if (h[H_KIND] == KIND_STOP) {
        if (stopped) *stopped = true;
        return RD_OK;
    }
    const int T = h[H_T], n_out = h[H_NOUT], k = h[H_K], n_upd = h[H_NUPD];
    const int32_t *ids = h + H_LEN, *pos = ids + T, *sq = pos + T, *out_idx = sq + T;
    const int32_t *upd = out_idx + n_out;
    for (int u = 0; u < n_upd; u++)
        RD_TRY(rd_model_set_block(m, upd[3 * u], upd[3 * u + 1], upd[3 * u + 2]));
    for (int t = 0; t < T; t++) {
        e->slot[t] = pos[t];
        e->nctx[t] = pos[t] + 1;
    }
    struct rd_batch b = {.T = T, .ids = ids, .pos = pos, .seq = sq, .slot = e->slot,
                         .n_ctx = e->nctx, .n_out = n_out, .out_idx = out_idx,
                         .rope_len = h[H_ROPE]};
    RD_TRY(k ? rd_model_forward_topk(m, &b, k, e->cv, e->ci) : rd_model_forward(m, &b, m->logits_h));
    if (n_out > 0) {
        if (k) {
            for (int r = 0; r < e->P; r++) e->counts[r] = n_out * k;
            RD_TRY(rd_comm_gatherv_f32(m->comm, e->cv, n_out * k, e->all_v, e->counts, 0));
            RD_TRY(rd_comm_gatherv_i32(m->comm, e->ci, n_out * k, e->all_i, e->counts, 0));
        } else {
            for (int r = 0; r < e->P; r++) e->counts[r] = n_out * m->v_counts[r];
            RD_TRY(rd_comm_gatherv_f32(m->comm, m->logits_h, n_out * m->V_local, e->full, e->counts,
                                       0));
        }
    }
    if (e->rank != 0) return RD_OK;
    e->st.tokens_forwarded += T;
    /* sequences that were only prefilled (max_tokens 0) end once their prompt is in */
    for (int s = 0; s < e->S; s++) {
        struct seq *q = e->running[s];
        if (q && q->p.max_tokens == 0 && q->n_cached == q->n_tokens) finish(e, q, RD_FINISH_LENGTH);
    }
    for (int o = 0; o < n_out; o++) RD_TRY(sample_row(e, o, n_out, k));
    e->st.steps++;
    e->st.last_step_ms = now_ms() - t0;
    return RD_OK;
}
