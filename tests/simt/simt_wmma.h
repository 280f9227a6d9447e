/* The kernel side of two more pieces of the SIMT emulation, included by simt.h: the warp
 * matrix functions of <mma.h> (nvcuda::wmma) and the asynchronous global-to-shared copies of
 * <cuda_pipeline_primitives.h> (cp.async). Kernels include the toolkit headers in both builds;
 * here their include guards are defined first, so under the emulation those headers add
 * nothing (their bodies need nvcc anyway) and the definitions below are used instead.
 *
 * WMMA: 16x16x16 fragments with __half / __nv_bfloat16 inputs (row- or column-major) and float
 * accumulators, the toolkit's element counts (num_elements: 16 for __half A/B, 8 for
 * __nv_bfloat16 A/B and for the accumulator) and elementwise access to fragment.x[]. The
 * *_sync functions are warp collectives (simt::warp_coll, COLL_CUSTOM): every lane of the warp
 * must reach the same call site with the same pointer, ldm and layout, else it is a fault, as
 * are a pointer that is not 256-bit aligned and an ldm that is not a multiple of 16 bytes. Which
 * element of the matrix a lane holds in x[i] is a fixed permutation per fragment type (see
 * simt_wmma.cpp) that is deliberately not NVIDIA's, so code that assumes a layout gets wrong
 * results here; the two copies of each element a __half A/B fragment holds must stay equal.
 * A fragment is born poisoned (NaN), as a register that was never written would be garbage.
 * fill_fragment is not a synchronising call in CUDA and is not one here.
 *
 * cp.async (__pipeline_memcpy_async / __pipeline_commit / __pipeline_wait_prior): the copy is
 * checked (4, 8 or 16 bytes, both addresses aligned to it, the destination in this block's
 * shared memory, the source in device memory) and queued on the calling thread; it lands
 * (zero-filling the last zfill bytes) when the thread waits for its batch, or earlier: under
 * RD_SIMT_SCHEDULE=forward at the wait, under reverse at once, under random either. So a read
 * before the wait sees poison, and a copy issued into a buffer other threads still read
 * clobbers it under another schedule. Copies still queued when a thread ends land then. */
#ifndef RD_SIMT_WMMA_H
#define RD_SIMT_WMMA_H

#define __CUDA_MMA_H__               /* the toolkit's <mma.h> adds nothing after this */
#define _CUDA_PIPELINE_PRIMITIVES_H_ /* nor does <cuda_pipeline_primitives.h> */

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stddef.h>
#include <string.h>

namespace simt {

/* what one lane hands to a warp matrix operation */
struct wmma_args {
    int op;              /* WMMA_LOAD, WMMA_STORE, WMMA_MMA */
    int kind[4];         /* fragment kinds: load/store [0]; mma d, a, b, c */
    const void *frag[4]; /* load/store: the fragment's x; mma: d (written), a, b, c */
    const void *mem;     /* load/store: the matrix in memory */
    unsigned ldm;
    int layout;          /* 0 row-major, 1 column-major */
};
enum { WMMA_LOAD, WMMA_STORE, WMMA_MMA };
/* fragment kind: use (0 matrix_a, 1 matrix_b, 2 accumulator) * 9 + dtype (0 float, 1 __half,
 * 2 __nv_bfloat16) * 3 + layout (0 row_major, 1 col_major, 2 none) */
constexpr int wmma_kind(int use, int dt, int layout) { return use * 9 + dt * 3 + layout; }
void wmma_op(const wmma_args &a, void *out, const char *file, int line);

/* cp.async */
void async_copy(void *dst, const void *src, size_t size, size_t zfill, const char *file, int line);
void async_commit();
void async_wait_prior(size_t prior, const char *file, int line);

template <class T> struct wmma_dt;
template <> struct wmma_dt<float> { static constexpr int v = 0; };
template <> struct wmma_dt<__half> { static constexpr int v = 1; };
template <> struct wmma_dt<__nv_bfloat16> { static constexpr int v = 2; };

} /* namespace simt */

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <class L> struct simt_layout_of { static constexpr int v = 2; };
template <> struct simt_layout_of<row_major> { static constexpr int v = 0; };
template <> struct simt_layout_of<col_major> { static constexpr int v = 1; };
template <class U> struct simt_use_of;
template <> struct simt_use_of<matrix_a> { static constexpr int v = 0; };
template <> struct simt_use_of<matrix_b> { static constexpr int v = 1; };
template <> struct simt_use_of<accumulator> { static constexpr int v = 2; };

