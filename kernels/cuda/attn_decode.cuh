/* Decode attention, shared by its translation units: the parameters of a launch and the
 * per-dtype launchers of the decode kernel (attn_decode_kernel.cuh), one file per dtype
 * (attn_decode_{fp32,bf16,fp16}.cu) so that they compile in parallel; attn_decode.cu picks
 * the split and launches. */
#ifndef RD_ATTN_DECODE_CUH
#define RD_ATTN_DECODE_CUH

#include "kernels/cuda/attn_common.cuh"

#define DECODE_MIN_CHUNK 32 /* keys per split at least: one block iteration */

struct decode_params {
    rd_attn_params a;
    int hchunks;  /* ceil(G / R) */
    int splits;   /* context splits (gridDim.x) */
    int chunk;    /* keys per split */
    int vec;      /* cache and qkv rows 16-byte aligned (Dh a multiple of 16 / sizeof(T)) */
    float qscale; /* softmax scale * log2(e): scores are kept in the log2 domain */
    float *ws;    /* splits > 1: partials [splits, T, H, Dh + 2] = (m, l, acc[Dh]) */
};

/* dh: the head dim rounded up to 32, 64, 128 or 256; R: q rows per block (1, 2, 4 or 8) */
void rd_attn_decode_launch_fp32(const decode_params &dp, int dh, int R, dim3 grid, cudaStream_t st);
void rd_attn_decode_launch_bf16(const decode_params &dp, int dh, int R, dim3 grid, cudaStream_t st);
void rd_attn_decode_launch_fp16(const decode_params &dp, int dh, int R, dim3 grid, cudaStream_t st);

#endif
