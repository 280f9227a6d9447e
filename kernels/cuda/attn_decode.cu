/* Decode attention: one fused launch per layer that rotates the new q and k, stores the
 * rotated k and the v into the paged KV cache and attends over the context, plus a merge
 * kernel when the context is split (flash-decoding split-K).
 *
 * Grid (splits, Hkv * hchunks, T): one block per token, kv head, chunk of up to R of the G
 * query heads sharing that kv head (so K/V are read once for all of them) and split of the
 * context. Inside, 4 warps take 32-key tiles in turn; a lane scores one key against the R
 * rotated q rows (kept in shared memory, fp32), the warp does the online softmax per row and
 * accumulates P.V with each lane owning DPL output dims; the warps merge in shared memory.
 *
 * Visibility of this call's own k/v without a second kernel: block (t, g, split 0, chunk 0)
 * stores token t's rotated k and v. Every block first lists the tokens of this call that
 * belong to its sequence and whose slot it attends to (slot < n_ctx; its own token included).
 * Keys at those slots are never read from the cache: the lane rotates that token's k from
 * qkv in registers (rounded to the dtype exactly as stored) and reads its v from qkv. So no
 * block reads a cache entry that this launch writes, whatever the mix of tokens (one per
 * sequence, several per sequence, chunk of a prompt), and the result is the one a store
 * followed by a read would give. Assumption (also of the cpu backend): cache blocks written by
 * a call are not shared with another sequence's context. The list holds at most T entries, so
 * this path is taken only for T <= ATTN_DECODE_MAX_T.
 *
 * Attention sinks (window > 0, see ops.h): k is stored unrotated and every key, from the cache
 * or from qkv, is rotated as it is scored, at the position sink_key_pos gives for this block's
 * token (pair by pair in dot_rows_rope, rounded to the dtype as a stored key would be).
 *
 * Dimension legend: T tokens, H / Hkv heads, G = H / Hkv, R q rows per block (<= 8),
 * Dh head dim, DPL dims per lane (Dh <= 32 * DPL), S sequence slots, B block size. */
#include "kernels/cuda/attn_common.cuh"

struct decode_params {
    rd_attn_params a;
    int hchunks;  /* ceil(G / R) */
    int splits;   /* context splits (gridDim.x) */
    int chunk;    /* keys per split, a multiple of ATTN_TILE */
    int qstride;  /* floats per q row in shared memory */
    int vec;      /* K rows are 16-byte aligned with Dh a multiple of 16 / sizeof(T) */
    float *ws;    /* splits > 1: partials [splits, T, H, Dh + 2] = (m, l, acc[Dh]) */
};

