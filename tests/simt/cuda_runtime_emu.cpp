/* The CUDA runtime API of ropedist's SIMT emulation: the subset the cuda backend, its tests and
 * its benchmarks call, with the toolkit's own declarations (cuda_runtime_api.h) and behaviour
 * kept where a kernel or the host code could depend on it.
 *
 * Devices: RD_SIMT_DEVICES emulated GPUs that describe themselves as an H200 (sm_90, 132 SMs,
 * 227 KB of opt-in shared memory per block) with RD_SIMT_MEM_MB of memory each; device memory
 * is host memory, 256-byte aligned, poisoned (0xFF) when allocated. Copies and memsets check
 * that their device side lies inside one allocation.
 *
 * Streams run their work in order as it is fed (a valid schedule of an in-order queue), so a
 * synchronisation has nothing left to wait for. An asynchronous copy from page-locked host
 * memory keeps the bytes it copied until a stream or event synchronisation covers it; if the
 * host has rewritten its source by then, that is reported (the GPU may have copied the new
 * bytes) and is a fault. Stream capture really records: between
 * cudaStreamBeginCapture and cudaStreamEndCapture the kernels, copies, memsets, events, cuBLAS
 * GEMMs and NCCL collectives fed to the stream are recorded with their arguments, and
 * cudaGraphLaunch replays them. As on a GPU, an API that cannot be recorded (an allocation, a
 * synchronous copy, a synchronisation or query of the capturing stream, a copy from pageable
 * host memory) fails with cudaErrorStreamCaptureUnsupported and invalidates the capture, after
 * a "simt:" line naming the call.
 *
 * Launch checks (cudaErrorInvalidConfiguration / cudaErrorInvalidValue from cudaGetLastError,
 * with a message naming the kernel): block of at most 1024 threads (x, y <= 1024, z <= 64),
 * grid y, z <= 65535, dynamic shared memory over 48 KB only after cudaFuncSetAttribute(...,
 * cudaFuncAttributeMaxDynamicSharedMemorySize, ...) for that kernel, never over 227 KB. */
#include "simt.h" /* first: it defines the CUDA keywords before the toolkit headers */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "simt_internal.h"

struct simt_node {
    std::string what;
    simt::stream_op op;
};

struct CUstream_st {
    unsigned flags = 0;
    unsigned long long seq = 0; /* copies and event records fed so far */
    bool capturing = false, invalidated = false;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    std::thread::id capture_thread;
    std::vector<simt_node> nodes;
};

struct CUevent_st {
    unsigned flags = 0;
    bool recorded = false;
    double t_ms = 0;
    CUstream_st *stream = nullptr; /* where it was last recorded, and after which feed */
    unsigned long long seq = 0;
};

struct CUgraph_st {
    std::vector<simt_node> nodes;
};

struct CUgraphExec_st {
    std::vector<simt_node> nodes;
};

