/* The generation loop (see generate.h).
 *
 * Cache slots: without a window, token i of the sequence goes to cache entry i and is rotated
 * at position i. With attention sinks (S sink tokens, window W) the cache holds W entries: the
 * first S tokens stay in entries 0..S-1 and later tokens cycle through entries S..W-1, so memory
 * stays bounded; see place() for the positions used. */
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

double rd_gen_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool rd_gen_is_eos(const struct rd_config *c, int32_t id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == id) return true;
    return false;
}

struct cand_pair {
    float v;
    int32_t id;
};

/* value descending, then id ascending; padding (-1) last */
static int by_value_then_id(const void *a, const void *b)
{
    const struct cand_pair *x = a, *y = b;
    if ((x->id >= 0) != (y->id >= 0)) return x->id >= 0 ? -1 : 1;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int rd_gen_merge_candidates(const float *v, const int32_t *id, int n, int k, float *vals,
                            int32_t *ids)
{
    struct cand_pair pairs[RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS];
    if (n > RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS) n = RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS;
    for (int i = 0; i < n; i++) pairs[i] = (struct cand_pair){v[i], id[i]};
    qsort(pairs, (size_t)n, sizeof *pairs, by_value_then_id);
    int m = 0;
    for (int i = 0; i < n && m < k && pairs[i].id >= 0; i++) {
        vals[m] = pairs[i].v;
        ids[m++] = pairs[i].id;
    }
    return m;
}

/* Gathers the last row of local logits into full (V) on rank 0. */
static rd_status gather_logits(struct rd_model *m, const float *local, float *full)
{
    return rd_comm_gatherv_f32(m->comm, local, m->V_local, full, m->v_counts, 0);
}

void rd_gen_result_free(struct rd_gen_result *r)
{
    if (!r) return;
    free(r->ids);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

/* Sampling from candidates: each rank sends its k best logits of the last token instead of its
 * whole vocabulary slice, and rank 0 merges the P*k pairs. Exact for greedy (k = 1) and for
 * top-k sampling, where the top_k best over all ranks are among them. */
struct cand {
    int k;                 /* 0: full logits are gathered instead */
    float *v;              /* (k) local */
    int32_t *id;           /* (k) local */
    float *all_v;          /* (P*k) on rank 0 */
    int32_t *all_id;       /* (P*k) on rank 0 */
    int32_t *counts;       /* (P) = k */
};

/* Where absolute token i of the sequence goes: its cache entry, its rope position and how many
 * entries it attends to. Without a window: entry i, position i, i + 1 entries. With sinks
 * (S, W): the first W tokens fill the cache in order; later ones cycle through entries
 * [S, W), and positions are taken within the cache (the query sits at W - 1). */
static void place(const struct rd_gen_opts *o, int i, int32_t *slot, int32_t *pos, int32_t *nctx)
{
    if (o->window <= 0 || i < o->window) {
        *slot = i;
        *pos = i;
        *nctx = i + 1;
        return;
    }
    *slot = o->sink_tokens + (i - o->sink_tokens) % (o->window - o->sink_tokens);
    *pos = o->window - 1;
    *nctx = o->window;
}

rd_status rd_generate(struct rd_model *m, const int32_t *prompt, int n_prompt,
                      const struct rd_gen_opts *opts, struct rd_sampler *sampler, rd_token_cb cb,
                      void *cb_ctx, struct rd_gen_result *res)
{
    memset(res, 0, sizeof *res);
    struct cand cd = {0};
    const int V = m->cfg.vocab_size, rank = m->comm->rank, P = m->comm->size;
    const int cap = m->lim.max_ctx;
    const int chunk = m->lim.max_tokens;
    const bool windowed = opts->window > 0;
    rd_status st = RD_OK;
    int32_t *ids = malloc((size_t)chunk * sizeof(int32_t) * 5);
    float *full = rank == 0 ? malloc((size_t)V * sizeof(float)) : NULL;
    /* without a window at most cap - n_prompt + 1 tokens can come (the last one fills the
     * cache); with one, the buffers grow as tokens come */
    int room = opts->max_new_tokens;
    if (!windowed && cap - n_prompt + 1 < room) room = cap - n_prompt + 1;
    if (windowed && room > 4096) room = 4096;
    if (room < 1) room = 1;
    res->ids = malloc((size_t)room * sizeof(int32_t));
    if (opts->keep_logits && rank == 0) res->logits = malloc((size_t)room * V * sizeof(float));
    if (!ids || (rank == 0 && !full) || !res->ids ||
        (opts->keep_logits && rank == 0 && !res->logits)) {
        st = RD_ERR_OOM;
        goto done;
    }
    int32_t *pos = ids + chunk, *seq = pos + chunk, *slot = seq + chunk, *nctx = slot + chunk;

    /* greedy and top-k sampling need only each rank's best candidates on the coordinator */
    int kk = sampler && sampler->temperature == 0.0f ? 1 : (sampler ? sampler->top_k : 0);
    int32_t mode[2] = {kk, opts->keep_logits ? 1 : 0};
    RD_TRY_GOTO(rd_comm_bcast_host(m->comm, mode, sizeof mode, 0), st, done);
    cd.k = (!mode[1] && mode[0] >= 1 && mode[0] <= RD_GEN_MAX_CAND && P <= RD_GEN_MAX_RANKS)
               ? mode[0]
               : 0;
    float cand_v[RD_GEN_MAX_CAND];
    int32_t cand_id[RD_GEN_MAX_CAND];
    if (cd.k) {
        cd.v = malloc((size_t)cd.k * sizeof(float));
        cd.id = malloc((size_t)cd.k * sizeof(int32_t));
        cd.all_v = malloc((size_t)P * cd.k * sizeof(float));
        cd.all_id = malloc((size_t)P * cd.k * sizeof(int32_t));
        cd.counts = malloc((size_t)P * sizeof(int32_t));
        if (!cd.v || !cd.id || !cd.all_v || !cd.all_id || !cd.counts) {
            st = RD_ERR_OOM;
            goto done;
        }
        for (int r = 0; r < P && cd.k; r++) cd.counts[r] = cd.k;
    }
#define FORWARD(batch)                                                                         \
    (cd.k ? rd_model_forward_topk(m, (batch), cd.k, cd.v, cd.id)                               \
          : rd_model_forward(m, (batch), m->logits_h))
    memset(seq, 0, (size_t)chunk * sizeof(int32_t));

    double t0 = rd_gen_now_ms();
    int n_done = 0; /* tokens of the sequence seen so far */
    while (n_done < n_prompt) {
        int T = n_prompt - n_done < chunk ? n_prompt - n_done : chunk;
        /* once the window's ring wraps, a token overwrites an entry earlier tokens of the same
         * call would read: go one token per call from there */
        if (windowed) {
            if (n_done >= opts->window) T = 1;
            else if (n_done + T > opts->window) T = opts->window - n_done;
        }
        for (int t = 0; t < T; t++) {
            ids[t] = prompt[n_done + t];
            place(opts, n_done + t, &slot[t], &pos[t], &nctx[t]);
        }
        int32_t last = T - 1;
        struct rd_batch b = {.T = T, .ids = ids, .pos = pos, .seq = seq, .slot = slot,
                             .n_ctx = nctx, .n_out = n_done + T == n_prompt ? 1 : 0,
                             .out_idx = &last, .rope_len = windowed ? 0 : n_prompt};
        RD_TRY_GOTO(FORWARD(&b), st, done);
        n_done += T;
    }
    res->prefill_ms = rd_gen_now_ms() - t0;
    double t1 = rd_gen_now_ms();
    res->finish_reason = "length";
    for (int step = 0; step < opts->max_new_tokens; step++) {
        int n_cand = 0;
        if (cd.k) {
            RD_TRY_GOTO(rd_comm_gatherv_f32(m->comm, cd.v, cd.k, cd.all_v, cd.counts, 0), st, done);
            RD_TRY_GOTO(rd_comm_gatherv_i32(m->comm, cd.id, cd.k, cd.all_id, cd.counts, 0), st, done);
            if (rank == 0)
                n_cand = rd_gen_merge_candidates(cd.all_v, cd.all_id, P * cd.k, cd.k, cand_v,
                                                 cand_id);
        } else {
            RD_TRY_GOTO(gather_logits(m, m->logits_h, full), st, done);
        }
        if (res->n == room) {
            room = room > INT32_MAX / 2 ? INT32_MAX : room * 2;
            int32_t *ni = realloc(res->ids, (size_t)room * sizeof(int32_t));
            if (!ni) {
                st = RD_ERR_OOM;
                goto done;
            }
            res->ids = ni;
            if (res->logits) {
                float *nl = realloc(res->logits, (size_t)room * V * sizeof(float));
                if (!nl) {
                    st = RD_ERR_OOM;
                    goto done;
                }
                res->logits = nl;
            }
        }
        int32_t msg[2] = {0, 0}; /* token, stop (0 go, 1 eos, 2 length, 3 context) */
        if (rank == 0) {
            if (res->logits) memcpy(res->logits + (size_t)step * V, full, (size_t)V * sizeof(float));
            int32_t next = cd.k ? rd_sampler_sample_candidates(sampler, cand_v, cand_id, n_cand)
                                : rd_sampler_sample(sampler, full);
            res->ids[res->n++] = next;
            if (cb) cb(cb_ctx, next);
            msg[0] = next;
            if (!opts->ignore_eos && rd_gen_is_eos(&m->cfg, next)) msg[1] = 1;
            else if (step + 1 >= opts->max_new_tokens) msg[1] = 2;
            else if (!windowed && n_done >= cap) msg[1] = 3;
        }
        RD_TRY_GOTO(rd_comm_bcast_host(m->comm, msg, sizeof msg, 0), st, done);
        if (rank != 0) res->ids[res->n++] = msg[0];
        if (msg[1]) {
            res->finish_reason = msg[1] == 1 ? "eos" : msg[1] == 2 ? "length" : "context";
            break;
        }
        ids[0] = msg[0];
        place(opts, n_done, &slot[0], &pos[0], &nctx[0]);
        int32_t zero = 0;
        struct rd_batch b = {.T = 1, .ids = ids, .pos = pos, .seq = seq, .slot = slot,
                             .n_ctx = nctx, .n_out = 1, .out_idx = &zero};
        RD_TRY_GOTO(FORWARD(&b), st, done);
        n_done++;
    }
    res->decode_ms = rd_gen_now_ms() - t1;
#undef FORWARD
done:
    free(cd.v);
    free(cd.id);
    free(cd.all_v);
    free(cd.all_id);
    free(cd.counts);
    free(ids);
    free(full);
    if (st != RD_OK) rd_gen_result_free(res);
    return st;
}