template <typename T, int DPL, int R>
static __global__ void __launch_bounds__(ATTN_WARPS * 32) attn_decode_kernel(const decode_params dp)
{
    const rd_attn_params &p = dp.a;
    const unsigned full = 0xffffffffu;
    const int t = blockIdx.z, split = blockIdx.x;
    const int g = blockIdx.y / dp.hchunks, hc = blockIdx.y % dp.hchunks;
    const int G = p.H / p.Hkv, Dh = p.Dh, qs = dp.qstride;
    const int h0 = g * G + hc * R;
    const int n_rows = min(R, G - hc * R);
    const size_t W = (size_t)(p.H + 2 * p.Hkv) * Dh;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    RD_DYN_SMEM(float4, smem_f4);
    float *q_s = reinterpret_cast<float *>(smem_f4);         /* [R][qs] rotated q */
    float *acc_s = q_s + R * qs;                             /* [warps][R][qs] */
    float *ml_s = acc_s + ATTN_WARPS * R * qs;               /* [warps][R][2] (m, l) */
    int *lst_slot = reinterpret_cast<int *>(ml_s + ATTN_WARPS * R * 2); /* [ATTN_DECODE_MAX_T] */
    int *lst_tok = lst_slot + ATTN_DECODE_MAX_T;
    __shared__ int n_list, min_slot;

    const int seq = p.seq_d[t], n_ctx = p.n_ctx_d[t], pos = p.pos_d[t];
    const T *qkv = static_cast<const T *>(p.qkv_d);
    const T *qkv_t = qkv + (size_t)t * W;
    T *kc = static_cast<T *>(p.k_cache_d);
    T *vc = static_cast<T *>(p.v_cache_d);

    /* 1. the tokens of this call whose k/v this token attends to (read from qkv, not cache);
     *    built in token order with a ballot so the result is deterministic */
    if (warp == 0) {
        int n = 0, mn = INT_MAX;
        for (int c = 0; c < p.T; c += 32) {
            const int t2 = c + lane;
            bool hit = false;
            int s2 = 0;
            if (t2 < p.T) {
                s2 = p.slot_d[t2];
                hit = p.seq_d[t2] == seq && s2 >= 0 && s2 < n_ctx;
            }
            const unsigned b = __ballot_sync(full, hit);
            if (hit) {
                const int k = n + __popc(b & ((1u << lane) - 1u));
                if (k < ATTN_DECODE_MAX_T) lst_slot[k] = s2, lst_tok[k] = t2;
                mn = min(mn, s2);
            }
            n += __popc(b);
        }
        mn = __reduce_min_sync(full, mn);
        if (lane == 0) n_list = min(n, ATTN_DECODE_MAX_T), min_slot = mn;
    }

    /* 2. this block's q rows, rotated and rounded to the dtype (zeros past Dh and n_rows) */
    for (int idx = threadIdx.x; idx < R * qs; idx += blockDim.x) {
        const int r = idx / qs, d = idx % qs;
        float v = 0.0f;
        if (r < n_rows && d < Dh)
            v = round_to<T>(rope_elem(qkv_t + (size_t)(h0 + r) * Dh, d, pos, p));
        q_s[idx] = v;
    }

    /* 3. store token t's k (rotated; unrotated with sinks) and its v, once per kv head */
    const int my_slot = p.slot_d[t];
    const bool sinks = p.window > 0;
    if (split == 0 && hc == 0 && my_slot >= 0) {
        const size_t off = cache_off(p, seq, my_slot, g);
        const T *k_in = qkv_t + (size_t)(p.H + g) * Dh;
        const T *v_in = qkv_t + (size_t)(p.H + p.Hkv + g) * Dh;
        for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
            kc[off + d] = sinks ? k_in[d] : from_f32<T>(rope_elem(k_in, d, pos, p));
            vc[off + d] = v_in[d];
        }
    }
    __syncthreads();

    /* 4. attend over this split's keys [begin, end) */
    const int begin = split * dp.chunk;
    const int end = min(begin + dp.chunk, n_ctx);
    const int nl = n_list, ms = min_slot;
    float m[R], l[R], acc[R][DPL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[r][i] = 0.0f;
    }

    for (int j0 = begin + warp * ATTN_TILE; j0 < end; j0 += ATTN_WARPS * ATTN_TILE) {
        const int j = j0 + lane;
        const bool valid = j < end;
        const T *krow = nullptr, *vrow = nullptr;
        int src = -1; /* token of this call that provides key j, or -1: the cache does */
        if (valid) {
            if (j >= ms)
                for (int e = 0; e < nl; e++)
                    if (lst_slot[e] == j) src = lst_tok[e];
            if (src < 0) {
                const size_t off = cache_off(p, seq, j, g);
                krow = kc + off, vrow = vc + off;
            } else {
                krow = qkv + (size_t)src * W + (size_t)(p.H + g) * Dh;
                vrow = qkv + (size_t)src * W + (size_t)(p.H + p.Hkv + g) * Dh;
            }
        }
        float s[R];
#pragma unroll
        for (int r = 0; r < R; r++) s[r] = 0.0f;
        if (valid) {
            if (sinks) /* every key unrotated: rotate at its position behind this query */
                dot_rows_rope<T, R>(krow, sink_key_pos(p, j, pos, my_slot), q_s, qs, p, s);
            else if (src < 0)
                dot_rows<T, R>(krow, q_s, qs, Dh, dp.vec, s);
            else /* rotate the in-call key as the store does, rounded to the dtype */
                dot_rows_rope<T, R>(krow, p.pos_d[src], q_s, qs, p, s);
        }
        /* online softmax; the tile's lane 0 is valid, so every row max is finite */
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float sr = valid ? s[r] * p.scale : -INFINITY;
            const float mnew = fmaxf(m[r], warp_max(sr));
            const float corr = expf(m[r] - mnew);
            const float pr = valid ? expf(sr - mnew) : 0.0f;
            l[r] = l[r] * corr + pr;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[r][i] *= corr;
            m[r] = mnew;
            s[r] = pr;
        }
        /* P.V: key kk's probabilities and v row come from lane kk */
        const int n_valid = min(ATTN_TILE, end - j0);
        for (int kk = 0; kk < n_valid; kk++) {
            const T *vr = reinterpret_cast<const T *>(
                __shfl_sync(full, reinterpret_cast<unsigned long long>(vrow), kk));
            float pk[R];
#pragma unroll
            for (int r = 0; r < R; r++) pk[r] = __shfl_sync(full, s[r], kk);
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane * DPL + i;
                if (d < Dh) {
                    const float v = to_f32(vr[d]);
#pragma unroll
                    for (int r = 0; r < R; r++) acc[r][i] += pk[r] * v;
                }
            }
        }
    }

    /* 5. merge the warps, then write the output (one split) or this split's partial */
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float lr = warp_sum(l[r]);
        if (lane == 0) {
            ml_s[(warp * R + r) * 2] = m[r];
            ml_s[(warp * R + r) * 2 + 1] = lr;
        }
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane * DPL + i;
            if (d < Dh) acc_s[(warp * R + r) * qs + d] = acc[r][i];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < n_rows * Dh; idx += blockDim.x) {
        const int r = idx / Dh, d = idx % Dh;
        float M = -INFINITY;
        for (int w = 0; w < ATTN_WARPS; w++) M = fmaxf(M, ml_s[(w * R + r) * 2]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int w = 0; w < ATTN_WARPS; w++) {
                const float mw = ml_s[(w * R + r) * 2];
                const float f = mw == -INFINITY ? 0.0f : expf(mw - M);
                L += f * ml_s[(w * R + r) * 2 + 1];
                O += f * acc_s[(w * R + r) * qs + d];
            }
        }
        const int h = h0 + r;
        if (dp.splits == 1) {
            static_cast<T *>(p.out_d)[((size_t)t * p.H + h) * Dh + d] =
                from_f32<T>(L > 0.0f ? O / L : 0.0f);
        } else {
            float *rec = dp.ws + (((size_t)split * p.T + t) * p.H + h) * (size_t)(Dh + 2);
            if (d == 0) rec[0] = M, rec[1] = L;
            rec[2 + d] = O;
        }
    }
}

