/* The SIMT emulation checked on its own (label simt, emulation build only): small kernels that
 * use each emulated feature correctly and must give the exact results, and kernels with one
 * planted bug each that the emulation must catch.
 *
 * Correct use: block reduction through static shared memory and __syncthreads (+ _count, _and,
 * _or), every shuffle kind with widths 32 and 8, ballot, __reduce_*_sync, __match_any_sync,
 * atomics across blocks, 2-D/3-D blocks and grids, dynamic shared memory over 48 KB after the
 * opt-in, a stream capture replayed twice, events, the reference GEMM with transposes, leading
 * dimensions and beta, and an all-reduce on one rank.
 *
 * Planted bugs, each run in a child process that must report it: a missing __syncthreads (the
 * reader sees poison), a read of never-written static shared memory (NaN), an out-of-bounds
 * dynamic shared write, a shuffle under divergence, a shuffle reading a lane outside its mask,
 * a barrier not every thread reaches, a launch over 48 KB of dynamic shared memory without the
 * opt-in, a block of 1025 threads, a grid y of 65536, a cudaMalloc while a stream is being
 * captured, a CUDA thread overflowing its stack, and the host rewriting the page-locked
 * source of an asynchronous copy before waiting for it. The warp matrix functions and cp.async
 * are checked in checks_wmma.cu. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <mpi.h>
#include <nccl.h>

#include <string>

#include "simt_checks.h"

int g_checks, g_failed;

/* ---- correct kernels ---- */

static __global__ void block_sum_kernel(const float *x, float *out, int *counts)
{
    __shared__ float part[32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float v = x[blockIdx.x * blockDim.x + tid];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) out[blockIdx.x] = v;
    }
    const int n = __syncthreads_count(tid % 3 == 0);
    const int all = __syncthreads_and(tid >= 0), any = __syncthreads_or(tid == 5);
    if (tid == 0) counts[blockIdx.x * 3] = n, counts[blockIdx.x * 3 + 1] = all,
                  counts[blockIdx.x * 3 + 2] = any;
}

static __global__ void warp_ops_kernel(int *out)
{
    const int lane = threadIdx.x & 31;
    int *o = out + threadIdx.x * 8;
    o[0] = __shfl_sync(0xffffffffu, lane * 10, 3);           /* everyone reads lane 3 */
    o[1] = __shfl_up_sync(0xffffffffu, lane, 2, 8);           /* within groups of 8 */
    o[2] = __shfl_down_sync(0xffffffffu, lane, 3, 8);
    o[3] = __shfl_xor_sync(0xffffffffu, lane, 5);
    o[4] = (int)__ballot_sync(0xffffffffu, lane % 4 == 1);
    o[5] = __reduce_add_sync(0xffffffffu, lane);
    o[6] = __reduce_min_sync(0xffffffffu, 100 - lane);
    o[7] = (int)__match_any_sync(0xffffffffu, lane / 8);
}

static __global__ void atomic_kernel(int *counter, float *fsum)
{
    atomicAdd(counter, 1);
    atomicAdd(fsum, 0.5f);
    atomicMax(counter + 1, (int)(blockIdx.x * blockDim.x + threadIdx.x));
}

static __global__ void dims_kernel(int *out)
{
    const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

static __global__ void big_smem_kernel(float *out, int n)
{
    RD_DYN_SMEM(float, s);
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)i;
    __syncthreads();
    float acc = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += s[n - 1 - i];
    atomicAdd(out, acc);
}

static __global__ void scale_kernel(float *x, float f, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= f;
}

/* ---- kernels with a planted bug ---- */

