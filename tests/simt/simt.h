/* The kernel side of ropedist's SIMT emulation: what the kernels of kernels/cuda see when the emulation
 * build (cmake -DROPEDIST_CUDA_EMU=ON) compiles them with the host C++ compiler instead of nvcc.
 * It is force-included (-include) before anything else in every .cu file of that build.
 *
 * The same sources as the GPU build: the CUDA keywords become host C++ (__global__ and
 * __device__ vanish, __shared__ becomes a per-block variable), the toolkit's own
 * cuda_runtime.h / cuda_bf16.h / cuda_fp16.h give the types and the bf16/fp16 conversions, and
 * the built-in variables, barriers, warp collectives, atomics and intrinsics below call into
 * the emulator (simt_exec.cpp), which runs every CUDA thread of a block as its own fiber.
 *
 * Per-block static shared memory: `__shared__` declares a function-local `static thread_local`.
 * A worker thread runs one block at a time, so the variable is private to that block; and since
 * every thread_local of the library that holds the kernels is a __shared__ variable (checked by
 * the simt_tls_layout test), the emulator poisons the whole TLS block of that library before
 * each block runs, as it poisons dynamic shared memory and fresh device allocations.
 *
 * The two CUDA constructs a host compiler cannot parse have macros that kernels/cuda uses in
 * both builds (kernels/cuda/cuda_common.h defines them for nvcc): RD_LAUNCH for <<<...>>> and
 * RD_DYN_SMEM for `extern __shared__ T name[]`. */
#ifndef RD_SIMT_H
#define RD_SIMT_H

#ifndef RD_SIMT_EMU
#define RD_SIMT_EMU 1
#endif

/* the keywords, before the toolkit headers (which keep definitions made before them) */
#define __global__
#define __device__
#define __host__
#define __shared__ static thread_local
#define __launch_bounds__(...)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace simt {

/* built-in variables of the running CUDA thread */
struct thread_ctx {
    uint3 tid;
    uint3 bid;
    dim3 bdim;
    dim3 gdim;
};
const thread_ctx *self();

/* this block's dynamic shared memory (RD_DYN_SMEM) */
void *dyn_smem();

/* Barriers: kind 0 __syncthreads, 1 _count, 2 _and, 3 _or; returns the reduction. */
int sync_threads(int kind, int pred, const char *file, int line);

/* Warp collectives. Every lane of mask must reach the same collective (same call site, same
 * mask); the last to arrive computes each lane's out from every lane's in. */
enum coll_op {
    COLL_SHFL_IDX,
    COLL_SHFL_UP,
    COLL_SHFL_DOWN,
    COLL_SHFL_XOR,
    COLL_BALLOT,
    COLL_RED_ADD,
    COLL_RED_MIN,
    COLL_RED_MAX,
    COLL_RED_AND,
    COLL_RED_OR,
    COLL_RED_XOR,
    COLL_MATCH_ANY,
    COLL_MATCH_ALL,
    COLL_SYNCWARP,
    COLL_CUSTOM,
};
/* a custom collective (warp-level matrix operations): called once, by the last lane, with
 * every lane's in and out pointers (NULL for lanes outside mask) */
typedef void (*coll_fn)(const void *const *in, void *const *out, unsigned mask, const void *arg);
void warp_coll(int op, unsigned mask, const void *in, void *out, int size, int arg, int width,
               const char *file, int line, coll_fn fn = nullptr, const void *fn_arg = nullptr);
unsigned active_mask();
/* lane of the running thread within its warp */
int lane_id();

template <class T> inline T shfl(int op, const char *file, int line, unsigned mask, T v, int arg,
                                 int width = 32)
{
    static_assert(sizeof(T) <= 16, "warp shuffle of a type wider than 16 bytes");
    T out;
    warp_coll(op, mask, &v, &out, (int)sizeof(T), arg, width, file, line);
    return out;
}

inline unsigned ballot(const char *file, int line, unsigned mask, int pred)
{
    int p = pred != 0;
    unsigned out = 0;
    warp_coll(COLL_BALLOT, mask, &p, &out, 4, 0, 32, file, line);
    return out;
}

template <class T> inline T reduce(int op, const char *file, int line, unsigned mask, T v)
{
    static_assert(std::is_integral<T>::value && sizeof(T) == 4,
                  "__reduce_*_sync takes 32-bit integers");
    T out;
    warp_coll(op, mask, &v, &out, 4, std::is_signed<T>::value ? 1 : 0, 32, file, line);
    return out;
}

template <class T> inline unsigned match_any(const char *file, int line, unsigned mask, T v)
{
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_any_sync takes 32/64-bit values");
    unsigned out = 0;
    warp_coll(COLL_MATCH_ANY, mask, &v, &out, (int)sizeof(T), 0, 32, file, line);
    return out;
}

