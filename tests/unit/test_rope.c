/* Unit test of the rope table builder (runtime/rope.c) and the reference rotation
 * (kernels/cpu/rope_ref.c).
 *
 * Against the Hugging Face oracle in ../shared/golden/rope/rope_cases.json: every inv_freq case
 * (all rope types, dynamic and longrope at several sequence lengths) must give inv_freq and the
 * attention factor within 1e-6 relative, both from a config filled by hand and from the same
 * config parsed as JSON; every rotation case (neox/gptj, full and partial rotary) is compared per
 * head vector with a norm-based relative error. The golden model configs must give the same
 * table in their transformers-5 and hub spellings. Then properties that need no oracle: position
 * 0 is the identity, the norm is kept (times attention_factor), dims past rotary_dim pass
 * through, gptj is neox with the pairs laid out differently, unsupported types are refused.
 * Without ../shared the golden parts are skipped (exit 77) after the properties have run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rope_table.h"
#include "runtime/config.h"
#include "runtime/rope.h"
#include "test_util.h"

#define TOL 1e-6

/* worst errors seen, per rope type (index = enum rd_rope_type) */
static double g_inv_err[RD_ROPE_TYPE_LONGROPE + 1];
static double g_att_err[RD_ROPE_TYPE_LONGROPE + 1];

static double rel_err(double a, double b)
{
    return fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1.0);
}

