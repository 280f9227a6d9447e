/* Prefill attention: many new tokens per sequence (prompts, chunked prefill, flat batches of
 * several sequences). Two launches per layer:
 *
 *   1. attn_kv_store_kernel rotates every new token's k heads and stores them, with the v
 *      heads, at the token's slot of its sequence (grid T). After it the cache holds every key
 *      any token of the call may attend to, so
 *   2. attn_prefill_kernel reads all keys from the paged cache, without any ordering question
 *      between blocks. It is a tiled attention with online softmax (no T x T matrix): a block
 *      takes 32 query rows of one kv head g, a row being (token, q head of g's group) so the G
 *      heads sharing g reuse each K/V tile (GQA/MQA); q is rotated as it is loaded. 32-key
 *      tiles of K and V are staged in shared memory (rows padded by 16 bytes so a lane per key
 *      reads without bank conflicts); each warp owns 8 rows, scores a key per lane, does the
 *      online softmax per row and accumulates P.V with DPL output dims per lane.
 *
 * Flat batches: the rows of one block may belong to several sequences. The block takes them one
 * sequence at a time (the order of first appearance), loading that sequence's keys up to the
 * largest n_ctx among its rows; each row masks keys j >= its own n_ctx, which is also what
 * makes the attention causal and lets a chunk attend to earlier cache entries. A warp skips
 * the tiles past its own rows' contexts.
 *
 * Attention sinks (window > 0, see ops.h): the store keeps k unrotated and keys are rotated as
 * a tile is loaded, at the position sink_key_pos gives for the reading token. That position
 * depends on the token only through pos - slot (while j <= slot, i.e. before the ring wraps
 * behind it), so the block groups its rows by rotation class rather than by sequence alone:
 * (sequence, pos - slot) for rows with n_ctx <= slot + 1, (sequence, pos - slot, slot) for rows
 * reading past their own slot (a wrapped ring); each class loads its own rotated tiles, with
 * the (pos, slot) of its longest-context row. Without sinks a class is a sequence.
 *
 * The store costs one extra pass over this call's k/v (small next to prefill's compute); the
 * fused decode kernel (attn_decode_kernel.cuh) avoids it for short calls.
 *
 * Dimension legend: T tokens, H / Hkv heads, G = H / Hkv, Dh head dim, DPL dims per lane,
 * B block size, S sequence slots. */
#include "kernels/cuda/attn_common.cuh"

#define PREFILL_ROWS (ATTN_WARPS * ATTN_PREFILL_RW) /* query rows per block */

struct prefill_params {
    rd_attn_params a;
    int qstride;  /* floats per q row in shared memory */
    int dhp;      /* Dh rounded up to 16 / sizeof(T) elements (zero-padded) */
    int kstride;  /* elements per K/V row in shared memory: dhp + 16 bytes */
    int vec;      /* cache rows 16-byte aligned (Dh a multiple of 16 / sizeof(T)) */
};

/* grid T; every thread takes (kv head, dim) elements of the token */
template <typename T>
static __global__ void attn_kv_store_kernel(const rd_attn_params p)
{
    const int t = blockIdx.x;
    const int slot = p.slot_d[t];
    if (slot < 0) return;
    const int seq = p.seq_d[t], pos = p.pos_d[t], Dh = p.Dh;
    const T *row = static_cast<const T *>(p.qkv_d) + (size_t)t * (p.H + 2 * p.Hkv) * Dh;
    for (int idx = threadIdx.x; idx < p.Hkv * Dh; idx += blockDim.x) {
        const int g = idx / Dh, d = idx % Dh;
        const size_t off = cache_off(p, seq, slot, g);
        const T *k_in = row + (size_t)(p.H + g) * Dh;
        static_cast<T *>(p.k_cache_d)[off + d] =
            p.window > 0 ? k_in[d] : from_f32<T>(rope_elem(k_in, d, pos, p));
        static_cast<T *>(p.v_cache_d)[off + d] = row[(size_t)(p.H + p.Hkv + g) * Dh + d];
    }
}

