/* y[T, N] = x[T, K] @ w[N, K]^T through cuBLAS (tensor cores for bf16/fp16, fp32 compute).
 *
 * cuBLAS is column-major: the row-major y[T, N] is the column-major N x T matrix y^T, and
 * y^T = w * x^T where the row-major w[N, K] read column-major is the K x N matrix w^T (so
 * op(A) = transpose, lda = K) and x[T, K] read column-major is x^T (K x T, ldb = K).
 * fp32 uses true fp32 (CUBLAS_COMPUTE_32F, no TF32) so it matches the cpu backend to 1e-5.
 *
 * Dimension legend: T tokens, K input features, N output features. */
#include "kernels/cuda/cuda_common.h"

extern "C" rd_status rd_cuda_matmul(struct rd_backend *be, void *y_d, const void *x_d,
                                    const void *w_d, int T, int N, int K)
{
    if (T <= 0 || N <= 0) return RD_OK;
    RD_REQUIRE(K > 0, RD_ERR_INVALID_ARG, "matmul: K must be positive");
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    cudaDataType_t dt;
    switch (be->dtype) {
    case RD_DTYPE_BF16: dt = CUDA_R_16BF; break;
    case RD_DTYPE_F16: dt = CUDA_R_16F; break;
    default: dt = CUDA_R_32F; break;
    }
    const float alpha = 1.0f, beta = 0.0f;
    RD_CUBLAS_CHECK(cublasGemmEx(impl->cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &alpha, w_d,
                                 dt, K, x_d, dt, K, &beta, y_d, dt, N, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    return rd_cuda_after_launch(be, "matmul");
}
