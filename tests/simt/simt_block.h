/* Private to the executor of the SIMT emulation (simt_exec.cpp: fibers, blocks, launches;
 * simt_sync.cpp: barriers and warp collectives): the state of a CUDA thread (fiber), of a
 * block being run, of a pending warp collective, and of the host thread (worker) running
 * blocks, and the fault reporting both files use. */
#ifndef RD_SIMT_BLOCK_H
#define RD_SIMT_BLOCK_H

#include "simt.h"

#include <map>
#include <random>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include "simt_internal.h"

namespace simt {
namespace detail {

enum fstate { F_RUN, F_BAR, F_WARP, F_DONE };

/* a cp.async copy that has not landed yet (simt_wmma.cpp) */
struct async_rec {
    void *dst;
    const void *src;
    unsigned size, zfill;
    unsigned long long batch; /* commit group */
};

struct fiber {
    void *sp = nullptr;
    char *mem = nullptr; /* mapping: guard page, then the stack */
    size_t mem_bytes = 0;
    char *stack_lo = nullptr;
    size_t stack_bytes = 0;
    void *asan_fake = nullptr;
#if !defined(__x86_64__)
    ucontext_t uc;
#endif
    thread_ctx ctx;
    int lin = 0, lane = 0, warp = 0;
    fstate st = F_RUN;
    int bar_result = 0;
    /* warp collective in progress */
    const void *cin = nullptr;
    void *cout = nullptr;
    int carg = 0;
    /* cp.async copies queued by this thread, and the commit group being filled */
    std::vector<async_rec> async_q;
    unsigned long long async_batch = 0;
};

struct group {
    int op;
    unsigned mask, arrived;
    const char *file;
    int line, size, width, arg;
    coll_fn fn;
    const void *fn_arg;
};

struct block_state {
    int n = 0, live = 0, n_warps = 0;
    uint3 bid;
    int bar_waiting = 0, bar_kind = 0, bar_acc = 0, bar_line = 0;
    const char *bar_file = nullptr;
    std::vector<std::vector<group>> pend; /* per warp */
    std::vector<unsigned> exists, exited; /* per warp */
    char *smem_alloc = nullptr, *smem = nullptr;
    size_t smem_bytes = 0;
};

struct tls_module {
    void *handle = nullptr;
    size_t size = 0;
};

struct worker {
    void *sched_sp = nullptr;
#if !defined(__x86_64__)
    ucontext_t sched_uc;
#endif
    const void *sched_lo = nullptr;
    size_t sched_size = 0;
    std::vector<fiber> fibers;
    fiber *cur = nullptr;
    block_state blk;
    const launch_desc *L = nullptr;
    bool failed = false;
    std::mt19937_64 rng;
    std::map<void *, void *> tls_blocks; /* module handle -> this thread's TLS block */
    std::vector<char> altstack;
};

extern thread_local worker *tl_worker;

/* One "simt: FAULT" line naming the kernel, block, thread and schedule; then abort, or (with
 * RD_SIMT_FAULT=error) the thread is abandoned and the launch ends with an error. */
[[noreturn]] __attribute__((format(printf, 3, 4))) void fault(worker *w, fiber *f,
                                                              const char *fmt, ...);
/* the same for a fault found by the scheduler, outside any CUDA thread */
__attribute__((format(printf, 2, 3))) void fault_block(worker *w, const char *fmt, ...);
/* a running CUDA thread gives control back to the scheduler (ending: for good) */
void to_scheduler(worker *w, fiber *f, bool ending);
const char *op_name(int op);

/* simt_sync.cpp: the bookkeeping of a thread that ends (a collective left waiting for it is a
 * fault; a barrier may now be complete), and the fault for a block where no thread can run */
void on_thread_exit(worker *w, fiber *f);
void describe_deadlock(worker *w);

/* simt_exec.cpp: [p, p + n) lies in the shared memory (static or dynamic) of the block being
 * run; simt_wmma.cpp: every queued cp.async copy of the thread lands */
bool in_block_shared(worker *w, const void *p, size_t n);
void land_all(fiber *f);

} /* namespace detail */
} /* namespace simt */

#endif
