/* Sampling candidates on the device: the k largest logits of each row and their ids, so the
 * coordinator gathers P * k candidates instead of the full vocabulary (k = 1: greedy argmax).
 *
 * Order: larger value first, then the smaller id (torch.argmax's tie rule); NaN counts as
 * -inf; that is a total order on (value, id), so the k best of a row are the k best of the
 * union of the k best of its parts. Hence two passes, as a multi-block reduction:
 *   1. grid (chunks, rows): a block takes 16 columns of a row per thread (in registers, read
 *      as 16-byte pieces when the rows allow) and writes its k best candidates to the
 *      workspace;
 *   2. a block per row repeats this over the chunks' candidates (again over several blocks
 *      and passes while a row has more than a block takes) and writes the row's k best.
 * A candidate travels as one 64-bit key whose unsigned order is the order above, so a round
 * is a max-reduction: each thread keeps its best key below the last winner, a warp reduces
 * them with shuffles, one barrier later every thread reads the warps' best and knows the
 * winner, and only the thread that owned it looks again at its registers. Blocks have 64
 * threads for short rows, 256 otherwise. Rows are taken in groups that fit the workspace; the
 * results go to the host arrays.
 *
 * Dimension legend: T rows (tokens), V columns (this rank's vocab rows), k candidates. */
#include "kernels/cuda/cuda_common.h"

#define TOPK_MAX_K 64
#define TOPK_PER_THREAD 16

struct topk_params {
    const void *logits;    /* pass 1: [rows, V] logits */
    const uint64_t *in;    /* merges: [rows, n] candidates (keys, below) */
    int n;                 /* elements per row (V, or candidates) */
    int k, id_offset;      /* ids of pass 1: column + id_offset */
    uint64_t *out;         /* [rows, chunks, k] candidates */
};

/* A candidate as one 64-bit key whose unsigned order is the wanted one: the value's bits made
 * monotonic (NaN as -inf, -0 as +0) above, the id's complement below (the smaller id wins a
 * tie); key 0 is "no candidate" (id -1), after every real one. */
static __device__ __forceinline__ uint64_t cand_key(float v, int id)
{
    if (id < 0) return 0ull;
    v = isnan(v) ? -INFINITY : v + 0.0f;
    const unsigned u = __float_as_uint(v);
    const unsigned ord = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)ord << 32) | (uint64_t)(0xffffffffu - (unsigned)id);
}
static __device__ __forceinline__ float key_value(uint64_t key)
{
    if (!key) return -INFINITY;
    const unsigned ord = (unsigned)(key >> 32);
    return __uint_as_float((ord & 0x80000000u) ? (ord & 0x7fffffffu) : ~ord);
}
static __device__ __forceinline__ int key_id(uint64_t key)
{
    return key ? (int)(0xffffffffu - (unsigned)key) : -1;
}
static __device__ __forceinline__ uint64_t umax64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* this thread's element s of the chunk: strided by the block, or in 16-byte pieces of VW */
template <int NT, int VW>
static __device__ __forceinline__ int elem_index(int chunk0, int s)
{
    return chunk0 + ((s / VW) * NT + (int)threadIdx.x) * VW + s % VW;
}

/* NT threads, NT * 16 elements of a row per block. LOGITS: T-typed logits (pass 1), VW
 * elements per load; else candidates (merges) */
template <typename T, bool LOGITS, int NT, int VW>
static __global__ void __launch_bounds__(NT) topk_kernel(const topk_params p)
{
    constexpr int NW = NT / 32;
    __shared__ uint64_t red[2][NW];
    const int row = blockIdx.y, chunk = blockIdx.x, chunks = gridDim.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunk0 = chunk * NT * TOPK_PER_THREAD;
    uint64_t key[TOPK_PER_THREAD];
    if (LOGITS) {
        const T *x = static_cast<const T *>(p.logits) + (size_t)row * p.n;
#pragma unroll
        for (int s = 0; s < TOPK_PER_THREAD; s += VW) {
            const int i0 = elem_index<NT, VW>(chunk0, s);
            if (VW > 1 && i0 + VW <= p.n) {
                const uint4 u = *reinterpret_cast<const uint4 *>(x + i0);
#pragma unroll
                for (int e2 = 0; e2 < VW; e2++)
                    key[s + e2] = cand_key(elem_of<T>(u, e2), i0 + e2 + p.id_offset);
            } else {
#pragma unroll
                for (int e2 = 0; e2 < VW; e2++)
                    key[s + e2] = i0 + e2 < p.n ? cand_key(to_f32(x[i0 + e2]), i0 + e2 + p.id_offset) : 0ull;
            }
        }
    } else {
        const uint64_t *c = p.in + (size_t)row * p.n;
#pragma unroll
        for (int s = 0; s < TOPK_PER_THREAD; s++) {
            const int i = elem_index<NT, 1>(chunk0, s);
            key[s] = i < p.n ? c[i] : 0ull;
        }
    }
    /* this thread's best key below the last winner (bound: keys are unique, except 0) */
    auto best_below = [&](uint64_t bound) {
        uint64_t b = 0ull;
#pragma unroll
        for (int s = 0; s < TOPK_PER_THREAD; s++) b = key[s] < bound ? umax64(b, key[s]) : b;
        return b;
    };
    uint64_t mine = best_below(~0ull);
    uint64_t *out = p.out + ((size_t)row * chunks + chunk) * p.k;
    for (int r = 0; r < p.k; r++) {
        uint64_t b = mine;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) b = umax64(b, __shfl_xor_sync(0xffffffffu, b, o));
        if (lane == 0) red[r & 1][warp] = b;
        __syncthreads(); /* red[r & 1] was last read before the previous round's barrier */
        b = 0ull;
#pragma unroll
        for (int w = 0; w < NW; w++) b = umax64(b, red[r & 1][w]);
        if (threadIdx.x == 0) out[r] = b;
        if (b != 0ull && b == mine) mine = best_below(b); /* the owner moves on */
    }
}

