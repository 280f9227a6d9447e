/* The warp matrix functions (nvcuda::wmma) and cp.async of the SIMT emulation, checked as part
 * of test_simt_checks (label simt).
 *
 * Correct use, exact results (small integers, so any summation order is exact): one 16x16x16
 * product per fragment layout combination (A and B row- or column-major, the accumulator loaded
 * and stored either way, padded leading dimensions) for __half and __nv_bfloat16; a 32x32x64
 * product by four warps from shared memory filled by double-buffered cp.async copies
 * (commit / wait_prior); fill_fragment with an elementwise update; and the layout-free way to
 * learn which element a lane holds (load an index matrix into an accumulator), which the
 * prefill attention kernel relies on.
 *
 * Planted bugs: code that assumes NVIDIA's accumulator layout gets wrong results; a mma_sync
 * half the warp reaches, lanes passing different pointers, a pointer that is not 256-bit
 * aligned and a __half fragment written at one slot only are faults; a shared-memory read of
 * a cp.async destination before the wait sees poison (except under the reverse schedule, where
 * copies land at once); a cp.async into global memory and one from a misaligned source are
 * faults. */
#include <cuda_pipeline_primitives.h>
#include <math.h>
#include <mma.h>
#include <string.h>

#include "simt_checks.h"

using namespace nvcuda;

/* ---- kernels ---- */

template <class T, class LA, class LB>
static __global__ void gemm16_kernel(const T *A, const T *B, const float *C, float *D, int lda,
                                     int ldb, int c_col, int d_col)
{
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    wmma::load_matrix_sync(a, A, lda);
    wmma::load_matrix_sync(b, B, ldb);
    wmma::load_matrix_sync(c, C, 16, c_col ? wmma::mem_col_major : wmma::mem_row_major);
    wmma::mma_sync(c, a, b, c);
    wmma::store_matrix_sync(D, c, 24, d_col ? wmma::mem_col_major : wmma::mem_row_major);
}

/* D[32x32] = A[32x64] B[64x32], row-major in global memory; K in two stages of 32 copied to
 * shared memory with cp.async (both stages in flight, then waited for one by one) */
template <class T> static __global__ void tile_kernel(const T *A, const T *B, float *D)
{
    constexpr int LD = 40; /* padded row: 80 bytes */
    __shared__ __align__(128) T sA[2][32 * LD];
    __shared__ __align__(128) T sB[2][32 * LD];
    const int tid = threadIdx.x, warp = tid >> 5;
    for (int s = 0; s < 2; s++) { /* one 16-byte piece of A and of B per thread and stage */
        const int r = tid / 4, c = (tid % 4) * 8;
        __pipeline_memcpy_async(&sA[s][r * LD + c], A + r * 64 + s * 32 + c, 16);
        __pipeline_memcpy_async(&sB[s][r * LD + c], B + (s * 32 + r) * 32 + c, 16);
        __pipeline_commit();
    }
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    const int wr = (warp / 2) * 16, wc = (warp % 2) * 16;
    for (int s = 0; s < 2; s++) {
        __pipeline_wait_prior(1 - s);
        __syncthreads();
        for (int k = 0; k < 32; k += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
            wmma::load_matrix_sync(a, &sA[s][wr * LD + k], LD);
            wmma::load_matrix_sync(b, &sB[s][k * LD + wc], LD);
            wmma::mma_sync(acc, a, b, acc);
        }
    }
    wmma::store_matrix_sync(D + wr * 32 + wc, acc, 32, wmma::mem_row_major);
}

/* fill 1.5, double every element, add A B (16x16, bf16, row-major): D = 3 + A B; then learn the
 * (row, column) of each accumulator element from an index matrix and write the product
 * directly from the fragment with it */
