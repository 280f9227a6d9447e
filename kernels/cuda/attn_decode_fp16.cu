/* The decode attention kernel (attn_decode_kernel.cuh) for fp16: one dtype per file, so that
 * the three compile in parallel. */
#include "kernels/cuda/attn_decode_kernel.cuh"

void rd_attn_decode_launch_fp16(const decode_params &dp, int dh, int R, dim3 grid, cudaStream_t st)
{
    launch_decode_t<__half>(dp, dh, R, grid, st);
}