template <typename T, int DPL>
static __global__ void __launch_bounds__(ATTN_WARPS * 32) attn_prefill_kernel(const prefill_params pp)
{
    constexpr int RW = ATTN_PREFILL_RW, ROWS = PREFILL_ROWS;
    constexpr int V = 16 / sizeof(T);
    const rd_attn_params &p = pp.a;
    const unsigned full = 0xffffffffu;
    const int g = blockIdx.y, G = p.H / p.Hkv, Dh = p.Dh;
    const int qs = pp.qstride, ks = pp.kstride, dhp = pp.dhp;
    const size_t W = (size_t)(p.H + 2 * p.Hkv) * Dh;
    const long row0 = (long)blockIdx.x * ROWS; /* first row: rows are (token, head of group) */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    RD_DYN_SMEM(float4, smem_f4);
    float *q_s = reinterpret_cast<float *>(smem_f4); /* [ROWS][qs] rotated q, fp32 */
    T *k_s = reinterpret_cast<T *>(q_s + ROWS * qs);  /* [ATTN_TILE][ks] */
    T *v_s = k_s + ATTN_TILE * ks;                    /* [ATTN_TILE][ks] */
    /* per row: sequence, context, rotation class key (see above) and the class it joined
     * (-1 not yet, -2 no row) */
    __shared__ int row_seq[ROWS], row_nctx[ROWS], row_pos[ROWS], row_slot[ROWS], row_cls[ROWS];
    __shared__ int cur_seq, cur_kmax, cur_pos, cur_slot;
    const bool sinks = p.window > 0;

    const T *qkv = static_cast<const T *>(p.qkv_d);
    const T *kc = static_cast<const T *>(p.k_cache_d);
    const T *vc = static_cast<const T *>(p.v_cache_d);

    for (int r = threadIdx.x; r < ROWS; r += blockDim.x) {
        const long i = row0 + r;
        const int t = (int)(i / G);
        const bool ok = t < p.T;
        row_seq[r] = ok ? p.seq_d[t] : -1;
        row_nctx[r] = ok ? p.n_ctx_d[t] : 0;
        row_pos[r] = ok ? p.pos_d[t] : 0;
        row_slot[r] = ok ? p.slot_d[t] : 0;
        row_cls[r] = ok ? -1 : -2;
    }
    for (int idx = threadIdx.x; idx < ROWS * qs; idx += blockDim.x) {
        const int r = idx / qs, d = idx % qs;
        const long i = row0 + r;
        const int t = (int)(i / G), h = g * G + (int)(i % G);
        float v = 0.0f;
        if (t < p.T && d < Dh)
            v = round_to<T>(rope_elem(qkv + (size_t)t * W + (size_t)h * Dh, d, p.pos_d[t], p));
        q_s[idx] = v;
    }

    for (int cls = 0;; cls++) {
        __syncthreads(); /* row_cls, q_s ready; everyone has read the last cur_* */
        if (threadIdx.x == 0) { /* next rotation class among this block's rows */
            int cs = -1, cd = 0, cw = -1, km = 0, kp = 0, ksl = 0;
            for (int r = 0; r < ROWS; r++) {
                if (row_cls[r] != -1) continue;
                const int d = sinks ? row_pos[r] - row_slot[r] : 0;
                const int w = sinks && row_nctx[r] > row_slot[r] + 1 ? row_slot[r] : -1;
                if (cs < 0) cs = row_seq[r], cd = d, cw = w;
                if (row_seq[r] != cs || d != cd || w != cw) continue;
                row_cls[r] = cls;
                if (row_nctx[r] > km) km = row_nctx[r], kp = row_pos[r], ksl = row_slot[r];
            }
            cur_seq = cs, cur_kmax = km, cur_pos = kp, cur_slot = ksl;
        }
        __syncthreads();
        const int cs = cur_seq, kmax = cur_kmax, rep_pos = cur_pos, rep_slot = cur_slot;
        if (cs < 0) break;

        bool active[RW];
        int nctx[RW];
        int warp_kmax = 0;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const int rr = warp * RW + r;
            active[r] = row_cls[rr] == cls;
            nctx[r] = active[r] ? row_nctx[rr] : 0;
            warp_kmax = max(warp_kmax, nctx[r]);
        }
        float m[RW], l[RW], acc[RW][DPL];
#pragma unroll
        for (int r = 0; r < RW; r++) {
            m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[r][i] = 0.0f;
        }

        for (int j0 = 0; j0 < kmax; j0 += ATTN_TILE) {
            __syncthreads(); /* the previous tile is consumed */
            const int nvec = dhp / V;
            for (int idx = threadIdx.x; idx < ATTN_TILE * nvec; idx += blockDim.x) {
                const int kk = idx / nvec, c = idx % nvec, j = j0 + kk;
                T *kd = k_s + kk * ks + c * V, *vd = v_s + kk * ks + c * V;
                if (sinks) { /* unrotated in the cache: rotate for this class as we load */
                    const size_t off = j < kmax ? cache_off(p, cs, j, g) : 0;
                    const int kpos = sink_key_pos(p, j, rep_pos, rep_slot);
#pragma unroll
                    for (int x = 0; x < V; x++) {
                        const int d = c * V + x;
                        const bool in = j < kmax && d < Dh;
                        kd[x] = in ? from_f32<T>(rope_elem(kc + off, d, kpos, p)) : from_f32<T>(0.0f);
                        vd[x] = in ? vc[off + d] : from_f32<T>(0.0f);
                    }
                } else if (j < kmax && pp.vec) {
                    const size_t off = cache_off(p, cs, j, g) + (size_t)c * V;
                    *reinterpret_cast<uint4 *>(kd) = *reinterpret_cast<const uint4 *>(kc + off);
                    *reinterpret_cast<uint4 *>(vd) = *reinterpret_cast<const uint4 *>(vc + off);
                } else {
                    const size_t off = j < kmax ? cache_off(p, cs, j, g) : 0;
#pragma unroll
                    for (int x = 0; x < V; x++) {
                        const int d = c * V + x;
                        const bool in = j < kmax && d < Dh;
                        kd[x] = in ? kc[off + d] : from_f32<T>(0.0f);
                        vd[x] = in ? vc[off + d] : from_f32<T>(0.0f);
                    }
                }
            }
            __syncthreads();
            if (j0 >= warp_kmax) continue; /* warp-uniform: no row of this warp reaches here */

            float s[RW];
#pragma unroll
            for (int r = 0; r < RW; r++) s[r] = 0.0f;
            dot_rows<T, RW>(k_s + lane * ks, q_s + warp * RW * qs, qs, dhp, true, s);
            const int j = j0 + lane;
#pragma unroll
            for (int r = 0; r < RW; r++) {
                const bool valid = active[r] && j < nctx[r];
                const float sr = valid ? s[r] * p.scale : -INFINITY;
                const float mx = warp_max(sr);
                float pr = 0.0f;
                if (mx != -INFINITY) { /* warp-uniform */
                    const float mnew = fmaxf(m[r], mx);
                    const float corr = expf(m[r] - mnew);
                    pr = valid ? expf(sr - mnew) : 0.0f;
                    l[r] = l[r] * corr + pr;
#pragma unroll
                    for (int i = 0; i < DPL; i++) acc[r][i] *= corr;
                    m[r] = mnew;
                }
                s[r] = pr;
            }
            const int n_keys = min(ATTN_TILE, warp_kmax - j0);
            for (int kk = 0; kk < n_keys; kk++) {
                float pk[RW];
#pragma unroll
                for (int r = 0; r < RW; r++) pk[r] = __shfl_sync(full, s[r], kk);
                const T *vr = v_s + kk * ks;
#pragma unroll
                for (int i = 0; i < DPL; i++) {
                    const int d = lane * DPL + i;
                    if (d < Dh) {
                        const float v = to_f32(vr[d]);
#pragma unroll
                        for (int r = 0; r < RW; r++) acc[r][i] += pk[r] * v;
                    }
                }
            }
        }

#pragma unroll
        for (int r = 0; r < RW; r++) {
            const float lr = warp_sum(l[r]);
            if (!active[r]) continue;
            const long i = row0 + warp * RW + r;
            const int t = (int)(i / G), h = g * G + (int)(i % G);
            T *o = static_cast<T *>(p.out_d) + ((size_t)t * p.H + h) * Dh;
#pragma unroll
            for (int x = 0; x < DPL; x++) {
                const int d = lane * DPL + x;
                if (d < Dh) o[d] = from_f32<T>(lr > 0.0f ? acc[r][x] / lr : 0.0f);
            }
        }
    }
}

