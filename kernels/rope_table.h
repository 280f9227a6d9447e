/* The rotation table as kernels receive it, and the reference rotation.
 *
 * The runtime builds the table from the config (runtime/rope.c); kernels only rotate with it,
 * so a new rope scaling type needs no kernel change. For rotated pair i
 * (0 <= i < rotary_dim/2) at position p:
 *
 *   angle = (float)p * inv_freq[i]            (an fp32 product, as transformers computes it)
 *   c = cos(angle) * attention_factor,  s = sin(angle) * attention_factor
 *
 * Styles (ggml's picture, rotary_dim = 8 of head_dim 12 here):
 *   neox [ccccssss....]  pair i is (x[i], x[i + rotary_dim/2])   -- Llama / HF rotate_half
 *   gptj [cscscscs....]  pair i is (x[2i], x[2i+1])              -- GPT-J, Meta's original order
 * Dims past rotary_dim pass through untouched (partial rotary). */
#ifndef RD_ROPE_TABLE_H
#define RD_ROPE_TABLE_H

#define RD_MAX_ROPE_PAIRS 1024

enum rd_rope_style { RD_ROPE_NEOX = 0, RD_ROPE_GPTJ = 1 };

struct rd_rope_table {
    int n_pairs;            /* rotary_dim / 2 */
    float attention_factor; /* multiplies cos and sin */
    float inv_freq[RD_MAX_ROPE_PAIRS];
};

/* Rotates one head vector x[head_dim] at position pos, in place (host reference). */
void rd_rope_rotate_ref(float *x, int head_dim, enum rd_rope_style style, int pos,
                        const float *inv_freq, int n_pairs, float attention_factor);

#endif
