/* Prefill attention on tensor cores (bf16 / fp16): a flash-attention-2 style kernel whose
 * Q K^T and P V products run through nvcuda::wmma (16x16x16, fp32 accumulation), after
 * attn_kv_store_kernel (attn_prefill.cu) has put this call's rotated keys and values into the
 * paged cache.
 *
 * A block takes 64 query rows of one kv head g (4 warps x 16 rows), a row being (token, q head
 * of g's group) as in the scalar kernel, so the G heads sharing g reuse each K/V tile. q is
 * rotated, rounded to the dtype and staged through shared memory once; each warp keeps its 16
 * rows as matrix_a fragments in registers (head dim <= 128; from shared memory above). K/V
 * tiles of KT keys (64, or 32 for head dims above 128) are double-buffered in shared memory
 * with cp.async: the next tile's copies are in flight while the current one is used. Per tile
 * a warp computes S = Q K^T into accumulators, stores S to its scratch in shared memory, and
 * two lanes per row do the online softmax there (mask, running max and sum in the log2
 * domain), writing P as the dtype and the row's correction factor; the O accumulators are
 * rescaled by that factor and P V is added with more wmma products. The rows of the causal
 * mask come from each token's n_ctx; a warp skips the tiles past its rows' contexts, and the
 * block stops at its longest row.
 *
 * CUDA leaves unspecified which element of the 16 x 16 matrix a lane holds in fragment.x[i].
 * Rescaling O by a per-row factor needs the row of each element, so the kernel learns it: it
 * loads a matrix whose elements hold their own row index into an accumulator fragment
 * (load_matrix_sync and mma_sync use one element mapping per fragment type). No layout is
 * assumed anywhere.
 *
 * Flat batches: the rows of a block may belong to several sequences; the block takes them one
 * sequence at a time (as the scalar kernel), loading that sequence's keys up to the largest
 * n_ctx among its rows; each row masks keys j >= its own n_ctx (causal, and chunked prefill
 * over earlier cache entries). Rows of other sequences keep their state (factor 1, P = 0).
 *
 * Taken for bf16/fp16 without attention sinks when cache, qkv and output rows are 16-byte
 * aligned; otherwise (fp32, sinks, odd head dims) the scalar kernel runs.
 *
 * Dimension legend: T tokens, H / Hkv heads, G = H / Hkv, Dh head dim (DH: rounded up to 32,
 * 64, 128 or 256), KT keys per tile, LDK elements per K/V row in shared memory. */
#include <cuda_pipeline_primitives.h>
#include <mma.h>

#include "kernels/cuda/attn_common.cuh"

using namespace nvcuda;

#define MMA_WARPS 4
#define MMA_ROWS (MMA_WARPS * 16) /* query rows per block */

struct mma_params {
    rd_attn_params a;
    float qscale; /* softmax scale * log2(e) */
};

/* the layout of a block's dynamic shared memory (byte offsets from a 128-byte aligned base) */
struct mma_smem {
    size_t kv;      /* [2 stages][K, V][KT][LDK] T */
    size_t q;       /* head dim > 128: [64][LDK] T, else q is staged in stage 1 */
    size_t s;       /* per warp [16][KT + 4] float: S, then the epilogue's O rows */
    size_t p;       /* per warp [16][KT + 8] T */
    size_t row;     /* per warp [16] float: correction factor, then 1 / l */
    size_t total;   /* bytes, including the slack to align the base */
};

static __host__ __device__ inline mma_smem mma_layout(int DH, int KT, size_t es)
{
    const size_t ldk = (size_t)DH + 8, stage = 2 * (size_t)KT * ldk * es;
    mma_smem L;
    L.kv = 0;
    L.q = L.kv + 2 * stage;
    L.s = L.q + (DH > 128 ? (size_t)MMA_ROWS * ldk * es : 0);
    L.p = L.s + MMA_WARPS * 16 * (size_t)(KT + 4) * 4;
    L.row = L.p + MMA_WARPS * 16 * (size_t)(KT + 8) * es;
    L.total = L.row + MMA_WARPS * 16 * 4 + 128;
    return L;
}

