/* Attention sinks (StreamingLLM) at the op level: the cpu rope_attention op, driven one token
 * at a time through a window of W cache entries with S sinks, against a naive reference written
 * here: a list of the kept (unrotated) keys and values — the first S tokens and the last W - S —
 * whose positions are their places in that list, rotated afresh at every step.
 *
 * Checks every step's output, that the cache holds exactly the kept tokens' raw keys, and that
 * with W >= the sequence length the output equals plain attention (keys rotated once). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "test_util.h"

#define NH 4
#define NKV 2
#define DH 8
#define STEPS 40

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

/* independent rotation, straight from the formula in rope_table.h */
static void rotate(double *x, int pos, const float *inv_freq, int rot, enum rd_rope_style style)
{
    for (int i = 0; i < rot / 2; i++) {
        float ang = (float)pos * inv_freq[i];
        double c = cos((double)ang), s = sin((double)ang);
        int a = style == RD_ROPE_NEOX ? i : 2 * i, b = style == RD_ROPE_NEOX ? i + rot / 2 : 2 * i + 1;
        double x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x1 * c + x0 * s;
    }
}

/* naive: attention of q (raw, at position qpos) over n kept entries at positions 0..n-1 */
static void naive_attend(const float *q_raw, float (*keys)[NKV][DH], float (*vals)[NKV][DH], int n,
                         const float *inv_freq, int rot, enum rd_rope_style style, double *out)
{
    for (int h = 0; h < NH; h++) {
        int kh = h / (NH / NKV);
        double q[DH], sc[STEPS];
        for (int d = 0; d < DH; d++) q[d] = q_raw[h * DH + d];
        rotate(q, n - 1, inv_freq, rot, style);
        double mx = -1e300;
        for (int j = 0; j < n; j++) {
            double k[DH];
            for (int d = 0; d < DH; d++) k[d] = keys[j][kh][d];
            rotate(k, j, inv_freq, rot, style);
            double s = 0;
            for (int d = 0; d < DH; d++) s += q[d] * k[d];
            sc[j] = s / sqrt((double)DH);
            if (sc[j] > mx) mx = sc[j];
        }
        double sum = 0;
        for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
        for (int d = 0; d < DH; d++) {
            double acc = 0;
            for (int j = 0; j < n; j++) acc += sc[j] / sum * vals[j][kh][d];
            out[h * DH + d] = acc;
        }
    }
}

static void run_case(int S, int W, enum rd_rope_style style, int rot)
{
    struct rd_backend *be;
    struct rd_backend_opts o = {.dtype = RD_DTYPE_F32, .device = -1};
    if (rd_backend_cpu_create(&o, &be) != RD_OK) {
        CHECK(0);
        return;
    }
    const int B = 4, max_blocks = (W + B - 1) / B, R = W - S;
    float inv_freq[DH / 2];
    for (int i = 0; i < rot / 2; i++) inv_freq[i] = (float)(1.0 / pow(10000.0, 2.0 * i / rot));
    float *kc = calloc((size_t)max_blocks * B * NKV * DH, sizeof(float));
    float *vc = calloc((size_t)max_blocks * B * NKV * DH, sizeof(float));
    int32_t table[16];
    for (int b = 0; b < max_blocks; b++) table[b] = max_blocks - 1 - b; /* reversed blocks */
    static float raw_k[STEPS][NKV][DH], raw_v[STEPS][NKV][DH];
    static float kept_k[STEPS][NKV][DH], kept_v[STEPS][NKV][DH];
    uint64_t seed = 1234 + (uint64_t)S * 31 + (uint64_t)W;
    double worst = 0;
    for (int i = 0; i < STEPS; i++) {
        float qkv[(NH + 2 * NKV) * DH], out[NH * DH];
        for (int x = 0; x < (NH + 2 * NKV) * DH; x++) qkv[x] = (float)urand(&seed);
        memcpy(raw_k[i], qkv + NH * DH, sizeof raw_k[i]);
        memcpy(raw_v[i], qkv + (NH + NKV) * DH, sizeof raw_v[i]);
        int32_t slot = i < W ? i : S + (i - S) % R;
        int32_t n_ctx = i < W ? i + 1 : W, pos = n_ctx - 1, seq = 0;
        struct rd_attn_params p = {
            .T = 1, .H = NH, .Hkv = NKV, .Dh = DH, .rotary_dim = rot, .style = style,
            .inv_freq_d = inv_freq, .attention_factor = 1.0f, .scale = (float)(1 / sqrt((double)DH)),
            .qkv_d = qkv, .out_d = out, .pos_d = &pos, .seq_d = &seq, .slot_d = &slot,
            .n_ctx_d = &n_ctx, .block_table_d = table, .max_blocks = max_blocks, .block_size = B,
            .max_ctx = W, .k_cache_d = kc, .v_cache_d = vc, .sink_tokens = S, .window = W};
        CHECK(be->ops->rope_attention(be, &p) == RD_OK);
        /* naive kept list: sinks, then the most recent tokens, oldest first */
        int n = 0;
        int first_recent = i + 1 - R > S ? i + 1 - R : S;
        for (int j = 0; j <= i; j++) {
            if (j >= S && j < first_recent) continue;
            memcpy(kept_k[n], raw_k[j], sizeof kept_k[n]);
            memcpy(kept_v[n], raw_v[j], sizeof kept_v[n]);
            n++;
        }
        CHECK(n == n_ctx);
        double ref[NH * DH];
        naive_attend(qkv, kept_k, kept_v, n, inv_freq, rot, style, ref);
        double num = 0, den = 0;
        for (int x = 0; x < NH * DH; x++) {
            num += (out[x] - ref[x]) * (out[x] - ref[x]);
            den += ref[x] * ref[x];
        }
        double e = sqrt(num / den);
        if (e > worst) worst = e;
        CHECK_MSG(e <= 1e-5, "S=%d W=%d step %d: error %.3e", S, W, i, e);
        /* the cache holds exactly the kept tokens' raw keys, each at its entry */
        for (int j = 0; j <= i; j++) {
            bool kept = j < S || j >= first_recent;
            if (!kept) continue;
            int e_slot = j < S ? j : S + (j - S) % R;
            const float *c = kc + ((size_t)table[e_slot / B] * B + e_slot % B) * NKV * DH;
            CHECK_MSG(!memcmp(c, raw_k[j], sizeof raw_k[j]), "S=%d W=%d step %d: entry %d lacks token %d's key",
                      S, W, i, e_slot, j);
        }
    }
    printf("sinks S=%d W=%-3d %s rot=%d: %d steps, largest error %.2e\n", S, W,
           style == RD_ROPE_NEOX ? "neox" : "gptj", rot, STEPS, worst);
    free(kc);
    free(vc);
    rd_backend_free(be);
}

