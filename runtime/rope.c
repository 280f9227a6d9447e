/* Builds the rotation table (inverse frequency per rotated pair, and the attention factor) from
 * the config, for every rope type Hugging Face transformers knows for Llama models: default,
 * linear, dynamic NTK, llama3, YaRN and LongRoPE. Each builder follows the formula of
 * transformers' rope initialisation functions (modeling_rope_utils.py, v5), with "dim" being the
 * rotary dim (head_dim * partial_rotary_factor). transformers computes in float32; we compute
 * in double and round once to float, which lands within an ulp or two of its results. The
 * table is the only place rope types exist: kernels just rotate with it. */
#include "runtime/rope.h"

#include <math.h>

#include "common/log.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* base^(-2i/dim): the unscaled inverse frequency of pair i */
static double plain_inv_freq(double base, int i, int dim)
{
    return 1.0 / pow(base, (double)(2 * i) / (double)dim);
}

/* original_max_position_embeddings as transformers' standardisation fills it: the given value,
 * else max_position_embeddings */
static int original_max_pos(const struct rd_config *cfg)
{
    return cfg->rope.original_max_pos > 0 ? cfg->rope.original_max_pos
                                          : cfg->max_position_embeddings;
}

/* transformers' dynamic NTK: the base grows with the sequence once it passes
 * max_position_embeddings (not original_max_position_embeddings):
 *   base' = base * ((factor * L / max_pos) - (factor - 1)) ^ (dim / (dim - 2)),  L = max(seq_len, max_pos)
 * so up to max_pos the table equals the default one. */
static void build_dynamic(const struct rd_config *cfg, int seq_len, double *inv, int n)
{
    const int dim = cfg->rotary_dim, max_pos = cfg->max_position_embeddings;
    const double factor = cfg->rope.factor;
    const double len = (double)(seq_len > max_pos ? seq_len : max_pos);
    const double base = cfg->rope.theta *
                        pow(factor * len / (double)max_pos - (factor - 1.0),
                            (double)dim / (double)(dim - 2));
    for (int i = 0; i < n; i++) inv[i] = plain_inv_freq(base, i, dim);
}

/* Llama 3.1: long wavelengths are divided by factor, short ones kept, the band between
 * interpolated smoothly. Wavelength thresholds come from the original context length. */
static void build_llama3(const struct rd_config *cfg, double *inv, int n)
{
    const struct rd_rope_config *r = &cfg->rope;
    const double old_len = (double)original_max_pos(cfg);
    const double low_wavelen = old_len / r->low_freq_factor;
    const double high_wavelen = old_len / r->high_freq_factor;
    for (int i = 0; i < n; i++) {
        const double f = plain_inv_freq(r->theta, i, cfg->rotary_dim);
        const double wavelen = 2.0 * M_PI / f;
        if (wavelen < high_wavelen) {
            inv[i] = f;
        } else if (wavelen > low_wavelen) {
            inv[i] = f / r->factor;
        } else {
            /* only reached with low < high, except wavelen exactly on an equal pair of bounds */
            const double span = r->high_freq_factor - r->low_freq_factor;
            const double smooth = span > 0 ? (old_len / wavelen - r->low_freq_factor) / span : 1.0;
            inv[i] = (1.0 - smooth) * f / r->factor + smooth * f;
        }
    }
}