template <typename T>
static cudaError_t launch_prefill_t(const prefill_params &pp, int dpl, dim3 grid, size_t smem,
                                    cudaStream_t st)
{
    switch (dpl) {
#define RD_PREFILL_CASE(DPL_)                                                                  \
    case DPL_: {                                                                               \
        if (smem > 48 * 1024) {                                                                \
            cudaError_t e = cudaFuncSetAttribute(attn_prefill_kernel<T, DPL_>,                 \
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,  \
                                                 (int)smem);                                   \
            if (e != cudaSuccess) return e;                                                    \
        }                                                                                      \
        RD_LAUNCH(grid, ATTN_WARPS * 32, smem, st, attn_prefill_kernel<T, DPL_>)(pp);          \
    } break;
        RD_PREFILL_CASE(1)
        RD_PREFILL_CASE(2)
        RD_PREFILL_CASE(4)
        RD_PREFILL_CASE(8)
#undef RD_PREFILL_CASE
    }
    return cudaSuccess;
}

rd_status rd_attn_prefill(struct rd_backend *be, const rd_attn_params &p, bool tensor_cores)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const size_t es = rd_dtype_size(be->dtype);
    const int V = (int)(16 / es);
    prefill_params pp;
    pp.a = p;
    pp.qstride = attn_qstride(p.Dh);
    pp.dhp = (p.Dh + V - 1) / V * V;
    pp.kstride = pp.dhp + V;
    pp.vec = (p.Dh % V) == 0 && ((uintptr_t)p.k_cache_d % 16) == 0 &&
             ((uintptr_t)p.v_cache_d % 16) == 0;

    const int store_threads = p.Hkv * p.Dh >= 256 ? 256 : 128;
    RD_DISPATCH_DTYPE(be->dtype, T,
        RD_LAUNCH((unsigned)p.T, store_threads, 0, impl->stream, attn_kv_store_kernel<T>)(p))
    RD_TRY(rd_cuda_after_launch(be, "rope_attention (kv store)"));
    if (tensor_cores && rd_attn_prefill_mma_ok(be, p)) return rd_attn_prefill_mma(be, p);

    const int G = p.H / p.Hkv;
    const long rows = (long)p.T * G;
    const size_t smem = (size_t)PREFILL_ROWS * pp.qstride * sizeof(float) +
                        2 * (size_t)ATTN_TILE * pp.kstride * es;
    if (smem > impl->max_smem_optin) {
        RD_LOG_ERROR("rope_attention: head dim %d needs %zu bytes of shared memory, %zu allowed",
                     p.Dh, smem, impl->max_smem_optin);
        return RD_ERR_UNSUPPORTED;
    }
    dim3 grid((unsigned)((rows + PREFILL_ROWS - 1) / PREFILL_ROWS), (unsigned)p.Hkv);
    const int dpl = attn_dpl(p.Dh);
    cudaError_t e = cudaSuccess;
    RD_DISPATCH_DTYPE(be->dtype, T, e = launch_prefill_t<T>(pp, dpl, grid, smem, impl->stream))
    RD_CUDA_CHECK(e);
    return rd_cuda_after_launch(be, "rope_attention (prefill)");
}