static int rope_type_from_name(const char *s)
{
    static const char *const names[] = {"default", "linear", "dynamic", "llama3", "yarn", "longrope"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static double num_or(const json_t *obj, const char *key, double def)
{
    const json_t *it = json_object_get(obj, key);
    return json_is_number(it) ? json_number_value(it) : def;
}

static int read_doubles(const json_t *arr, double *dst, int max)
{
    int n = 0;
    size_t i;
    const json_t *it;
    json_array_foreach(arr, i, it)
    {
        if (n < max) dst[n] = json_number_value(it);
        n++;
    }
    return n;
}

/* The case's config dict (hub style: rope_theta + rope_scaling) put into rd_config field by
 * field, the way the config parser is meant to. */
static int config_by_hand(const json_t *c, struct rd_config *cfg)
{
    rd_config_defaults(cfg);
    cfg->hidden_size = (int)num_or(c, "hidden_size", 0);
    cfg->n_heads = (int)num_or(c, "num_attention_heads", 0);
    cfg->n_kv_heads = cfg->n_heads;
    cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    cfg->rotary_dim = cfg->head_dim;
    cfg->max_position_embeddings = (int)num_or(c, "max_position_embeddings", 0);
    cfg->rope.theta = num_or(c, "rope_theta", 10000.0);
    const json_t *sc = json_object_get(c, "rope_scaling");
    if (!json_is_object(sc)) return 0;
    struct rd_rope_config *r = &cfg->rope;
    const json_t *t = json_object_get(sc, "rope_type");
    int type = json_is_string(t) ? rope_type_from_name(json_string_value(t)) : -1;
    if (type < 0) return -1;
    r->type = (enum rd_rope_type)type;
    r->theta = num_or(sc, "rope_theta", r->theta);
    r->factor = num_or(sc, "factor", r->factor);
    r->has_factor = json_is_number(json_object_get(sc, "factor"));
    r->original_max_pos = (int)num_or(sc, "original_max_position_embeddings", 0);
    r->low_freq_factor = num_or(sc, "low_freq_factor", r->low_freq_factor);
    r->high_freq_factor = num_or(sc, "high_freq_factor", r->high_freq_factor);
    r->beta_fast = num_or(sc, "beta_fast", r->beta_fast);
    r->beta_slow = num_or(sc, "beta_slow", r->beta_slow);
    r->mscale = num_or(sc, "mscale", 0);
    r->mscale_all_dim = num_or(sc, "mscale_all_dim", 0);
    const json_t *af = json_object_get(sc, "attention_factor");
    r->has_attention_factor = json_is_number(af);
    if (r->has_attention_factor) r->attention_factor = json_number_value(af);
    const json_t *sf = json_object_get(sc, "short_factor");
    const json_t *lf = json_object_get(sc, "long_factor");
    if (sf) r->n_short = read_doubles(sf, r->short_factor, RD_MAX_ROPE_FACTORS);
    if (lf) r->n_long = read_doubles(lf, r->long_factor, RD_MAX_ROPE_FACTORS);
    return 0;
}

/* The same config as a complete config.json text (the fields a Llama config needs added). */
static int config_by_parse(const json_t *c, struct rd_config *cfg, char *err, int err_len)
{
    json_t *j = json_deep_copy(c);
    if (!json_object_get(j, "num_key_value_heads"))
        json_object_set_new(j, "num_key_value_heads",
                            json_integer((json_int_t)num_or(c, "num_attention_heads", 1)));
    json_object_set_new(j, "intermediate_size", json_integer((json_int_t)(4 * num_or(c, "hidden_size", 1))));
    json_object_set_new(j, "num_hidden_layers", json_integer(1));
    json_object_set_new(j, "vocab_size", json_integer(256));
    json_object_set_new(j, "rms_norm_eps", json_real(1e-6));
    char *txt = rd_test_json_compact(j);
    rd_status st = rd_config_parse(txt, NULL, cfg, err, err_len);
    free(txt);
    json_decref(j);
    return st == RD_OK ? 0 : -1;
}

/* Compares a built table with a golden case and records the worst errors of its type. */
static void check_table(const char *what, int type, const struct rd_rope_table *t, const json_t *gold_inv,
                        double gold_att)
{
    int n = (int)json_array_size(gold_inv);
    CHECK_MSG(t->n_pairs == n, "%s: %d pairs, golden %d", what, t->n_pairs, n);
    double worst = 0;
    int worst_i = -1;
    for (int i = 0; i < n && i < t->n_pairs; i++) {
        double e = rel_err(t->inv_freq[i], json_number_value(json_array_get(gold_inv, i)));
        if (e > worst) worst = e, worst_i = i;
    }
    double ea = rel_err(t->attention_factor, gold_att);
    if (worst > g_inv_err[type]) g_inv_err[type] = worst;
    if (ea > g_att_err[type]) g_att_err[type] = ea;
    CHECK_MSG(worst <= TOL, "%s: inv_freq[%d] relative error %.3g", what, worst_i, worst);
    CHECK_MSG(ea <= TOL, "%s: attention_factor %.9g vs golden %.9g", what, (double)t->attention_factor,
              gold_att);
}

static void test_inv_freq_cases(const json_t *cases)
{
    int idx = 0;
    size_t cs_i;
    const json_t *cs;
    json_array_foreach(cases, cs_i, cs)
    {
        const json_t *c = json_object_get(cs, "config");
        const char *tname = json_string_value(json_object_get(cs, "rope_type"));
        const json_t *sl = json_object_get(cs, "seq_len");
        /* transformers' seq_len=None: dynamic falls back to max_position_embeddings, longrope to
         * the short factors; seq_len 0 does the same here */
        int seq_len = json_is_number(sl) ? (int)json_number_value(sl) : 0;
        const json_t *gold = json_object_get(cs, "inv_freq");
        double gatt = json_number_value(json_object_get(cs, "attention_factor"));
        int type = rope_type_from_name(tname);
        char what[128];
        CHECK_MSG(type >= 0, "case %d: unknown rope type %s", idx, tname);
        if (type < 0) continue;

        struct rd_config cfg;
        struct rd_rope_table t;
        snprintf(what, sizeof what, "case %d %s seq_len=%d (by hand)", idx, tname, seq_len);
        CHECK_MSG(config_by_hand(c, &cfg) == 0, "%s: config", what);
        CHECK_MSG(cfg.head_dim == (int)json_number_value(json_object_get(cs, "head_dim")), "%s", what);
        rd_status st = rd_rope_build(&cfg, seq_len, &t);
        CHECK_MSG(st == RD_OK, "%s: build failed: %s", what, rd_status_str(st));
        if (st == RD_OK) check_table(what, type, &t, gold, gatt);

        char err[512] = "";
        struct rd_config pcfg;
        snprintf(what, sizeof what, "case %d %s seq_len=%d (parsed)", idx, tname, seq_len);
        int ok = config_by_parse(c, &pcfg, err, sizeof err) == 0;
        CHECK_MSG(ok, "%s: rd_config_parse failed: %s", what, err);
        if (ok) {
            CHECK_MSG(pcfg.rope.type == cfg.rope.type && pcfg.rotary_dim == cfg.rotary_dim,
                      "%s: parsed rope type %d rotary_dim %d", what, pcfg.rope.type, pcfg.rotary_dim);
            st = rd_rope_build(&pcfg, seq_len, &t);
            CHECK_MSG(st == RD_OK, "%s: build failed: %s", what, rd_status_str(st));
            if (st == RD_OK) check_table(what, type, &t, gold, gatt);
        }
        idx++;
    }
    printf("inv_freq cases: %d\n", idx);
}

/* Rotations. The golden neox vectors were rotated by transformers in float64 (angles pos *
 * inv_freq in double), the gptj ones through GPT-J's float32 sin/cos table. The reference
 * rotation works as Llama does at run time: an fp32 angle. Its rounding moves the angle by up
 * to pos * inv_freq * 2^-23 (fp32 inv_freq and fp32 product), which at position 4000 is ~5e-4
 * rad, far above 1e-6. So each vector is checked twice:
 *  - strictly (1e-6) against a float64 rotation by the very same fp32 angles: the rotation
 *    itself (pairing, signs, partial dims, rounding of cos/sin) is right;
 *  - against the golden with 1e-6 plus that angle-rounding bound, whose worst share is printed. */
static double max_rot_err_strict, max_rot_err_golden, max_rot_err_golden_small;

static void rotate_double_same_angles(const float *x, double *y, int head_dim, enum rd_rope_style style,
                                      int pos, const float *inv, int n_pairs)
{
    for (int d = 0; d < head_dim; d++) y[d] = x[d];
    for (int i = 0; i < n_pairs; i++) {
        double a = (double)((float)pos * inv[i]);
        int i0 = style == RD_ROPE_GPTJ ? 2 * i : i, i1 = style == RD_ROPE_GPTJ ? 2 * i + 1 : i + n_pairs;
        double x0 = x[i0], x1 = x[i1];
        y[i0] = x0 * cos(a) - x1 * sin(a);
        y[i1] = x1 * cos(a) + x0 * sin(a);
    }
}

static void test_rotation_cases(const json_t *rots)
{
    size_t rc_i;
    const json_t *rc;
    int n_vec = 0;
    json_array_foreach(rots, rc_i, rc)
    {
        const char *style_s = json_string_value(json_object_get(rc, "style"));
        enum rd_rope_style style = !strcmp(style_s, "gptj") ? RD_ROPE_GPTJ : RD_ROPE_NEOX;
        int D = (int)json_number_value(json_object_get(rc, "head_dim"));
        int rot = (int)json_number_value(json_object_get(rc, "rotary_dim"));
        double base = json_number_value(json_object_get(rc, "base"));
        const json_t *positions = json_object_get(rc, "positions");

        struct rd_config cfg;
        rd_config_defaults(&cfg);
        cfg.head_dim = D;
        cfg.rotary_dim = rot;
        cfg.rope.theta = base;
        struct rd_rope_table t;
        CHECK(rd_rope_build(&cfg, 1, &t) == RD_OK);
        float max_inv = 0;
        for (int i = 0; i < t.n_pairs; i++) max_inv = fmaxf(max_inv, t.inv_freq[i]);

        double worst = 0, worst_at[16] = {0};
        const int n_pos = (int)json_array_size(positions) < 16 ? (int)json_array_size(positions) : 16;
        for (int ti = 0; ti < n_pos; ti++) {
            int pos = (int)json_number_value(json_array_get(positions, ti));
            /* |angle error| <= pos*inv*(2^-24 from inv_freq + 2^-24 from the product) */
            double angle_tol = (double)pos * max_inv * ldexp(1.0, -23);
            for (int qk = 0; qk < 2; qk++) {
                const json_t *in = json_array_get(json_object_get(rc, qk ? "k" : "q"), ti);
                const json_t *out =
                    json_array_get(json_object_get(rc, qk ? "k_rot" : "q_rot"), ti);
                for (int h = 0; h < (int)json_array_size(in); h++) {
                    double xin[RD_MAX_ROPE_PAIRS], g[RD_MAX_ROPE_PAIRS], yd[RD_MAX_ROPE_PAIRS];
                    float x[RD_MAX_ROPE_PAIRS], x0[RD_MAX_ROPE_PAIRS];
                    CHECK(read_doubles(json_array_get(in, h), xin, D) == D);
                    CHECK(read_doubles(json_array_get(out, h), g, D) == D);
                    for (int d = 0; d < D; d++) x0[d] = x[d] = (float)xin[d];
                    rd_rope_rotate_ref(x, D, style, pos, t.inv_freq, t.n_pairs, t.attention_factor);
                    rotate_double_same_angles(x0, yd, D, style, pos, t.inv_freq, t.n_pairs);
                    double num = 0, den = 0, nums = 0, dens = 0;
                    for (int d = 0; d < D; d++) {
                        num += (x[d] - g[d]) * (x[d] - g[d]);
                        den += g[d] * g[d];
                        nums += (x[d] - yd[d]) * (x[d] - yd[d]);
                        dens += yd[d] * yd[d];
                    }
                    double eg = sqrt(num / den), es = sqrt(nums / dens);
                    CHECK_MSG(es <= TOL, "%s rot %d pos %d %c head %d: %.3g vs float64 same-angle rotation",
                              style_s, rot, pos, qk ? 'k' : 'q', h, es);
                    CHECK_MSG(eg <= TOL + angle_tol, "%s rot %d pos %d %c head %d: %.3g vs golden (bound %.3g)",
                              style_s, rot, pos, qk ? 'k' : 'q', h, eg, TOL + angle_tol);
                    /* untouched tail */
                    for (int d = rot; d < D; d++)
                        CHECK_MSG(x[d] == x0[d], "%s rot %d: dim %d changed", style_s, rot, d);
                    if (es > max_rot_err_strict) max_rot_err_strict = es;
                    if (eg > max_rot_err_golden) max_rot_err_golden = eg;
                    if (pos <= 7 && eg > max_rot_err_golden_small) max_rot_err_golden_small = eg;
                    if (eg > worst) worst = eg;
                    if (eg > worst_at[ti]) worst_at[ti] = eg;
                    n_vec++;
                }
            }
        }
        printf("rotation %s rotary_dim %d/%d: worst relative error vs golden %.3g; by position:", style_s,
               rot, D, worst);
        for (int ti = 0; ti < n_pos; ti++)
            printf(" %d:%.2g", (int)json_number_value(json_array_get(positions, ti)), worst_at[ti]);
        printf("\n");
    }
    printf("rotations: %d vectors; worst vs float64 same-angle %.3g, vs golden %.3g (positions <= 7: "
           "%.3g)\n",
           n_vec, max_rot_err_strict, max_rot_err_golden, max_rot_err_golden_small);
}

/* The golden models: transformers 5's config.json and the hub-style config.hub.json must give
 * the same table at every sequence length. */
static void test_model_configs(const char *shared)
{
    static const char *const models[] = {"tiny_mha_tied", "tiny_gqa_bf16", "tiny_mqa_headdim_sharded",
                                         "rope_linear",   "rope_dynamic",  "rope_llama3",
                                         "rope_yarn",     "rope_longrope"};
    for (int m = 0; m < (int)(sizeof models / sizeof *models); m++) {
        char p1[4096], p2[4096], err[512] = "";
        snprintf(p1, sizeof p1, "%s/golden/models/%s/config.json", shared, models[m]);
        snprintf(p2, sizeof p2, "%s/golden/models/%s/config.hub.json", shared, models[m]);
        struct rd_config a, b;
        rd_status sa = rd_config_load(p1, &a, err, sizeof err);
        CHECK_MSG(sa == RD_OK, "%s: %s", p1, err);
        rd_status sb = rd_config_load(p2, &b, err, sizeof err);
        CHECK_MSG(sb == RD_OK, "%s: %s", p2, err);
        if (sa != RD_OK || sb != RD_OK) continue;
        CHECK_MSG(a.rope.type == b.rope.type, "%s: rope type %d vs %d", models[m], a.rope.type, b.rope.type);
        const int lens[] = {1, 64, 128, 129, 150, 160, 300, 4096};
        for (int k = 0; k < (int)(sizeof lens / sizeof *lens); k++) {
            struct rd_rope_table ta, tb;
            CHECK(rd_rope_build(&a, lens[k], &ta) == RD_OK);
            CHECK(rd_rope_build(&b, lens[k], &tb) == RD_OK);
            CHECK_MSG(ta.n_pairs == tb.n_pairs && ta.attention_factor == tb.attention_factor &&
                          !memcmp(ta.inv_freq, tb.inv_freq, sizeof(float) * (size_t)ta.n_pairs),
                      "%s: config.json and config.hub.json give different tables at seq_len %d",
                      models[m], lens[k]);
        }
        /* attention factors worked out by hand from the README's table */
        struct rd_rope_table t;
        CHECK(rd_rope_build(&a, 1, &t) == RD_OK);
        double want = 1.0;
        if (!strcmp(models[m], "rope_yarn")) want = 0.1 * log(4.0) + 1.0;
        if (!strcmp(models[m], "rope_longrope")) want = sqrt(1.0 + log(512.0 / 128.0) / log(128.0));
        CHECK_MSG(rel_err(t.attention_factor, want) <= TOL, "%s: attention factor %.9g, want %.9g",
                  models[m], (double)t.attention_factor, want);
    }
}

/* ---- properties that need no oracle ---- */

static void fill(float *x, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) / 16777216.0 * 2.0 - 1.0);
    }
}