static __global__ void missing_barrier_kernel(float *out)
{
    __shared__ float s[64];
    s[threadIdx.x] = (float)threadIdx.x;
    /* __syncthreads() missing: the neighbour may not have written yet */
    out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

static __global__ void unwritten_shared_kernel(float *out)
{
    __shared__ float s[64];
    if (threadIdx.x < 32) s[threadIdx.x] = 1.0f; /* the upper half is never written */
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

static __global__ void smem_oob_kernel(float *out)
{
    RD_DYN_SMEM(float, s);
    s[threadIdx.x + 1] = 1.0f; /* thread 63 writes one past the 64 floats */
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

static __global__ void divergent_shfl_kernel(float *out)
{
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) v += __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

static __global__ void divergent_shfl2_kernel(float *out)
{
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) v += __shfl_xor_sync(0xffffffffu, v, 1);
    else v += __shfl_xor_sync(0xffffffffu, v, 2);
    out[threadIdx.x] = v;
}

static __global__ void shfl_outside_mask_kernel(float *out)
{
    if ((threadIdx.x & 31) < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1.0f, 20);
}

static __global__ void split_barrier_kernel(float *out)
{
    if (threadIdx.x < 32) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        out[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

static __global__ void barrier_vs_shfl_kernel(float *out)
{
    float v = 1.0f;
    if (threadIdx.x == 0) __syncthreads(); /* lane 0 never joins its warp's shuffle */
    v = __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
    out[threadIdx.x] = v;
}

static __device__ int deep(int n, volatile char *sink)
{
    volatile char buf[4096];
    buf[0] = (char)n;
    sink[0] = buf[0];
    return n > 0 ? deep(n - 1, sink) + buf[0] : 0;
}

static __global__ void stack_kernel(int *out, char *sink) { out[threadIdx.x] = deep(1 << 20, sink); }

/* ---- checks of correct use ---- */

static void check_correct()
{
    /* block reduction: 3 blocks of 256 */
    const int B = 3, N = 256;
    float hx[B * N];
    for (int i = 0; i < B * N; i++) hx[i] = (float)(i % 17) - 8.0f;
    float *x = dev<float>(B * N), *out = dev<float>(B);
    int *counts = dev<int>(B * 3);
    up(x, hx, B * N);
    RD_LAUNCH(B, N, 0, nullptr, block_sum_kernel)(x, out, counts);
    EXPECT(cudaGetLastError() == cudaSuccess, "block_sum launch");
    float hout[B];
    int hc[B * 3];
    down(hout, out, B);
    down(hc, counts, B * 3);
    for (int b = 0; b < B; b++) {
        float ref = 0;
        for (int i = 0; i < N; i++) ref += hx[b * N + i];
        EXPECT(fabsf(hout[b] - ref) < 1e-3f, "block %d sum %g, expected %g", b, hout[b], ref);
        EXPECT(hc[b * 3] == 86 && hc[b * 3 + 1] == 1 && hc[b * 3 + 2] == 1,
               "__syncthreads_count/and/or: %d %d %d", hc[b * 3], hc[b * 3 + 1], hc[b * 3 + 2]);
    }

    /* warp collectives */
    int *w = dev<int>(64 * 8);
    RD_LAUNCH(1, 64, 0, nullptr, warp_ops_kernel)(w);
    int hw[64 * 8];
    down(hw, w, 64 * 8);
    for (int t = 0; t < 64; t++) {
        const int l = t & 31, *o = hw + t * 8;
        const int up2 = (l & 7) >= 2 ? l - 2 : l, dn3 = (l & 7) + 3 < 8 ? l + 3 : l;
        unsigned ball = 0;
        for (int i = 0; i < 32; i++) ball |= (i % 4 == 1 ? 1u : 0u) << i;
        const unsigned match = 0xffu << (8 * (l / 8));
        EXPECT(o[0] == 30 && o[1] == up2 && o[2] == dn3 && o[3] == (l ^ 5) &&
                   (unsigned)o[4] == ball && o[5] == 496 && o[6] == 69 && (unsigned)o[7] == match,
               "warp ops at thread %d: %d %d %d %d %x %d %d %x", t, o[0], o[1], o[2], o[3], o[4],
               o[5], o[6], o[7]);
    }

    /* atomics over 40 blocks */
    int *ctr = dev<int>(2);
    float *fs = dev<float>(1);
    cudaMemset(ctr, 0, 2 * sizeof(int));
    cudaMemset(fs, 0, sizeof(float));
    RD_LAUNCH(40, 96, 0, nullptr, atomic_kernel)(ctr, fs);
    int hctr[2];
    float hfs;
    down(hctr, ctr, 2);
    down(&hfs, fs, 1);
    EXPECT(hctr[0] == 3840 && hctr[1] == 3839 && hfs == 1920.0f, "atomics: %d %d %g", hctr[0],
           hctr[1], hfs);

    /* 3-D grid and block */
    int *d = dev<int>(2 * 3 * 2 * 4 * 2 * 3);
    RD_LAUNCH(dim3(2, 3, 2), dim3(4, 2, 3), 0, nullptr, dims_kernel)(d);
    int hd[2 * 3 * 2 * 4 * 2 * 3];
    down(hd, d, 2 * 3 * 2 * 4 * 2 * 3);
    bool ok = true;
    for (int b = 0; b < 12; b++)
        for (int t = 0; t < 24; t++) ok &= hd[b * 24 + t] == b * 1000 + t;
    EXPECT(ok, "3-D grid and block indices");

    /* 100 KB of dynamic shared memory after the opt-in */
    const int n = 25600;
    float *bs = dev<float>(1);
    cudaMemset(bs, 0, sizeof(float));
    EXPECT(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                n * 4) == cudaSuccess,
           "opt-in to 100 KB");
    RD_LAUNCH(1, 128, (size_t)n * 4, nullptr, big_smem_kernel)(bs, n);
    EXPECT(cudaGetLastError() == cudaSuccess, "100 KB launch after the opt-in");
    float hbs;
    down(&hbs, bs, 1);
    EXPECT(fabs(hbs - (double)n * (n - 1) / 2) < 1e-5 * n * n, "big shared sum %g", hbs);

    /* capture: a kernel and a copy recorded once, replayed twice */
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    float hv[100], *v = dev<float>(100), *v2 = dev<float>(100);
    for (int i = 0; i < 100; i++) hv[i] = 1.0f;
    up(v, hv, 100);
    cudaGraph_t g;
    cudaGraphExec_t ge;
    EXPECT(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
    RD_LAUNCH(4, 32, 0, st, scale_kernel)(v, 2.0f, 100);
    cudaMemcpyAsync(v2, v, 400, cudaMemcpyDeviceToDevice, st);
    EXPECT(cudaStreamEndCapture(st, &g) == cudaSuccess && g, "end capture");
    down(hv, v, 100);
    EXPECT(hv[0] == 1.0f, "a recorded kernel must not run (%g)", hv[0]);
    EXPECT(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess, "instantiate");
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    cudaEventRecord(e0, st);
    cudaGraphLaunch(ge, st);
    cudaGraphLaunch(ge, st);
    cudaEventRecord(e1, st);
    cudaStreamSynchronize(st);
    float ms = -1;
    EXPECT(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && ms >= 0, "event time");
    down(hv, v2, 100);
    EXPECT(hv[0] == 4.0f && hv[99] == 4.0f, "graph replayed twice: %g %g", hv[0], hv[99]);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);

    /* the reference GEMM: C = 0.5 op(A) op(B) + 2 C, A transposed, padded leading dims */
    const int m = 5, nn = 4, k = 3, lda = 4, ldb = 6, ldc = 7;
    float hA[lda * m], hB[ldb * nn], hC[ldc * nn];
    for (int i = 0; i < lda * m; i++) hA[i] = (float)(i % 7) - 3;
    for (int i = 0; i < ldb * nn; i++) hB[i] = (float)(i % 5) - 2;
    for (int i = 0; i < ldc * nn; i++) hC[i] = (float)i;
    float *A = dev<float>(lda * m), *Bm = dev<float>(ldb * nn), *C = dev<float>(ldc * nn);
    up(A, hA, lda * m), up(Bm, hB, ldb * nn), up(C, hC, ldc * nn);
    cublasHandle_t h;
    cublasCreate(&h);
    const float alpha = 0.5f, beta = 2.0f;
    EXPECT(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &alpha, A, CUDA_R_32F, lda, Bm,
                        CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
           "gemm");
    float got[ldc * nn];
    down(got, C, ldc * nn);
    ok = true;
    for (int j = 0; j < nn; j++)
        for (int i = 0; i < ldc; i++) {
            float ref = hC[i + j * ldc];
            if (i < m) {
                float acc = 0;
                for (int l = 0; l < k; l++) acc += hA[l + i * lda] * hB[l + j * ldb];
                ref = alpha * acc + beta * ref;
            }
            ok &= fabsf(got[i + j * ldc] - ref) < 1e-5f;
        }
    EXPECT(ok, "GEMM with a transpose, leading dimensions and beta");
    EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, nn, k, &alpha, A, CUDA_R_32F, 2, Bm,
                        CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE,
           "lda < m is refused");
    cublasDestroy(h);

    /* one-rank NCCL all-reduce (the multi-rank paths run in the gpu tests) */
    ncclUniqueId id;
    ncclComm_t comm;
    EXPECT(ncclGetUniqueId(&id) == ncclSuccess && ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess,
           "nccl init");
    EXPECT(ncclAllReduce(v2, v2, 100, ncclFloat32, ncclSum, comm, st) == ncclSuccess,
           "all-reduce");
    ncclCommDestroy(comm);
    cudaStreamDestroy(st);
}

/* ---- planted bugs: each in a child process ---- */

static float g_res[64];

static void run_missing_barrier()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 64, 0, nullptr, missing_barrier_kernel)(o);
    down(g_res, o, 64);
    int nan = 0;
    for (int i = 0; i < 64; i++) nan += isnan(g_res[i]);
    fprintf(stderr, "poisoned reads: %d\n", nan);
}