namespace simt {
namespace {

std::recursive_mutex g_mu;
std::map<uintptr_t, size_t> g_dev;    /* device allocations: start -> bytes */
std::map<uintptr_t, size_t> g_pinned; /* page-locked host memory: start -> bytes */
size_t g_used = 0;
std::map<const void *, int> g_smem_attr; /* kernel -> MaxDynamicSharedMemorySize */
std::set<CUstream_st *> g_capturing;
CUstream_st g_legacy; /* the NULL / legacy / per-thread default stream */
cudaError_t g_sticky = cudaSuccess;
std::atomic<unsigned long long> g_launches{0};

/* an asynchronous copy from page-locked host memory nobody has waited for yet: on a GPU it may
 * still read its source, so the host must not rewrite it; the bytes it copied are kept and
 * compared when a wait covers the copy */
struct pending_src {
    const void *src;
    std::vector<char> bytes;
    CUstream_st *stream;
    unsigned long long seq;
};
std::vector<pending_src> g_pending;
thread_local cudaError_t t_last = cudaSuccess;
thread_local int t_device = 0;

double now_ms()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

CUstream_st *resolve(cudaStream_t s)
{
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &g_legacy;
    return s;
}

cudaError_t fail(cudaError_t e)
{
    t_last = e;
    return e;
}

/* the capture (if any) that forbids an unsafe call from this thread */
CUstream_st *capture_forbidding_unsafe()
{
    for (CUstream_st *s : g_capturing) {
        if (s->mode == cudaStreamCaptureModeGlobal) return s;
        if (s->mode == cudaStreamCaptureModeThreadLocal &&
            s->capture_thread == std::this_thread::get_id())
            return s;
    }
    return nullptr;
}

/* An API that may not be called while a capture is active: fails and invalidates it. */
cudaError_t unsafe_in_capture(const char *api)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    CUstream_st *s = capture_forbidding_unsafe();
    if (!s) return cudaSuccess;
    report("graph capture: %s is not allowed while stream %p is being captured; the capture is "
           "invalidated",
           api, (void *)s);
    s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

/* a wait for (or query of) a stream that is being captured */
cudaError_t wait_on_capturing(CUstream_st *s, const char *api)
{
    report("graph capture: %s on stream %p, which is being captured (nothing has run yet); the "
           "capture is invalidated",
           api, (void *)s);
    s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

bool is_pinned(const void *p, size_t n)
{
    auto it = g_pinned.upper_bound((uintptr_t)p);
    if (it == g_pinned.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + n <= it->first + it->second;
}

/* a wait covered the copies of stream st up to feed seq (st NULL: every stream): their sources
 * must still hold what they copied */
void settle_pending(CUstream_st *st, unsigned long long seq)
{
    std::vector<pending_src> keep;
    for (pending_src &q : g_pending) {
        if (st && (q.stream != st || q.seq > seq)) {
            keep.push_back(std::move(q));
            continue;
        }
        if (memcmp(q.src, q.bytes.data(), q.bytes.size()) != 0) {
            report("the host rewrote page-locked memory at %p (%zu bytes), the source of a "
                   "cudaMemcpyAsync to the device, before any stream or event synchronisation "
                   "showed that copy complete: on a GPU it may copy the new bytes",
                   q.src, q.bytes.size());
            if (config().fault_abort) abort();
            if (g_sticky == cudaSuccess) g_sticky = cudaErrorIllegalState;
        }
    }
    g_pending.swap(keep);
}

bool in_device_locked(const void *p, size_t n)
{
    auto it = g_dev.upper_bound((uintptr_t)p);
    if (it == g_dev.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + n <= it->first + it->second;
}

bool is_device_ptr(const void *p)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    return in_device_locked(p, 1);
}

const char *kind_name(cudaMemcpyKind k)
{
    switch (k) {
    case cudaMemcpyHostToDevice: return "host to device";
    case cudaMemcpyDeviceToHost: return "device to host";
    case cudaMemcpyDeviceToDevice: return "device to device";
    case cudaMemcpyHostToHost: return "host to host";
    default: return "default";
    }
}

/* checks a copy's pointers against its kind; resolves cudaMemcpyDefault */
cudaError_t check_copy(const char *api, void *dst, const void *src, size_t n, cudaMemcpyKind &kind)
{
    if (kind == cudaMemcpyDefault) {
        const bool dd = is_device_ptr(dst), sd = is_device_ptr(src);
        kind = dd && sd   ? cudaMemcpyDeviceToDevice
               : dd       ? cudaMemcpyHostToDevice
               : sd       ? cudaMemcpyDeviceToHost
                          : cudaMemcpyHostToHost;
    }
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dst_dev && !in_device_memory(dst, n)) {
        report("%s (%s, %zu bytes): the destination %p is not inside one device allocation", api,
               kind_name(kind), n, dst);
        return fail(cudaErrorInvalidValue);
    }
    if (src_dev && !in_device_memory(src, n)) {
        report("%s (%s, %zu bytes): the source %p is not inside one device allocation", api,
               kind_name(kind), n, src);
        return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

std::string pretty_kernel_name(const char *pretty)
{
    /* "const char* simt::kernel_name() [with auto K = NAME]" */
    std::string s(pretty);
    size_t a = s.find("K = ");
    if (a == std::string::npos) return s;
    a += 4;
    size_t b = s.rfind(']');
    std::string n = s.substr(a, b == std::string::npos || b < a ? std::string::npos : b - a);
    if (!n.empty() && n[0] == '&') n.erase(0, 1);
    return n;
}

} /* namespace */

bool in_device_memory(const void *p, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    return in_device_locked(p, bytes ? bytes : 1);
}

void set_last_error(cudaError_t e) { t_last = e; }

void set_sticky_error(cudaError_t e)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (g_sticky == cudaSuccess) g_sticky = e;
    t_last = e;
}

bool stream_capturing(cudaStream_t s)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    return resolve(s)->capturing;
}

cudaError_t enqueue(cudaStream_t s, const char *what, stream_op op)
{
    CUstream_st *st;
    {
        std::lock_guard<std::recursive_mutex> lk(g_mu);
        st = resolve(s);
        if (st->capturing) {
            if (st->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
            st->nodes.push_back(simt_node{what, std::move(op)});
            return cudaSuccess;
        }
        if (st == &g_legacy) {
            CUstream_st *c = nullptr;
            for (CUstream_st *x : g_capturing)
                if (x->mode != cudaStreamCaptureModeRelaxed) c = x;
            if (c) {
                report("graph capture: %s on the legacy default stream while stream %p is being "
                       "captured; the capture is invalidated",
                       what, (void *)c);
                c->invalidated = true;
                return fail(cudaErrorStreamCaptureImplicit);
            }
        }
        if (g_sticky != cudaSuccess) return fail(g_sticky);
    }
    cudaError_t e = op();
    if (e != cudaSuccess) t_last = e;
    return e;
}

size_t dyn_smem_allowed(const void *fn)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    auto it = g_smem_attr.find(fn);
    return it == g_smem_attr.end() ? k_smem_default : (size_t)it->second;
}

void launch(const char *pretty, const void *fn, dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, std::shared_ptr<void> args, void (*run_thread)(void *))
{
    auto d = std::make_shared<launch_desc>();
    d->name = pretty_kernel_name(pretty);
    d->fn = fn, d->grid = grid, d->block = block, d->smem = smem;
    d->args = std::move(args), d->run_thread = run_thread;
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    const char *why = nullptr;
    char buf[256];
    cudaError_t e = cudaErrorInvalidConfiguration;
    if (!block.x || !block.y || !block.z || !grid.x || !grid.y || !grid.z) {
        why = "a zero grid or block dimension";
    } else if (threads > (unsigned long long)k_max_threads || block.x > 1024 || block.y > 1024 ||
               block.z > 64) {
        snprintf(buf, sizeof buf, "block (%u,%u,%u) is over 1024 threads or the (1024,1024,64) "
                 "dimension limits", block.x, block.y, block.z);
        why = buf;
    } else if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u) {
        snprintf(buf, sizeof buf, "grid (%u,%u,%u) is over the (2^31-1,65535,65535) limits",
                 grid.x, grid.y, grid.z);
        why = buf;
    } else if (smem > dyn_smem_allowed(fn)) {
        snprintf(buf, sizeof buf,
                 "%zu bytes of dynamic shared memory, %zu allowed for this kernel (over 48 KB "
                 "needs cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, "
                 "bytes); at most %zu)",
                 smem, dyn_smem_allowed(fn), k_smem_optin);
        why = buf;
        e = cudaErrorInvalidValue;
    }
    if (why) {
        report("launch of %s refused: %s", d->name.c_str(), why);
        t_last = e;
        return;
    }
    e = enqueue(stream, "kernel launch", [d]() {
        d->serial = g_launches.fetch_add(1);
        cudaError_t r = run_launch(*d);
        if (r != cudaSuccess) set_sticky_error(r);
        return r;
    });
    if (e != cudaSuccess) t_last = e;
}

} /* namespace simt */

