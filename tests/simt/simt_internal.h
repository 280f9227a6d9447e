/* Private to the SIMT emulation library (the .cpp files of tests/simt): the launch record the runtime
 * hands to the executor, the stream queue the runtime, cuBLAS and NCCL emulations share, the
 * device-memory registry, the settings from the environment and the diagnostics.
 *
 * Settings (read once):
 *   RD_SIMT_SCHEDULE   forward | reverse | random:SEED  order of threads between barriers and
 *                      of blocks in a launch (default forward)
 *   RD_SIMT_THREADS    host threads a launch spreads its blocks over (default 1)
 *   RD_SIMT_STACK_KB   stack per CUDA thread (default 64, 256 under AddressSanitizer)
 *   RD_SIMT_FAULT      abort (default) | error: what a fault in a kernel does: abort the
 *                      process after the message, or end the launch with a sticky error
 *   RD_SIMT_MEM_MB     device memory of each emulated GPU (default 16384)
 *   RD_SIMT_DEVICES    emulated GPUs (default 8) */
#ifndef RD_SIMT_INTERNAL_H
#define RD_SIMT_INTERNAL_H

#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <string>

namespace simt {

struct settings {
    int schedule;           /* 0 forward, 1 reverse, 2 random */
    unsigned long long seed;
    int threads;
    size_t stack_bytes;
    bool fault_abort;
    size_t mem_bytes;
    int devices;
};
const settings &config();

struct launch_desc {
    std::string name; /* the kernel, with its template arguments */
    const void *fn;
    dim3 grid, block;
    size_t smem;
    std::shared_ptr<void> args;
    void (*run_thread)(void *args);
    unsigned long long serial; /* launch number, for the random schedule's seed */
};

/* simt_exec.cpp: runs every block of the launch; cudaSuccess, or the error of a fault (after
 * its message) when RD_SIMT_FAULT=error */
cudaError_t run_launch(const launch_desc &d);

/* cuda_runtime_emu.cpp */
using stream_op = std::function<cudaError_t()>;
/* Runs op now (streams execute in order as they are fed), or records it when the stream is
 * being captured into a graph. */
cudaError_t enqueue(cudaStream_t s, const char *what, stream_op op);
bool stream_capturing(cudaStream_t s);
/* the calling thread's last error (what cudaGetLastError returns) */
void set_last_error(cudaError_t e);
void set_sticky_error(cudaError_t e);
/* [p, p + bytes) lies inside one device allocation */
bool in_device_memory(const void *p, size_t bytes);
/* dynamic shared memory the kernel may use (48 KB, or what cudaFuncSetAttribute allowed) */
size_t dyn_smem_allowed(const void *fn);

/* "simt: ..." on stderr, one line, flushed */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* the limits of the emulated device (an H200: sm_90, 132 SMs) */
constexpr size_t k_smem_default = 48 * 1024;
constexpr size_t k_smem_optin = 232448; /* 227 KB */
constexpr int k_max_threads = 1024;

} /* namespace simt */

#endif