static __global__ void elementwise_kernel(const __nv_bfloat16 *A, const __nv_bfloat16 *B,
                                          float *D, float *D2, float *idx_back)
{
    __shared__ __align__(128) float idx[256];
    const int lane = threadIdx.x;
    for (int i = lane; i < 256; i += 32) idx[i] = (float)i;
    __syncwarp();
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c, where;
    wmma::load_matrix_sync(where, idx, 16, wmma::mem_row_major);
    wmma::store_matrix_sync(idx_back, where, 16, wmma::mem_row_major);
    wmma::fill_fragment(c, 1.5f);
    for (int i = 0; i < c.num_elements; i++) c.x[i] *= 2.0f;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
    wmma::load_matrix_sync(a, A, 16);
    wmma::load_matrix_sync(b, B, 16);
    wmma::mma_sync(c, a, b, c);
    wmma::store_matrix_sync(D, c, 16, wmma::mem_row_major);
    for (int i = 0; i < c.num_elements; i++) D2[(int)where.x[i]] = c.x[i];
}

/* writes the product assuming the layout of NVIDIA's sm_80 accumulator (lane / 4 is the row
 * group, lane % 4 the column pair): wrong under any other layout */
static __global__ void assume_layout_kernel(const __nv_bfloat16 *A, const __nv_bfloat16 *B,
                                            float *D)
{
    const int lane = threadIdx.x;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    wmma::fill_fragment(c, 0.0f);
    wmma::load_matrix_sync(a, A, 16);
    wmma::load_matrix_sync(b, B, 16);
    wmma::mma_sync(c, a, b, c);
    for (int i = 0; i < c.num_elements; i++) {
        const int row = (lane >> 2) + 8 * ((i >> 1) & 1), col = (lane & 3) * 2 + (i & 1) + 8 * (i >> 2);
        D[row * 16 + col] = c.x[i];
    }
}

/* planted: mode 0 half the warp calls mma_sync, 1 lanes pass different pointers, 2 a pointer
 * off by one element, 3 one slot of a __half fragment written */
static __global__ void wmma_bug_kernel(const __half *A, float *D, int mode)
{
    const int lane = threadIdx.x;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    wmma::fill_fragment(c, 0.0f);
    wmma::load_matrix_sync(a, mode == 1 ? A + (lane & 1) * 16 : mode == 2 ? A + 1 : A, 16);
    wmma::load_matrix_sync(b, A, 16);
    if (mode == 3 && lane == 0) a.x[0] = __float2half(100.0f);
    if (mode != 0 || lane < 16) wmma::mma_sync(c, a, b, c);
    wmma::store_matrix_sync(D, c, 16, wmma::mem_row_major);
}

/* planted: mode 0 reads a neighbour's cp.async destination after __syncthreads but before any
 * wait; 1 copies into global memory; 2 from a misaligned source. Also checks zfill. */
static __global__ void async_bug_kernel(const float *src, float *out, int mode)
{
    __shared__ __align__(16) float s[64 * 4];
    const int t = threadIdx.x;
    if (mode == 1) __pipeline_memcpy_async(out + 4 * t, src + 4 * t, 16);
    __pipeline_memcpy_async(&s[4 * t], src + 4 * t + (mode == 2 ? 1 : 0), 16, 4);
    __pipeline_commit();
    __syncthreads();
    const float v = s[4 * ((t + 1) % 64)];
    __pipeline_wait_prior(0);
    __syncthreads();
    out[t] = v;
    out[64 + t] = s[4 * t + 3]; /* zero-filled */
}

/* ---- host side ---- */

template <class T> static void to_dt(T *d, const float *h, int n)
{
    for (int i = 0; i < n; i++) d[i] = (T)h[i];
}

