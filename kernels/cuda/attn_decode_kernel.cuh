/* Decode attention: one fused launch per layer that rotates the new q and k, stores the
 * rotated k and the v into the paged KV cache and attends over the context, plus a merge
 * kernel when the context is split (flash-decoding split-K).
 *
 * Grid (splits, Hkv * hchunks, T): one block per token, kv head, chunk of up to R of the G
 * query heads sharing that kv head (so K/V are read once for all of them) and split of the
 * context. The split count is chosen so that a launch fills the GPU with resident blocks in
 * whole waves (decode_splits), since a decode step is a pure read of the cache and only a full
 * GPU has the memory parallelism to read it at bandwidth.
 *
 * Inside a block (4 warps), L lanes cooperate on one key row: lane `sub` of a key slot holds
 * the 16-byte pieces sub, sub + L, ... of the row (DH / (16 / sizeof(T)) pieces in all, L at
 * most 32), so a warp's load instruction reads whole rows of consecutive 16-byte pieces and
 * every 32-byte sector it fetches is used. A warp thus works on 32 / L keys at once and, per
 * iteration, on U of those groups, issuing all their K and V loads before using any. The lane
 * holds q (rotated once per block, scaled by softmax scale * log2(e)) for its dims of the R
 * rows in registers; the partial dot products are summed over the L lanes by xor shuffles;
 * each key slot keeps its own online softmax (running max, sum, and the P.V accumulators of
 * its dims, in registers) and the slots and then the warps are merged at the end. DH (the head
 * dim rounded up to 32, 64, 128 or 256) is a template parameter, so the row loop is unrolled.
 *
 * Visibility of this call's own k/v without a second kernel: block (t, g, split 0, chunk 0)
 * stores token t's rotated k and v. Every block first lists the tokens of this call that
 * belong to its sequence and whose slot it attends to (slot < n_ctx; its own token included).
 * Keys at those slots are never read from the cache: they are rotated from qkv (rounded to the
 * dtype exactly as stored) and their v is read from qkv. So no block reads a cache entry that
 * this launch writes, whatever the mix of tokens, and the result is the one a store followed by
 * a read would give. Assumption (also of the cpu backend): cache blocks written by a call are
 * not shared with another sequence's context. The list holds at most T entries, so this path is
 * taken only for T <= ATTN_DECODE_MAX_T. A warp iteration whose keys all come from the cache
 * (the common case: every key below the first in-call slot, no sinks) takes the fast path of
 * plain vector loads; the others rotate element by element.
 *
 * Attention sinks (window > 0, see ops.h): k is stored unrotated and every key, from the cache
 * or from qkv, is rotated as it is scored, at the position sink_key_pos gives for this block's
 * token, rounded to the dtype as a stored key would be.
 *
 * Dimension legend: T tokens, H / Hkv heads, G = H / Hkv, R q rows per block (<= 8), Dh head
 * dim (DH rounded up), L lanes per key, DPL dims per lane, U key groups per warp iteration. */
#ifndef RD_ATTN_DECODE_KERNEL_CUH
#define RD_ATTN_DECODE_KERNEL_CUH

#include "kernels/cuda/attn_decode.cuh"

/* the 16-byte piece of a T row starting at element e0 (zeros past n elements); vec: the row is
 * 16-byte aligned and n a multiple of the piece */
template <typename T>
static __device__ __forceinline__ uint4 load_piece(const T *__restrict__ row, int e0, int n,
                                                   bool vec)
{
    constexpr int V = 16 / sizeof(T);
    if (e0 >= n) return make_uint4(0u, 0u, 0u, 0u);
    if (vec) return *reinterpret_cast<const uint4 *>(row + e0);
    float f[V];
#pragma unroll
    for (int x = 0; x < V; x++) f[x] = e0 + x < n ? to_f32(row[e0 + x]) : 0.0f;
    return pack_of<T, V>(f);
}

