/* RMSNorm and the fused residual add + RMSNorm of the cuda backend.
 *
 * As in Hugging Face's LlamaRMSNorm, the sum of squares is accumulated in fp32 and the
 * normalised row is rounded to the dtype before it is multiplied by the weight (a no-op for
 * fp32, where this equals the cpu reference). The fused op first rounds resid + delta to the
 * dtype and stores it (the residual stream is kept in the dtype), then normalises that value.
 * Rows are read in 16-byte pieces when they are 16-byte aligned.
 *
 * Grid (T, NB): NB blocks per row. With many rows (prefill) NB = 1: a block reduces its row
 * (storing resid + delta as it goes, each thread re-reading only what it wrote) and writes it.
 * With few rows (decode: T = batch, often 1) one block per row would leave the GPU idle and its
 * latency in series, so the row is split over NB blocks: every block reduces the whole row
 * (a few KB, read from L2 by all but the first) and writes only its slice of the output. The
 * fused op cannot let a block store its slice of resid + delta while another block may still
 * read resid, so the last block of a row to finish (a counter per row, reset by that block)
 * stores the whole row's resid + delta.
 *
 * Dimension legend: T tokens (rows), D hidden size, NB blocks per row, VW elements per load. */
#include "kernels/cuda/cuda_common.h"

#define NORM_THREADS_SPLIT 128  /* threads of a block when a row is split */
#define NORM_MIN_SLICE 512      /* elements of a row per block at least */

struct norm_params {
    void *out;         /* [T, D] */
    void *resid;       /* [T, D], in/out (add_rmsnorm) or the input x (rmsnorm) */
    const void *delta; /* [T, D] or NULL (plain rmsnorm) */
    const void *w;     /* [D] */
    int T, D;
    float eps;
    unsigned *count;   /* [T] per-row counters (NB > 1, add_rmsnorm), zero between launches */
};

/* VW elements of a T row at element i (VW = 16 / sizeof(T): one 16-byte load) as fp32 */
template <typename T, int VW>
static __device__ __forceinline__ void load_vw(const T *row, int i, float (&v)[VW])
{
    if constexpr (VW == 1) {
        v[0] = to_f32(row[i]);
    } else {
        const uint4 u = *reinterpret_cast<const uint4 *>(row + i);
#pragma unroll
        for (int x = 0; x < VW; x++) v[x] = elem_of<T>(u, x);
    }
}

template <typename T, int VW>
static __device__ __forceinline__ void store_vw(T *row, int i, const float (&v)[VW])
{
    if constexpr (VW == 1) {
        row[i] = from_f32<T>(v[0]);
    } else {
        *reinterpret_cast<uint4 *>(row + i) = pack_of<T, VW>(v);
    }
}

template <typename T, bool ADD, int VW>
static __global__ void rmsnorm_kernel(norm_params p)
{
    __shared__ float red[32];
    __shared__ bool last;
    const int nb = gridDim.y, b = blockIdx.y, n = p.D / VW;
    const size_t row = (size_t)blockIdx.x * p.D;
    T *x = static_cast<T *>(p.resid) + row;
    const T *dl = ADD ? static_cast<const T *>(p.delta) + row : nullptr;
    const T *w = static_cast<const T *>(p.w);
    T *out = static_cast<T *>(p.out) + row;

    float ss = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v[VW];
        load_vw<T, VW>(x, i * VW, v);
        if (ADD) {
            float d[VW];
            load_vw<T, VW>(dl, i * VW, d);
#pragma unroll
            for (int e = 0; e < VW; e++) v[e] = round_to<T>(v[e] + d[e]);
            if (nb == 1) store_vw<T, VW>(x, i * VW, v); /* re-read below by this thread only */
        }
#pragma unroll
        for (int e = 0; e < VW; e++) ss += v[e] * v[e];
    }
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / (float)p.D + p.eps);

    const int per = (n + nb - 1) / nb, lo = b * per, hi = min(n, lo + per);
    for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float v[VW], wv[VW];
        load_vw<T, VW>(x, i * VW, v);
        if (ADD && nb > 1) {
            float d[VW];
            load_vw<T, VW>(dl, i * VW, d);
#pragma unroll
            for (int e = 0; e < VW; e++) v[e] = round_to<T>(v[e] + d[e]);
        }
        load_vw<T, VW>(w, i * VW, wv);