static void run_unwritten_shared()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 64, 0, nullptr, unwritten_shared_kernel)(o);
    down(g_res, o, 64);
    int nan = 0;
    for (int i = 0; i < 64; i++) nan += isnan(g_res[i]);
    fprintf(stderr, "poisoned reads: %d\n", nan);
}

static void run_smem_oob()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 64, 64 * sizeof(float), nullptr, smem_oob_kernel)(o);
}

static void run_divergent_shfl()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 64, 0, nullptr, divergent_shfl_kernel)(o);
}

static void run_divergent_shfl2()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 64, 0, nullptr, divergent_shfl2_kernel)(o);
}

static void run_shfl_outside()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 32, 0, nullptr, shfl_outside_mask_kernel)(o);
}

static void run_split_barrier()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 64, 0, nullptr, split_barrier_kernel)(o);
}

static void run_barrier_vs_shfl()
{
    float *o = dev<float>(64);
    RD_LAUNCH(1, 32, 0, nullptr, barrier_vs_shfl_kernel)(o);
}

static void run_smem_no_optin()
{
    float *o = dev<float>(1);
    RD_LAUNCH(1, 64, 49 * 1024, nullptr, smem_oob_kernel)(o);
    fprintf(stderr, "last error: %s\n", cudaGetErrorName(cudaGetLastError()));
}

