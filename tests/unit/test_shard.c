/* Unit test of the shard math (parallel/shard.c).
 *
 * For many (H, Hkv, F, V, tp) combinations: when the rules allow the split, every rank gets a
 * shard, the q heads, ffn columns and vocab rows of all ranks cover each index exactly once (a
 * union without overlap, in rank order, balanced to within one), kv heads are split when
 * tp <= Hkv and replicated on tp / Hkv ranks when tp > Hkv, and every q head's kv head
 * h / (H / Hkv) is owned by the rank that owns the q head and found there by the kernel's local
 * GQA rule (local kv head = local q head / (h_local / kv_local)). When the rules forbid it, every
 * rank gets the same error, whose message names the numbers involved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/shard.h"
#include "test_util.h"

#define MAX_TP 16

static int expect_valid(int H, int Hkv, int F, int V, int tp)
{
    if (H % tp != 0) return 0;
    if (tp <= Hkv ? Hkv % tp != 0 : tp % Hkv != 0) return 0;
    return F >= tp && V >= tp;
}

/* a contiguous [start, start+count) per rank must tile [0, n) in rank order */
static int tiles(const int *start, const int *count, int tp, int n, int *max_imbalance)
{
    int *seen = calloc((size_t)n + 1, sizeof(int));
    int ok = 1, lo = count[0], hi = count[0];
    for (int r = 0; r < tp; r++) {
        if (count[r] < 0 || start[r] < 0 || start[r] + count[r] > n) {
            ok = 0;
            continue;
        }
        if (r > 0 && start[r] != start[r - 1] + count[r - 1]) ok = 0;
        for (int i = start[r]; i < start[r] + count[r]; i++) seen[i]++;
        if (count[r] < lo) lo = count[r];
        if (count[r] > hi) hi = count[r];
    }
    for (int i = 0; i < n; i++)
        if (seen[i] != 1) ok = 0;
    free(seen);
    *max_imbalance = hi - lo;
    return ok;
}

static int g_valid_combos, g_invalid_combos;