template <typename T, bool LOGITS, int VW>
static void launch_topk(const topk_params &p, int chunks, int rows, int nt, cudaStream_t st)
{
    dim3 grid((unsigned)chunks, (unsigned)rows);
    if (nt == 64) RD_LAUNCH(grid, 64, 0, st, topk_kernel<T, LOGITS, 64, VW>)(p);
    else RD_LAUNCH(grid, 256, 0, st, topk_kernel<T, LOGITS, 256, VW>)(p);
}

/* the candidates of the last pass, [rows, k] keys, as values and ids */
static __global__ void topk_unpack_kernel(const uint64_t *keys, float *vals, int32_t *ids, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    vals[i] = key_value(keys[i]);
    ids[i] = key_id(keys[i]);
}

extern "C" rd_status rd_cuda_topk(struct rd_backend *be, float *vals_h, int32_t *ids_h,
                                  const void *logits_d, int T, int V, int k, int vocab_offset)
{
    RD_REQUIRE(T >= 0 && V >= 0 && k >= 1, RD_ERR_INVALID_ARG, "topk: need T, V >= 0 and k >= 1");
    RD_REQUIRE(k <= TOPK_MAX_K, RD_ERR_UNSUPPORTED, "topk: the cuda backend takes k <= 64");
    if (T == 0) return RD_OK;
    RD_TRY(rd_cuda_not_capturing(be, "topk"));
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const size_t es = rd_dtype_size(be->dtype);
    /* 64 threads per block for short rows (a block covers 1024 elements), else 256 */
    const int nt1 = V <= 64 * TOPK_PER_THREAD ? 64 : 256;
    const int chunks1 = V > 0 ? (V + nt1 * TOPK_PER_THREAD - 1) / (nt1 * TOPK_PER_THREAD) : 1;
    /* per row: two buffers of at most chunks1 * k keys (passes ping-pong), and the results */
    const size_t per_row = (2 * (size_t)chunks1 * k) * sizeof(uint64_t) +
                           (size_t)k * (sizeof(float) + sizeof(int32_t));
    const int rows_per_group = (int)(impl->topk_ws_bytes / per_row);
    RD_REQUIRE(rows_per_group >= 1, RD_ERR_UNSUPPORTED, "topk: the workspace cannot hold a row");
    const bool vec = (V * es) % 16 == 0 && (uintptr_t)logits_d % 16 == 0;
    for (int t0 = 0; t0 < T; t0 += rows_per_group) {
        const int n_rows = T - t0 < rows_per_group ? T - t0 : rows_per_group;
        uint64_t *buf[2];
        buf[0] = static_cast<uint64_t *>(impl->topk_ws_d);
        buf[1] = buf[0] + (size_t)n_rows * chunks1 * k;
        float *res_v = reinterpret_cast<float *>(buf[1] + (size_t)n_rows * chunks1 * k);
        int32_t *res_id = reinterpret_cast<int32_t *>(res_v + (size_t)n_rows * k);
        topk_params p;
        p.logits = static_cast<const char *>(logits_d) + (size_t)t0 * V * es;
        p.in = nullptr;
        p.n = V, p.k = k, p.id_offset = vocab_offset;
        p.out = buf[0];
        RD_DISPATCH_DTYPE(be->dtype, T_,
            if (vec) launch_topk<T_, true, 16 / sizeof(T_)>(p, chunks1, n_rows, nt1, impl->stream);
            else launch_topk<T_, true, 1>(p, chunks1, n_rows, nt1, impl->stream))
        RD_TRY(rd_cuda_after_launch(be, "topk (first pass)"));
        /* merge the candidates until one chunk per row is left */
        int n = chunks1 * k, cur = 0;
        while (n > k) {
            const int nt = n <= 64 * TOPK_PER_THREAD ? 64 : 256;
            const int chunks = (n + nt * TOPK_PER_THREAD - 1) / (nt * TOPK_PER_THREAD);
            p.in = buf[cur], p.n = n, p.out = buf[cur ^ 1];
            launch_topk<float, false, 1>(p, chunks, n_rows, nt, impl->stream);
            RD_TRY(rd_cuda_after_launch(be, "topk (merge)"));
            n = chunks * k, cur ^= 1;
        }
        const int nk = n_rows * k;
        RD_LAUNCH(rd_div_up((size_t)nk, 256), 256, 0, impl->stream, topk_unpack_kernel)(
            buf[cur], res_v, res_id, nk);
        RD_TRY(rd_cuda_after_launch(be, "topk (results)"));
        RD_CUDA_CHECK(cudaMemcpyAsync(vals_h + (size_t)t0 * k, res_v, (size_t)nk * sizeof(float),
                                      cudaMemcpyDeviceToHost, impl->stream));
        RD_CUDA_CHECK(cudaMemcpyAsync(ids_h + (size_t)t0 * k, res_id, (size_t)nk * sizeof(int32_t),
                                      cudaMemcpyDeviceToHost, impl->stream));
        /* the workspace is reused by the next group, and the caller reads the host arrays */
        RD_CUDA_CHECK(cudaStreamSynchronize(impl->stream));
    }
    return RD_OK;
}