template <typename T, int DH, int R, int U>
static __global__ void __launch_bounds__(ATTN_WARPS * 32, R >= 8 ? 2 : 3)
    attn_decode_kernel(const decode_params dp)
{
    constexpr int VEC = 16 / sizeof(T);
    constexpr int L = DH / VEC < 32 ? DH / VEC : 32; /* lanes per key row */
    constexpr int NV = DH / (VEC * L);              /* 16-byte pieces per lane */
    constexpr int DPL = NV * VEC;                    /* dims per lane */
    constexpr int KPW = 32 / L;                      /* keys per warp step */
    constexpr int KPI = KPW * U;                     /* keys per warp iteration */
    const rd_attn_params &p = dp.a;
    const unsigned full = 0xffffffffu;
    const int t = blockIdx.z, split = blockIdx.x;
    const int g = blockIdx.y / dp.hchunks, hc = blockIdx.y % dp.hchunks;
    const int G = p.H / p.Hkv, Dh = p.Dh;
    const int h0 = g * G + hc * R;
    const int n_rows = min(R, G - hc * R);
    const size_t W = (size_t)(p.H + 2 * p.Hkv) * Dh;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int kslot = lane / L, sub = lane % L;

    RD_DYN_SMEM(float4, smem_f4);
    float *q_s = reinterpret_cast<float *>(smem_f4);          /* [R][DH] rotated, scaled q */
    float *acc_s = q_s + R * DH;                              /* [warps][R][DH] */
    float *ml_s = acc_s + ATTN_WARPS * R * DH;                /* [warps][R][2] (m, l) */
    int *lst_slot = reinterpret_cast<int *>(ml_s + ATTN_WARPS * R * 2); /* [ATTN_DECODE_MAX_T] */
    int *lst_tok = lst_slot + ATTN_DECODE_MAX_T;
    __shared__ int n_list, min_slot;

    const int seq = p.seq_d[t], n_ctx = p.n_ctx_d[t], pos = p.pos_d[t];
    const T *__restrict__ qkv = static_cast<const T *>(p.qkv_d);
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

    /* 2. this block's q rows, rotated, rounded to the dtype and scaled (zeros past Dh, n_rows) */
    for (int idx = threadIdx.x; idx < R * DH; idx += blockDim.x) {
        const int r = idx / DH, d = idx % DH;
        float v = 0.0f;
        if (r < n_rows && d < Dh)
            v = round_to<T>(rope_elem(qkv_t + (size_t)(h0 + r) * Dh, d, pos, p)) * dp.qscale;
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

    /* 4. attend over this split's keys [begin, end): this lane's dims of q in registers */
    float q[R][DPL];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int v = 0; v < NV; v++)
#pragma unroll
            for (int x = 0; x < VEC; x++) q[r][v * VEC + x] = q_s[r * DH + (v * L + sub) * VEC + x];
    const int begin = split * dp.chunk;
    const int end = min(begin + dp.chunk, n_ctx);
    const int nl = n_list, ms = min_slot;
    const bool vec = dp.vec != 0;
    float m[R], l[R], acc[R][DPL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[r][i] = 0.0f;
    }

    for (int jb = begin + warp * KPI; jb < end; jb += ATTN_WARPS * KPI) {
        float s[U][R], vf[U][DPL];
        bool valid[U];
        if (!sinks && min(jb + KPI, end) <= ms) {
            /* fast path: every key of the iteration from the cache, stored rotated */
            uint4 kr[U][NV], vr[U][NV];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int j = jb + u * KPW + kslot;
                valid[u] = j < end;
                const size_t off = valid[u] ? cache_off(p, seq, j, g) : 0;
#pragma unroll
                for (int v = 0; v < NV; v++) {
                    const int e0 = (v * L + sub) * VEC;
                    kr[u][v] = load_piece<T>(kc + off, valid[u] ? e0 : Dh, Dh, vec);
                    vr[u][v] = load_piece<T>(vc + off, valid[u] ? e0 : Dh, Dh, vec);
                }
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
#pragma unroll
                for (int r = 0; r < R; r++) s[u][r] = 0.0f;
#pragma unroll
                for (int v = 0; v < NV; v++) {
#pragma unroll
                    for (int x = 0; x < VEC; x++) {
                        const float kx = elem_of<T>(kr[u][v], x);
                        vf[u][v * VEC + x] = elem_of<T>(vr[u][v], x);
#pragma unroll
                        for (int r = 0; r < R; r++) s[u][r] += q[r][v * VEC + x] * kx;
                    }
                }
            }
        } else {
            /* keys of this call (rotated from qkv) or with sinks (rotated when read) */
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int j = jb + u * KPW + kslot;
                valid[u] = j < end;
                int src = -1; /* token of this call that provides key j, or -1: the cache */
                if (valid[u] && j >= ms)
                    for (int e = 0; e < nl; e++)
                        if (lst_slot[e] == j) src = lst_tok[e];
                const T *krow = kc, *vrow = vc;
                if (valid[u] && src < 0) {
                    const size_t off = cache_off(p, seq, j, g);
                    krow = kc + off, vrow = vc + off;
                } else if (valid[u]) {
                    krow = qkv + (size_t)src * W + (size_t)(p.H + g) * Dh;
                    vrow = qkv + (size_t)src * W + (size_t)(p.H + p.Hkv + g) * Dh;
                }
                const bool rotate = valid[u] && (sinks || src >= 0);
                const int kpos = !rotate ? 0 : sinks ? sink_key_pos(p, j, pos, my_slot)
                                                     : p.pos_d[src];
#pragma unroll
                for (int r = 0; r < R; r++) s[u][r] = 0.0f;
#pragma unroll
                for (int v = 0; v < NV; v++) {
                    const int e0 = (v * L + sub) * VEC;
                    const uint4 kp = load_piece<T>(krow, valid[u] ? e0 : Dh, Dh, vec);
                    const uint4 vp = load_piece<T>(vrow, valid[u] ? e0 : Dh, Dh, vec);
#pragma unroll
                    for (int x = 0; x < VEC; x++) {
                        const int d = e0 + x;
                        const float kx = rotate && d < Dh ? round_to<T>(rope_elem(krow, d, kpos, p))
                                                          : elem_of<T>(kp, x);
                        vf[u][v * VEC + x] = elem_of<T>(vp, x);
#pragma unroll
                        for (int r = 0; r < R; r++) s[u][r] += q[r][v * VEC + x] * kx;
                    }
                }
            }
        }
        /* the full dot products: sum over the L lanes of each key slot */
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int o = L / 2; o > 0; o >>= 1) s[u][r] += __shfl_xor_sync(full, s[u][r], o);
        /* online softmax of this key slot, in the log2 domain */