template <typename T, int DH>
static __global__ void __launch_bounds__(MMA_WARPS * 32, DH > 128 ? 1 : 2)
    attn_prefill_mma_kernel(const mma_params mp)
{
    constexpr int KT = DH > 128 ? 32 : 64; /* keys per tile */
    constexpr int LDK = DH + 8;            /* shared row: +16 bytes against bank conflicts */
    constexpr int LDS = KT + 4, LDP = KT + 8;
    constexpr int NK = DH / 16;            /* 16-wide steps over the head dim */
    constexpr int NT = KT / 16;            /* 16-key steps over a tile */
    constexpr bool QREG = DH <= 128;       /* q fragments in registers */
    constexpr int VEC = 16 / sizeof(T);
    typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> frag_a;
    typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> frag_bt;
    typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> frag_b;
    typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;

    const rd_attn_params &p = mp.a;
    const int g = blockIdx.y, G = p.H / p.Hkv, Dh = p.Dh;
    const int nk = (Dh + 15) / 16; /* steps that hold any of the head dim */
    const size_t W = (size_t)(p.H + 2 * p.Hkv) * Dh;
    const long row0 = (long)blockIdx.x * MMA_ROWS;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    RD_DYN_SMEM(uint4, smem_raw);
    const mma_smem SL = mma_layout(DH, KT, sizeof(T));
    char *base = reinterpret_cast<char *>(
        (reinterpret_cast<uintptr_t>(smem_raw) + 127) & ~static_cast<uintptr_t>(127));
    T *kv_s = reinterpret_cast<T *>(base + SL.kv);
    T *q_s = QREG ? kv_s + 2 * KT * LDK : reinterpret_cast<T *>(base + SL.q);
    float *s_w = reinterpret_cast<float *>(base + SL.s) + warp * 16 * LDS;
    T *p_w = reinterpret_cast<T *>(base + SL.p) + warp * 16 * LDP;
    float *row_w = reinterpret_cast<float *>(base + SL.row) + warp * 16;
    __shared__ int row_seq[MMA_ROWS], row_nctx[MMA_ROWS], row_cls[MMA_ROWS];
    __shared__ int cur_seq, cur_kmax;

    const T *qkv = static_cast<const T *>(p.qkv_d);
    const T *kc = static_cast<const T *>(p.k_cache_d);
    const T *vc = static_cast<const T *>(p.v_cache_d);

    /* rows and rotated q (zeros past Dh and past the last token) */
    for (int r = threadIdx.x; r < MMA_ROWS; r += blockDim.x) {
        const int t = (int)((row0 + r) / G);
        const bool ok = t < p.T;
        row_seq[r] = ok ? p.seq_d[t] : -1;
        row_nctx[r] = ok ? p.n_ctx_d[t] : 0;
        row_cls[r] = ok ? -1 : -2;
    }
    for (int idx = threadIdx.x; idx < MMA_ROWS * DH; idx += blockDim.x) {
        const int r = idx / DH, d = idx % DH;
        const long i = row0 + r;
        const int t = (int)(i / G), h = g * G + (int)(i % G);
        float v = 0.0f;
        if (t < p.T && d < Dh)
            v = rope_elem(qkv + (size_t)t * W + (size_t)h * Dh, d, p.pos_d[t], p);
        q_s[r * LDK + d] = from_f32<T>(v);
    }
    /* which row of the 16 each accumulator element of this lane is: load a matrix of row
     * indices into a fragment (the mapping is the one mma_sync results use) */
    for (int idx = lane; idx < 256; idx += 32) s_w[(idx / 16) * LDS + idx % 16] = (float)(idx / 16);
    __syncthreads();
    int row_of[frag_c::num_elements];
    {
        frag_c where;
        wmma::load_matrix_sync(where, s_w, LDS, wmma::mem_row_major);
#pragma unroll
        for (int i = 0; i < frag_c::num_elements; i++) row_of[i] = (int)where.x[i];
    }
    frag_a qf[QREG ? NK : 1];
    if (QREG) {
#pragma unroll
        for (int kk = 0; kk < NK; kk++)
            if (kk < nk) wmma::load_matrix_sync(qf[kk], q_s + warp * 16 * LDK + kk * 16, LDK);
    }
    frag_c o[NK];
#pragma unroll
    for (int f = 0; f < NK; f++) wmma::fill_fragment(o[f], 0.0f);
    /* softmax state of row `my` of this warp, kept by its two lanes */
    const int my = lane >> 1, half = lane & 1, my_row = warp * 16 + my;
    float m_row = -INFINITY, l_row = 0.0f;

    for (int cls = 0;; cls++) {
        __syncthreads(); /* q fragments loaded (stage 1 free), row_cls and cur_* consumed */
        if (threadIdx.x == 0) { /* the next sequence among this block's rows */
            int cs = -1, km = 0;
            for (int r = 0; r < MMA_ROWS; r++) {
                if (row_cls[r] != -1) continue;
                if (cs < 0) cs = row_seq[r];
                if (row_seq[r] != cs) continue;
                row_cls[r] = cls;
                km = max(km, row_nctx[r]);
            }
            cur_seq = cs, cur_kmax = km;
        }
        __syncthreads();
        const int cs = cur_seq, kmax = cur_kmax;
        if (cs < 0) break;
        const bool my_active = row_cls[my_row] == cls;
        const int my_nctx = my_active ? row_nctx[my_row] : 0;
        const int warp_kmax = __reduce_max_sync(0xffffffffu, my_nctx);

        /* K/V tile jt into stage st: 16-byte cp.async pieces, zeros past kmax and Dh */
        auto issue = [&](int jt, int st) {
            T *ks = kv_s + st * 2 * KT * LDK, *vs = ks + KT * LDK;
            for (int idx = threadIdx.x; idx < KT * (DH / VEC); idx += blockDim.x) {
                const int kk = idx / (DH / VEC), c = (idx % (DH / VEC)) * VEC, j = jt * KT + kk;
                T *kd = ks + kk * LDK + c, *vd = vs + kk * LDK + c;
                if (j < kmax && c < Dh) {
                    const size_t off = cache_off(p, cs, j, g) + c;
                    __pipeline_memcpy_async(kd, kc + off, 16);
                    __pipeline_memcpy_async(vd, vc + off, 16);
                } else {
                    *reinterpret_cast<uint4 *>(kd) = make_uint4(0u, 0u, 0u, 0u);
                    *reinterpret_cast<uint4 *>(vd) = make_uint4(0u, 0u, 0u, 0u);
                }
            }
            __pipeline_commit();
        };

        const int n_tiles = (kmax + KT - 1) / KT;
        issue(0, 0);
        for (int it = 0; it < n_tiles; it++) {
            if (it + 1 < n_tiles) issue(it + 1, (it + 1) & 1);
            else __pipeline_commit(); /* an empty group keeps the wait below uniform */
            __pipeline_wait_prior(1);
            __syncthreads(); /* every thread's pieces of tile it have landed */
            const int j0 = it * KT;
            if (j0 < warp_kmax) { /* warp-uniform: causal skip */
                const T *ks = kv_s + (it & 1) * 2 * KT * LDK, *vs = ks + KT * LDK;
                /* S = Q K^T */
#pragma unroll
                for (int n = 0; n < NT; n++) {
                    frag_c sc;
                    wmma::fill_fragment(sc, 0.0f);
#pragma unroll
                    for (int kk = 0; kk < NK; kk++) {
                        if (kk >= nk) continue;
                        frag_bt kf;
                        wmma::load_matrix_sync(kf, ks + n * 16 * LDK + kk * 16, LDK);
                        if (QREG) {
                            wmma::mma_sync(sc, qf[QREG ? kk : 0], kf, sc);
                        } else {
                            frag_a qa;
                            wmma::load_matrix_sync(qa, q_s + warp * 16 * LDK + kk * 16, LDK);
                            wmma::mma_sync(sc, qa, kf, sc);
                        }
                    }
                    wmma::store_matrix_sync(s_w + n * 16, sc, LDS, wmma::mem_row_major);
                }
                __syncwarp();
                /* online softmax of row `my` over this lane's half of the tile */
                constexpr int HALF = KT / 2;
                const int c0 = half * HALF;
                float sv[HALF];
                float mx = -INFINITY;
#pragma unroll
                for (int c = 0; c < HALF; c++) {
                    const bool valid = j0 + c0 + c < my_nctx;
                    sv[c] = valid ? s_w[my * LDS + c0 + c] * mp.qscale : -INFINITY;
                    mx = fmaxf(mx, sv[c]);
                }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                const float mnew = fmaxf(m_row, mx);
                float corr = 1.0f, sum = 0.0f;
                if (mnew != -INFINITY) {
                    corr = exp2f(m_row - mnew);
#pragma unroll
                    for (int c = 0; c < HALF; c++) {
                        const T pt = from_f32<T>(exp2f(sv[c] - mnew));
                        p_w[my * LDP + c0 + c] = pt;
                        sum += to_f32(pt);
                    }
                } else {
#pragma unroll
                    for (int c = 0; c < HALF; c++) p_w[my * LDP + c0 + c] = from_f32<T>(0.0f);
                }
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                l_row = l_row * corr + sum;
                m_row = mnew;
                if (half == 0) row_w[my] = corr;
                __syncwarp();
                /* O = diag(corr) O + P V */
#pragma unroll
                for (int f = 0; f < NK; f++)
#pragma unroll
                    for (int i = 0; i < frag_c::num_elements; i++) o[f].x[i] *= row_w[row_of[i]];
#pragma unroll
                for (int kk = 0; kk < NT; kk++) {
                    frag_a pf;
                    wmma::load_matrix_sync(pf, p_w + kk * 16, LDP);
#pragma unroll
                    for (int f = 0; f < NK; f++) {
                        if (f >= nk) continue;
                        frag_b vf;
                        wmma::load_matrix_sync(vf, vs + kk * 16 * LDK + f * 16, LDK);
                        wmma::mma_sync(o[f], pf, vf, o[f]);
                    }
                }
                __syncwarp(); /* row_w is rewritten by the next tile */
            }
            __syncthreads(); /* the stage of tile it is free for tile it + 2 */
        }
    }

    /* epilogue: O / l through the warp's scratch (the S area, now O rows) to the output */
    if (half == 0) row_w[my] = l_row > 0.0f ? 1.0f / l_row : 0.0f;
    __syncwarp();
    float *o_w = reinterpret_cast<float *>(kv_s) + warp * 16 * (DH + 4); /* K/V area is free */
#pragma unroll
    for (int f = 0; f < NK; f++) {
        if (f >= nk) continue;
#pragma unroll
        for (int i = 0; i < frag_c::num_elements; i++) o[f].x[i] *= row_w[row_of[i]];
        wmma::store_matrix_sync(o_w + f * 16, o[f], DH + 4, wmma::mem_row_major);
    }
    __syncwarp();
    const int pieces = Dh / VEC;
    for (int idx = lane; idx < 16 * pieces; idx += 32) {
        const int r = idx / pieces, c = (idx % pieces) * VEC;
        const long i = row0 + warp * 16 + r;
        const int t = (int)(i / G), h = g * G + (int)(i % G);
        if (t >= p.T) continue;
        float f[VEC];
#pragma unroll
        for (int x = 0; x < VEC; x++) f[x] = o_w[r * (DH + 4) + c + x];
        *reinterpret_cast<uint4 *>(static_cast<T *>(p.out_d) + ((size_t)t * p.H + h) * Dh + c) =
            pack_of<T, VEC>(f);
    }
}