/* YaRN's mscale: 0.1 * m * ln(scale) + 1 for scale > 1 */
static double yarn_get_mscale(double scale, double m)
{
    return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

/* the (fractional) pair index where a wavelength makes num_rotations turns within max_pos */
static double yarn_correction_dim(double num_rotations, int dim, double base, double max_pos)
{
    return ((double)dim * log(max_pos / (num_rotations * 2.0 * M_PI))) / (2.0 * log(base));
}

/* YaRN: pairs below `low` keep their frequency (extrapolation), pairs above `high` are
 * interpolated (divided by factor), with a linear ramp between; attention_factor scales cos/sin. */
static void build_yarn(const struct rd_config *cfg, double *inv, int n, double *attn)
{
    const struct rd_rope_config *r = &cfg->rope;
    const int dim = cfg->rotary_dim;
    const double base = r->theta, orig = (double)original_max_pos(cfg);
    /* transformers: a missing factor means max_position_embeddings / original */
    const double factor = r->factor > 0 ? r->factor : (double)cfg->max_position_embeddings / orig;

    if (r->has_attention_factor)
        *attn = r->attention_factor;
    else if (r->mscale != 0 && r->mscale_all_dim != 0)
        *attn = yarn_get_mscale(factor, r->mscale) / yarn_get_mscale(factor, r->mscale_all_dim);
    else
        *attn = yarn_get_mscale(factor, 1.0);

    /* transformers: `beta_fast or 32`, `beta_slow or 1` (0 counts as not given) */
    const double beta_fast = r->beta_fast != 0 ? r->beta_fast : 32.0;
    const double beta_slow = r->beta_slow != 0 ? r->beta_slow : 1.0;
    double low = yarn_correction_dim(beta_fast, dim, base, orig);
    double high = yarn_correction_dim(beta_slow, dim, base, orig);
    if (r->truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > dim - 1) high = dim - 1;
    if (low == high) high += 0.001; /* transformers' guard against a zero-width ramp */

    for (int i = 0; i < n; i++) {
        const double pos_freq = pow(base, (double)(2 * i) / (double)dim);
        const double extrap = 1.0 / pos_freq, interp = 1.0 / (factor * pos_freq);
        double ramp = ((double)i - low) / (high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        const double extrap_weight = 1.0 - ramp;
        inv[i] = interp * (1.0 - extrap_weight) + extrap * extrap_weight;
    }
}

/* LongRoPE (Phi-3): per-pair divisors, the long set once the sequence passes the original
 * context length. The attention factor follows from max_position_embeddings / original unless
 * the config gives a factor or the attention factor itself. */
static void build_longrope(const struct rd_config *cfg, int seq_len, double *inv, int n, double *attn)
{
    const struct rd_rope_config *r = &cfg->rope;
    const int orig = original_max_pos(cfg);
    /* Phi-3 style configs give no factor: it follows from the two context lengths */
    const double factor = (r->has_factor && r->factor > 0)
                              ? r->factor
                              : (double)cfg->max_position_embeddings / (double)orig;
    if (r->has_attention_factor)
        *attn = r->attention_factor;
    else if (factor <= 1.0)
        *attn = 1.0;
    else
        *attn = sqrt(1.0 + log(factor) / log((double)orig));

    const double *ext = seq_len > orig ? r->long_factor : r->short_factor;
    for (int i = 0; i < n; i++) {
        /* transformers holds the factor lists as float32 tensors: round them the same way */
        const double e = (double)(float)ext[i];
        inv[i] = 1.0 / (e * pow(r->theta, (double)(2 * i) / (double)cfg->rotary_dim));
    }
}

rd_status rd_rope_build(const struct rd_config *cfg, int seq_len, struct rd_rope_table *table)
{
    RD_REQUIRE(cfg && table, RD_ERR_INVALID_ARG, "cfg and table are required");
    const struct rd_rope_config *r = &cfg->rope;
    const int dim = cfg->rotary_dim, n = dim / 2;
    RD_REQUIRE(dim > 0 && dim % 2 == 0 && n <= RD_MAX_ROPE_PAIRS, RD_ERR_INVALID_ARG,
               "rotary_dim must be even, positive and at most 2*RD_MAX_ROPE_PAIRS");
    RD_REQUIRE(r->theta > 0, RD_ERR_INVALID_ARG, "rope_theta must be positive");

    double inv[RD_MAX_ROPE_PAIRS];
    double attn = 1.0;
    switch (r->type) {
    case RD_ROPE_TYPE_DEFAULT:
        for (int i = 0; i < n; i++) inv[i] = plain_inv_freq(r->theta, i, dim);
        break;
    case RD_ROPE_TYPE_LINEAR:
        RD_REQUIRE(r->factor > 0, RD_ERR_INVALID_ARG, "linear rope needs factor > 0");
        for (int i = 0; i < n; i++) inv[i] = plain_inv_freq(r->theta, i, dim) / r->factor;
        break;
    case RD_ROPE_TYPE_DYNAMIC:
        RD_REQUIRE(r->factor > 0, RD_ERR_INVALID_ARG, "dynamic rope needs factor > 0");
        RD_REQUIRE(dim > 2, RD_ERR_INVALID_ARG, "dynamic rope needs rotary_dim > 2");
        RD_REQUIRE(cfg->max_position_embeddings > 0, RD_ERR_INVALID_ARG,
                   "dynamic rope needs max_position_embeddings > 0");
        build_dynamic(cfg, seq_len, inv, n);
        break;
    case RD_ROPE_TYPE_LLAMA3:
        RD_REQUIRE(r->factor > 0 && r->low_freq_factor > 0 && r->high_freq_factor >= r->low_freq_factor,
                   RD_ERR_INVALID_ARG,
                   "llama3 rope needs factor > 0 and high_freq_factor >= low_freq_factor > 0");
        RD_REQUIRE(original_max_pos(cfg) > 0, RD_ERR_INVALID_ARG,
                   "llama3 rope needs original_max_position_embeddings");
        build_llama3(cfg, inv, n);
        break;
    case RD_ROPE_TYPE_YARN:
        RD_REQUIRE(original_max_pos(cfg) > 0, RD_ERR_INVALID_ARG,
                   "yarn rope needs original_max_position_embeddings");
        build_yarn(cfg, inv, n, &attn);
        break;
    case RD_ROPE_TYPE_LONGROPE:
        RD_REQUIRE(r->n_short == n && r->n_long == n, RD_ERR_INVALID_ARG,
                   "longrope short_factor/long_factor must have rotary_dim/2 entries");
        RD_REQUIRE(original_max_pos(cfg) > 1, RD_ERR_INVALID_ARG,
                   "longrope needs original_max_position_embeddings > 1");
        build_longrope(cfg, seq_len, inv, n, &attn);
        break;
    default:
        RD_LOG_ERROR("rope type %d is not supported", (int)r->type);
        return RD_ERR_UNSUPPORTED;
    }

    table->n_pairs = n;
    table->attention_factor = (float)attn;
    for (int i = 0; i < n; i++) table->inv_freq[i] = (float)inv[i];
    if (cfg->rope_freq_dtype != RD_DTYPE_F32) {
        /* as transformers runs a half-precision checkpoint: inv_freq is a model buffer */
        uint16_t h;
        for (int i = 0; i < n; i++) {
            rd_convert_from_f32(&h, &table->inv_freq[i], cfg->rope_freq_dtype, 1);
            rd_convert_to_f32(&table->inv_freq[i], &h, cfg->rope_freq_dtype, 1);
        }
    }
    return RD_OK;
}

int rd_rope_depends_on_len(const struct rd_config *cfg)
{
    return cfg && (cfg->rope.type == RD_ROPE_TYPE_DYNAMIC || cfg->rope.type == RD_ROPE_TYPE_LONGROPE);
}
