/* The cuda backend's row-wise data movement ops: embedding lookup and SwiGLU.
 *
 * embed copies one table row per token (grid-stride over the row, so any D works).
 * swiglu computes silu(g) rounded to the dtype, times u, as torch does for bf16/fp16
 * (silu in fp32, rounded, then the product rounded).
 *
 * Dimension legend: T tokens, D hidden size, V vocab rows, F ffn columns of this rank. */
#include "kernels/cuda/cuda_common.h"

struct embed_params {
    void *out;           /* [T, D] */
    const void *table;   /* [V, D] */
    const int32_t *ids;  /* [T] */
    int T, D;
};

template <typename T>
static __global__ void embed_kernel(embed_params p)
{
    const int t = blockIdx.x;
    const T *src = (const T *)p.table + (size_t)p.ids[t] * p.D;
    T *dst = (T *)p.out + (size_t)t * p.D;
    for (int i = threadIdx.x; i < p.D; i += blockDim.x) dst[i] = src[i];
}

struct swiglu_params {
    void *out;      /* [T, F] */
    const void *gu; /* [T, 2F]: gate columns then up columns */
    int T, F;
};

template <typename T>
static __global__ void swiglu_kernel(swiglu_params p)
{
    const size_t n = (size_t)p.T * p.F;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t t = i / p.F, f = i % p.F;
        const T *row = (const T *)p.gu + t * 2 * p.F;
        const float g = to_f32(row[f]), u = to_f32(row[p.F + f]);
        const float s = round_to<T>(g / (1.0f + expf(-g)));
        ((T *)p.out)[i] = from_f32<T>(s * u);
    }
}

extern "C" rd_status rd_cuda_embed(struct rd_backend *be, void *out_d, const void *table_d,
                                   const int32_t *ids_d, int T, int D)
{
    if (T <= 0 || D <= 0) return RD_OK;
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    embed_params p = {out_d, table_d, ids_d, T, D};
    const int threads = D >= 1024 ? 256 : 128;
    RD_DISPATCH_DTYPE(be->dtype, T_,
        RD_LAUNCH((unsigned)T, threads, 0, impl->stream, embed_kernel<T_>)(p))
    return rd_cuda_after_launch(be, "embed");
}

extern "C" rd_status rd_cuda_swiglu(struct rd_backend *be, void *out_d, const void *gu_d, int T,
                                    int F)
{
    if (T <= 0 || F <= 0) return RD_OK;
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    swiglu_params p = {out_d, gu_d, T, F};
    const size_t n = (size_t)T * F;
    const int threads = 256;
    size_t blocks = (n + threads - 1) / threads;
    const size_t cap = (size_t)impl->n_sm * 16;
    if (blocks > cap) blocks = cap;
    RD_DISPATCH_DTYPE(be->dtype, T_,
        RD_LAUNCH((unsigned)blocks, threads, 0, impl->stream, swiglu_kernel<T_>)(p))
    return rd_cuda_after_launch(be, "swiglu");
}
