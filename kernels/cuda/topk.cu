/* Sampling candidates on the device: the k largest logits of each row and their ids, so the
 * coordinator gathers P * k candidates instead of the full vocabulary (k = 1: greedy argmax).
 *
 * One block per row. Order: larger value first, then the smaller id (torch.argmax's tie rule);
 * NaN counts as -inf. Each thread keeps one candidate, the best of its columns (strided by the
 * block size) that comes strictly after the last winner; a round reduces the candidates to the
 * next winner, and only the thread that owned it rescans its columns: every other thread's
 * candidate is still the best of its columns after the new winner (it was not above it). So a
 * row costs one pass over V plus k rescans of V / threads columns and k block reductions.
 * Results go to a fixed device workspace, then to the host arrays; rows are taken in chunks
 * that fit the workspace.
 *
 * Dimension legend: T rows (tokens), V columns (this rank's vocab rows), k candidates. */
#include "kernels/cuda/cuda_common.h"

#define TOPK_MAX_K 64

struct topk_params {
    const void *logits; /* [T, V] */
    int V, k, vocab_offset;
    float *vals;        /* [T, k] device */
    int32_t *ids;       /* [T, k] device */
};

/* (v, i) before (w, j): larger value, then smaller id; id -1 (no candidate) comes last */
static __device__ __forceinline__ bool before(float v, int i, float w, int j)
{
    if (j < 0) return i >= 0;
    if (i < 0) return false;
    return v > w || (v == w && i < j);
}

static __device__ __forceinline__ float key_of(float x) { return isnan(x) ? -INFINITY : x; }

/* the best column of this thread that comes after (lv, li); li = -1: no bound */
template <typename T>
static __device__ __forceinline__ void scan_cols(const T *x, int V, float lv, int li, float &cv,
                                                 int &ci)
{
    cv = -INFINITY, ci = -1;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        const float v = key_of(to_f32(x[i]));
        if (li >= 0 && !before(lv, li, v, i)) continue; /* not strictly after the last winner */
        if (before(v, i, cv, ci)) cv = v, ci = i;
    }
}

template <typename T>
static __global__ void topk_kernel(const topk_params p)
{
    __shared__ float red_v[32];
    __shared__ int red_i[32];
    __shared__ float win_v;
    __shared__ int win_i;
    const int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = blockDim.x >> 5;
    const T *x = static_cast<const T *>(p.logits) + (size_t)row * p.V;
    float cv;
    int ci;
    scan_cols<T>(x, p.V, 0.0f, -1, cv, ci);
    for (int r = 0; r < p.k; r++) {
        float bv = cv;
        int bi = ci;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (before(ov, oi, bv, bi)) bv = ov, bi = oi;
        }
        if (lane == 0) red_v[warp] = bv, red_i[warp] = bi;
        __syncthreads();
        if (warp == 0) {
            bv = lane < n_warps ? red_v[lane] : -INFINITY;
            bi = lane < n_warps ? red_i[lane] : -1;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                if (before(ov, oi, bv, bi)) bv = ov, bi = oi;
            }
            if (lane == 0) {
                win_v = bv, win_i = bi;
                const size_t at = (size_t)row * p.k + r;
                p.vals[at] = bi < 0 ? -INFINITY : bv;
                p.ids[at] = bi < 0 ? -1 : bi + p.vocab_offset;
            }
        }
        __syncthreads();
        const float wv = win_v;
        const int wi = win_i;
        if (wi >= 0 && wi == ci) scan_cols<T>(x, p.V, wv, wi, cv, ci); /* the owner moves on */
        /* red_* and win_* are rewritten only after the next round's first __syncthreads */
    }
}

extern "C" rd_status rd_cuda_topk(struct rd_backend *be, float *vals_h, int32_t *ids_h,
                                  const void *logits_d, int T, int V, int k, int vocab_offset)
{
    RD_REQUIRE(T >= 0 && V >= 0 && k >= 1, RD_ERR_INVALID_ARG, "topk: need T, V >= 0 and k >= 1");
    RD_REQUIRE(k <= TOPK_MAX_K, RD_ERR_UNSUPPORTED, "topk: the cuda backend takes k <= 64");
    if (T == 0) return RD_OK;
    RD_TRY(rd_cuda_not_capturing(be, "topk"));
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const size_t per_row = (size_t)k * (sizeof(float) + sizeof(int32_t));
    const int rows_per_chunk = (int)(impl->topk_ws_bytes / per_row);
    RD_REQUIRE(rows_per_chunk >= 1, RD_ERR_INVALID_ARG, "topk: no workspace");
    const int threads = V >= 16384 ? 1024 : V >= 2048 ? 512 : 128;
    const size_t es = rd_dtype_size(be->dtype);
    for (int t0 = 0; t0 < T; t0 += rows_per_chunk) {
        const int n = T - t0 < rows_per_chunk ? T - t0 : rows_per_chunk;
        topk_params p;
        p.logits = static_cast<const char *>(logits_d) + (size_t)t0 * V * es;
        p.V = V, p.k = k, p.vocab_offset = vocab_offset;
        p.vals = static_cast<float *>(impl->topk_ws_d);
        p.ids = reinterpret_cast<int32_t *>(p.vals + (size_t)n * k);
        RD_DISPATCH_DTYPE(be->dtype, T_,
            RD_LAUNCH((unsigned)n, threads, 0, impl->stream, topk_kernel<T_>)(p))
        RD_TRY(rd_cuda_after_launch(be, "topk"));
        RD_CUDA_CHECK(cudaMemcpyAsync(vals_h + (size_t)t0 * k, p.vals, (size_t)n * k * sizeof(float),
                                      cudaMemcpyDeviceToHost, impl->stream));
        RD_CUDA_CHECK(cudaMemcpyAsync(ids_h + (size_t)t0 * k, p.ids,
                                      (size_t)n * k * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                      impl->stream));
        /* the workspace is reused by the next chunk, and the caller reads the host arrays */
        RD_CUDA_CHECK(cudaStreamSynchronize(impl->stream));
    }
    return RD_OK;
}
