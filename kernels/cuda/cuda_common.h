/* Private to kernels/cuda: the backend's state, the CUDA/cuBLAS check macros, the dtype
 * helpers every kernel uses (load one element of T as fp32, round fp32 to T), the block and
 * warp reductions, and the launch check (cudaGetLastError, plus a sync with RD_DEBUG_SYNC=1).
 *
 * Included only by .cu files (C++ under nvcc); the project's C headers are wrapped in
 * extern "C" here so the entry points keep C linkage.
 *
 * The kernels are also compiled by the host C++ compiler for the SIMT emulation on the CPU
 * (tests/simt, cmake -DROPEDIST_CUDA_EMU=ON). The two pieces of CUDA syntax a host compiler
 * cannot parse are written through macros, defined here for nvcc and by tests/simt/simt.h for
 * the emulation:
 *   RD_LAUNCH(grid, block, smem, stream, kernel<...>)(args...)   for kernel<<<...>>>(args...)
 *   RD_DYN_SMEM(T, name);                                        for extern __shared__ T name[]; */
#ifndef RD_CUDA_COMMON_H
#define RD_CUDA_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifndef RD_LAUNCH
#define RD_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define RD_DYN_SMEM(T, name) extern __shared__ T name[]
#endif

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "common/dtype.h"
#include "common/log.h"
#include "common/status.h"
#include "kernels/ops.h"
}

#define RD_CUDA_CHECK(x)                                                                       \
    RD_CHECK_GEN(cudaError_t, x, e_ == cudaSuccess, RD_ERR_CUDA, cudaGetErrorString(e_))
#define RD_CUDA_CHECK_GOTO(x, var, label)                                                      \
    RD_CHECK_GEN_GOTO(cudaError_t, x, e_ == cudaSuccess, RD_ERR_CUDA, cudaGetErrorString(e_),  \
                      var, label)
#define RD_CUBLAS_CHECK(x)                                                                     \
    RD_CHECK_GEN(cublasStatus_t, x, e_ == CUBLAS_STATUS_SUCCESS, RD_ERR_CUBLAS,                \
                 cublasGetStatusString(e_))
#define RD_CUBLAS_CHECK_GOTO(x, var, label)                                                    \
    RD_CHECK_GEN_GOTO(cublasStatus_t, x, e_ == CUBLAS_STATUS_SUCCESS, RD_ERR_CUBLAS,           \
                      cublasGetStatusString(e_), var, label)

/* a copy of upload_async from the staging ring */
struct rd_cuda_staged {
    size_t lo, hi;    /* bytes of stage_h the copy reads */
    cudaEvent_t done; /* recorded after the copy */
    int pending;
};

/* Backend-private state (be->impl). Everything is allocated once in rd_backend_cuda_create. */
struct rd_cuda_impl {
    cudaStream_t stream;    /* the one compute stream; every op is enqueued here */
    cublasHandle_t cublas;  /* bound to stream, workspace below */
    void *cublas_ws_d;      /* cuBLAS workspace: fixed, so cuBLAS never allocates while a graph
                             * records a GEMM */
    size_t cublas_ws_bytes;
    float *attn_ws_d;       /* split-K partials of decode attention: [splits, T, H, Dh + 2] */
    size_t attn_ws_bytes;
    void *topk_ws_d;        /* topk candidates of both passes, then the results before they go
                             * to the host */
    size_t topk_ws_bytes;
    unsigned *norm_count_d; /* [norm_count_n] per-row counters of the split add_rmsnorm, zero
                             * between launches */
    size_t norm_count_n;
    void *stage_h;          /* page-locked staging of upload_async, used as a ring */
    size_t stage_bytes, stage_head;
    struct rd_cuda_staged staged[16];
    int staged_next;
    int n_sm;               /* multiprocessors, for grid heuristics */
    size_t max_smem_optin;  /* largest dynamic shared memory a block may opt into */
    int debug_sync;         /* RD_DEBUG_SYNC=1: sync and check after every op */
    int capturing;          /* between graph_begin and graph_end: the stream is recording, so
                             * nothing may wait for it (no sync, no host transfers) */
};

static inline struct rd_cuda_impl *rd_cuda_impl_of(struct rd_backend *be)
{
    return (struct rd_cuda_impl *)be->impl;
}

/* After every launch: the launch error, and with RD_DEBUG_SYNC=1 the execution error of this
 * op (so a fault is reported by the op that caused it, not by a later download). While a graph
 * is being recorded nothing has run yet and a sync would break the recording: the check then
 * happens after graph_launch instead. */
static inline rd_status rd_cuda_after_launch(struct rd_backend *be, const char *op)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        rd_log_fail(__FILE__, __LINE__, op, "kernel launch", RD_ERR_CUDA, cudaGetErrorString(e));
        return RD_ERR_CUDA;
    }
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (impl->debug_sync && !impl->capturing) {
        e = cudaStreamSynchronize(impl->stream);
        if (e != cudaSuccess) {
            rd_log_fail(__FILE__, __LINE__, op, "cudaStreamSynchronize (RD_DEBUG_SYNC)",
                        RD_ERR_CUDA, cudaGetErrorString(e));
            return RD_ERR_CUDA;
        }
    }
    return RD_OK;
}

/* ---- dtype helpers (device) ---- */

