/* The reference rotation: rotates one head vector with the rope table, the way transformers
 * does it in float32 (see kernels/rope_table.h for the picture of the two styles). The angle
 * is the fp32 product (float)pos * inv_freq[i]; its cos and sin are taken in double and
 * rounded to float (a correctly rounded fp32 cos/sin), then scaled by attention_factor; the
 * rotation itself is plain fp32 arithmetic. The cuda kernel is judged against this. */
#include <math.h>

#include "kernels/rope_table.h"

void rd_rope_rotate_ref(float *x, int head_dim, enum rd_rope_style style, int pos,
                        const float *inv_freq, int n_pairs, float attention_factor)
{
    (void)head_dim; /* dims from 2*n_pairs to head_dim pass through untouched */
    const float p = (float)pos;
    for (int i = 0; i < n_pairs; i++) {
        const float angle = p * inv_freq[i];
        const float c = (float)cos((double)angle) * attention_factor;
        const float s = (float)sin((double)angle) * attention_factor;
        /* neox pairs x[i] with x[i + n_pairs] (rotate_half); gptj pairs adjacent x[2i], x[2i+1] */
        float *a = style == RD_ROPE_GPTJ ? &x[2 * i] : &x[i];
        float *b = style == RD_ROPE_GPTJ ? &x[2 * i + 1] : &x[i + n_pairs];
        const float x0 = *a, x1 = *b;
        *a = x0 * c - x1 * s;
        *b = x1 * c + x0 * s;
    }
}
