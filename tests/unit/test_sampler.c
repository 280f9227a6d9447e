/* Unit test of the sampler (runtime/sampler.c).
 *
 * Greedy is argmax (the first index on ties, like torch.argmax); top-k = 1 is greedy at any
 * temperature; top-k and top-p never pick outside the kept set (computed here by hand, with
 * Hugging Face's semantics: top-k first, then the smallest set of most likely tokens whose
 * renormalised cumulative probability reaches top_p); empirical frequencies over 20000 draws
 * match the expected renormalised probabilities; the random stream depends on the seed alone;
 * invalid arguments are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sampler.h"
#include "test_util.h"

#define MAXV 64

static int naive_argmax(const float *x, int V)
{
    int b = 0;
    for (int i = 0; i < V; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static uint64_t g_rng = 12345;
static float rnd(float lo, float hi)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((g_rng >> 40) / 16777216.0);
}

/* Expected distribution, in double, the Hugging Face way: softmax(logits / T), keep the top k
 * (ties: lower index first), renormalise, keep the smallest prefix whose cumulative probability
 * reaches top_p, renormalise. Returns the number kept; probs of dropped tokens are 0. */
static int expected_probs(const float *logits, int V, double T, int k, double top_p, double *p)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < V; i++) sum += (p[i] = exp((logits[i] - mx) / T));
    for (int i = 0; i < V; i++) p[i] /= sum;
    int order[MAXV];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 1; i < V; i++) /* insertion sort, stable: ties keep the lower index first */
        for (int j = i; j > 0 && p[order[j]] > p[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int keep = (k > 0 && k < V) ? k : V;
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += p[order[i]];
    if (top_p < 1.0) {
        double cum = 0;
        int n = 0;
        while (n < keep) {
            cum += p[order[n]] / kept;
            n++;
            if (cum >= top_p - 1e-9) break;
        }
        keep = n;
    }
    kept = 0;
    for (int i = 0; i < keep; i++) kept += p[order[i]];
    double q[MAXV] = {0};
    for (int i = 0; i < keep; i++) q[order[i]] = p[order[i]] / kept;
    memcpy(p, q, sizeof(double) * V);
    return keep;
}

static void test_invalid(void)
{
    struct rd_sampler s;
    CHECK(rd_sampler_init(&s, 0, 1.0f, 0, 1.0f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, -5, 1.0f, 0, 1.0f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, -0.5f, 0, 1.0f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, NAN, 0, 1.0f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, 1.0f, -1, 1.0f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, 1.0f, 0, 0.0f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, 1.0f, 0, -0.1f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, 1.0f, 0, 1.5f, 1) == RD_ERR_INVALID_ARG);
    CHECK(rd_sampler_init(&s, 10, 1.0f, 0, NAN, 1) == RD_ERR_INVALID_ARG);
    rd_sampler_free(&s); /* after a failed init: nothing to free, must not crash */
    rd_sampler_free(NULL);
    /* edges that are valid */
    CHECK(rd_sampler_init(&s, 1, 0.0f, 0, 1.0f, 0) == RD_OK);
    rd_sampler_free(&s);
    CHECK(rd_sampler_init(&s, 10, 1.0f, 100, 1.0f, 0) == RD_OK); /* k > V: all kept */
    rd_sampler_free(&s);
    CHECK(rd_sampler_init(&s, 10, 1.0f, 0, 1e-6f, 0) == RD_OK);
    rd_sampler_free(&s);
}

static void test_argmax_greedy(void)
{
    const float ties[] = {1, 3, 3, 2};
    CHECK(rd_sampler_argmax(ties, 4) == 1);
    const float flat[] = {0, 0, 0, 0, 0};
    CHECK(rd_sampler_argmax(flat, 5) == 0);
    const float last[] = {-INFINITY, -5, -1, 7.5f};
    CHECK(rd_sampler_argmax(last, 4) == 3);
    const float neg[] = {-3, -2, -2, -9};
    CHECK(rd_sampler_argmax(neg, 4) == 1);
    const float one[] = {42};
    CHECK(rd_sampler_argmax(one, 1) == 0);

    struct rd_sampler s;
    const int V = 50;
    CHECK(rd_sampler_init(&s, V, 0.0f, 5, 0.5f, 7) == RD_OK); /* top-k / top-p ignored */
    float logits[MAXV];
    int bad = 0;
    for (int it = 0; it < 2000; it++) {
        for (int i = 0; i < V; i++) logits[i] = rnd(-10, 10);
        if (it % 3 == 0) logits[(it * 7) % V] = logits[(it * 13) % V]; /* some ties */
        if (rd_sampler_sample(&s, logits) != naive_argmax(logits, V)) bad++;
    }
    CHECK_MSG(bad == 0, "greedy differs from argmax %d times", bad);
    rd_sampler_free(&s);

    /* top-k = 1 is greedy at any temperature, also on ties */
    static const float temps[] = {0.05f, 0.7f, 1.0f, 5.0f, 100.0f};
    for (int ti = 0; ti < 5; ti++) {
        CHECK(rd_sampler_init(&s, V, temps[ti], 1, 1.0f, 100 + ti) == RD_OK);
        bad = 0;
        for (int it = 0; it < 1000; it++) {
            for (int i = 0; i < V; i++) logits[i] = rnd(-3, 3);
            if (it % 2) logits[(it * 11) % V] = 10, logits[(it * 3) % V] = 10;
            if (rd_sampler_sample(&s, logits) != naive_argmax(logits, V)) bad++;
        }
        CHECK_MSG(bad == 0, "top_k=1 at temperature %g differs from argmax %d times", temps[ti], bad);
        rd_sampler_free(&s);
    }
    /* a tiny top_p keeps only the most likely token */
    CHECK(rd_sampler_init(&s, V, 1.0f, 0, 1e-6f, 3) == RD_OK);
    bad = 0;
    for (int it = 0; it < 500; it++) {
        for (int i = 0; i < V; i++) logits[i] = rnd(-3, 3);
        if (rd_sampler_sample(&s, logits) != naive_argmax(logits, V)) bad++;
    }
    CHECK_MSG(bad == 0, "top_p=1e-6 differs from argmax %d times", bad);
    rd_sampler_free(&s);
}

/* Draws n tokens; returns how many fell outside allowed[] (and fills counts). */
static int draw(struct rd_sampler *s, const float *logits, int n, const int *allowed, int *counts)
{
    int outside = 0;
    memset(counts, 0, sizeof(int) * (size_t)s->V);
    for (int i = 0; i < n; i++) {
        int t = rd_sampler_sample(s, logits);
        if (t < 0 || t >= s->V) {
            outside++;
            continue;
        }
        counts[t]++;
        if (allowed && !allowed[t]) outside++;
    }
    return outside;
}

static void test_top_k(void)
{
    const int V = 40;
    float logits[MAXV];
    for (int i = 0; i < V; i++) logits[i] = rnd(-2, 2);
    static const int ks[] = {2, 3, 5, 10, 39};
    for (int ki = 0; ki < 5; ki++) {
        const int k = ks[ki];
        double p[MAXV];
        expected_probs(logits, V, 1.5, k, 1.0, p);
        int allowed[MAXV], counts[MAXV];
        for (int i = 0; i < V; i++) allowed[i] = p[i] > 0;
        /* by hand: the k largest logits */
        int n_allowed = 0;
        for (int i = 0; i < V; i++) {
            int larger = 0;
            for (int j = 0; j < V; j++) larger += logits[j] > logits[i];
            CHECK((larger < k) == (allowed[i] != 0));
            n_allowed += allowed[i];
        }
        CHECK(n_allowed == k);
        struct rd_sampler s;
        CHECK(rd_sampler_init(&s, V, 1.5f, k, 1.0f, 1000 + k) == RD_OK);
        int outside = draw(&s, logits, 5000, allowed, counts);
        CHECK_MSG(outside == 0, "top_k=%d: %d draws outside the top k", k, outside);
        int seen = 0;
        for (int i = 0; i < V; i++) seen += counts[i] > 0;
        CHECK_MSG(k > 10 || seen == k, "top_k=%d: only %d of the k tokens drawn", k, seen);
        rd_sampler_free(&s);
    }
    /* -inf logits (masked tokens) are never drawn, even with nothing filtered */
    for (int i = 0; i < V; i += 3) logits[i] = -INFINITY;
    int allowed[MAXV], counts[MAXV];
    for (int i = 0; i < V; i++) allowed[i] = i % 3 != 0;
    struct rd_sampler s;
    CHECK(rd_sampler_init(&s, V, 1.0f, 0, 1.0f, 5) == RD_OK);
    CHECK_MSG(draw(&s, logits, 5000, allowed, counts) == 0, "a -inf logit was drawn");
    rd_sampler_free(&s);
    /* V = 1 */
    CHECK(rd_sampler_init(&s, 1, 1.0f, 0, 0.9f, 5) == RD_OK);
    const float one = 3.0f;
    int bad = 0;
    for (int i = 0; i < 100; i++) bad += rd_sampler_sample(&s, &one) != 0;
    CHECK(bad == 0);
    rd_sampler_free(&s);
}

/* nucleus of probs (.5 .3 .15 .05) in a shuffled vocabulary order */
static void nucleus_case(const char *what, const float *logits, int V, float T, int k, float top_p,
                         const int *want, int n_want)
{
    struct rd_sampler s;
    CHECK(rd_sampler_init(&s, V, T, k, top_p, 77) == RD_OK);
    int allowed[MAXV] = {0}, counts[MAXV];
    for (int i = 0; i < n_want; i++) allowed[want[i]] = 1;
    int outside = draw(&s, logits, 4000, allowed, counts);
    int missing = 0;
    for (int i = 0; i < n_want; i++) missing += counts[want[i]] == 0;
    CHECK_MSG(outside == 0 && missing == 0,
              "%s (top_k %d, top_p %g): %d draws outside the nucleus of %d tokens, %d of them "
              "never drawn; counts:%s%d %d %d %d %d %d",
              what, k, top_p, outside, n_want, missing, " ", counts[0], counts[1], counts[2],
              counts[3], V > 4 ? counts[4] : -1, V > 5 ? counts[5] : -1);
    rd_sampler_free(&s);
}

static void test_top_p(void)
{
    /* probs .05 .5 .15 .3 at token ids 0..3 (so the sort matters) */
    const float lg[4] = {logf(0.05f), logf(0.5f), logf(0.15f), logf(0.3f)};
    const int t1[] = {1}, t2[] = {1, 3}, t3[] = {1, 3, 2}, t4[] = {1, 3, 2, 0};
    nucleus_case(".5 .3 .15 .05, p=.4", lg, 4, 1.0f, 0, 0.4f, t1, 1);
    nucleus_case(".5 .3 .15 .05, p=.7", lg, 4, 1.0f, 0, 0.7f, t2, 2);
    nucleus_case(".5 .3 .15 .05, p=.79", lg, 4, 1.0f, 0, 0.79f, t2, 2);
    nucleus_case(".5 .3 .15 .05, p=.81", lg, 4, 1.0f, 0, 0.81f, t3, 3);
    nucleus_case(".5 .3 .15 .05, p=.9", lg, 4, 1.0f, 0, 0.9f, t3, 3);
    nucleus_case(".5 .3 .15 .05, p=.96", lg, 4, 1.0f, 0, 0.96f, t4, 4);
    /* the boundary: .5 + .3 reaches .8, so HF keeps 2 (smallest set with cum >= top_p) */
    nucleus_case(".5 .3 .15 .05, p=.8 (boundary)", lg, 4, 1.0f, 0, 0.8f, t2, 2);
    nucleus_case(".5 .3 .15 .05, p=.95 (boundary)", lg, 4, 1.0f, 0, 0.95f, t3, 3);
    /* the boundary at .5: token 1 alone */
    nucleus_case(".5 .3 .15 .05, p=.5 (boundary)", lg, 4, 1.0f, 0, 0.5f, t1, 1);

    /* exactly representable probabilities: the boundary is exact */
    const float flat[4] = {0, 0, 0, 0}; /* .25 each; ties: lower ids first */
    const int f1[] = {0}, f2[] = {0, 1}, f3[] = {0, 1, 2}, f4[] = {0, 1, 2, 3};
    nucleus_case("uniform, p=.25", flat, 4, 1.0f, 0, 0.25f, f1, 1);
    nucleus_case("uniform, p=.26", flat, 4, 1.0f, 0, 0.26f, f2, 2);
    nucleus_case("uniform, p=.5", flat, 4, 1.0f, 0, 0.5f, f2, 2);
    nucleus_case("uniform, p=.75", flat, 4, 1.0f, 0, 0.75f, f3, 3);
    nucleus_case("uniform, p=1", flat, 4, 1.0f, 0, 1.0f, f4, 4);
    /* powers of two: probs .5 .25 .125 .125 */
    const float pw[4] = {logf(0.125f), logf(0.5f), logf(0.125f), logf(0.25f)};
    const int w1[] = {1}, w2[] = {1, 3}, w3[] = {1, 3, 0};
    nucleus_case(".5 .25 .125 .125, p=.5", pw, 4, 1.0f, 0, 0.5f, w1, 1);
    nucleus_case(".5 .25 .125 .125, p=.75", pw, 4, 1.0f, 0, 0.75f, w2, 2);
    nucleus_case(".5 .25 .125 .125, p=.875", pw, 4, 1.0f, 0, 0.875f, w3, 3);

    /* top-k then top-p over the renormalised top k: 8 equal tokens, k 4 -> .25 each, p .5 -> 2 */
    const float flat8[8] = {0};
    nucleus_case("uniform 8, k=4, p=.5", flat8, 8, 1.0f, 4, 0.5f, f2, 2);
    nucleus_case("uniform 8, k=4, p=.6", flat8, 8, 1.0f, 4, 0.6f, f3, 3);
    /* k = 2 of .5 .3 .15 .05 -> .625 .375; p=.6 keeps 1, p=.7 keeps 2 */
    nucleus_case(".5 .3 .15 .05, k=2, p=.6", lg, 4, 1.0f, 2, 0.6f, t1, 1);
    nucleus_case(".5 .3 .15 .05, k=2, p=.7", lg, 4, 1.0f, 2, 0.7f, t2, 2);
    /* temperature first: T=2 flattens .5 .3 .15 .05 (sqrt: .394 .305 .216 .085 after
     * renormalising), p=.7 then needs 3 */
    nucleus_case(".5 .3 .15 .05, T=2, p=.7", lg, 4, 2.0f, 0, 0.7f, t3, 3);

    /* random logits: the set matches the hand-computed nucleus */
    const int V = 30;
    float logits[MAXV];
    for (int it = 0; it < 20; it++) {
        for (int i = 0; i < V; i++) logits[i] = rnd(-3, 3);
        const float top_p = 0.3f + 0.03f * it;
        double p[MAXV];
        int n = expected_probs(logits, V, 1.0, 0, top_p, p);
        int want[MAXV], nw = 0;
        for (int i = 0; i < V; i++)
            if (p[i] > 0) want[nw++] = i;
        CHECK(nw == n);
        struct rd_sampler s;
        CHECK(rd_sampler_init(&s, V, 1.0f, 0, top_p, 900 + it) == RD_OK);
        int allowed[MAXV] = {0}, counts[MAXV];
        for (int i = 0; i < nw; i++) allowed[want[i]] = 1;
        int outside = draw(&s, logits, 3000, allowed, counts);
        CHECK_MSG(outside == 0, "random logits top_p %g: %d draws outside a nucleus of %d", top_p,
                  outside, n);
        rd_sampler_free(&s);
    }
}

static void test_frequencies(void)
{
    static const struct {
        float T;
        int k;
        float p;
    } cfgs[] = {{1.0f, 0, 1.0f}, {0.5f, 0, 1.0f}, {2.0f, 3, 1.0f},
                {0.8f, 0, 0.8f}, {1.0f, 4, 0.7f}, {1.3f, 5, 0.9f}};
    const float logits[6] = {1.2f, -0.3f, 2.0f, 0.7f, 0.0f, 1.5f};
    const int V = 6, N = 20000;
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++) {
        double p[MAXV];
        expected_probs(logits, V, cfgs[c].T, cfgs[c].k, cfgs[c].p, p);
        struct rd_sampler s;
        CHECK(rd_sampler_init(&s, V, cfgs[c].T, cfgs[c].k, cfgs[c].p, 4242 + c) == RD_OK);
        int counts[MAXV];
        draw(&s, logits, N, NULL, counts);
        double worst_z = 0;
        for (int i = 0; i < V; i++) {
            double f = (double)counts[i] / N;
            if (p[i] == 0) {
                CHECK_MSG(counts[i] == 0, "T %g k %d p %g: token %d drawn %d times, expected never",
                          cfgs[c].T, cfgs[c].k, cfgs[c].p, i, counts[i]);
                continue;
            }
            double sigma = sqrt(p[i] * (1 - p[i]) / N);
            double z = fabs(f - p[i]) / (sigma > 0 ? sigma : 1e-9);
            if (z > worst_z) worst_z = z;
            /* 5 sigma: fixed seeds make this deterministic; a real bias shows far above */
            CHECK_MSG(fabs(f - p[i]) <= 5 * sigma + 1e-4,
                      "T %g k %d p %g: token %d frequency %.4f, expected %.4f (%.1f sigma)",
                      cfgs[c].T, cfgs[c].k, cfgs[c].p, i, f, p[i], z);
        }
        printf("frequencies T %.1f top_k %d top_p %.1f: worst %.2f sigma\n", cfgs[c].T, cfgs[c].k,
               cfgs[c].p, worst_z);
        rd_sampler_free(&s);
    }
    /* a high temperature is close to uniform */
    struct rd_sampler s;
    CHECK(rd_sampler_init(&s, V, 1000.0f, 0, 1.0f, 99) == RD_OK);
    int counts[MAXV];
    draw(&s, logits, N, NULL, counts);
    for (int i = 0; i < V; i++) CHECK_MSG(fabs(counts[i] / (double)N - 1.0 / V) < 0.02, "token %d: %d", i, counts[i]);
    rd_sampler_free(&s);
}