template <class T> inline unsigned match_all(const char *file, int line, unsigned mask, T v,
                                             int *pred)
{
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_all_sync takes 32/64-bit values");
    unsigned out[2] = {0, 0};
    warp_coll(COLL_MATCH_ALL, mask, &v, out, (int)sizeof(T), 0, 32, file, line);
    if (pred) *pred = (int)out[1];
    return out[0];
}

inline void sync_warp(const char *file, int line, unsigned mask = 0xffffffffu)
{
    warp_coll(COLL_SYNCWARP, mask, nullptr, nullptr, 0, 0, 32, file, line);
}

/* ---- launches ---- */

/* Runs (or, while the stream is being captured into a graph, records) one launch: run_thread
 * is called once per CUDA thread. Launch errors are reported as the GPU reports them: in
 * cudaGetLastError, with a message on stderr naming the kernel. */
void launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, std::shared_ptr<void> args, void (*run_thread)(void *args));

/* the kernel's name: __PRETTY_FUNCTION__ of an instance of this template names its argument */
template <auto K> inline const char *kernel_name() { return __PRETTY_FUNCTION__; }

template <class... P> struct launcher {
    void (*fn)(P...);
    const char *name;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;

    template <class... A> void operator()(A &&...args) const
    {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong arity");
        struct bound {
            void (*fn)(P...);
            std::tuple<typename std::decay<P>::type...> args;
        };
        auto b = std::make_shared<bound>(bound{fn, std::tuple<typename std::decay<P>::type...>(
                                                       std::forward<A>(args)...)});
        launch(name, reinterpret_cast<const void *>(fn), grid, block, smem, stream, b,
               [](void *p) {
                   bound *bb = static_cast<bound *>(p);
                   std::apply(bb->fn, bb->args); /* each thread gets its own copy */
               });
    }
};

template <class... P>
inline launcher<P...> make_launcher(const char *name, void (*fn)(P...), dim3 grid, dim3 block,
                                    size_t smem, cudaStream_t stream)
{
    return launcher<P...>{fn, name, grid, block, smem, stream};
}

} /* namespace simt */

/* ---- what the kernel sources use ---- */

#define RD_LAUNCH(grid, block, smem, stream, ...)                                              \
    ::simt::make_launcher(::simt::kernel_name<&__VA_ARGS__>(), &__VA_ARGS__, (grid), (block),  \
                          (smem), (stream))
#define RD_DYN_SMEM(T, name) T *name = static_cast<T *>(::simt::dyn_smem())

#include "simt_wmma.h" /* nvcuda::wmma and cp.async */

#define threadIdx (::simt::self()->tid)
#define blockIdx (::simt::self()->bid)
#define blockDim (::simt::self()->bdim)
#define gridDim (::simt::self()->gdim)
static constexpr int warpSize = 32;

#define __syncthreads() ((void)::simt::sync_threads(0, 0, __FILE__, __LINE__))
#define __syncthreads_count(p) ::simt::sync_threads(1, (p) ? 1 : 0, __FILE__, __LINE__)
#define __syncthreads_and(p) ::simt::sync_threads(2, (p) ? 1 : 0, __FILE__, __LINE__)
#define __syncthreads_or(p) ::simt::sync_threads(3, (p) ? 1 : 0, __FILE__, __LINE__)
#define __syncwarp(...) ::simt::sync_warp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(m, v, ...) ::simt::shfl(::simt::COLL_SHFL_IDX, __FILE__, __LINE__, m, v, __VA_ARGS__)
#define __shfl_up_sync(m, v, ...) ::simt::shfl(::simt::COLL_SHFL_UP, __FILE__, __LINE__, m, v, __VA_ARGS__)
#define __shfl_down_sync(m, v, ...) ::simt::shfl(::simt::COLL_SHFL_DOWN, __FILE__, __LINE__, m, v, __VA_ARGS__)
#define __shfl_xor_sync(m, v, ...) ::simt::shfl(::simt::COLL_SHFL_XOR, __FILE__, __LINE__, m, v, __VA_ARGS__)
#define __ballot_sync(m, p) ::simt::ballot(__FILE__, __LINE__, m, (p) ? 1 : 0)
#define __any_sync(m, p) (::simt::ballot(__FILE__, __LINE__, m, (p) ? 1 : 0) != 0u)
#define __all_sync(m, p) (::simt::ballot(__FILE__, __LINE__, m, (p) ? 1 : 0) == (unsigned)(m))
#define __reduce_add_sync(m, v) ::simt::reduce(::simt::COLL_RED_ADD, __FILE__, __LINE__, m, v)
#define __reduce_min_sync(m, v) ::simt::reduce(::simt::COLL_RED_MIN, __FILE__, __LINE__, m, v)
#define __reduce_max_sync(m, v) ::simt::reduce(::simt::COLL_RED_MAX, __FILE__, __LINE__, m, v)
#define __reduce_and_sync(m, v) ::simt::reduce(::simt::COLL_RED_AND, __FILE__, __LINE__, m, v)
#define __reduce_or_sync(m, v) ::simt::reduce(::simt::COLL_RED_OR, __FILE__, __LINE__, m, v)
#define __reduce_xor_sync(m, v) ::simt::reduce(::simt::COLL_RED_XOR, __FILE__, __LINE__, m, v)
#define __match_any_sync(m, v) ::simt::match_any(__FILE__, __LINE__, m, v)
#define __match_all_sync(m, v, pred) ::simt::match_all(__FILE__, __LINE__, m, v, pred)
#define __activemask() ::simt::active_mask()