using namespace simt;

extern "C" {

/* ---- errors and versions ---- */

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = t_last;
    t_last = g_sticky;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return t_last; }

#define SIMT_ERRORS(X)                                                                          \
    X(cudaSuccess, "no error")                                                                  \
    X(cudaErrorInvalidValue, "invalid argument")                                                \
    X(cudaErrorMemoryAllocation, "out of memory")                                               \
    X(cudaErrorInitializationError, "initialization error")                                     \
    X(cudaErrorInvalidConfiguration, "invalid configuration argument")                          \
    X(cudaErrorInvalidDevicePointer, "invalid device pointer")                                  \
    X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                     \
    X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                  \
    X(cudaErrorInvalidDevice, "invalid device ordinal")                                         \
    X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                \
    X(cudaErrorNotReady, "device not ready")                                                    \
    X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                      \
    X(cudaErrorLaunchFailure, "unspecified launch failure")                                     \
    X(cudaErrorNotSupported, "operation not supported")                                         \
    X(cudaErrorIllegalState, "the operation cannot be performed in the present state")          \
    X(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing")    \
    X(cudaErrorStreamCaptureInvalidated,                                                        \
      "operation failed due to a previous error during capture")                               \
    X(cudaErrorStreamCaptureImplicit,                                                           \
      "operation would make the legacy stream depend on a capturing blocking stream")          \
    X(cudaErrorStreamCaptureUnmatched, "capture was not initiated in this stream")              \
    X(cudaErrorStreamCaptureWrongThread,                                                        \
      "attempt to terminate a thread-local capture sequence from another thread")

const char *cudaGetErrorString(cudaError_t e)
{
#define X(code, text)                                                                          \
    if (e == code) return text;
    SIMT_ERRORS(X)
#undef X
    return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t e)
{
#define X(code, text)                                                                          \
    if (e == code) return #code;
    SIMT_ERRORS(X)
#undef X
    return "cudaErrorUnknown";
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

/* ---- devices ---- */

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = config().devices;
    return *n > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int d)
{
    if (d < 0 || d >= config().devices) return fail(cudaErrorInvalidDevice);
    t_device = d;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d)
{
    *d = t_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
    if (d < 0 || d >= config().devices) return fail(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "NVIDIA H200 (SIMT emulation on the CPU)");
    for (int i = 0; i < 16; i++) p->uuid.bytes[i] = (char)(0x50 + d + i);
    p->totalGlobalMem = config().mem_bytes;
    p->sharedMemPerBlock = k_smem_default;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->memPitch = 2147483647;
    p->maxThreadsPerBlock = k_max_threads;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9, p->minor = 0;
    p->textureAlignment = 512;
    p->texturePitchAlignment = 32;
    p->multiProcessorCount = 132;
    p->concurrentKernels = 1;
    p->ECCEnabled = 1;
    p->pciBusID = d + 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->memoryBusWidth = 6144;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->streamPrioritiesSupported = 1;
    p->globalL1CacheSupported = 1;
    p->localL1CacheSupported = 1;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerMultiprocessor = 65536;
    p->managedMemory = 1;
    p->computePreemptionSupported = 1;
    p->cooperativeLaunch = 1;
    p->sharedMemPerBlockOptin = k_smem_optin;
    p->maxBlocksPerMultiProcessor = 32;
    p->reservedSharedMemPerBlock = 1024;
    p->hostRegisterSupported = 1;
    p->memoryPoolsSupported = 1;
    p->clusterLaunch = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int d)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, d);
    if (e != cudaSuccess) return e;
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrWarpSize: *v = p.warpSize; break;
    case cudaDevAttrL2CacheSize: *v = p.l2CacheSize; break;
    case cudaDevAttrMaxGridDimX: *v = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *v = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *v = p.maxGridSize[2]; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *v = p.maxThreadsPerMultiProcessor; break;
    default: return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    *total = config().mem_bytes;
    *free_b = config().mem_bytes - g_used;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    cudaError_t e = unsafe_in_capture("cudaDeviceSynchronize");
    if (e != cudaSuccess) return e;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    settle_pending(nullptr, 0);
    return g_sticky == cudaSuccess ? cudaSuccess : fail(g_sticky);
}

