/* Private to the attention kernels (attn_decode*.cu, attn_prefill*.cu, attention.cu): the rope
 * rotation of one element, the key position of a cache entry with attention sinks, the
 * paged-cache address of a logical entry, the q.k dot products of one key against a few query
 * rows (scalar prefill), and the launchers' declarations.
 *
 * Dimension legend: T new tokens, H / Hkv query / kv heads of this rank, G = H / Hkv query
 * heads per kv head, Dh head dim, B block size, S sequence slots. */
#ifndef RD_ATTN_COMMON_CUH
#define RD_ATTN_COMMON_CUH

#include <limits.h>

#include "kernels/cuda/cuda_common.h"

#define ATTN_WARPS 4       /* warps per attention block */
#define ATTN_TILE 32       /* keys per tile: one key per lane when scoring */
#define ATTN_PREFILL_RW 8  /* query rows per warp in the prefill kernel */
#define ATTN_DECODE_MAX_T 64 /* decode path only for T <= this (bounds the in-call key list) */
#define ATTN_MAX_DH 256

/* cos and sin of rotary pair i at position pos, scaled by attention_factor. Follows
 * rope_table.h: angle = (float)pos * inv_freq[i], an fp32 product (as the cpu backend). */
static __device__ __forceinline__ void rope_cs(int pos, int i, const rd_attn_params &p, float &c,
                                               float &s)
{
    const float angle = __fmul_rn((float)pos, p.inv_freq_d[i]);
    sincosf(angle, &s, &c);
    c *= p.attention_factor;
    s *= p.attention_factor;
}

/* one rotated element: x * c + sign * (partner * s); every rotation in kernels/cuda goes
 * through this expression so the stored, in-register and read-time rotations agree bitwise */
static __device__ __forceinline__ float rope_apply(float x, float partner, float sign, float c,
                                                   float s)
{
    return x * c + sign * (partner * s);
}

/* Element d of head vector x (T-typed, Dh long) rotated at position pos, in fp32.
 * neox pairs (i, i + rot/2), gptj pairs (2i, 2i + 1); dims past rotary_dim pass through. Each
 * element computes its own sin/cos, so any thread layout works. */
template <typename T>
static __device__ __forceinline__ float rope_elem(const T *x, int d, int pos,
                                                  const rd_attn_params &p)
{
    const float xd = to_f32(x[d]);
    if (d >= p.rotary_dim) return xd;
    const int half = p.rotary_dim >> 1;
    int i, partner;
    float sign;
    if (p.style == RD_ROPE_GPTJ) {
        i = d >> 1;
        partner = (d & 1) ? d - 1 : d + 1;
        sign = (d & 1) ? 1.0f : -1.0f;
    } else {
        i = d < half ? d : d - half;
        partner = d < half ? d + half : d - half;
        sign = d < half ? -1.0f : 1.0f;
    }
    float c, s;
    rope_cs(pos, i, p, c, s);
    return rope_apply(xd, to_f32(x[partner]), sign, c, s);
}

/* Attention sinks (window > 0): the position at which cache entry j is rotated when the token
 * at position pos, stored at entry slot, reads it (the formula of ops.h: sinks at j, ring
 * entries by age behind the query). */
static __device__ __forceinline__ int sink_key_pos(const rd_attn_params &p, int j, int pos,
                                                   int slot)
{
    if (j < p.sink_tokens) return j;
    const int R = p.window - p.sink_tokens;
    return pos - ((slot - j + R) % R);
}

/* Element offset of logical entry j of sequence seq, kv head g, in a [n_blocks, B, Hkv, Dh]
 * cache. */
static __device__ __forceinline__ size_t cache_off(const rd_attn_params &p, int seq, int j,
                                                   int g)
{
    const int blk = p.block_table_d[(size_t)seq * p.max_blocks + j / p.block_size];
    const size_t row = (size_t)blk * p.block_size + (size_t)(j % p.block_size);
    return (row * p.Hkv + g) * p.Dh;
}

/* s[r] += q_s[r][:] . k[:] for R query rows held in shared memory as fp32 (row stride
 * qstride floats, zero past Dh). The k row is T-typed, read by one thread; with vec the row is
 * 16-byte aligned and n (a multiple of 16 / sizeof(T)) elements long, read 16 bytes at a time.
 * Whether k lives in global or shared memory does not matter here. */
template <typename T, int R>
static __device__ __forceinline__ void dot_rows(const T *k, const float *q_s, int qstride, int n,
                                                bool vec, float (&s)[R])
{
    if (vec) {
        constexpr int V = 16 / sizeof(T);
        for (int d = 0; d < n; d += V) {
            const uint4 u = *reinterpret_cast<const uint4 *>(k + d);
            const T *e = reinterpret_cast<const T *>(&u);
            float kf[V];
#pragma unroll
            for (int x = 0; x < V; x++) kf[x] = to_f32(e[x]);
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float4 *q4 = reinterpret_cast<const float4 *>(q_s + r * qstride + d);
#pragma unroll
                for (int x = 0; x < V / 4; x++) {
                    const float4 q = q4[x];
                    s[r] += q.x * kf[4 * x] + q.y * kf[4 * x + 1] + q.z * kf[4 * x + 2] +
                            q.w * kf[4 * x + 3];
                }
            }
        }
    } else {
        for (int d = 0; d < n; d++) {
            const float kd = to_f32(k[d]);
#pragma unroll
            for (int r = 0; r < R; r++) s[r] += q_s[r * qstride + d] * kd;
        }
    }
}

/* dims per lane for the output accumulators: lane l owns dims [l*DPL, l*DPL + DPL) */
static inline int attn_dpl(int Dh) { return Dh <= 32 ? 1 : Dh <= 64 ? 2 : Dh <= 128 ? 4 : 8; }
/* q rows in shared memory: fp32, padded to a multiple of 8 with zeros (16-byte aligned rows) */
static inline int attn_qstride(int Dh) { return (Dh + 7) / 8 * 8; }

/* launchers (attn_decode.cu, attn_prefill.cu, attn_prefill_mma.cu); p is validated by the
 * entry (attention.cu). rd_attn_prefill stores the call's k/v, then runs the tensor-core
 * kernel when tensor_cores is set and rd_attn_prefill_mma_ok says it takes the call, else the
 * scalar one. */
rd_status rd_attn_decode(struct rd_backend *be, const rd_attn_params &p);
rd_status rd_attn_prefill(struct rd_backend *be, const rd_attn_params &p, bool tensor_cores);
bool rd_attn_prefill_mma_ok(struct rd_backend *be, const rd_attn_params &p);
rd_status rd_attn_prefill_mma(struct rd_backend *be, const rd_attn_params &p);

#endif