/* ---- atomics: real atomics (blocks may run on several host threads) ---- */

template <class T> static inline T simt_atomic_fetch_op(T *p, T v, int op)
{
    /* a compare-and-swap loop on the bits, which also serves float and double */
    typedef typename std::conditional<sizeof(T) == 8, unsigned long long, unsigned>::type bits_t;
    static_assert(sizeof(T) == sizeof(bits_t), "atomics on 4- and 8-byte types");
    bits_t *pb = reinterpret_cast<bits_t *>(p);
    bits_t ob = __atomic_load_n(pb, __ATOMIC_RELAXED), nb;
    T old;
    do {
        memcpy(&old, &ob, sizeof old);
        T nv = op == 0 ? (T)(old + v) : op == 1 ? (v < old ? v : old) : (v > old ? v : old);
        memcpy(&nb, &nv, sizeof nb);
    } while (!__atomic_compare_exchange_n(pb, &ob, nb, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return old;
}
template <class T> static inline T atomicAdd(T *p, T v) { return simt_atomic_fetch_op(p, v, 0); }
template <class T> static inline T atomicSub(T *p, T v)
{
    return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
}
template <class T> static inline T atomicMin(T *p, T v) { return simt_atomic_fetch_op(p, v, 1); }
template <class T> static inline T atomicMax(T *p, T v) { return simt_atomic_fetch_op(p, v, 2); }
template <class T> static inline T atomicExch(T *p, T v)
{
    T old;
    __atomic_exchange(p, &v, &old, __ATOMIC_SEQ_CST);
    return old;
}
template <class T> static inline T atomicCAS(T *p, T cmp, T v)
{
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp; /* the old value, whether or not it was swapped */
}
template <class T> static inline T atomicAnd(T *p, T v)
{
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
}
template <class T> static inline T atomicOr(T *p, T v)
{
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}
template <class T> static inline T atomicXor(T *p, T v)
{
    return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
}
static inline unsigned atomicInc(unsigned *p, unsigned lim)
{
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED), nv;
    do {
        nv = old >= lim ? 0u : old + 1u;
    } while (!__atomic_compare_exchange_n(p, &old, nv, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return old;
}
static inline unsigned atomicDec(unsigned *p, unsigned lim)
{
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED), nv;
    do {
        nv = (old == 0u || old > lim) ? lim : old - 1u;
    } while (!__atomic_compare_exchange_n(p, &old, nv, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return old;
}
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* ---- intrinsics the host headers do not define ---- */

static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x)
{
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
/* IEEE single operations with round-to-nearest; the build uses -ffp-contract=off, so these are
 * never fused into an FMA (as nvcc guarantees for the _rn intrinsics) */
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
/* glibc declares these names for itself: macros, so kernels get the libm functions */
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __sincosf(x, s, c) sincosf(x, s, c)
#define __powf(a, b) powf(a, b)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline int __float_as_int(float x)
{
    int i;
    memcpy(&i, &x, 4);
    return i;
}
static inline float __int_as_float(int i)
{
    float x;
    memcpy(&x, &i, 4);
    return x;
}
static inline unsigned __float_as_uint(float x)
{
    unsigned i;
    memcpy(&i, &x, 4);
    return i;
}
static inline float __uint_as_float(unsigned i)
{
    float x;
    memcpy(&x, &i, 4);
    return x;
}
template <class T> static inline T __ldg(const T *p) { return *p; }

/* the C++ overload cuda_runtime.h declares for nvcc only */
template <class T>
static inline cudaError_t cudaFuncSetAttribute(T *fn, enum cudaFuncAttribute attr, int value)
{
    return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(fn), attr, value);
}

/* CUDA's min/max overloads (device code calls them unqualified) */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b)
{
    return a < b ? a : b;
}
static inline unsigned long long max(unsigned long long a, unsigned long long b)
{
    return a > b ? a : b;
}
static inline long min(long a, long b) { return a < b ? a : b; }
static inline long max(long a, long b) { return a > b ? a : b; }
static inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
static inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

#endif
