/* The decode attention kernel (attn_decode_kernel.cuh) for bf16: one dtype per file, so that
 * the three compile in parallel. */
#include "kernels/cuda/attn_decode_kernel.cuh"

void rd_attn_decode_launch_bf16(const decode_params &dp, int dh, int R, dim3 grid, cudaStream_t st)
{
    launch_decode_t<__nv_bfloat16>(dp, dh, R, grid, st);
}