static void check_combo(int H, int Hkv, int F, int V, int tp)
{
    struct rd_shard s[MAX_TP];
    char err[512];
    int valid = expect_valid(H, Hkv, F, V, tp);
    rd_status st0 = RD_OK;
    char err0[512] = "";
    for (int r = 0; r < tp; r++) {
        err[0] = 0;
        memset(&s[r], 0xff, sizeof s[r]);
        rd_status st = rd_shard_compute(H, Hkv, F, V, tp, r, &s[r], err, sizeof err);
        if (r == 0) {
            st0 = st;
            snprintf(err0, sizeof err0, "%s", err);
        }
        if (valid) {
            CHECK_MSG(st == RD_OK, "H=%d Hkv=%d F=%d V=%d tp=%d r=%d: %s", H, Hkv, F, V, tp, r, err);
        } else {
            /* every rank must see the same error (no rank may go on alone) */
            CHECK_MSG(st == RD_ERR_CONFIG && st == st0 && !strcmp(err, err0),
                      "H=%d Hkv=%d F=%d V=%d tp=%d r=%d: expected the same error on all ranks, "
                      "got %s '%s'", H, Hkv, F, V, tp, r, rd_status_str(st), err);
        }
    }
    if (!valid) {
        g_invalid_combos++;
        char h[16], t[16];
        snprintf(h, sizeof h, "%d", H);
        snprintf(t, sizeof t, "%d", tp);
        if (H % tp != 0)
            CHECK_MSG(strstr(err0, "num_attention_heads") && strstr(err0, h) && strstr(err0, t),
                      "H=%d tp=%d: '%s'", H, tp, err0);
        else if (tp <= Hkv ? Hkv % tp != 0 : tp % Hkv != 0) {
            char k[16];
            snprintf(k, sizeof k, "%d", Hkv);
            CHECK_MSG(strstr(err0, "num_key_value_heads") && strstr(err0, k) && strstr(err0, t),
                      "Hkv=%d tp=%d: '%s'", Hkv, tp, err0);
        } else if (F < tp)
            CHECK_MSG(strstr(err0, "intermediate_size"), "F=%d tp=%d: '%s'", F, tp, err0);
        else
            CHECK_MSG(strstr(err0, "vocab_size"), "V=%d tp=%d: '%s'", V, tp, err0);
        return;
    }
    g_valid_combos++;

    int hs[MAX_TP], hc[MAX_TP], fs[MAX_TP], fc[MAX_TP], vs[MAX_TP], vc[MAX_TP], imb;
    for (int r = 0; r < tp; r++) {
        CHECK(s[r].tp == tp && s[r].rank == r);
        hs[r] = s[r].h0, hc[r] = s[r].h_local;
        fs[r] = s[r].f0, fc[r] = s[r].f_local;
        vs[r] = s[r].v0, vc[r] = s[r].v_local;
        /* q heads: [r*H/tp, (r+1)*H/tp) exactly */
        CHECK_MSG(s[r].h0 == r * (H / tp) && s[r].h_local == H / tp, "H=%d tp=%d r=%d", H, tp, r);
    }
    CHECK_MSG(tiles(hs, hc, tp, H, &imb) && imb == 0, "q heads H=%d tp=%d", H, tp);
    CHECK_MSG(tiles(fs, fc, tp, F, &imb) && imb <= 1, "ffn F=%d tp=%d", F, tp);
    CHECK_MSG(tiles(vs, vc, tp, V, &imb) && imb <= 1, "vocab V=%d tp=%d", V, tp);

    /* kv heads */
    if (tp <= Hkv) {
        int ks[MAX_TP], kc[MAX_TP];
        for (int r = 0; r < tp; r++) ks[r] = s[r].kv0, kc[r] = s[r].kv_local;
        CHECK_MSG(tiles(ks, kc, tp, Hkv, &imb) && imb == 0, "kv split Hkv=%d tp=%d", Hkv, tp);
    } else {
        int owners[64] = {0};
        for (int r = 0; r < tp; r++) {
            CHECK_MSG(s[r].kv_local == 1 && s[r].kv0 >= 0 && s[r].kv0 < Hkv,
                      "kv replicated Hkv=%d tp=%d r=%d: kv0=%d kv_local=%d", Hkv, tp, r, s[r].kv0,
                      s[r].kv_local);
            if (s[r].kv0 >= 0 && s[r].kv0 < Hkv) owners[s[r].kv0]++;
        }
        for (int k = 0; k < Hkv; k++)
            CHECK_MSG(owners[k] == tp / Hkv, "kv head %d owned by %d ranks, want %d (Hkv=%d tp=%d)",
                      k, owners[k], tp / Hkv, Hkv, tp);
    }
    /* each q head's kv head is local to the rank, and the kernel's local GQA rule finds it */
    const int group = H / Hkv;
    for (int r = 0; r < tp; r++) {
        CHECK_MSG(s[r].kv_local >= 1 && s[r].h_local % s[r].kv_local == 0,
                  "H=%d Hkv=%d tp=%d r=%d: h_local %d not a multiple of kv_local %d", H, Hkv, tp,
                  r, s[r].h_local, s[r].kv_local);
        if (s[r].kv_local < 1) continue;
        const int local_group = s[r].h_local / s[r].kv_local;
        for (int i = 0; i < s[r].h_local; i++) {
            int h = s[r].h0 + i, kh = h / group;
            CHECK_MSG(kh >= s[r].kv0 && kh < s[r].kv0 + s[r].kv_local,
                      "H=%d Hkv=%d tp=%d: q head %d needs kv head %d, rank %d owns [%d, %d)", H,
                      Hkv, tp, h, kh, r, s[r].kv0, s[r].kv0 + s[r].kv_local);
            CHECK_MSG(s[r].kv0 + i / local_group == kh,
                      "H=%d Hkv=%d tp=%d r=%d: local q head %d maps to kv %d, want %d", H, Hkv, tp,
                      r, i, s[r].kv0 + i / local_group, kh);
        }
    }
}

static void test_combinations(void)
{
    static const int Hs[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 64};
    static const int Fs[] = {1, 3, 7, 64, 100, 176, 11008, 14336};
    static const int Vs[] = {2, 5, 256, 300, 32000, 32001, 128256};
    for (size_t a = 0; a < sizeof Hs / sizeof *Hs; a++) {
        int H = Hs[a];
        for (int Hkv = 1; Hkv <= H; Hkv++) {
            if (H % Hkv) continue;
            for (size_t b = 0; b < sizeof Fs / sizeof *Fs; b++)
                for (size_t c = 0; c < sizeof Vs / sizeof *Vs; c++)
                    for (int tp = 1; tp <= MAX_TP; tp++) check_combo(H, Hkv, Fs[b], Vs[c], tp);
        }
    }
    printf("shard combinations: %d valid, %d refused\n", g_valid_combos, g_invalid_combos);
    CHECK(g_valid_combos > 1000 && g_invalid_combos > 1000);
}

static void expect_error(int H, int Hkv, int F, int V, int tp, int r, rd_status want,
                         const char *n1, const char *n2, const char *n3)
{
    struct rd_shard s;
    char err[512] = "";
    rd_status st = rd_shard_compute(H, Hkv, F, V, tp, r, &s, err, sizeof err);
    CHECK_MSG(st == want, "H=%d Hkv=%d F=%d V=%d tp=%d r=%d: got %s, want %s", H, Hkv, F, V, tp, r,
              rd_status_str(st), rd_status_str(want));
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) CHECK_MSG(strstr(err, needles[i]) != NULL, "'%s' does not name '%s'", err, needles[i]);
}