template <typename T, int DH>
static cudaError_t launch_mma(const mma_params &mp, dim3 grid, size_t smem, cudaStream_t st)
{
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(attn_prefill_mma_kernel<T, DH>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
    }
    RD_LAUNCH(grid, MMA_WARPS * 32, smem, st, attn_prefill_mma_kernel<T, DH>)(mp);
    return cudaSuccess;
}

/* whether the tensor-core kernel takes this call (the store kernel has already run) */
bool rd_attn_prefill_mma_ok(struct rd_backend *be, const rd_attn_params &p)
{
    const size_t es = rd_dtype_size(be->dtype);
    if (be->dtype == RD_DTYPE_F32 || p.window > 0 || (p.Dh * es) % 16 != 0) return false;
    const uintptr_t a = (uintptr_t)p.k_cache_d | (uintptr_t)p.v_cache_d | (uintptr_t)p.qkv_d |
                        (uintptr_t)p.out_d;
    if (a % 16 != 0) return false;
    const int DH = p.Dh <= 32 ? 32 : p.Dh <= 64 ? 64 : p.Dh <= 128 ? 128 : 256;
    const mma_smem L = mma_layout(DH, DH > 128 ? 32 : 64, es);
    return L.total <= rd_cuda_impl_of(be)->max_smem_optin;
}