static void test_seed(void)
{
    const int V = 32, N = 200;
    float logits[MAXV];
    for (int i = 0; i < V; i++) logits[i] = rnd(-1, 1);
    int a[200], b[200], c[200];
    struct rd_sampler s;
    for (int run = 0; run < 3; run++) {
        CHECK(rd_sampler_init(&s, V, 0.9f, 20, 0.95f, run == 2 ? 1235 : 1234) == RD_OK);
        int *dst = run == 0 ? a : run == 1 ? b : c;
        for (int i = 0; i < N; i++) dst[i] = rd_sampler_sample(&s, logits);
        rd_sampler_free(&s);
    }
    CHECK_MSG(!memcmp(a, b, sizeof a), "same seed, different tokens");
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    CHECK_MSG(same < N / 2, "seeds 1234 and 1235 agree on %d of %d draws", same, N);

    /* the uniform stream: [0, 1), reproducible, mean 1/2 */
    struct rd_sampler s2;
    CHECK(rd_sampler_init(&s, V, 1.0f, 0, 1.0f, 0) == RD_OK);
    CHECK(rd_sampler_init(&s2, V, 1.0f, 0, 1.0f, 0) == RD_OK);
    double sum = 0, lo = 1, hi = 0;
    int diff = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rd_sampler_uniform(&s), v = rd_sampler_uniform(&s2);
        diff += u != v;
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    CHECK(diff == 0);
    CHECK(lo >= 0 && hi < 1 && lo < 1e-3 && hi > 1 - 1e-3);
    CHECK(fabs(sum / 100000 - 0.5) < 0.005);
    rd_sampler_free(&s);
    rd_sampler_free(&s2);
}