static void test_errors(void)
{
    /* tp does not divide the heads: both numbers named */
    expect_error(12, 4, 64, 256, 5, 0, RD_ERR_CONFIG, "12", "5", "num_attention_heads");
    expect_error(6, 6, 64, 256, 4, 3, RD_ERR_CONFIG, "6", "4", "num_attention_heads");
    expect_error(32, 8, 11008, 32000, 3, 1, RD_ERR_CONFIG, "32", "3", NULL);
    /* tp does not fit the kv heads (neither divides nor is a multiple) */
    expect_error(12, 4, 64, 256, 3, 0, RD_ERR_CONFIG, "num_key_value_heads", "4", "3");
    expect_error(24, 4, 64, 256, 6, 5, RD_ERR_CONFIG, "num_key_value_heads", "4", "6");
    expect_error(24, 8, 64, 256, 12, 0, RD_ERR_CONFIG, "num_key_value_heads", "8", "12");
    /* tp larger than the ffn or the vocabulary */
    expect_error(8, 8, 2, 256, 4, 0, RD_ERR_CONFIG, "intermediate_size", "2", "4");
    expect_error(8, 8, 64, 3, 4, 0, RD_ERR_CONFIG, "vocab_size", "3", "4");
    /* heads not a multiple of kv heads */
    expect_error(6, 4, 64, 256, 2, 0, RD_ERR_CONFIG, "num_key_value_heads", "6", "4");
    expect_error(0, 1, 64, 256, 1, 0, RD_ERR_CONFIG, "num_attention_heads", NULL, NULL);
    expect_error(8, 0, 64, 256, 1, 0, RD_ERR_CONFIG, "num_key_value_heads", NULL, NULL);
    /* bad tp / rank */
    expect_error(8, 8, 64, 256, 0, 0, RD_ERR_INVALID_ARG, NULL, NULL, NULL);
    expect_error(8, 8, 64, 256, -2, 0, RD_ERR_INVALID_ARG, NULL, NULL, NULL);
    expect_error(8, 8, 64, 256, 4, 4, RD_ERR_INVALID_ARG, "4", NULL, NULL);
    expect_error(8, 8, 64, 256, 4, -1, RD_ERR_INVALID_ARG, NULL, NULL, NULL);
}

static void test_examples(void)
{
    struct rd_shard s;
    char err[256];
    /* Llama-3-8B on 4 ranks: 32 heads, 8 kv heads, F 14336, V 128256 */
    CHECK(rd_shard_compute(32, 8, 14336, 128256, 4, 2, &s, err, sizeof err) == RD_OK);
    CHECK(s.h0 == 16 && s.h_local == 8 && s.kv0 == 4 && s.kv_local == 2);
    CHECK(s.f0 == 7168 && s.f_local == 3584 && s.v0 == 64128 && s.v_local == 32064);
    /* MQA golden model (6 heads, 1 kv head) on 2 and 3 ranks: the kv head on every rank */
    for (int tp = 2; tp <= 3; tp++)
        for (int r = 0; r < tp; r++) {
            CHECK(rd_shard_compute(6, 1, 256, 300, tp, r, &s, err, sizeof err) == RD_OK);
            CHECK(s.kv0 == 0 && s.kv_local == 1 && s.h_local == 6 / tp && s.h0 == r * 6 / tp);
        }
    /* GQA 8/2 on 8 ranks: kv head r/4, one q head each */
    for (int r = 0; r < 8; r++) {
        CHECK(rd_shard_compute(8, 2, 320, 384, 8, r, &s, err, sizeof err) == RD_OK);
        CHECK(s.kv0 == r / 4 && s.kv_local == 1 && s.h0 == r && s.h_local == 1);
    }
    /* unbalanced vocab: 32001 rows on 4 ranks -> 8000, 8000, 8000, 8001 */
    int total = 0;
    for (int r = 0; r < 4; r++) {
        CHECK(rd_shard_compute(8, 8, 100, 32001, 4, r, &s, err, sizeof err) == RD_OK);
        CHECK(s.v0 == total && (s.v_local == 8000 || s.v_local == 8001));
        CHECK(s.f_local == 25);
        total += s.v_local;
    }
    CHECK(total == 32001);
    /* tp 1: everything */
    CHECK(rd_shard_compute(4, 2, 176, 256, 1, 0, &s, err, sizeof err) == RD_OK);
    CHECK(s.h0 == 0 && s.h_local == 4 && s.kv0 == 0 && s.kv_local == 2 && s.f0 == 0 &&
          s.f_local == 176 && s.v0 == 0 && s.v_local == 256);
}

int main(void)
{
    test_examples();
    test_errors();
    test_combinations();
    return rd_test_finish("test_shard");
}