static __device__ __forceinline__ float to_f32(float x) { return x; }
static __device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <typename T> static __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x)
{
    return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float x)
{
    return __float2half_rn(x);
}

/* x rounded to T and back: the value a T-typed tensor would hold */
template <typename T> static __device__ __forceinline__ float round_to(float x)
{
    return to_f32(from_f32<T>(x));
}

/* The bits of one T element and back, and 16 bytes (a uint4 register quad) as VEC =
 * 16 / sizeof(T) elements: built and taken apart with register operations only (taking the
 * address of a uint4 to index its elements would put it in local memory). */
static __device__ __forceinline__ unsigned bits_of(float x) { return __float_as_uint(x); }
static __device__ __forceinline__ unsigned bits_of(__nv_bfloat16 x) { return __bfloat16_as_ushort(x); }
static __device__ __forceinline__ unsigned bits_of(__half x) { return __half_as_ushort(x); }
template <typename T> static __device__ __forceinline__ T of_bits(unsigned b);
template <> __device__ __forceinline__ float of_bits<float>(unsigned b) { return __uint_as_float(b); }
template <> __device__ __forceinline__ __nv_bfloat16 of_bits<__nv_bfloat16>(unsigned b)
{
    return __ushort_as_bfloat16((unsigned short)b);
}
template <> __device__ __forceinline__ __half of_bits<__half>(unsigned b)
{
    return __ushort_as_half((unsigned short)b);
}

/* element x of the VEC elements of T in u, as fp32 (x a compile-time constant after unrolling) */
template <typename T> static __device__ __forceinline__ float elem_of(const uint4 &u, int x)
{
    constexpr int PER = 4 / sizeof(T); /* elements per 32-bit word */
    const int wi = x / PER;
    const unsigned w = wi == 0 ? u.x : wi == 1 ? u.y : wi == 2 ? u.z : u.w;
    return to_f32(of_bits<T>(PER == 1 ? w : (w >> (16 * (x % PER))) & 0xffffu));
}

/* VEC fp32 values rounded to T, as 16 bytes */
template <typename T, int VEC> static __device__ __forceinline__ uint4 pack_of(const float (&v)[VEC])
{
    static_assert(VEC * sizeof(T) == 16, "16 bytes of T");
    constexpr int PER = 4 / sizeof(T);
    unsigned w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        w[i] = 0u;
#pragma unroll
        for (int j = 0; j < PER; j++) w[i] |= bits_of(from_f32<T>(v[i * PER + j])) << (16 * j);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

/* ---- reductions ---- */

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
 * red must hold 32 floats; it may be reused after the call returns. */
static __device__ __forceinline__ float block_sum(float v, float *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float s = lane < n_warps ? red[lane] : 0.0f;
    s = warp_sum(s);
    __syncthreads(); /* red may be rewritten by the caller's next reduction */
    return s;
}

/* Dispatch on the backend dtype: calls F<T>(args...) */
#define RD_DISPATCH_DTYPE(dtype, T, ...)                                                       \
    switch (dtype) {                                                                           \
    case RD_DTYPE_F32: {                                                                       \
        typedef float T;                                                                       \
        __VA_ARGS__;                                                                           \
    } break;                                                                                   \
    case RD_DTYPE_BF16: {                                                                      \
        typedef __nv_bfloat16 T;                                                               \
        __VA_ARGS__;                                                                           \
    } break;                                                                                   \
    case RD_DTYPE_F16: {                                                                       \
        typedef __half T;                                                                      \
        __VA_ARGS__;                                                                           \
    } break;                                                                                   \
    }

/* The ops that wait for the stream or allocate refuse to run while a graph is being recorded
 * (the recording would be invalidated with a less helpful error). */
static inline rd_status rd_cuda_not_capturing(struct rd_backend *be, const char *op)
{
    if (!rd_cuda_impl_of(be)->capturing) return RD_OK;
    RD_LOG_ERROR("cuda backend: %s while a graph is being recorded (it waits for the stream "
                 "or allocates; keep it outside graph_begin/graph_end)", op);
    return RD_ERR_INVALID_ARG;
}

/* The op entries (one per kernels/cuda/<op>.cu), filled into the table in backend.cu. */
extern "C" {
rd_status rd_cuda_embed(struct rd_backend *be, void *out_d, const void *table_d,
                        const int32_t *ids_d, int T, int D);
rd_status rd_cuda_rmsnorm(struct rd_backend *be, void *out_d, const void *x_d, const void *w_d,
                          int T, int D, float eps);
rd_status rd_cuda_add_rmsnorm(struct rd_backend *be, void *out_d, void *resid_d,
                              const void *delta_d, const void *w_d, int T, int D, float eps);
rd_status rd_cuda_matmul(struct rd_backend *be, void *y_d, const void *x_d, const void *w_d,
                         int T, int N, int K);
rd_status rd_cuda_swiglu(struct rd_backend *be, void *out_d, const void *gu_d, int T, int F);
rd_status rd_cuda_rope_attention(struct rd_backend *be, const struct rd_attn_params *p);
rd_status rd_cuda_topk(struct rd_backend *be, float *vals_h, int32_t *ids_h, const void *logits_d,
                       int T, int V, int k, int vocab_offset);
}

static inline unsigned rd_div_up(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

#endif
