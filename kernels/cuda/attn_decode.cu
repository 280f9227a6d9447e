/* Decode attention: the split of the context (flash-decoding split-K), the launch of the
 * decode kernel for the dtype (attn_decode_kernel.cuh, whose comment describes the design)
 * and the merge of the splits' partials. */
#include "kernels/cuda/attn_decode.cuh"

/* Combines the splits' partials: out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s.
 * Grid (T, H), DECODE_MERGE_THREADS threads: the splits' factors are computed once each (in
 * shared memory), then SG groups of threads take every SG-th split for all Dh dims, with
 * several loads in flight per thread, and their sums are added in shared memory. */
#define DECODE_MERGE_THREADS 256
#define DECODE_MAX_SPLITS 256
template <typename T>
static __global__ void __launch_bounds__(DECODE_MERGE_THREADS)
    attn_decode_merge_kernel(const decode_params dp)
{
    __shared__ float f_s[DECODE_MAX_SPLITS];
    __shared__ float red[32];
    __shared__ float part[DECODE_MERGE_THREADS];
    const rd_attn_params &p = dp.a;
    const int t = blockIdx.x, h = blockIdx.y, Dh = p.Dh, S = dp.splits;
    const size_t rec_n = (size_t)Dh + 2, split_stride = (size_t)p.T * p.H * rec_n;
    const float *rec0 = dp.ws + ((size_t)t * p.H + h) * rec_n;
    float mx = -INFINITY;
    for (int s = threadIdx.x; s < S; s += blockDim.x) mx = fmaxf(mx, rec0[s * split_stride]);
    mx = warp_max(mx);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) M = fmaxf(M, red[w]);
    float l = 0.0f;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        const float m = rec0[s * split_stride];
        const float f = m == -INFINITY ? 0.0f : exp2f(m - M);
        f_s[s] = f;
        l += f * rec0[s * split_stride + 1];
    }
    __syncthreads(); /* red is reused by block_sum, f_s is complete */
    const float L = block_sum(l, red);
    const int SG = (int)blockDim.x / Dh > 0 ? (int)blockDim.x / Dh : 1; /* split groups */
    for (int d0 = 0; d0 < Dh; d0 += blockDim.x / SG) {
        const int d = d0 + (int)threadIdx.x % (blockDim.x / SG), grp = (int)threadIdx.x / (blockDim.x / SG);
        float o = 0.0f;
        if (d < Dh && grp < SG) {
#pragma unroll 4
            for (int s = grp; s < S; s += SG) o += f_s[s] * rec0[s * split_stride + 2 + d];
        }
        part[threadIdx.x] = o;
        __syncthreads();
        if (grp == 0 && d < Dh) {
            float O = 0.0f;
            for (int g2 = 0; g2 < SG; g2++) O += part[g2 * (blockDim.x / SG) + threadIdx.x];
            static_cast<T *>(p.out_d)[((size_t)t * p.H + h) * Dh + d] =
                from_f32<T>(L > 0.0f ? O / L : 0.0f);
        }
        __syncthreads(); /* part is rewritten by the next dims */
    }
}

/* Context splits. A decode step only reads the cache, and a GPU reads at bandwidth only while
 * enough blocks are in flight: with 3 resident blocks per SM (2 for R = 8, the launch bounds)
 * about half of them suffice. So: when the grid without splits is below one full wave of
 * resident blocks, as many splits as keep it within one wave (every block runs at once and
 * ends together, no tail); when it is larger, one split unless the last wave would be under
 * half full, then two. Splits are at least DECODE_MIN_CHUNK keys long and their partials fit
 * the workspace; RD_ATTN_SPLITS=N forces N. */
static int decode_splits(const struct rd_cuda_impl *impl, const rd_attn_params &p, long base,
                         int R)
{
    if (p.max_ctx <= 0) return 1;
    int splits = rd_env_int("RD_ATTN_SPLITS", 0);
    if (splits <= 0) {
        const long wave = (long)(R >= 8 ? 2 : 3) * impl->n_sm;
        const long by_ctx = (p.max_ctx + DECODE_MIN_CHUNK - 1) / DECODE_MIN_CHUNK;
        long want = base < wave ? wave / base : (base % wave && base % wave < wave / 2) ? 2 : 1;
        splits = (int)(want < by_ctx ? want : by_ctx);
    }
    if (splits > DECODE_MAX_SPLITS) splits = DECODE_MAX_SPLITS;
    const size_t per_split = (size_t)p.T * p.H * (p.Dh + 2) * sizeof(float);
    while (splits > 1 && (size_t)splits * per_split > impl->attn_ws_bytes) splits--;
    return splits < 1 ? 1 : splits;
}

/* Picks R (q rows per block), DH, the split count and the chunk, then launches. */
rd_status rd_attn_decode(struct rd_backend *be, const rd_attn_params &p)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const int G = p.H / p.Hkv;
    const int R = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : 8;
    decode_params dp;
    dp.a = p;
    dp.hchunks = (G + R - 1) / R;
    const size_t es = rd_dtype_size(be->dtype);
    dp.vec = (p.Dh * es) % 16 == 0 && ((uintptr_t)p.k_cache_d % 16) == 0 &&
             ((uintptr_t)p.v_cache_d % 16) == 0 && ((uintptr_t)p.qkv_d % 16) == 0;
    dp.qscale = p.scale * 1.4426950408889634f;
    dp.ws = impl->attn_ws_d;

    int splits = decode_splits(impl, p, (long)p.T * p.Hkv * dp.hchunks, R);
    if (splits > 1) {
        dp.chunk = (p.max_ctx + splits - 1) / splits;
        dp.chunk = (dp.chunk + ATTN_TILE - 1) / ATTN_TILE * ATTN_TILE;
        splits = (p.max_ctx + dp.chunk - 1) / dp.chunk;
    }
    if (splits <= 1) {
        splits = 1;
        dp.chunk = INT_MAX / 2; /* the whole of [0, n_ctx), whatever max_ctx says */
    }
    dp.splits = splits;

    dim3 grid((unsigned)splits, (unsigned)(p.Hkv * dp.hchunks), (unsigned)p.T);
    const int dh = p.Dh <= 32 ? 32 : p.Dh <= 64 ? 64 : p.Dh <= 128 ? 128 : 256;
    switch (be->dtype) {
    case RD_DTYPE_F32: rd_attn_decode_launch_fp32(dp, dh, R, grid, impl->stream); break;
    case RD_DTYPE_BF16: rd_attn_decode_launch_bf16(dp, dh, R, grid, impl->stream); break;
    case RD_DTYPE_F16: rd_attn_decode_launch_fp16(dp, dh, R, grid, impl->stream); break;
    }
    RD_TRY(rd_cuda_after_launch(be, "rope_attention (decode)"));
    if (splits > 1) {
        dim3 mgrid((unsigned)p.T, (unsigned)p.H);
        RD_DISPATCH_DTYPE(be->dtype, T,
            RD_LAUNCH(mgrid, DECODE_MERGE_THREADS, 0, impl->stream, attn_decode_merge_kernel<T>)(dp))
        RD_TRY(rd_cuda_after_launch(be, "rope_attention (decode merge)"));
    }
    return RD_OK;
}