static void run_big_block()
{
    float *o = dev<float>(2048);
    RD_LAUNCH(1, 1025, 0, nullptr, missing_barrier_kernel)(o);
    fprintf(stderr, "last error: %s\n", cudaGetErrorName(cudaGetLastError()));
}

static void run_big_grid()
{
    float *o = dev<float>(64);
    RD_LAUNCH(dim3(1, 65536), 32, 0, nullptr, missing_barrier_kernel)(o);
    fprintf(stderr, "last error: %s\n", cudaGetErrorName(cudaGetLastError()));
}

static void run_capture_malloc()
{
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    void *p;
    cudaError_t e1 = cudaMalloc(&p, 64);
    cudaGraph_t g;
    cudaError_t e2 = cudaStreamEndCapture(st, &g);
    fprintf(stderr, "malloc: %s, end: %s\n", cudaGetErrorName(e1), cudaGetErrorName(e2));
}

/* mode 0: the host rewrites a page-locked source right after cudaMemcpyAsync (a bug on a
 * GPU); mode 1: only after an event recorded behind the copy has been waited for (correct) */
static int g_pin_mode;
static void run_pinned_rewrite()
{
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    cudaEvent_t ev;
    cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    float *h = nullptr, *d = dev<float>(64);
    cudaMallocHost((void **)&h, 64 * sizeof(float));
    for (int i = 0; i < 64; i++) h[i] = 1.0f;
    cudaMemcpyAsync(d, h, 64 * sizeof(float), cudaMemcpyHostToDevice, st);
    cudaEventRecord(ev, st);
    if (g_pin_mode == 1) cudaEventSynchronize(ev);
    h[3] = 2.0f;
    cudaError_t e = cudaStreamSynchronize(st);
    fprintf(stderr, "sync: %s\n", cudaGetErrorName(e));
}

static void run_stack_overflow()
{
    int *o = dev<int>(32);
    char *sink = dev<char>(1);
    RD_LAUNCH(1, 32, 0, nullptr, stack_kernel)(o, sink);
    cudaDeviceSynchronize();
}