template <class T, class LA, class LB> static void check_gemm16(const char *name)
{
    const int lda = 24, ldb = 32;
    float hA[16 * 24], hB[16 * 32], hC[256];
    for (int i = 0; i < 16 * 24; i++) hA[i] = (float)((i * 7 + i / 16) % 7 - 3);
    for (int i = 0; i < 16 * 32; i++) hB[i] = (float)((i * 5 + 1) % 5 - 2);
    for (int i = 0; i < 256; i++) hC[i] = (float)(i % 11);
    T tA[16 * 24], tB[16 * 32];
    to_dt(tA, hA, 16 * 24), to_dt(tB, hB, 16 * 32);
    T *A = dev<T>(16 * 24), *B = dev<T>(16 * 32);
    float *C = dev<float>(256), *D = dev<float>(16 * 24);
    up(A, tA, 16 * 24), up(B, tB, 16 * 32), up(C, hC, 256);
    const bool acol = std::is_same<LA, wmma::col_major>::value;
    const bool bcol = std::is_same<LB, wmma::col_major>::value;
    for (int cc = 0; cc < 2; cc++)
        for (int dc = 0; dc < 2; dc++) {
            RD_LAUNCH(1, 32, 0, nullptr, gemm16_kernel<T, LA, LB>)(A, B, C, D, lda, ldb, cc, dc);
            float hD[16 * 24];
            down(hD, D, 16 * 24);
            int bad = 0;
            for (int m = 0; m < 16; m++)
                for (int n = 0; n < 16; n++) {
                    float ref = cc ? hC[n * 16 + m] : hC[m * 16 + n];
                    for (int k = 0; k < 16; k++)
                        ref += (acol ? hA[k * lda + m] : hA[m * lda + k]) *
                               (bcol ? hB[n * ldb + k] : hB[k * ldb + n]);
                    bad += (dc ? hD[n * 24 + m] : hD[m * 24 + n]) != ref;
                }
            EXPECT(bad == 0, "wmma 16x16x16 %s, C %s, D %s: %d elements wrong", name,
                   cc ? "col" : "row", dc ? "col" : "row", bad);
        }
    cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(D);
}

template <class T> static void check_tile(const char *name)
{
    float hA[32 * 64], hB[64 * 32];
    for (int i = 0; i < 32 * 64; i++) hA[i] = (float)((i * 3) % 5 - 2);
    for (int i = 0; i < 64 * 32; i++) hB[i] = (float)((i * 11) % 7 - 3);
    T tA[32 * 64], tB[64 * 32];
    to_dt(tA, hA, 32 * 64), to_dt(tB, hB, 64 * 32);
    T *A = dev<T>(32 * 64), *B = dev<T>(64 * 32);
    float *D = dev<float>(32 * 32);
    up(A, tA, 32 * 64), up(B, tB, 64 * 32);
    RD_LAUNCH(1, 128, 0, nullptr, tile_kernel<T>)(A, B, D);
    float hD[32 * 32];
    down(hD, D, 32 * 32);
    int bad = 0;
    for (int m = 0; m < 32; m++)
        for (int n = 0; n < 32; n++) {
            float ref = 0;
            for (int k = 0; k < 64; k++) ref += hA[m * 64 + k] * hB[k * 32 + n];
            bad += hD[m * 32 + n] != ref;
        }
    EXPECT(bad == 0, "wmma 32x32x64 from cp.async double buffers (%s): %d elements wrong", name,
           bad);
    cudaFree(A), cudaFree(B), cudaFree(D);
}

static void product16(const float *A, const float *B, float *P)
{
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float r = 0;
            for (int k = 0; k < 16; k++) r += A[m * 16 + k] * B[k * 16 + n];
            P[m * 16 + n] = r;
        }
}

void check_wmma_correct()
{
    check_gemm16<__half, wmma::row_major, wmma::row_major>("half A row B row");
    check_gemm16<__half, wmma::col_major, wmma::row_major>("half A col B row");
    check_gemm16<__half, wmma::row_major, wmma::col_major>("half A row B col");
    check_gemm16<__nv_bfloat16, wmma::col_major, wmma::col_major>("bf16 A col B col");
    check_gemm16<__nv_bfloat16, wmma::row_major, wmma::col_major>("bf16 A row B col");
    check_tile<__half>("half");
    check_tile<__nv_bfloat16>("bf16");

    float hA[256], hB[256], P[256];
    for (int i = 0; i < 256; i++) hA[i] = (float)(i % 5 - 2), hB[i] = (float)((i / 3) % 4 - 1);
    product16(hA, hB, P);
    __nv_bfloat16 tA[256], tB[256];
    to_dt(tA, hA, 256), to_dt(tB, hB, 256);
    __nv_bfloat16 *A = dev<__nv_bfloat16>(256), *B = dev<__nv_bfloat16>(256);
    float *D = dev<float>(256), *D2 = dev<float>(256), *I = dev<float>(256);
    up(A, tA, 256), up(B, tB, 256);
    RD_LAUNCH(1, 32, 0, nullptr, elementwise_kernel)(A, B, D, D2, I);
    float hD[256], hD2[256], hI[256];
    down(hD, D, 256), down(hD2, D2, 256), down(hI, I, 256);
    int bad = 0, bad2 = 0, badi = 0;
    for (int i = 0; i < 256; i++)
        bad += hD[i] != P[i] + 3.0f, bad2 += hD2[i] != P[i] + 3.0f, badi += hI[i] != (float)i;
    EXPECT(bad == 0 && badi == 0, "fill_fragment, elementwise update, load/store round trip: "
           "%d, %d wrong", bad, badi);
    EXPECT(bad2 == 0, "writing an accumulator through the positions an index matrix gives: %d "
           "wrong", bad2);
    RD_LAUNCH(1, 32, 0, nullptr, assume_layout_kernel)(A, B, D);
    down(hD, D, 256);
    bad = 0;
    for (int i = 0; i < 256; i++) bad += hD[i] != P[i];
    EXPECT(bad > 128, "code assuming NVIDIA's accumulator layout must get wrong results here "
           "(%d of 256 wrong)", bad);
    cudaFree(A), cudaFree(B), cudaFree(D), cudaFree(D2), cudaFree(I);
}