#pragma unroll
        for (int r = 0; r < R; r++) {
            float mx = -INFINITY;
#pragma unroll
            for (int u = 0; u < U; u++) mx = valid[u] ? fmaxf(mx, s[u][r]) : mx;
            const float mnew = fmaxf(m[r], mx);
            if (mnew == -INFINITY) continue; /* no valid key yet */
            const float corr = exp2f(m[r] - mnew);
            l[r] *= corr;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[r][i] *= corr;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const float pr = valid[u] ? exp2f(s[u][r] - mnew) : 0.0f;
                l[r] += pr;
#pragma unroll
                for (int i = 0; i < DPL; i++) acc[r][i] += pr * vf[u][i];
            }
            m[r] = mnew;
        }
    }

    /* 5. merge the key slots of the warp (xor over the slot bits), then the warps */
#pragma unroll
    for (int o = L; o < 32; o <<= 1) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float mo = __shfl_xor_sync(full, m[r], o), lo = __shfl_xor_sync(full, l[r], o);
            const float M = fmaxf(m[r], mo);
            const float f1 = m[r] == -INFINITY ? 0.0f : exp2f(m[r] - M);
            const float f2 = mo == -INFINITY ? 0.0f : exp2f(mo - M);
            l[r] = l[r] * f1 + lo * f2;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const float ao = __shfl_xor_sync(full, acc[r][i], o);
                acc[r][i] = acc[r][i] * f1 + ao * f2;
            }
            m[r] = M;
        }
    }
    if (kslot == 0) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (lane == 0) {
                ml_s[(warp * R + r) * 2] = m[r];
                ml_s[(warp * R + r) * 2 + 1] = l[r];
            }
#pragma unroll
            for (int v = 0; v < NV; v++)
#pragma unroll
                for (int x = 0; x < VEC; x++)
                    acc_s[(warp * R + r) * DH + (v * L + sub) * VEC + x] = acc[r][v * VEC + x];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < n_rows * Dh; idx += blockDim.x) {
        const int r = idx / Dh, d = idx % Dh;
        float M = -INFINITY;
        for (int w = 0; w < ATTN_WARPS; w++) M = fmaxf(M, ml_s[(w * R + r) * 2]);
        float Ls = 0.0f, O = 0.0f;
        if (M != -INFINITY) {
            for (int w = 0; w < ATTN_WARPS; w++) {
                const float mw = ml_s[(w * R + r) * 2];
                const float f = mw == -INFINITY ? 0.0f : exp2f(mw - M);
                Ls += f * ml_s[(w * R + r) * 2 + 1];
                O += f * acc_s[(w * R + r) * DH + d];
            }
        }
        const int h = h0 + r;
        if (dp.splits == 1) {
            static_cast<T *>(p.out_d)[((size_t)t * p.H + h) * Dh + d] =
                from_f32<T>(Ls > 0.0f ? O / Ls : 0.0f);
        } else {
            float *rec = dp.ws + (((size_t)split * p.T + t) * p.H + h) * (size_t)(Dh + 2);
            if (d == 0) rec[0] = M, rec[1] = Ls;
            rec[2 + d] = O;
        }
    }
}

template <typename T, int DH, int R>
static void launch_decode(const decode_params &dp, dim3 grid, cudaStream_t st)
{
    constexpr int U = R >= 8 ? 2 : 4;
    const size_t smem = ((size_t)R * DH * (1 + ATTN_WARPS) + (size_t)ATTN_WARPS * R * 2) *
                            sizeof(float) +
                        2 * ATTN_DECODE_MAX_T * sizeof(int);
    RD_LAUNCH(grid, ATTN_WARPS * 32, smem, st, attn_decode_kernel<T, DH, R, U>)(dp);
}

template <typename T>
static void launch_decode_t(const decode_params &dp, int dh, int R, dim3 grid, cudaStream_t st)
{
#define RD_DECODE_R(DH_)                                                                       \
    switch (R) {                                                                               \
    case 1: launch_decode<T, DH_, 1>(dp, grid, st); break;                                     \
    case 2: launch_decode<T, DH_, 2>(dp, grid, st); break;                                     \
    case 4: launch_decode<T, DH_, 4>(dp, grid, st); break;                                     \
    default: launch_decode<T, DH_, 8>(dp, grid, st); break;                                    \
    }
    switch (dh) {
    case 32: RD_DECODE_R(32) break;
    case 64: RD_DECODE_R(64) break;
    case 128: RD_DECODE_R(128) break;
    default: RD_DECODE_R(256) break;
    }
#undef RD_DECODE_R
}

#endif
