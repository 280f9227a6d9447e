/* Unit test of the cpu backend's topk op (sampling candidates, kernels/ops.h) against a full
 * sort written here: for each row, the k largest values in descending order, ties to the smaller
 * id, ids offset by vocab_offset, NaN counted as -inf, rows shorter than k padded with
 * (-inf, -1), and k = 1 agreeing with rd_sampler_argmax (greedy). Rows: random values, many
 * ties (values from a small set), all equal, ascending and descending runs, +-inf and NaN. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "runtime/sampler.h"
#include "test_util.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd_u32(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}

/* the reference order: sort (key, id) pairs, key = value with NaN as -inf */
static const float *g_keys;
static int by_key_desc(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    float x = isnan(g_keys[i]) ? -INFINITY : g_keys[i], y = isnan(g_keys[j]) ? -INFINITY : g_keys[j];
    if (x > y) return -1;
    if (x < y) return 1;
    return (i > j) - (i < j);
}

enum fill_kind { RANDOM, FEW_VALUES, ALL_EQUAL, ASCENDING, DESCENDING, SPECIALS };

static void fill_row(float *x, int V, enum fill_kind kind)
{
    for (int i = 0; i < V; i++) {
        switch (kind) {
        case RANDOM: x[i] = (float)((double)rnd_u32() / 2147483648.0 * 20.0 - 10.0); break;
        case FEW_VALUES: x[i] = (float)(rnd_u32() % 4) * 0.5f; break;
        case ALL_EQUAL: x[i] = 1.25f; break;
        case ASCENDING: x[i] = (float)i; break;
        case DESCENDING: x[i] = (float)(V - i); break;
        case SPECIALS: {
            uint32_t r = rnd_u32() % 8;
            x[i] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : (float)(r % 3);
        } break;
        }
    }
}

static void check_case(struct rd_backend *be, int T, int V, int k, int offset, enum fill_kind kind)
{
    float *x = malloc((size_t)T * (V ? V : 1) * sizeof(float));
    float *vals = malloc((size_t)T * k * sizeof(float));
    int32_t *ids = malloc((size_t)T * k * sizeof(int32_t));
    int *order = malloc((size_t)(V ? V : 1) * sizeof(int));
    for (int t = 0; t < T; t++) fill_row(x + (size_t)t * V, V, kind);
    rd_status st = be->ops->topk(be, vals, ids, x, T, V, k, offset);
    CHECK_MSG(st == RD_OK, "topk T=%d V=%d k=%d: %s", T, V, k, rd_status_str(st));
    int bad = 0;
    for (int t = 0; t < T && st == RD_OK; t++) {
        const float *row = x + (size_t)t * V;
        for (int i = 0; i < V; i++) order[i] = i;
        g_keys = row;
        qsort(order, (size_t)V, sizeof(int), by_key_desc);
        for (int r = 0; r < k; r++) {
            float want_v = r < V ? (isnan(row[order[r]]) ? -INFINITY : row[order[r]]) : -INFINITY;
            int want_i = r < V ? order[r] + offset : -1;
            float got_v = vals[(size_t)t * k + r];
            int got_i = ids[(size_t)t * k + r];
            if (got_v != want_v || got_i != want_i) {
                if (bad++ < 5)
                    fprintf(stderr, "  kind %d T=%d V=%d k=%d row %d rank %d: got (%g, %d) want "
                            "(%g, %d)\n", (int)kind, T, V, k, t, r, got_v, got_i, want_v, want_i);
            }
        }
        if (k == 1 && V > 0 && kind != SPECIALS) /* the sampler's greedy choice */
            CHECK_MSG(ids[(size_t)t * k] - offset == rd_sampler_argmax(row, V),
                      "k=1 row %d: id %d, rd_sampler_argmax %d", t, ids[(size_t)t * k] - offset,
                      rd_sampler_argmax(row, V));
    }
    CHECK_MSG(bad == 0, "topk kind %d T=%d V=%d k=%d offset %d: %d wrong entries", (int)kind, T, V,
              k, offset, bad);
    free(x), free(vals), free(ids), free(order);
}

int main(void)
{
    /* one thread, and teams that split a long row's vocabulary and merge the slices */
    static const int k_threads[] = {1, 2, 3};
    for (size_t ti = 0; ti < sizeof k_threads / sizeof *k_threads; ti++) {
        struct rd_backend_opts o = {.dtype = RD_DTYPE_F32, .device = -1,
                                    .threads = k_threads[ti]};
        struct rd_backend *be = NULL;
        CHECK(rd_backend_cpu_create(&o, &be) == RD_OK);
        if (!be) return rd_test_finish("topk");
        const enum fill_kind kinds[] = {RANDOM, FEW_VALUES, ALL_EQUAL, ASCENDING, DESCENDING,
                                        SPECIALS};
        for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++) {
            check_case(be, 3, 1000, 1, 0, kinds[ki]);
            check_case(be, 2, 1000, 8, 0, kinds[ki]);
            check_case(be, 4, 517, 64, 1234, kinds[ki]);
            check_case(be, 1, 32000, 50, 96000, kinds[ki]);
            check_case(be, 1, 9001, 1, 5, kinds[ki]);
            check_case(be, 1, 8192, 3000, 0, kinds[ki]); /* k larger than a slice */
            check_case(be, 40, 2000, 5, 0, kinds[ki]);
            check_case(be, 2, 40, 40, 7, kinds[ki]); /* k == V: the whole row sorted */
            check_case(be, 2, 5, 8, 3, kinds[ki]);   /* V < k: padded with (-inf, -1) */
        }
        check_case(be, 0, 100, 4, 0, RANDOM); /* no rows: nothing written */
        /* bad arguments */
        float v;
        int32_t id;
        float one = 1.0f;
        CHECK(be->ops->topk(be, &v, &id, &one, 1, 1, 0, 0) == RD_ERR_INVALID_ARG);
        rd_backend_free(be);
    }
    return rd_test_finish("topk");
}