static void check_planted()
{
    outcome o = in_child(run_missing_barrier);
    EXPECT(!says(o, "poisoned reads: 0\n") && says(o, "poisoned reads:"),
           "a missing __syncthreads must show poison: %s", o.err.c_str());
    o = in_child(run_unwritten_shared);
    EXPECT(says(o, "poisoned reads: 32\n"), "never-written shared memory must read as NaN: %s",
           o.err.c_str());
    o = in_child(run_smem_oob);
    EXPECT(says(o, "past the end of its 256 bytes of dynamic shared memory") || says(o, "AddressSanitizer"),
           "an out-of-bounds shared write must be caught: %s", o.err.c_str());
    o = in_child(run_divergent_shfl);
    EXPECT(aborted(o) && says(o, "FAULT in kernel divergent_shfl_kernel") &&
               (says(o, "a warp collective whose mask names a lane that never reaches it") ||
                says(o, "that have already exited")),
           "a shuffle under divergence (others exit) must be a fault: %s", o.err.c_str());
    o = in_child(run_divergent_shfl2);
    EXPECT(aborted(o) && says(o, "a warp collective under divergence"),
           "a shuffle under divergence (others shuffle elsewhere) must be a fault: %s",
           o.err.c_str());
    o = in_child(run_shfl_outside);
    EXPECT(aborted(o) && says(o, "which is not in the mask"),
           "a shuffle reading a lane outside its mask must be a fault: %s", o.err.c_str());
    o = in_child(run_split_barrier);
    EXPECT(aborted(o) && says(o, "a barrier that not every thread reaches"),
           "two different barriers must be a fault: %s", o.err.c_str());
    o = in_child(run_barrier_vs_shfl);
    EXPECT(aborted(o) && says(o, "no thread can continue"),
           "a deadlock between a barrier and a shuffle must be a fault: %s", o.err.c_str());
    o = in_child(run_smem_no_optin);
    EXPECT(says(o, "launch of smem_oob_kernel refused: 50176 bytes of dynamic shared memory, "
                   "49152 allowed") &&
               says(o, "last error: cudaErrorInvalidValue"),
           "over 48 KB without the opt-in must be refused: %s", o.err.c_str());
    o = in_child(run_big_block);
    EXPECT(says(o, "block (1025,1,1) is over 1024 threads") &&
               says(o, "last error: cudaErrorInvalidConfiguration"),
           "a block of 1025 threads must be refused: %s", o.err.c_str());
    o = in_child(run_big_grid);
    EXPECT(says(o, "grid (1,65536,1) is over") && says(o, "cudaErrorInvalidConfiguration"),
           "a grid y of 65536 must be refused: %s", o.err.c_str());
    o = in_child(run_capture_malloc);
    EXPECT(says(o, "graph capture: cudaMalloc is not allowed") &&
               says(o, "malloc: cudaErrorStreamCaptureUnsupported, end: "
                       "cudaErrorStreamCaptureInvalidated"),
           "cudaMalloc during a capture must invalidate it: %s", o.err.c_str());
    g_pin_mode = 0;
    o = in_child(run_pinned_rewrite);
    EXPECT(aborted(o) && says(o, "the host rewrote page-locked memory"),
           "rewriting the source of a pending async copy must be a fault: %s", o.err.c_str());
    g_pin_mode = 1;
    o = in_child(run_pinned_rewrite);
    EXPECT(!aborted(o) && says(o, "sync: cudaSuccess") && !says(o, "rewrote"),
           "rewriting it after waiting for an event behind the copy is fine: %s", o.err.c_str());
    o = in_child(run_stack_overflow);
    EXPECT((WIFSIGNALED(o.status) || WEXITSTATUS(o.status) != 0) &&
               (says(o, "stack overflowed") || says(o, "stack-overflow")),
           "a CUDA thread's stack overflow must be named: %s", o.err.c_str());
}

int main(int argc, char **argv)
{
    setenv("RD_SIMT_FAULT", "abort", 1);
    check_planted(); /* before MPI_Init: the children are forked */
    check_wmma_planted();
    MPI_Init(&argc, &argv);
    check_correct();
    check_wmma_correct();
    printf("test_simt_checks: %d checks, %d failed\n", g_checks, g_failed);
    MPI_Finalize();
    return g_failed ? 1 : 0;
}
