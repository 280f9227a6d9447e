/* Greedy and top-k / top-p sampling (see sampler.h). */
#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

rd_status rd_sampler_init(struct rd_sampler *s, int V, float temperature, int top_k, float top_p,
                          uint64_t seed)
{
    memset(s, 0, sizeof *s);
    if (V < 1 || !(temperature >= 0 && isfinite(temperature)) || top_k < 0 || !(top_p > 0 && top_p <= 1))
        return RD_ERR_INVALID_ARG;
    s->V = V;
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->state = seed;
    s->probs = malloc((size_t)V * sizeof(float));
    s->order = malloc((size_t)V * sizeof(int32_t));
    if (!s->probs || !s->order) {
        rd_sampler_free(s);
        return RD_ERR_OOM;
    }
    return RD_OK;
}

void rd_sampler_free(struct rd_sampler *s)
{
    if (!s) return;
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

void rd_sampler_reseed(struct rd_sampler *s, uint64_t seed) { s->state = seed; }

double rd_sampler_uniform(struct rd_sampler *s)
{
    return (double)(splitmix64(&s->state) >> 11) * (1.0 / 9007199254740992.0);
}

int rd_sampler_argmax(const float *logits, int V)
{
    /* NaN never wins, as in the top-k path (kernels' topk treat it as -inf): greedy must not
     * depend on which path gathered the logits */
    int best = -1;
    for (int i = 0; i < V; i++)
        if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    return best < 0 ? 0 : best;
}

/* sorts indices by descending probability (ties: lower index first) */
static const float *g_sort_probs;
static int by_prob_desc(const void *a, const void *b)
{
    int i = *(const int32_t *)a, j = *(const int32_t *)b;
    float pi = g_sort_probs[i], pj = g_sort_probs[j];
    if (pi > pj) return -1;
    if (pi < pj) return 1;
    return (i > j) - (i < j);
}

/* Top-k, then top-p, then one draw, over the n probabilities s->probs[s->order[i]] sorted by
 * descending probability. Returns the chosen s->order[i]. */
static int choose(struct rd_sampler *s, int n)
{
    int keep = n;
    if (s->top_k > 0 && s->top_k < keep) keep = s->top_k;
    if (s->top_p < 1.0f) {
        /* keep the smallest prefix whose mass reaches top_p (renormalised over top-k) */
        double mass = 0, total = 0;
        for (int i = 0; i < keep; i++) total += s->probs[s->order[i]];
        int m = 0;
        while (m < keep) {
            mass += s->probs[s->order[m]] / total;
            m++;
            /* transformers compares float32 sums: allow for their rounding at the boundary */
            if (mass >= (double)s->top_p - 1e-6) break;
        }
        keep = m;
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += s->probs[s->order[i]];
    double u = rd_sampler_uniform(s) * kept, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += s->probs[s->order[i]];
        if (u < acc) return s->order[i];
    }
    return s->order[keep - 1];
}

/* softmax of x[0..n) / temperature into s->probs, in double for stability */
static void softmax_into(struct rd_sampler *s, const float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = (float)exp(((double)x[i] - mx) / s->temperature);
        sum += s->probs[i];
        s->order[i] = i;
    }
    for (int i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);
}

int rd_sampler_sample(struct rd_sampler *s, const float *logits)
{
    if (s->temperature == 0.0f) return rd_sampler_argmax(logits, s->V);
    softmax_into(s, logits, s->V);
    g_sort_probs = s->probs;
    qsort(s->order, (size_t)s->V, sizeof(int32_t), by_prob_desc);
    return choose(s, s->V);
}

int rd_sampler_sample_candidates(struct rd_sampler *s, const float *vals, const int32_t *ids,
                                 int n)
{
    if (s->temperature == 0.0f) return ids[0];
    if (n > s->V) n = s->V;
    softmax_into(s, vals, n); /* already sorted: order is the identity */
    return ids[choose(s, n)];
}