cudaError_t cudaDeviceReset(void) { return cudaDeviceSynchronize(); }

/* ---- memory ---- */

cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = nullptr;
    cudaError_t e = unsafe_in_capture("cudaMalloc");
    if (e != cudaSuccess) return e;
    if (n == 0) return cudaSuccess;
    const size_t bytes = (n + 255) / 256 * 256;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (bytes > config().mem_bytes - g_used) return fail(cudaErrorMemoryAllocation);
    void *m = aligned_alloc(256, bytes);
    if (!m) return fail(cudaErrorMemoryAllocation);
    memset(m, 0xff, bytes); /* never-written device memory reads as NaN */
    g_dev[(uintptr_t)m] = n;
    g_used += bytes;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    cudaError_t e = unsafe_in_capture("cudaFree");
    if (e != cudaSuccess) return e;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    auto it = g_dev.find((uintptr_t)p);
    if (it == g_dev.end()) {
        report("cudaFree(%p): not the start of a device allocation", p);
        return fail(cudaErrorInvalidValue);
    }
    g_used -= (it->second + 255) / 256 * 256;
    g_dev.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n)
{
    *p = nullptr;
    cudaError_t e = unsafe_in_capture("cudaMallocHost");
    if (e != cudaSuccess) return e;
    void *m = aligned_alloc(256, (n + 255) / 256 * 256 + (n == 0));
    if (!m) return fail(cudaErrorMemoryAllocation);
    memset(m, 0xff, n);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    g_pinned[(uintptr_t)m] = n;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int flags)
{
    (void)flags;
    return cudaMallocHost(p, n);
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    auto it = g_pinned.find((uintptr_t)p);
    if (it == g_pinned.end()) {
        report("cudaFreeHost(%p): not page-locked memory from cudaMallocHost/cudaHostAlloc", p);
        return fail(cudaErrorInvalidValue);
    }
    const uintptr_t lo = it->first, hi = it->first + it->second;
    g_pending.erase(std::remove_if(g_pending.begin(), g_pending.end(),
                                   [&](const pending_src &q) {
                                       return (uintptr_t)q.src >= lo && (uintptr_t)q.src < hi;
                                   }),
                    g_pending.end());
    g_pinned.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaHostRegister(void *p, size_t n, unsigned int flags)
{
    (void)flags;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    g_pinned[(uintptr_t)p] = n;
    return cudaSuccess;
}

cudaError_t cudaHostUnregister(void *p)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    return g_pinned.erase((uintptr_t)p) ? cudaSuccess : fail(cudaErrorInvalidValue);
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    memset(a, 0, sizeof *a);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (in_device_locked(p, 1)) {
        a->type = cudaMemoryTypeDevice;
        a->device = t_device;
        a->devicePointer = (void *)p;
    } else if (is_pinned(p, 1)) {
        a->type = cudaMemoryTypeHost;
        a->hostPointer = (void *)p;
        a->devicePointer = (void *)p;
    } else {
        a->type = cudaMemoryTypeUnregistered;
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    if (n == 0) return cudaSuccess;
    cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, n, kind);
    if (e != cudaSuccess) return e;
    if (stream_capturing(stream) && kind != cudaMemcpyDeviceToDevice) {
        std::lock_guard<std::recursive_mutex> lk(g_mu);
        const void *host = kind == cudaMemcpyHostToDevice ? src : dst;
        if (kind == cudaMemcpyHostToHost || !is_pinned(host, n))
            return wait_on_capturing(resolve(stream),
                                     "cudaMemcpyAsync from or to pageable host memory");
    }
    if (kind == cudaMemcpyHostToDevice && !stream_capturing(stream)) {
        std::lock_guard<std::recursive_mutex> lk(g_mu);
        if (is_pinned(src, n)) {
            CUstream_st *st = resolve(stream);
            const char *c = (const char *)src;
            g_pending.push_back(pending_src{src, std::vector<char>(c, c + n), st, ++st->seq});
        }
    }
    return enqueue(stream, "cudaMemcpyAsync", [=]() {
        memmove(dst, src, n);
        return cudaSuccess;
    });
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    cudaError_t e = unsafe_in_capture("cudaMemcpy");
    if (e != cudaSuccess) return e;
    e = cudaMemcpyAsync(dst, src, n, kind, nullptr);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    settle_pending(&g_legacy, g_legacy.seq); /* it returns once the copy is done */
    return e;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t stream)
{
    if (n == 0) return cudaSuccess;
    if (!in_device_memory(p, n)) {
        report("cudaMemsetAsync(%p, %zu bytes): not inside one device allocation", p, n);
        return fail(cudaErrorInvalidValue);
    }
    return enqueue(stream, "cudaMemsetAsync", [=]() {
        memset(p, v, n);
        return cudaSuccess;
    });
}