template <class T, int N, int KIND> struct simt_frag_base {
    enum { num_elements = N, num_storage_elements = N };
    typedef T element_type;
    typedef T storage_element_type;
    static constexpr int simt_kind = KIND;
    T x[N];
    simt_frag_base() { memset((void *)x, 0xff, sizeof x); } /* poison: never written */
};

template <class Use, int m, int n, int k, class T, class Layout = void> class fragment;

#define SIMT_WMMA_FRAG(USE, T, LAYOUT, N)                                                      \
    template <>                                                                                \
    class fragment<USE, 16, 16, 16, T, LAYOUT>                                                 \
        : public simt_frag_base<T, N,                                                          \
                                simt::wmma_kind(simt_use_of<USE>::v, simt::wmma_dt<T>::v,      \
                                                simt_layout_of<LAYOUT>::v)> {};
SIMT_WMMA_FRAG(matrix_a, __half, row_major, 16)
SIMT_WMMA_FRAG(matrix_a, __half, col_major, 16)
SIMT_WMMA_FRAG(matrix_b, __half, row_major, 16)
SIMT_WMMA_FRAG(matrix_b, __half, col_major, 16)
SIMT_WMMA_FRAG(matrix_a, __nv_bfloat16, row_major, 8)
SIMT_WMMA_FRAG(matrix_a, __nv_bfloat16, col_major, 8)
SIMT_WMMA_FRAG(matrix_b, __nv_bfloat16, row_major, 8)
SIMT_WMMA_FRAG(matrix_b, __nv_bfloat16, col_major, 8)
SIMT_WMMA_FRAG(accumulator, float, void, 8)
#undef SIMT_WMMA_FRAG

template <class T, int N, int K> inline void fill_fragment(simt_frag_base<T, N, K> &f, const T &v)
{
    for (int i = 0; i < N; i++) f.x[i] = v;
}

/* matrix_a / matrix_b: the layout is the fragment's */
template <class T, int N, int K>
inline void load_matrix_sync(simt_frag_base<T, N, K> &f, const T *p, unsigned ldm,
                             const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    static_assert(K / 9 != 2, "an accumulator fragment is loaded with a layout_t argument");
    simt::wmma_args a = {simt::WMMA_LOAD, {K, 0, 0, 0}, {f.x, 0, 0, 0}, p, ldm, K % 3};
    simt::wmma_op(a, f.x, file, line);
}

template <int N, int K>
inline void load_matrix_sync(simt_frag_base<float, N, K> &f, const float *p, unsigned ldm,
                             layout_t layout, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE())
{
    simt::wmma_args a = {simt::WMMA_LOAD, {K, 0, 0, 0}, {f.x, 0, 0, 0}, p, ldm,
                         layout == mem_col_major ? 1 : 0};
    simt::wmma_op(a, f.x, file, line);
}

template <int N, int K>
inline void store_matrix_sync(float *p, const simt_frag_base<float, N, K> &f, unsigned ldm,
                              layout_t layout, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE())
{
    simt::wmma_args a = {simt::WMMA_STORE, {K, 0, 0, 0}, {f.x, 0, 0, 0}, p, ldm,
                         layout == mem_col_major ? 1 : 0};
    simt::wmma_op(a, nullptr, file, line);
}

template <class T, int NA, int KA, int KB, int KD, int KC>
inline void mma_sync(simt_frag_base<float, 8, KD> &d, const simt_frag_base<T, NA, KA> &a,
                     const simt_frag_base<T, NA, KB> &b, const simt_frag_base<float, 8, KC> &c,
                     bool satf = false, const char *file = __builtin_FILE(),
                     int line = __builtin_LINE())
{
    static_assert(KA / 9 == 0 && KB / 9 == 1 && KD / 9 == 2 && KC / 9 == 2,
                  "mma_sync(d: accumulator, a: matrix_a, b: matrix_b, c: accumulator)");
    (void)satf;
    simt::wmma_args x = {simt::WMMA_MMA, {KD, KA, KB, KC}, {d.x, a.x, b.x, c.x}, nullptr, 0, 0};
    simt::wmma_op(x, d.x, file, line);
}

} /* namespace wmma */
} /* namespace nvcuda */

/* ---- cp.async ---- */

static inline void __pipeline_memcpy_async(void *dst_shared, const void *src_global,
                                           size_t size_and_align, size_t zfill = 0,
                                           const char *file = __builtin_FILE(),
                                           int line = __builtin_LINE())
{
    ::simt::async_copy(dst_shared, src_global, size_and_align, zfill, file, line);
}
static inline void __pipeline_commit() { ::simt::async_commit(); }
static inline void __pipeline_wait_prior(size_t prior, const char *file = __builtin_FILE(),
                                         int line = __builtin_LINE())
{
    ::simt::async_wait_prior(prior, file, line);
}

#endif