rd_status rd_attn_prefill_mma(struct rd_backend *be, const rd_attn_params &p)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    mma_params mp;
    mp.a = p;
    mp.qscale = p.scale * 1.4426950408889634f;
    const int DH = p.Dh <= 32 ? 32 : p.Dh <= 64 ? 64 : p.Dh <= 128 ? 128 : 256;
    const size_t smem = mma_layout(DH, DH > 128 ? 32 : 64, rd_dtype_size(be->dtype)).total;
    const long rows = (long)p.T * (p.H / p.Hkv);
    dim3 grid((unsigned)((rows + MMA_ROWS - 1) / MMA_ROWS), (unsigned)p.Hkv);
    cudaError_t e = cudaSuccess;
#define RD_MMA_DH(T_)                                                                          \
    switch (DH) {                                                                              \
    case 32: e = launch_mma<T_, 32>(mp, grid, smem, impl->stream); break;                      \
    case 64: e = launch_mma<T_, 64>(mp, grid, smem, impl->stream); break;                      \
    case 128: e = launch_mma<T_, 128>(mp, grid, smem, impl->stream); break;                    \
    default: e = launch_mma<T_, 256>(mp, grid, smem, impl->stream); break;                     \
    }
    if (be->dtype == RD_DTYPE_BF16) RD_MMA_DH(__nv_bfloat16)
    else RD_MMA_DH(__half)
#undef RD_MMA_DH
    RD_CUDA_CHECK(e);
    return rd_cuda_after_launch(be, "rope_attention (prefill, tensor cores)");
}
