/* Continuous batching over sequence slots (see batch.h). */
#include "runtime/batch.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct seq {
    int prompt;            /* index of the prompt in this slot, -1 when free */
    int n_prompt, n_done;  /* prompt length; tokens of the sequence in the cache */
    int32_t pending;       /* sampled token still to be fed (decode phase) */
    bool decoding;
    struct rd_gen_result res;
    int room;              /* capacity of res.ids (and res.logits rows) */
    double t_admit, t_first;
};

static rd_status grow(struct seq *q, int V, bool logits)
{
    if (q->res.n < q->room) return RD_OK;
    int room = q->room ? q->room * 2 : 64;
    int32_t *ni = realloc(q->res.ids, (size_t)room * sizeof(int32_t));
    if (!ni) return RD_ERR_OOM;
    q->res.ids = ni;
    if (logits) {
        float *nl = realloc(q->res.logits, (size_t)room * V * sizeof(float));
        if (!nl) return RD_ERR_OOM;
        q->res.logits = nl;
    }
    q->room = room;
    return RD_OK;
}

rd_status rd_generate_many(struct rd_model *m, int n_prompts, int32_t *const *prompts,
                           const int *lens, const struct rd_gen_opts *opts,
                           const struct rd_sampling *sp, rd_done_cb done, void *ctx)
{
    const int S = m->lim.max_seqs, chunk = m->lim.max_tokens, cap = m->lim.max_ctx;
    const int V = m->cfg.vocab_size, P = m->comm->size, rank = m->comm->rank;
    if (chunk < S || opts->window > 0) return RD_ERR_INVALID_ARG;
    /* greedy and top-k need only candidates on the coordinator, as in rd_generate */
    const int k = opts->keep_logits ? 0
                  : sp->temperature == 0.0f ? 1
                  : (sp->top_k >= 1 && sp->top_k <= RD_GEN_MAX_CAND && P <= RD_GEN_MAX_RANKS)
                      ? sp->top_k
                      : 0;
    rd_status st = RD_OK;
    struct seq *q = calloc((size_t)S, sizeof *q);
    struct rd_sampler *smp = rank == 0 ? calloc((size_t)S, sizeof *smp) : NULL;
    int32_t *tok = malloc((size_t)chunk * 5 * sizeof(int32_t));
    int32_t *out_idx = malloc((size_t)S * sizeof(int32_t)), *out_seq = malloc((size_t)S * sizeof(int32_t));
    int32_t *msg = malloc((size_t)S * 2 * sizeof(int32_t));
    int *counts = malloc((size_t)P * sizeof(int));
    const int *vloc = m->v_counts;
    /* candidates: (S, k) local; (P, S, k) on rank 0. full logits: (S, V) local block and all */
    float *cv = malloc((size_t)S * (k ? k : 1) * sizeof(float));
    int32_t *ci = malloc((size_t)S * (k ? k : 1) * sizeof(int32_t));
    float *all_v = rank == 0 ? malloc((size_t)P * S * (k ? k : 1) * sizeof(float)) : NULL;
    int32_t *all_i = rank == 0 ? malloc((size_t)P * S * (k ? k : 1) * sizeof(int32_t)) : NULL;
    float *full = rank == 0 && !k ? malloc((size_t)S * V * sizeof(float)) : NULL;
    float *row = rank == 0 && !k ? malloc((size_t)V * sizeof(float)) : NULL;
    float rv[RD_GEN_MAX_CAND];
    int32_t ri[RD_GEN_MAX_CAND];
    if (!q || (rank == 0 && !smp) || !tok || !out_idx || !out_seq || !msg || !counts ||
        !cv || !ci || (rank == 0 && (!all_v || !all_i || (!k && (!full || !row))))) {
        st = RD_ERR_OOM;
        goto done;
    }
    for (int s = 0; s < S; s++) q[s].prompt = -1;
    if (rank == 0)
        for (int s = 0; s < S; s++)
            if ((st = rd_sampler_init(&smp[s], V, sp->temperature, sp->top_k, sp->top_p, sp->seed)) != RD_OK)
                goto done;
    int32_t *pos = tok + chunk, *seqv = pos + chunk, *slot = seqv + chunk, *nctx = slot + chunk;

    int next = 0, finished = 0;
    while (finished < n_prompts) {
        /* admit waiting prompts into free slots */
        for (int s = 0; s < S && next < n_prompts; s++) {
            if (q[s].prompt >= 0) continue;
            struct seq *x = &q[s];
            memset(x, 0, sizeof *x);
            x->prompt = next;
            x->n_prompt = lens[next++];
            x->t_admit = rd_gen_now_ms();
            if (rank == 0) rd_sampler_reseed(&smp[s], sp->seed);
        }
        /* one token of every decoding sequence, then prompt chunks within the budget */
        int T = 0, n_out = 0;
        for (int s = 0; s < S; s++) {
            struct seq *x = &q[s];
            if (x->prompt < 0 || !x->decoding) continue;
            tok[T] = x->pending;
            pos[T] = slot[T] = x->n_done;
            nctx[T] = x->n_done + 1;
            seqv[T] = s;
            out_idx[n_out] = T;
            out_seq[n_out++] = s;
            x->n_done++;
            T++;
        }
        for (int s = 0; s < S && T < chunk; s++) {
            struct seq *x = &q[s];
            if (x->prompt < 0 || x->decoding) continue;
            int c = x->n_prompt - x->n_done;
            if (c > chunk - T) c = chunk - T;
            for (int t = 0; t < c; t++, T++) {
                tok[T] = prompts[x->prompt][x->n_done + t];
                pos[T] = slot[T] = x->n_done + t;
                nctx[T] = x->n_done + t + 1;
                seqv[T] = s;
            }
            x->n_done += c;
            if (x->n_done == x->n_prompt) {
                out_idx[n_out] = T - 1;
                out_seq[n_out++] = s;
            }
        }
        struct rd_batch b = {.T = T, .ids = tok, .pos = pos, .seq = seqv, .slot = slot,
                             .n_ctx = nctx, .n_out = n_out, .out_idx = out_idx};
        RD_TRY_GOTO(k ? rd_model_forward_topk(m, &b, k, cv, ci)
                      : rd_model_forward(m, &b, m->logits_h), st, done);
        if (n_out == 0) continue;

        /* the coordinator gathers what sampling needs */
        if (k) {
            for (int r = 0; r < P; r++) counts[r] = n_out * k;
            RD_TRY_GOTO(rd_comm_gatherv_f32(m->comm, cv, n_out * k, all_v, counts, 0), st, done);
            RD_TRY_GOTO(rd_comm_gatherv_i32(m->comm, ci, n_out * k, all_i, counts, 0), st, done);
        } else {
            for (int r = 0; r < P; r++) counts[r] = n_out * vloc[r];
            RD_TRY_GOTO(rd_comm_gatherv_f32(m->comm, m->logits_h, n_out * m->V_local, full, counts, 0),
                        st, done);
        }
        if (rank == 0) {
            for (int o = 0; o < n_out; o++) {
                struct seq *x = &q[out_seq[o]];
                int32_t id;
                if (k) {
                    /* row o of every rank's block: (r * n_out + o) * k */
                    float cand_v[RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS];
                    int32_t cand_i[RD_GEN_MAX_CAND * RD_GEN_MAX_RANKS];
                    int n = 0;
                    for (int r = 0; r < P; r++)
                        for (int j = 0; j < k; j++, n++) {
                            cand_v[n] = all_v[((size_t)r * n_out + o) * k + j];
                            cand_i[n] = all_i[((size_t)r * n_out + o) * k + j];
                        }
                    int valid = rd_gen_merge_candidates(cand_v, cand_i, n, k, rv, ri);
                    id = rd_sampler_sample_candidates(&smp[out_seq[o]], rv, ri, valid);
                } else {
                    /* rank r's block is (n_out, V_local of r) */
                    size_t off = 0;
                    int v0 = 0;
                    for (int r = 0; r < P; r++) {
                        memcpy(row + v0, full + off + (size_t)o * vloc[r], (size_t)vloc[r] * sizeof(float));
                        off += (size_t)n_out * vloc[r];
                        v0 += vloc[r];
                    }
                    id = rd_sampler_sample(&smp[out_seq[o]], row);
                }
                if (opts->max_new_tokens == 0) {
                    msg[2 * o] = -1;
                    msg[2 * o + 1] = 2;
                    continue;
                }
                RD_TRY_GOTO(grow(x, V, opts->keep_logits), st, done);
                if (opts->keep_logits) memcpy(x->res.logits + (size_t)x->res.n * V, row, (size_t)V * sizeof(float));
                x->res.ids[x->res.n++] = id;
                if (x->res.n == 1) x->t_first = rd_gen_now_ms();
                msg[2 * o] = id;
                msg[2 * o + 1] = !opts->ignore_eos && rd_gen_is_eos(&m->cfg, id) ? 1
                                 : x->res.n >= opts->max_new_tokens       ? 2
                                 : x->n_done >= cap                       ? 3
                                                                          : 0;
            }
        }
        RD_TRY_GOTO(rd_comm_bcast_host(m->comm, msg, (size_t)n_out * 2 * sizeof(int32_t), 0), st, done);
        for (int o = 0; o < n_out; o++) {
            struct seq *x = &q[out_seq[o]];
            if (!msg[2 * o + 1]) {
                x->decoding = true;
                x->pending = msg[2 * o];
                continue;
            }
            if (rank == 0) {
                double end = rd_gen_now_ms();
                x->res.finish_reason = msg[2 * o + 1] == 1 ? "eos" : msg[2 * o + 1] == 2 ? "length" : "context";
                x->res.prefill_ms = (x->t_first ? x->t_first : end) - x->t_admit;
                x->res.decode_ms = x->t_first ? end - x->t_first : 0;
                if (done) done(ctx, x->prompt, &x->res);
            }
            rd_gen_result_free(&x->res);
            x->prompt = -1;
            finished++;
        }
    }
done:
    if (q)
        for (int s = 0; s < S; s++) rd_gen_result_free(&q[s].res);
    if (smp)
        for (int s = 0; s < S; s++) rd_sampler_free(&smp[s]);
    free(q);
    free(smp);
    free(tok);
    free(out_idx);
    free(out_seq);
    free(msg);
    free(counts);
    free(cv);
    free(ci);
    free(all_v);
    free(all_i);
    free(full);
    free(row);
    return st;
}
