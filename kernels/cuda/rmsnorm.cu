/* RMSNorm and the fused residual add + RMSNorm of the cuda backend.
 *
 * One block per token row. The sum of squares is accumulated in fp32 and reduced over the
 * block; as in Hugging Face's LlamaRMSNorm, the normalised row is rounded to the dtype before
 * it is multiplied by the weight (a no-op for fp32, where this equals the cpu reference). The
 * fused op first rounds resid + delta to the dtype and stores it (the residual stream is kept
 * in the dtype), then normalises that stored value; each thread re-reads only what it wrote.
 *
 * Dimension legend: T tokens (rows), D hidden size. */
#include "kernels/cuda/cuda_common.h"

struct norm_params {
    void *out;         /* [T, D] */
    void *resid;       /* [T, D], in/out (add_rmsnorm) or the input x (rmsnorm) */
    const void *delta; /* [T, D] or NULL (plain rmsnorm) */
    const void *w;     /* [D] */
    int T, D;
    float eps;
};

template <typename T, bool ADD>
static __global__ void rmsnorm_kernel(norm_params p)
{
    __shared__ float red[32];
    const size_t row = (size_t)blockIdx.x * p.D;
    T *x = (T *)p.resid + row;
    const T *dl = ADD ? (const T *)p.delta + row : nullptr;
    const T *w = (const T *)p.w;
    T *out = (T *)p.out + row;

    float ss = 0.0f;
    for (int i = threadIdx.x; i < p.D; i += blockDim.x) {
        float v = to_f32(x[i]);
        if (ADD) {
            v = round_to<T>(v + to_f32(dl[i]));
            x[i] = from_f32<T>(v);
        }
        ss += v * v;
    }
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / (float)p.D + p.eps);
    for (int i = threadIdx.x; i < p.D; i += blockDim.x) {
        float n = round_to<T>(to_f32(x[i]) * inv);
        out[i] = from_f32<T>(n * to_f32(w[i]));
    }
}

static rd_status launch_norm(struct rd_backend *be, const norm_params &p, bool add,
                             const char *op)
{
    if (p.T <= 0) return RD_OK;
    RD_REQUIRE(p.D > 0, RD_ERR_INVALID_ARG, "rmsnorm: D must be positive");
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    const int threads = p.D >= 1024 ? 256 : (p.D >= 256 ? 128 : 64);
    dim3 grid((unsigned)p.T);
    RD_DISPATCH_DTYPE(be->dtype, T,
        if (add) RD_LAUNCH(grid, threads, 0, impl->stream, rmsnorm_kernel<T, true>)(p);
        else RD_LAUNCH(grid, threads, 0, impl->stream, rmsnorm_kernel<T, false>)(p))
    return rd_cuda_after_launch(be, op);
}

extern "C" rd_status rd_cuda_rmsnorm(struct rd_backend *be, void *out_d, const void *x_d,
                                     const void *w_d, int T, int D, float eps)
{
    norm_params p = {out_d, (void *)x_d, nullptr, w_d, T, D, eps};
    return launch_norm(be, p, false, "rmsnorm");
}

extern "C" rd_status rd_cuda_add_rmsnorm(struct rd_backend *be, void *out_d, void *resid_d,
                                         const void *delta_d, const void *w_d, int T, int D,
                                         float eps)
{
    norm_params p = {out_d, resid_d, delta_d, w_d, T, D, eps};
    return launch_norm(be, p, true, "add_rmsnorm");
}