static int g_mode;

static void run_wmma_bug()
{
    __half h[512];
    for (int i = 0; i < 512; i++) h[i] = __float2half((float)(i % 3));
    __half *A = dev<__half>(512);
    float *D = dev<float>(256);
    up(A, h, 512);
    RD_LAUNCH(1, 32, 0, nullptr, wmma_bug_kernel)(A, D, g_mode);
    cudaDeviceSynchronize();
}

static void run_async_bug()
{
    float h[64 * 4 + 4];
    for (int i = 0; i < 64 * 4 + 4; i++) h[i] = 1.0f;
    float *src = dev<float>(64 * 4 + 4), *out = dev<float>(64 * 4);
    up(src, h, 64 * 4 + 4);
    RD_LAUNCH(1, 64, 0, nullptr, async_bug_kernel)(src, out, g_mode);
    float r[128];
    down(r, out, 128);
    int nan = 0, zero = 0;
    for (int i = 0; i < 64; i++) nan += isnan(r[i]), zero += r[64 + i] == 0.0f;
    fprintf(stderr, "poisoned reads: %d, zero-filled: %d\n", nan, zero);
}

void check_wmma_planted()
{
    g_mode = 0;
    outcome o = in_child(run_wmma_bug);
    EXPECT(aborted(o) && says(o, "FAULT in kernel wmma_bug_kernel") &&
               (says(o, "names a lane that never reaches it") || says(o, "already exited") ||
                says(o, "a warp collective under divergence")),
           "mma_sync reached by half the warp must be a fault: %s", o.err.c_str());
    g_mode = 1;
    o = in_child(run_wmma_bug);
    EXPECT(aborted(o) && says(o, "load_matrix_sync: lane 1 passes a different pointer"),
           "lanes passing different pointers must be a fault: %s", o.err.c_str());
    g_mode = 2;
    o = in_child(run_wmma_bug);
    EXPECT(aborted(o) && says(o, "is not 256-bit aligned"),
           "a misaligned matrix pointer must be a fault: %s", o.err.c_str());
    g_mode = 3;
    o = in_child(run_wmma_bug);
    EXPECT(aborted(o) && says(o, "copies of element"),
           "a __half fragment written at one slot must be a fault: %s", o.err.c_str());

    const char *sched = getenv("RD_SIMT_SCHEDULE");
    const bool reverse = sched && !strcmp(sched, "reverse");
    g_mode = 0;
    o = in_child(run_async_bug);
    EXPECT(says(o, "zero-filled: 64\n") &&
               (reverse ? says(o, "poisoned reads: 0,") : !says(o, "poisoned reads: 0,")) &&
               says(o, "poisoned reads:"),
           "a read of a cp.async destination before the wait must see poison: %s",
           o.err.c_str());
    g_mode = 1;
    o = in_child(run_async_bug);
    EXPECT(aborted(o) && says(o, "is not in this block's shared memory"),
           "a cp.async into global memory must be a fault: %s", o.err.c_str());
    g_mode = 2;
    o = in_child(run_async_bug);
    EXPECT(aborted(o) && says(o, "not aligned to 16 bytes"),
           "a cp.async from a misaligned source must be a fault: %s", o.err.c_str());
}