/* Combines the splits' partials: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
 * Grid (T, H), one thread per output dim. */
template <typename T>
static __global__ void attn_decode_merge_kernel(const decode_params dp)
{
    const rd_attn_params &p = dp.a;
    const int t = blockIdx.x, h = blockIdx.y, Dh = p.Dh;
    const size_t rec_n = (size_t)Dh + 2, split_stride = (size_t)p.T * p.H * rec_n;
    const float *rec0 = dp.ws + ((size_t)t * p.H + h) * rec_n;
    float M = -INFINITY;
    for (int s = 0; s < dp.splits; s++) M = fmaxf(M, rec0[s * split_stride]);
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int s = 0; s < dp.splits; s++) {
                const float *rec = rec0 + s * split_stride;
                const float f = rec[0] == -INFINITY ? 0.0f : expf(rec[0] - M);
                L += f * rec[1];
                O += f * rec[2 + d];
            }
        }
        static_cast<T *>(p.out_d)[((size_t)t * p.H + h) * Dh + d] =
            from_f32<T>(L > 0.0f ? O / L : 0.0f);
    }
}

template <typename T, int DPL, int R>
static void launch_decode(const decode_params &dp, dim3 grid, size_t smem, cudaStream_t st)
{
    RD_LAUNCH(grid, ATTN_WARPS * 32, smem, st, attn_decode_kernel<T, DPL, R>)(dp);
}

