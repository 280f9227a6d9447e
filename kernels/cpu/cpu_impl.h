/* Internals shared by the cpu backend's files (kernels/cpu): the backend's private state, the
 * BLAS entry points it calls, and the thread helpers.
 *
 * BLAS is OpenBLAS, built for OpenMP (Debian's libopenblas0-openmp), loaded by blas_cpu.c with
 * dlopen the first time a cpu backend is created, so that OPENBLAS_CORETYPE can be set from
 * the CPU's features before the library's start-up code reads it (see blas_cpu.c). OpenBLAS and
 * our own parallel loops share libgomp's one thread pool: a BLAS call made on the main thread
 * uses omp_get_max_threads() threads, and one made inside our parallel regions runs on the
 * calling thread alone, so the two never oversubscribe the rank's cores. */
#ifndef RD_CPU_IMPL_H
#define RD_CPU_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <cblas.h>

#include "kernels/ops.h"

/* The BLAS routines the backend calls, resolved from the loaded library. */
struct rd_cpu_blas {
    void (*sgemm)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint M,
                  blasint N, blasint K, float alpha, const float *A, blasint lda, const float *B,
                  blasint ldb, float beta, float *C, blasint ldc);
    void (*sgemv)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, blasint M, blasint N, float alpha,
                  const float *A, blasint lda, const float *x, blasint incx, float beta, float *y,
                  blasint incy);
    char *(*get_corename)(void);
    char *(*get_config)(void);
    int (*get_parallel)(void); /* 0 sequential, 1 pthreads, 2 OpenMP */
};

/* Loads the BLAS once per process (thread-safe). NULL after a message naming the library when
 * it cannot be loaded. */
const struct rd_cpu_blas *rd_cpu_blas_get(void);
/* "OpenBLAS 0.3.21 ... (OpenMP), kernels SkylakeX (OPENBLAS_CORETYPE set from the CPU)" */
void rd_cpu_blas_describe(char *buf, size_t len);

struct cpu_impl {
    const struct rd_cpu_blas *blas;
    int threads;    /* compute threads of this backend (OpenMP team size, BLAS threads) */
    float *scratch; /* per-thread attention scratch: threads x scratch_per floats */
    size_t scratch_per, scratch_cap;
    float *cs; /* rope cos/sin of this call's tokens: [T, n_pairs, 2] */
    size_t cs_n;
    float *cs_pos; /* attention sinks: cos/sin of cache positions [0, cs_pos_len) */
    size_t cs_pos_cap;
    int cs_pos_len, cs_pos_pairs;
    float cs_pos_af;
    float cs_pos_freq[RD_MAX_ROPE_PAIRS]; /* the inverse frequencies cs_pos was built with */
    int32_t *tiles; /* attention: [n_tiles, 3] first token, tokens, keys reached */
    size_t tiles_n;
    int32_t *items; /* attention: [n_items, 2] first and end tile of each work item */
    size_t items_n;
    float *topk_vals; /* per-thread candidates of top-k over a split vocabulary */
    int32_t *topk_ids;
    size_t topk_n, topk_ids_n;
};

/* Loops that vectorize (softmax, SiLU) are compiled for AVX-512 and AVX2 besides the baseline
 * ISA, the best picked at load time (GCC/Clang function multiversioning). The clones compute
 * the same IEEE operations per element, so they give the same bits. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define RD_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef RD_CPU_CLONES
#define RD_CPU_CLONES
#endif

/* a . b over n floats in sixteen partial lanes, then their sum (the order the GEMV and the
 * attention scores use for every row, so that a row gives the same bits wherever it falls) */
static inline float rd_cpu_dot16(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int k = 0;
    for (; k + 16 <= n; k += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[k + l] * b[k + l];
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    for (; k < n; k++)
        sum += a[k] * b[k];
    return sum;
}

/* e^x in fp32 for the softmax and SiLU loops, written so that the compiler vectorizes the
 * loops that call it (libm's expf is a call per element): x is clamped to [-87, 88] (results
 * stay normal: e^-87 = 1.6e-38, e^88 = 1.7e38), split as x = n ln2 + r with |r| <= ln2/2
 * (Cody-Waite, ln2 in two parts), e^r is a degree-6 Taylor polynomial (truncation < 1.2e-7
 * relative) and 2^n is built in the exponent bits. Error: a few ulp. */
static inline float rd_cpu_exp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float n = (x * 1.44269504088896341f + shift) - shift;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

/* Makes the next BLAS calls from this thread use that many threads (OpenBLAS's OpenMP build
 * takes omp_get_max_threads()). */
void rd_cpu_blas_threads(int threads);

/* Grows *buf to at least n elements of size elem (never shrinks). */
rd_status rd_cpu_grow(void **buf, size_t *cap, size_t n, size_t elem);

/* y[N] = W[N, K] x[K] on the backend's team (gemv_cpu.c: matmul with one token) */
void rd_cpu_gemv(const struct cpu_impl *impl, float *y, const float *w, const float *x, int N,
                 int K);

/* the fused RoPE attention op (attn_cpu.c) */
rd_status rd_cpu_rope_attention(struct rd_backend *be, const struct rd_attn_params *p);

#endif