/* with W >= the sequence, windowed attention equals plain attention */
static void window_equals_plain(void)
{
    struct rd_backend *be;
    struct rd_backend_opts o = {.dtype = RD_DTYPE_F32, .device = -1};
    CHECK(rd_backend_cpu_create(&o, &be) == RD_OK);
    const int B = 4, N = 12;
    float inv_freq[DH / 2];
    for (int i = 0; i < DH / 2; i++) inv_freq[i] = (float)(1.0 / pow(10000.0, 2.0 * i / DH));
    float *kc[2], *vc[2];
    for (int m = 0; m < 2; m++) {
        kc[m] = calloc(64 * NKV * DH, 4);
        vc[m] = calloc(64 * NKV * DH, 4);
    }
    int32_t table[16];
    for (int b = 0; b < 16; b++) table[b] = b;
    uint64_t seed = 99;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        float qkv[(NH + 2 * NKV) * DH], out[2][NH * DH];
        for (int x = 0; x < (NH + 2 * NKV) * DH; x++) qkv[x] = (float)urand(&seed);
        int32_t slot = i, n_ctx = i + 1, pos = i, seq = 0;
        for (int m = 0; m < 2; m++) {
            struct rd_attn_params p = {
                .T = 1, .H = NH, .Hkv = NKV, .Dh = DH, .rotary_dim = DH, .style = RD_ROPE_NEOX,
                .inv_freq_d = inv_freq, .attention_factor = 1.0f,
                .scale = (float)(1 / sqrt((double)DH)), .qkv_d = qkv, .out_d = out[m],
                .pos_d = &pos, .seq_d = &seq, .slot_d = &slot, .n_ctx_d = &n_ctx,
                .block_table_d = table, .max_blocks = 16, .block_size = B, .max_ctx = 64,
                .k_cache_d = kc[m], .v_cache_d = vc[m], .sink_tokens = m ? 4 : 0,
                .window = m ? 32 : 0};
            CHECK(be->ops->rope_attention(be, &p) == RD_OK);
        }
        double e = rd_test_rel_l2f(out[1], out[0], NH * DH);
        if (e > worst) worst = e;
    }
    printf("window >= length vs plain: largest error %.2e\n", worst);
    CHECK(worst <= 1e-6);
    for (int m = 0; m < 2; m++) {
        free(kc[m]);
        free(vc[m]);
    }
    rd_backend_free(be);
}

int main(void)
{
    run_case(2, 6, RD_ROPE_NEOX, DH);
    run_case(4, 12, RD_ROPE_GPTJ, DH);
    run_case(1, 5, RD_ROPE_NEOX, DH / 2); /* partial rotary */
    run_case(0, 7, RD_ROPE_NEOX, DH);     /* a plain sliding window, no sinks */
    window_equals_plain();
    return rd_test_finish("attention sinks");
}