static double norm(const float *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

static void test_properties(void)
{
    struct rd_config cfg;
    struct rd_rope_table t;
    rd_config_defaults(&cfg);
    cfg.head_dim = 12;
    cfg.rotary_dim = 8;
    cfg.rope.theta = 10000.0;
    CHECK(rd_rope_build(&cfg, 1, &t) == RD_OK);
    /* hand-computed: 10000^(-2i/8) = 1, 0.1, 0.01, 0.001 */
    CHECK(t.n_pairs == 4 && t.attention_factor == 1.0f);
    const double want[4] = {1.0, 0.1, 0.01, 0.001};
    for (int i = 0; i < 4; i++) CHECK_MSG(rel_err(t.inv_freq[i], want[i]) <= 1e-7, "inv_freq[%d]", i);

    for (int style = 0; style < 2; style++) {
        float x[12], y[12];
        fill(x, 12, 7u + (unsigned)style);
        /* position 0 is the identity */
        memcpy(y, x, sizeof x);
        rd_rope_rotate_ref(y, 12, (enum rd_rope_style)style, 0, t.inv_freq, t.n_pairs, 1.0f);
        CHECK_MSG(!memcmp(x, y, sizeof x), "style %d: position 0 is not the identity", style);
        /* the norm is kept, the tail untouched; with attention_factor a the rotated part scales by a */
        for (int pos = 1; pos < 5000; pos += 997) {
            memcpy(y, x, sizeof x);
            rd_rope_rotate_ref(y, 12, (enum rd_rope_style)style, pos, t.inv_freq, t.n_pairs, 1.0f);
            CHECK_MSG(fabs(norm(y, 8) / norm(x, 8) - 1.0) < 1e-6, "style %d pos %d: norm changed", style, pos);
            CHECK(!memcmp(x + 8, y + 8, 4 * sizeof(float)));
            memcpy(y, x, sizeof x);
            rd_rope_rotate_ref(y, 12, (enum rd_rope_style)style, pos, t.inv_freq, t.n_pairs, 1.25f);
            CHECK_MSG(fabs(norm(y, 8) / norm(x, 8) - 1.25) < 2e-6, "style %d pos %d: scaled norm", style, pos);
            CHECK(!memcmp(x + 8, y + 8, 4 * sizeof(float)));
        }
    }
    /* hand-computed: e_0 at position 1, pair 0 turns by 1 rad: neox moves it into dim 4, gptj into dim 1 */
    {
        float y[12] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        rd_rope_rotate_ref(y, 12, RD_ROPE_NEOX, 1, t.inv_freq, t.n_pairs, 1.0f);
        CHECK(fabs(y[0] - cos(1.0)) < 1e-7 && fabs(y[4] - sin(1.0)) < 1e-7 && y[1] == 0 && y[5] == 0);
        float z[12] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        rd_rope_rotate_ref(z, 12, RD_ROPE_GPTJ, 1, t.inv_freq, t.n_pairs, 1.0f);
        CHECK(fabs(z[0] - cos(1.0)) < 1e-7 && fabs(z[1] - sin(1.0)) < 1e-7 && z[4] == 0);
        /* rotations compose: pos 3 after pos 4 equals pos 7 (up to rounding) */
        float a[12], b[12];
        fill(a, 12, 99u);
        memcpy(b, a, sizeof a);
        rd_rope_rotate_ref(a, 12, RD_ROPE_NEOX, 3, t.inv_freq, t.n_pairs, 1.0f);
        rd_rope_rotate_ref(a, 12, RD_ROPE_NEOX, 4, t.inv_freq, t.n_pairs, 1.0f);
        rd_rope_rotate_ref(b, 12, RD_ROPE_NEOX, 7, t.inv_freq, t.n_pairs, 1.0f);
        double d = 0;
        for (int i = 0; i < 12; i++) d = fmax(d, fabs(a[i] - b[i]));
        CHECK_MSG(d < 1e-6, "composition: %.3g", d);
    }
    /* gptj is neox with the pairs interleaved */
    {
        float a[12], b[12];
        fill(a, 12, 5u);
        for (int i = 0; i < 4; i++) b[2 * i] = a[i], b[2 * i + 1] = a[i + 4];
        for (int d = 8; d < 12; d++) b[d] = a[d];
        rd_rope_rotate_ref(a, 12, RD_ROPE_NEOX, 33, t.inv_freq, t.n_pairs, 1.0f);
        rd_rope_rotate_ref(b, 12, RD_ROPE_GPTJ, 33, t.inv_freq, t.n_pairs, 1.0f);
        for (int i = 0; i < 4; i++) CHECK(a[i] == b[2 * i] && a[i + 4] == b[2 * i + 1]);
    }

    /* which types depend on the sequence length */
    for (int ty = RD_ROPE_TYPE_DEFAULT; ty <= RD_ROPE_TYPE_LONGROPE; ty++) {
        cfg.rope.type = (enum rd_rope_type)ty;
        CHECK(rd_rope_depends_on_len(&cfg) == (ty == RD_ROPE_TYPE_DYNAMIC || ty == RD_ROPE_TYPE_LONGROPE));
    }

    /* linear: exactly the default table divided by factor (hand: /4 is exact in binary) */
    struct rd_rope_table t0, t1;
    rd_config_defaults(&cfg);
    cfg.head_dim = cfg.rotary_dim = 64;
    cfg.max_position_embeddings = 128;
    CHECK(rd_rope_build(&cfg, 1, &t0) == RD_OK);
    cfg.rope.type = RD_ROPE_TYPE_LINEAR;
    cfg.rope.factor = 4.0;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_OK);
    for (int i = 0; i < 32; i++) CHECK(t1.inv_freq[i] == t0.inv_freq[i] / 4.0f);

    /* dynamic: the default table up to max_position_embeddings, then a larger base (lower freqs) */
    cfg.rope.type = RD_ROPE_TYPE_DYNAMIC;
    cfg.rope.factor = 2.0;
    for (int len = 0; len <= 128; len += 64) {
        CHECK(rd_rope_build(&cfg, len, &t1) == RD_OK);
        CHECK_MSG(!memcmp(t0.inv_freq, t1.inv_freq, sizeof(float) * 32), "dynamic at len %d", len);
    }
    CHECK(rd_rope_build(&cfg, 129, &t1) == RD_OK);
    CHECK(t1.inv_freq[0] == 1.0f && t1.inv_freq[31] < t0.inv_freq[31]);
    /* hand: len 256 -> base 10000 * (2*256/128 - 1)^(64/62) = 10000 * 3^(32/31) */
    CHECK(rd_rope_build(&cfg, 256, &t1) == RD_OK);
    CHECK(rel_err(t1.inv_freq[1], pow(10000.0 * pow(3.0, 64.0 / 62.0), -2.0 / 64.0)) <= 1e-7);

    /* longrope: short factors up to original_max_position_embeddings, long ones past it */
    rd_config_defaults(&cfg);
    cfg.head_dim = cfg.rotary_dim = 4;
    cfg.max_position_embeddings = 1024;
    cfg.rope.type = RD_ROPE_TYPE_LONGROPE;
    cfg.rope.original_max_pos = 256;
    cfg.rope.n_short = cfg.rope.n_long = 2;
    cfg.rope.short_factor[0] = 1.0, cfg.rope.short_factor[1] = 2.0;
    cfg.rope.long_factor[0] = 4.0, cfg.rope.long_factor[1] = 8.0;
    CHECK(rd_rope_build(&cfg, 256, &t1) == RD_OK);
    CHECK(t1.inv_freq[0] == 1.0f && t1.inv_freq[1] == 0.005f);
    CHECK(rel_err(t1.attention_factor, sqrt(1.0 + log(4.0) / log(256.0))) <= 1e-7);
    CHECK(rd_rope_build(&cfg, 257, &t1) == RD_OK);
    CHECK(t1.inv_freq[0] == 0.25f && t1.inv_freq[1] == 0.00125f);
    cfg.rope.has_attention_factor = true;
    cfg.rope.attention_factor = 1.5;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_OK && t1.attention_factor == 1.5f);
    cfg.rope.n_long = 3;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_ERR_INVALID_ARG);

    /* yarn attention factor: given > mscale pair > 0.1 ln(factor) + 1 */
    rd_config_defaults(&cfg);
    cfg.head_dim = cfg.rotary_dim = 64;
    cfg.max_position_embeddings = 4096;
    cfg.rope.type = RD_ROPE_TYPE_YARN;
    cfg.rope.factor = 16.0;
    cfg.rope.original_max_pos = 256;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_OK);
    CHECK(rel_err(t1.attention_factor, 0.1 * log(16.0) + 1.0) <= 1e-7);
    cfg.rope.mscale = 1.0;
    cfg.rope.mscale_all_dim = 0.5;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_OK);
    CHECK(rel_err(t1.attention_factor, (0.1 * log(16.0) + 1.0) / (0.05 * log(16.0) + 1.0)) <= 1e-7);
    /* the fastest pairs keep their frequency, the slowest are divided by factor */
    CHECK(t1.inv_freq[0] == 1.0f);
    CHECK(rel_err(t1.inv_freq[31], pow(10000.0, -62.0 / 64.0) / 16.0) <= 1e-7);

    /* without truncation the ramp bounds stay fractional; every pair still lies between its
     * interpolated (f / factor) and extrapolated (f) frequency */
    cfg.rope.truncate = false;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_OK);
    for (int i = 0; i < 32; i++) {
        double f = pow(10000.0, -2.0 * i / 64.0);
        CHECK_MSG(t1.inv_freq[i] <= (float)f && t1.inv_freq[i] >= (float)(f / 16.0), "yarn pair %d", i);
    }

    /* refused */
    cfg.rope.type = (enum rd_rope_type)42;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_ERR_UNSUPPORTED);
    cfg.rope.type = RD_ROPE_TYPE_DEFAULT;
    cfg.rotary_dim = 7;
    CHECK(rd_rope_build(&cfg, 1, &t1) == RD_ERR_INVALID_ARG);
}

int main(void)
{
    test_properties();

    const char *shared = rd_test_shared_dir();
    if (!shared) {
        rd_test_finish("test_rope (properties only)");
        return rd_test_failures ? 1 : RD_TEST_SKIP;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/rope/rope_cases.json", shared);
    json_t *root = rd_test_load_json(path);
    CHECK_MSG(root != NULL, "cannot read %s", path);
    if (root) {
        test_inv_freq_cases(json_object_get(root, "inv_freq"));
        test_rotation_cases(json_object_get(root, "rotations"));
        json_decref(root);
    }
    test_model_configs(shared);

    printf("worst relative errors vs transformers, per rope type (inv_freq / attention_factor):\n");
    for (int ty = RD_ROPE_TYPE_DEFAULT; ty <= RD_ROPE_TYPE_LONGROPE; ty++)
        printf("  %-8s %.3g / %.3g\n", rd_rope_type_name((enum rd_rope_type)ty), g_inv_err[ty], g_att_err[ty]);
    return rd_test_finish("test_rope");
}