/* Sampling from the top_k candidates (what the coordinator gets from every rank) chooses the
 * same tokens as sampling from the full logits, draw for draw, for the same seed. */
static void test_candidates_match_full(void)
{
    enum { V = 300, K = 12 };
    float logits[V];
    uint64_t x = 42;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (float)((x >> 40) % 1000) / 100.0f;
    }
    /* the K best, descending, ties by smaller id */
    float vals[K];
    int32_t ids[K];
    bool used[V] = {false};
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int i = 0; i < V; i++)
            if (!used[i] && (best < 0 || logits[i] > logits[best])) best = i;
        used[best] = true;
        vals[k] = logits[best];
        ids[k] = best;
    }
    const float top_ps[] = {1.0f, 0.9f, 0.5f};
    for (int t = 0; t < 3; t++) {
        struct rd_sampler a, b;
        CHECK(rd_sampler_init(&a, V, 0.7f, K, top_ps[t], 99) == RD_OK);
        CHECK(rd_sampler_init(&b, V, 0.7f, K, top_ps[t], 99) == RD_OK);
        int differ = 0;
        for (int d = 0; d < 2000; d++)
            differ += rd_sampler_sample(&a, logits) != rd_sampler_sample_candidates(&b, vals, ids, K);
        CHECK_MSG(differ == 0, "top_p %.2f: %d of 2000 draws differ", top_ps[t], differ);
        rd_sampler_free(&a);
        rd_sampler_free(&b);
    }
}

int main(void)
{
    test_candidates_match_full();
    test_invalid();
    test_argmax_greedy();
    test_top_k();
    test_top_p();
    test_frequencies();
    test_seed();
    return rd_test_finish("test_sampler");
}