cudaError_t cudaMemset(void *p, int v, size_t n)
{
    cudaError_t e = unsafe_in_capture("cudaMemset");
    if (e != cudaSuccess) return e;
    return cudaMemsetAsync(p, v, n, nullptr);
}

/* ---- kernels ---- */

cudaError_t cudaFuncSetAttribute(const void *fn, enum cudaFuncAttribute attr, int value)
{
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value > k_smem_optin) {
            report("cudaFuncSetAttribute: %d bytes of dynamic shared memory asked for, at most "
                   "%zu per block",
                   value, k_smem_optin);
            return fail(cudaErrorInvalidValue);
        }
        std::lock_guard<std::recursive_mutex> lk(g_mu);
        g_smem_attr[fn] = value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    return fail(cudaErrorInvalidValue);
}

cudaError_t cudaLaunchKernel(const void *fn, dim3 grid, dim3 block, void **args, size_t smem,
                             cudaStream_t stream)
{
    (void)fn, (void)grid, (void)block, (void)args, (void)smem, (void)stream;
    report("cudaLaunchKernel is not emulated (its arguments are untyped): launch with RD_LAUNCH");
    return fail(cudaErrorNotSupported);
}

/* ---- streams ---- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
    CUstream_st *st = new CUstream_st();
    st->flags = flags;
    *s = st;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned int flags, int priority)
{
    (void)priority;
    return cudaStreamCreateWithFlags(s, flags);
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s || s == cudaStreamLegacy || s == cudaStreamPerThread) return fail(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    g_capturing.erase(s);
    g_pending.erase(std::remove_if(g_pending.begin(), g_pending.end(),
                                   [&](const pending_src &q) { return q.stream == s; }),
                    g_pending.end());
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    CUstream_st *st = resolve(s);
    if (st->capturing) return wait_on_capturing(st, "cudaStreamSynchronize");
    if (st == &g_legacy) {
        cudaError_t e = unsafe_in_capture("cudaStreamSynchronize of the legacy stream");
        if (e != cudaSuccess) return e;
    }
    settle_pending(st, st->seq);
    return g_sticky == cudaSuccess ? cudaSuccess : fail(g_sticky);
}

cudaError_t cudaStreamQuery(cudaStream_t s)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    CUstream_st *st = resolve(s);
    if (st->capturing) return wait_on_capturing(st, "cudaStreamQuery");
    settle_pending(st, st->seq);
    return g_sticky == cudaSuccess ? cudaSuccess : fail(g_sticky);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t ev, unsigned int flags)
{
    (void)s, (void)ev, (void)flags; /* work runs as it is fed: the event has happened */
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    CUstream_st *st = resolve(s);
    if (st == &g_legacy) {
        report("cudaStreamBeginCapture: the legacy default stream cannot be captured");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    if (st->capturing) return fail(cudaErrorIllegalState);
    st->capturing = true;
    st->invalidated = false;
    st->mode = mode;
    st->capture_thread = std::this_thread::get_id();
    st->nodes.clear();
    g_capturing.insert(st);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    *g = nullptr;
    CUstream_st *st = resolve(s);
    if (!st->capturing) return fail(cudaErrorIllegalState);
    if (st->mode == cudaStreamCaptureModeThreadLocal &&
        st->capture_thread != std::this_thread::get_id())
        return fail(cudaErrorStreamCaptureWrongThread);
    st->capturing = false;
    g_capturing.erase(st);
    if (st->invalidated) {
        st->nodes.clear();
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    CUgraph_st *graph = new CUgraph_st();
    graph->nodes.swap(st->nodes);
    *g = graph;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    CUstream_st *st = resolve(s);
    *status = !st->capturing    ? cudaStreamCaptureStatusNone
              : st->invalidated ? cudaStreamCaptureStatusInvalidated
                                : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

/* ---- graphs ---- */

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags)
{
    (void)flags;
    if (!g) return fail(cudaErrorInvalidValue);
    CUgraphExec_st *x = new CUgraphExec_st();
    x->nodes = g->nodes;
    *exec = x;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec, cudaGraph_t g,
                                          unsigned long long flags)
{
    return cudaGraphInstantiate(exec, g, flags);
}

cudaError_t cudaGraphUpload(cudaGraphExec_t exec, cudaStream_t s)
{
    if (!exec) return fail(cudaErrorInvalidValue);
    if (stream_capturing(s)) return wait_on_capturing(resolve(s), "cudaGraphUpload");
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    if (!exec) return fail(cudaErrorInvalidValue);
    std::vector<simt_node> nodes = exec->nodes; /* the graph may be destroyed while it runs */
    return enqueue(s, "cudaGraphLaunch", [nodes]() {
        for (const simt_node &n : nodes) {
            cudaError_t e = n.op();
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    });
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    delete g;
    return cudaSuccess;
}

/* ---- events ---- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned int flags)
{
    CUevent_st *e = new CUevent_st();
    e->flags = flags;
    *ev = e;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *ev) { return cudaEventCreateWithFlags(ev, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t ev)
{
    delete ev;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t s)
{
    if (!ev) return fail(cudaErrorInvalidResourceHandle);
    if (!stream_capturing(s)) {
        std::lock_guard<std::recursive_mutex> lk(g_mu);
        CUstream_st *st = resolve(s);
        ev->stream = st, ev->seq = ++st->seq;
    }
    return enqueue(s, "cudaEventRecord", [ev]() {
        ev->recorded = true;
        ev->t_ms = now_ms();
        return cudaSuccess;
    });
}

cudaError_t cudaEventSynchronize(cudaEvent_t ev)
{
    if (!ev) return fail(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (ev->stream) settle_pending(ev->stream, ev->seq);
    return g_sticky == cudaSuccess ? cudaSuccess : fail(g_sticky);
}

cudaError_t cudaEventQuery(cudaEvent_t ev)
{
    if (!ev) return fail(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (ev->stream) settle_pending(ev->stream, ev->seq);
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!a || !b || (a->flags & cudaEventDisableTiming) || (b->flags & cudaEventDisableTiming))
        return fail(cudaErrorInvalidResourceHandle);
    if (!a->recorded || !b->recorded) return fail(cudaErrorInvalidResourceHandle);
    *ms = (float)(b->t_ms - a->t_ms);
    return cudaSuccess;
}

} /* extern "C" */