#pragma unroll
        for (int e = 0; e < VW; e++) v[e] = round_to<T>(v[e] * inv) * wv[e];
        store_vw<T, VW>(out, i * VW, v);
    }

    if (!ADD || nb == 1) return;
    __syncthreads(); /* this block has read resid */
    if (threadIdx.x == 0) {
        __threadfence();
        last = atomicAdd(&p.count[blockIdx.x], 1u) == (unsigned)nb - 1;
    }
    __syncthreads();
    if (!last) return;
    for (int i = threadIdx.x; i < n; i += blockDim.x) { /* every block has read resid */
        float v[VW], d[VW];
        load_vw<T, VW>(x, i * VW, v);
        load_vw<T, VW>(dl, i * VW, d);
#pragma unroll
        for (int e = 0; e < VW; e++) v[e] = round_to<T>(v[e] + d[e]);
        store_vw<T, VW>(x, i * VW, v);
    }
    if (threadIdx.x == 0) p.count[blockIdx.x] = 0u;
}

template <typename T, bool ADD>
static void launch_norm_t(const norm_params &p, dim3 grid, int threads, bool vec, cudaStream_t st)
{
    if (vec) RD_LAUNCH(grid, threads, 0, st, rmsnorm_kernel<T, ADD, 16 / sizeof(T)>)(p);
    else RD_LAUNCH(grid, threads, 0, st, rmsnorm_kernel<T, ADD, 1>)(p);
}

static rd_status launch_norm(struct rd_backend *be, norm_params p, bool add, const char *op)
{
    if (p.T <= 0) return RD_OK;
    RD_REQUIRE(p.D > 0, RD_ERR_INVALID_ARG, "rmsnorm: D must be positive");
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const size_t es = rd_dtype_size(be->dtype);
    const uintptr_t a = (uintptr_t)p.out | (uintptr_t)p.resid | (uintptr_t)p.delta |
                        (uintptr_t)p.w;
    const bool vec = (p.D * es) % 16 == 0 && a % 16 == 0;
    /* blocks per row: enough for about half the SMs when rows are few, slices of at least
     * NORM_MIN_SLICE elements, and a counter per row for the fused op */
    int nb = 1;
    if (2 * p.T < impl->n_sm && p.out != p.resid) { /* in place: one block per row */
        nb = (impl->n_sm / 2 + p.T - 1) / p.T;
        if (nb > p.D / NORM_MIN_SLICE) nb = p.D / NORM_MIN_SLICE;
        if (add && (size_t)p.T > impl->norm_count_n) nb = 1;
        if (nb < 1) nb = 1;
    }
    p.count = impl->norm_count_d;
    const int threads = nb > 1 ? NORM_THREADS_SPLIT : p.D >= 1024 ? 256 : (p.D >= 256 ? 128 : 64);
    dim3 grid((unsigned)p.T, (unsigned)nb);
    RD_DISPATCH_DTYPE(be->dtype, T,
        if (add) launch_norm_t<T, true>(p, grid, threads, vec, impl->stream);
        else launch_norm_t<T, false>(p, grid, threads, vec, impl->stream))
    return rd_cuda_after_launch(be, op);
}

extern "C" rd_status rd_cuda_rmsnorm(struct rd_backend *be, void *out_d, const void *x_d,
                                     const void *w_d, int T, int D, float eps)
{
    norm_params p = {out_d, (void *)x_d, nullptr, w_d, T, D, eps, nullptr};
    return launch_norm(be, p, false, "rmsnorm");
}

extern "C" rd_status rd_cuda_add_rmsnorm(struct rd_backend *be, void *out_d, void *resid_d,
                                         const void *delta_d, const void *w_d, int T, int D,
                                         float eps)
{
    norm_params p = {out_d, resid_d, delta_d, w_d, T, D, eps, nullptr};
    return launch_norm(be, p, true, "add_rmsnorm");
}
