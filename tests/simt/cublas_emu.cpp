/* The cuBLAS subset of ropedist's SIMT emulation: handles, streams, math modes, the user
 * workspace, and a reference GEMM behind cublasGemmEx / cublasSgemm.
 *
 * The GEMM is column-major as cuBLAS is: C = alpha * op(A) op(B) + beta * C with op = N or T,
 * leading dimensions checked as cuBLAS checks them (CUBLAS_STATUS_INVALID_VALUE), fp32, fp16
 * and bf16 matrices with fp32 compute (CUBLAS_COMPUTE_32F and its fast variants; TF32 input
 * rounding when CUBLAS_COMPUTE_32F_FAST_TF32 or CUBLAS_TF32_TENSOR_OP_MATH asks for it), an
 * fp32 sum over k in order, one rounding to C's type, and C not read when beta is 0 (so it
 * may hold anything, NaN included). Each operand's extent must lie inside one device
 * allocation, else the call fails with a "simt:" line saying which.
 *
 * Rules kept from cuBLAS: cublasSetStream resets the workspace to cuBLAS's own pool, so a
 * workspace set before it no longer counts; a user workspace must be 256-byte aligned; and a
 * GEMM recorded into a graph needs a user workspace (cuBLAS's pool would be allocated inside
 * the recording), which the emulation enforces with CUBLAS_STATUS_NOT_SUPPORTED. */
#include "simt.h" /* first: it defines the CUDA keywords before the toolkit headers */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cublas_v2.h>

#include <vector>

#include "simt_internal.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    void *ws = nullptr;
    size_t ws_bytes = 0;
    bool ws_user = false;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pmode = CUBLAS_POINTER_MODE_HOST;
};

namespace {

using simt::report;

size_t type_size(cudaDataType t)
{
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    default: return 0;
    }
}

const char *type_name(cudaDataType t)
{
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    default: return "an unsupported type";
    }
}

float load(const void *p, cudaDataType t, size_t i)
{
    switch (t) {
    case CUDA_R_16F: return __half2float(((const __half *)p)[i]);
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

void store(void *p, cudaDataType t, size_t i, float v)
{
    switch (t) {
    case CUDA_R_16F: ((__half *)p)[i] = __float2half_rn(v); break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    default: ((float *)p)[i] = v;
    }
}

/* fp32 rounded to TF32 (10 mantissa bits, to nearest even) */
float to_tf32(float x)
{
    if (!isfinite(x)) return x;
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0xfffu + ((u >> 13) & 1u);
    u &= ~0x1fffu;
    memcpy(&x, &u, 4);
    return x;
}

/* elements of a column-major rows x cols matrix with leading dimension ld, in bytes */
bool operand_ok(const char *name, const void *p, cudaDataType t, long rows, long cols, long ld)
{
    if (rows <= 0 || cols <= 0) return true;
    const size_t bytes = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * type_size(t);
    if (simt::in_device_memory(p, bytes)) return true;
    report("cublasGemmEx: %s (%p, %ld x %ld, ld %ld, %s: %zu bytes) is not inside one device "
           "allocation",
           name, p, rows, cols, ld, type_name(t), bytes);
    return false;
}

} /* namespace */

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
{
    *h = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    h->ws = nullptr, h->ws_bytes = 0, h->ws_user = false; /* as cuBLAS: back to its own pool */
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *s = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *ws, size_t bytes)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (((uintptr_t)ws % 256) != 0) {
        report("cublasSetWorkspace: the workspace %p is not 256-byte aligned", ws);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (ws && !simt::in_device_memory(ws, bytes)) {
        report("cublasSetWorkspace: %p (%zu bytes) is not inside one device allocation", ws, bytes);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    h->ws = ws, h->ws_bytes = bytes, h->ws_user = ws != nullptr;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *mode)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *mode = h->math;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t h, cublasPointerMode_t mode)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->pmode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "an internal operation failed";
    }
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType At,
                            int lda, const void *B, cudaDataType Bt, int ldb, const void *beta,
                            void *C, cudaDataType Ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool tA = ta != CUBLAS_OP_N, tB = tb != CUBLAS_OP_N;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) ||
        m < 0 || n < 0 || k < 0 || lda < (tA ? (k > 1 ? k : 1) : (m > 1 ? m : 1)) ||
        ldb < (tB ? (n > 1 ? n : 1) : (k > 1 ? k : 1)) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!type_size(At) || !type_size(Bt) || !type_size(Ct) || At != Bt ||
        (Ct != At && Ct != CUDA_R_32F)) {
        report("cublasGemmEx: A %s, B %s, C %s is not an emulated type combination",
               type_name(At), type_name(Bt), type_name(Ct));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
        compute != CUBLAS_COMPUTE_32F_FAST_16F && compute != CUBLAS_COMPUTE_32F_FAST_16BF &&
        compute != CUBLAS_COMPUTE_32F_FAST_TF32) {
        report("cublasGemmEx: compute type %d is not emulated (fp32 compute only)", (int)compute);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (!operand_ok("A", A, At, tA ? k : m, tA ? m : k, lda) ||
        !operand_ok("B", B, Bt, tB ? n : k, tB ? k : n, ldb) || !operand_ok("C", C, Ct, m, n, ldc))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    if (simt::stream_capturing(h->stream) && !h->ws_user) {
        report("cublasGemmEx recorded into a graph without a user workspace (cublasSetWorkspace "
               "after cublasSetStream): cuBLAS would allocate inside the recording");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const bool tf32 = At == CUDA_R_32F && (compute == CUBLAS_COMPUTE_32F_FAST_TF32 ||
                                           ((h->math & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH &&
                                            compute != CUBLAS_COMPUTE_32F_PEDANTIC));
    const bool dev_scalars = h->pmode == CUBLAS_POINTER_MODE_DEVICE;
    float a_h = 0, b_h = 0;
    if (!dev_scalars) a_h = *(const float *)alpha, b_h = *(const float *)beta;
    cudaError_t e = simt::enqueue(h->stream, "cublasGemmEx", [=]() {
        const float al = dev_scalars ? *(const float *)alpha : a_h;
        const float be = dev_scalars ? *(const float *)beta : b_h;
        /* op(A) as rows of k, op(B) as columns of k, both fp32 */
        std::vector<float> ar((size_t)m * k), bc((size_t)n * k);
        for (int i = 0; i < m; i++)
            for (int l = 0; l < k; l++) {
                float v = load(A, At, tA ? (size_t)l + (size_t)i * lda : (size_t)i + (size_t)l * lda);
                ar[(size_t)i * k + l] = tf32 ? to_tf32(v) : v;
            }
        for (int j = 0; j < n; j++)
            for (int l = 0; l < k; l++) {
                float v = load(B, Bt, tB ? (size_t)j + (size_t)l * ldb : (size_t)l + (size_t)j * ldb);
                bc[(size_t)j * k + l] = tf32 ? to_tf32(v) : v;
            }
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                const float *a = &ar[(size_t)i * k], *b = &bc[(size_t)j * k];
                float acc = 0.0f;
                for (int l = 0; l < k; l++) acc += a[l] * b[l];
                const size_t at = (size_t)i + (size_t)j * ldc;
                float r = al * acc;
                if (be != 0.0f) r += be * load(C, Ct, at);
                store(C, Ct, at, r);
            }
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                              int n, int k, const float *alpha, const float *A, int lda,
                              const float *B, int ldb, const float *beta, float *C, int ldc)
{
    return cublasGemmEx(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta,
                        C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

} /* extern "C" */