template <typename T>
static void launch_decode_t(const decode_params &dp, int dpl, int R, dim3 grid, size_t smem,
                            cudaStream_t st)
{
#define RD_DECODE_R(DPL_)                                                                      \
    switch (R) {                                                                               \
    case 1: launch_decode<T, DPL_, 1>(dp, grid, smem, st); break;                              \
    case 2: launch_decode<T, DPL_, 2>(dp, grid, smem, st); break;                              \
    case 4: launch_decode<T, DPL_, 4>(dp, grid, smem, st); break;                              \
    default: launch_decode<T, DPL_, 8>(dp, grid, smem, st); break;                             \
    }
    switch (dpl) {
    case 1: RD_DECODE_R(1) break;
    case 2: RD_DECODE_R(2) break;
    case 4: RD_DECODE_R(4) break;
    default: RD_DECODE_R(8) break;
    }
#undef RD_DECODE_R
}

/* Picks R (q rows per block), the split count and the chunk, then launches. */
rd_status rd_attn_decode(struct rd_backend *be, const rd_attn_params &p)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const int G = p.H / p.Hkv;
    const int R = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : 8;
    decode_params dp;
    dp.a = p;
    dp.hchunks = (G + R - 1) / R;
    dp.qstride = attn_qstride(p.Dh);
    const size_t es = rd_dtype_size(be->dtype);
    dp.vec = (p.Dh * es) % 16 == 0 && ((uintptr_t)p.k_cache_d % 16) == 0;
    dp.ws = impl->attn_ws_d;

    /* split the context when the grid alone would not fill the GPU (flash-decoding) */
    int splits = 1;
    const long base_blocks = (long)p.T * p.Hkv * dp.hchunks;
    const int forced = rd_env_int("RD_ATTN_SPLITS", 0);
    if (p.max_ctx > 0) {
        const int by_ctx = (p.max_ctx + 255) / 256; /* at least 256 keys per split */
        if (forced > 0) {
            splits = forced;
        } else if (p.max_ctx > 512) {
            const long want = (2L * impl->n_sm + base_blocks - 1) / base_blocks;
            splits = (int)(want < by_ctx ? want : by_ctx);
        }
        if (splits > 128) splits = 128;
        const size_t per_split = (size_t)p.T * p.H * (p.Dh + 2) * sizeof(float);
        while (splits > 1 && (size_t)splits * per_split > impl->attn_ws_bytes) splits--;
        if (splits < 1) splits = 1;
    }
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

    const size_t smem = ((size_t)R * dp.qstride * (1 + ATTN_WARPS) + (size_t)ATTN_WARPS * R * 2) *
                            sizeof(float) +
                        2 * ATTN_DECODE_MAX_T * sizeof(int);
    dim3 grid((unsigned)splits, (unsigned)(p.Hkv * dp.hchunks), (unsigned)p.T);
    const int dpl = attn_dpl(p.Dh);
    RD_DISPATCH_DTYPE(be->dtype, T, launch_decode_t<T>(dp, dpl, R, grid, smem, impl->stream))
    RD_TRY(rd_cuda_after_launch(be, "rope_attention (decode)"));
    if (splits > 1) {
        const int threads = p.Dh <= 64 ? 64 : p.Dh <= 128 ? 128 : 256;
        dim3 mgrid((unsigned)p.T, (unsigned)p.H);
        RD_DISPATCH_DTYPE(be->dtype, T,
            RD_LAUNCH(mgrid, threads, 0, impl->stream, attn_decode_merge_kernel<T>)(dp))
        RD_TRY(rd_cuda_after_launch(be, "rope_attention (decode merge)"));
    }
    return RD_OK;
}
