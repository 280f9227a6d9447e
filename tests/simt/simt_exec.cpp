/* The executor of ropedist's SIMT emulation: how one kernel launch runs on the CPU.
 *
 * Blocks run one after another on a host thread (or spread over RD_SIMT_THREADS host threads,
 * each running one block at a time). Inside a block every CUDA thread is a fiber with its own
 * stack; a fiber runs until it reaches a barrier or a warp collective (or ends), and only
 * there control passes on, so the emulation costs a context switch per thread per
 * synchronisation point, not per instruction. The scheduler takes the runnable threads in
 * rounds, in the order RD_SIMT_SCHEDULE gives (forward, reverse, or a fresh random order each
 * round), so code that relies on an order the hardware does not promise (a missing barrier, a
 * race through shared memory) sees different interleavings under different schedules.
 *
 * Faithful where a kernel can go wrong, and loud about it (one "simt: FAULT" line naming the
 * kernel, the block and the thread, then abort; RD_SIMT_FAULT=error ends the launch with a
 * sticky error instead):
 *  - __syncthreads completes when every live (not exited) thread of the block waits at it; two
 *    groups of threads waiting at different barriers, or threads that can never all arrive,
 *    are a fault (the hardware would hang or misbehave);
 *  - a warp collective completes when every lane of its mask has reached the same collective
 *    (same call site, same mask); a mask naming the caller's absent lanes, lanes that exited,
 *    lanes that reach a different collective, or a shuffle reading a lane outside the mask are
 *    faults;
 *  - static shared memory (the TLS block of the module holding the kernels, see simt.h),
 *    dynamic shared memory and fresh device memory start as 0xFF bytes (NaN in fp32, bf16 and
 *    fp16), so a read of what was never written shows up in the results; dynamic shared
 *    memory has guard zones on both sides, checked when the block ends (and poisoned for
 *    AddressSanitizer, which then reports the access itself);
 *  - a segmentation fault inside a kernel names the kernel, block and thread (and says when it
 *    was a CUDA thread's stack overflowing its guard page).
 *
 * Fiber switches are a few instructions of assembly on x86-64 (ucontext elsewhere), annotated
 * for AddressSanitizer so the emulation build also runs under it. */
#include "simt_block.h" /* first: simt.h defines the CUDA keywords before the toolkit headers */
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>


#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#ifdef SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

/* ---- context switch ---- */

#if defined(__x86_64__)
/* simt_switch(save, load): saves the callee-saved registers on the current stack, stores the
 * stack pointer in *save, continues on load. The SSE/x87 control words are not switched: every
 * fiber runs with the thread's rounding mode, and kernels do not change it. simt_fiber_start
 * is where a fresh fiber begins: it calls r13(r12) and never returns. */
extern "C" void simt_switch(void **save, void *load);
extern "C" void simt_fiber_start(void);
asm(R"(
    .text
    .p2align 4
    .globl simt_switch
    .hidden simt_switch
    .type simt_switch,@function
simt_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size simt_switch,.-simt_switch

    .p2align 4
    .globl simt_fiber_start
    .hidden simt_fiber_start
    .type simt_fiber_start,@function
simt_fiber_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    call *%r13
    ud2
    .cfi_endproc
    .size simt_fiber_start,.-simt_fiber_start
)");
#endif

namespace simt {

/* ---- settings ---- */

static settings read_settings()
{
    settings s;
    s.schedule = 0;
    s.seed = 0;
    const char *v = getenv("RD_SIMT_SCHEDULE");
    if (v && *v) {
        if (!strcmp(v, "forward")) {
            s.schedule = 0;
        } else if (!strcmp(v, "reverse")) {
            s.schedule = 1;
        } else if (!strncmp(v, "random", 6)) {
            s.schedule = 2;
            s.seed = v[6] == ':' ? strtoull(v + 7, nullptr, 10) : 1;
        } else {
            fprintf(stderr, "simt: RD_SIMT_SCHEDULE=%s: expected forward, reverse or random:SEED\n",
                    v);
            exit(2);
        }
    }
    v = getenv("RD_SIMT_THREADS");
    s.threads = v && atoi(v) > 0 ? atoi(v) : 1;
#ifdef SIMT_ASAN
    size_t kb = 256;
#else
    size_t kb = 64;
#endif
    v = getenv("RD_SIMT_STACK_KB");
    if (v && atoi(v) >= 16) kb = (size_t)atoi(v);
    s.stack_bytes = kb * 1024;
    v = getenv("RD_SIMT_FAULT");
    s.fault_abort = !(v && !strcmp(v, "error"));
    v = getenv("RD_SIMT_MEM_MB");
    s.mem_bytes = (size_t)(v && atol(v) > 0 ? atol(v) : 16384) << 20;
    v = getenv("RD_SIMT_DEVICES");
    s.devices = v && atoi(v) >= 0 ? atoi(v) : 8;
    return s;
}

const settings &config()
{
    static const settings s = read_settings();
    return s;
}

void report(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "simt: %s\n", buf);
    fflush(stderr);
}

static const char *schedule_name()
{
    static char buf[64];
    const settings &s = config();
    if (s.schedule == 0) return "forward";
    if (s.schedule == 1) return "reverse";
    snprintf(buf, sizeof buf, "random:%llu", s.seed);
    return buf;
}

namespace detail {

thread_local worker *tl_worker = nullptr;

constexpr size_t k_guard = 64; /* bytes of guard zone on each side of dynamic shared memory */
constexpr unsigned char k_poison = 0xff, k_canary = 0xa5;

worker *this_worker()
{
    if (!tl_worker) tl_worker = new worker(); /* lives as long as the thread */
    return tl_worker;
}

[[noreturn]] void fiber_abandon(worker *w, fiber *f);

/* One "simt: FAULT" line with the kernel, the block, the thread and the schedule. */
void fault_v(worker *w, fiber *f, const char *fmt, va_list ap)
{
    char what[1536];
    vsnprintf(what, sizeof what, fmt, ap);
    const block_state &b = w->blk;
    if (f)
        report("FAULT in kernel %s, block (%u,%u,%u), thread (%u,%u,%u) [warp %d lane %d], "
               "schedule %s: %s",
               w->L ? w->L->name.c_str() : "?", b.bid.x, b.bid.y, b.bid.z, f->ctx.tid.x,
               f->ctx.tid.y, f->ctx.tid.z, f->warp, f->lane, schedule_name(), what);
    else
        report("FAULT in kernel %s, block (%u,%u,%u), schedule %s: %s",
               w->L ? w->L->name.c_str() : "?", b.bid.x, b.bid.y, b.bid.z, schedule_name(), what);
    if (config().fault_abort) abort();
    w->failed = true;
}

/* a fault raised by a running CUDA thread: the thread never continues */
[[noreturn]] __attribute__((format(printf, 3, 4))) void fault(worker *w, fiber *f,
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fault_v(w, f, fmt, ap);
    va_end(ap);
    fiber_abandon(w, f);
}

/* a fault found by the scheduler (outside any CUDA thread) */
__attribute__((format(printf, 2, 3))) void fault_block(worker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fault_v(w, nullptr, fmt, ap);
    va_end(ap);
}

const char *op_name(int op)
{
    switch (op) {
    case COLL_SHFL_IDX: return "__shfl_sync";
    case COLL_SHFL_UP: return "__shfl_up_sync";
    case COLL_SHFL_DOWN: return "__shfl_down_sync";
    case COLL_SHFL_XOR: return "__shfl_xor_sync";
    case COLL_BALLOT: return "__ballot_sync/__any_sync/__all_sync";
    case COLL_RED_ADD: return "__reduce_add_sync";
    case COLL_RED_MIN: return "__reduce_min_sync";
    case COLL_RED_MAX: return "__reduce_max_sync";
    case COLL_RED_AND: return "__reduce_and_sync";
    case COLL_RED_OR: return "__reduce_or_sync";
    case COLL_RED_XOR: return "__reduce_xor_sync";
    case COLL_MATCH_ANY: return "__match_any_sync";
    case COLL_MATCH_ALL: return "__match_all_sync";
    case COLL_SYNCWARP: return "__syncwarp";
    default: return "warp matrix operation";
    }
}

/* ---- fibers ---- */

void fiber_main(worker *w);

#if defined(__x86_64__)
void fiber_prepare(worker *w, fiber *f)
{
    uintptr_t top = ((uintptr_t)(f->stack_lo + f->stack_bytes)) & ~(uintptr_t)15;
    uint64_t *ret_slot = (uint64_t *)(top - 8); /* 8 mod 16: rsp at the stub is 16-aligned */
    uint64_t *sp = ret_slot - 6;               /* r15 r14 r13 r12 rbx rbp, as simt_switch pops */
    sp[0] = 0;                                 /* r15 */
    sp[1] = 0;                                 /* r14 */
    sp[2] = (uint64_t)(uintptr_t)&fiber_main;  /* r13: what the stub calls */
    sp[3] = (uint64_t)(uintptr_t)w;            /* r12: its argument */
    sp[4] = 0;                                 /* rbx */
    sp[5] = 0;                                 /* rbp: ends frame-pointer unwinding */
    *ret_slot = (uint64_t)(uintptr_t)&simt_fiber_start;
    f->sp = sp;
}
#else
void fiber_entry_uc(unsigned lo, unsigned hi)
{
    fiber_main((worker *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
void fiber_prepare(worker *w, fiber *f)
{
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack_lo;
    f->uc.uc_stack.ss_size = f->stack_bytes;
    f->uc.uc_link = nullptr;
    uintptr_t p = (uintptr_t)w;
    makecontext(&f->uc, (void (*)())fiber_entry_uc, 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 32));
}
#endif

void fiber_alloc(fiber *f)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), guard = 4 * page;
    const size_t stack = (config().stack_bytes + page - 1) / page * page;
    if (f->mem && f->stack_bytes == stack) return;
    f->mem_bytes = stack + guard;
    void *m = mmap(nullptr, f->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED) {
        report("cannot map %zu bytes for a CUDA thread's stack", f->mem_bytes);
        abort();
    }
    /* overflow hits the guard pages (kernels are compiled with -fstack-clash-protection, so no
     * frame jumps over them): a SIGSEGV the handler names */
    mprotect(m, guard, PROT_NONE);
    f->mem = (char *)m;
    f->stack_lo = f->mem + guard;
    f->stack_bytes = stack;
}

void to_fiber(worker *w, fiber *f)
{
    w->cur = f;
#ifdef SIMT_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack_lo, f->stack_bytes);
#endif
#if defined(__x86_64__)
    simt_switch(&w->sched_sp, f->sp);
#else
    swapcontext(&w->sched_uc, &f->uc);
#endif
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    w->cur = nullptr;
}

void to_scheduler(worker *w, fiber *f, bool ending)
{
#ifdef SIMT_ASAN
    __sanitizer_start_switch_fiber(ending ? nullptr : &f->asan_fake, w->sched_lo, w->sched_size);
#endif
#if defined(__x86_64__)
    simt_switch(&f->sp, w->sched_sp);
#else
    swapcontext(&f->uc, &w->sched_uc);
#endif
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, &w->sched_lo, &w->sched_size);
#endif
    (void)ending;
}

[[noreturn]] void fiber_abandon(worker *w, fiber *f)
{
    f->st = F_DONE;
    to_scheduler(w, f, true);
    __builtin_unreachable();
}

[[noreturn]] void thread_exit(worker *w, fiber *f)
{
    on_thread_exit(w, f);
    to_scheduler(w, f, true);
    __builtin_unreachable();
}

void fiber_main(worker *w)
{
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &w->sched_lo, &w->sched_size);
#endif
    fiber *f = w->cur;
    w->L->run_thread(w->L->args.get());
    thread_exit(w, f);
}

/* ---- static shared memory: the TLS block of the module that holds the kernel ---- */

struct phdr_query {
    uintptr_t base;
    size_t tls_size;
    bool is_main;
    bool found;
};

int find_tls(struct dl_phdr_info *info, size_t, void *data)
{
    phdr_query *q = (phdr_query *)data;
    if ((uintptr_t)info->dlpi_addr != q->base) {
        /* the main program may report base 0 with dli_fbase its load address */
        bool main_prog = !info->dlpi_name || !info->dlpi_name[0];
        if (!main_prog) return 0;
        bool contains = false;
        for (int i = 0; i < info->dlpi_phnum; i++)
            if (info->dlpi_phdr[i].p_type == PT_LOAD &&
                info->dlpi_addr + info->dlpi_phdr[i].p_vaddr <= q->base &&
                q->base < info->dlpi_addr + info->dlpi_phdr[i].p_vaddr + info->dlpi_phdr[i].p_memsz)
                contains = true;
        if (!contains) return 0;
    }
    q->found = true;
    q->is_main = !info->dlpi_name || !info->dlpi_name[0];
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS) q->tls_size = info->dlpi_phdr[i].p_memsz;
    return 1;
}

std::mutex g_mod_mu;
std::map<const void *, tls_module> g_mods; /* kernel -> module */

const tls_module &module_of(const void *fn)
{
    std::lock_guard<std::mutex> lk(g_mod_mu);
    auto it = g_mods.find(fn);
    if (it != g_mods.end()) return it->second;
    tls_module m;
    Dl_info di;
    if (dladdr(fn, &di) && di.dli_fbase) {
        phdr_query q = {(uintptr_t)di.dli_fbase, 0, false, false};
        dl_iterate_phdr(find_tls, &q);
        if (q.found && q.tls_size) {
            m.size = q.tls_size;
            m.handle = q.is_main ? dlopen(nullptr, RTLD_LAZY) : dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
            if (!m.handle) {
                report("cannot open the module of kernel code (%s) to poison static shared memory",
                       di.dli_fname);
                m.size = 0;
            }
        }
    }
    return g_mods.emplace(fn, m).first->second;
}

void poison_static_shared(worker *w, const void *fn)
{
    const tls_module &m = module_of(fn);
    if (!m.size) return;
    void *&blk = w->tls_blocks[m.handle];
    if (!blk) {
        if (dlinfo(m.handle, RTLD_DI_TLS_DATA, &blk) != 0 || !blk) {
            report("no TLS block for the kernels' module on this thread: static shared memory "
                   "is not poisoned");
            return;
        }
    }
    memset(blk, k_poison, m.size);
}

bool in_block_shared(worker *w, const void *p, size_t n)
{
    const char *c = (const char *)p;
    const block_state &b = w->blk;
    if (b.smem && c >= b.smem && c + n <= b.smem + b.smem_bytes) return true;
    if (!w->L) return false;
    const tls_module &m = module_of(w->L->fn);
    auto it = w->tls_blocks.find(m.handle);
    if (!m.size || it == w->tls_blocks.end() || !it->second) return false;
    const char *lo = (const char *)it->second;
    return c >= lo && c + n <= lo + m.size;
}

/* ---- SIGSEGV inside a kernel ---- */

struct sigaction g_old_segv, g_old_bus;

void on_fault_signal(int sig, siginfo_t *si, void *)
{
    worker *w = tl_worker;
    if (w && w->cur && w->L) {
        fiber *f = w->cur;
        const char *addr = (const char *)si->si_addr;
        const bool overflow = f->mem && addr >= f->mem && addr < f->stack_lo;
        char buf[1024];
        int n = snprintf(buf, sizeof buf,
                         "simt: %s in kernel %s, block (%u,%u,%u), thread (%u,%u,%u), address %p%s\n",
                         sig == SIGSEGV ? "SIGSEGV" : "SIGBUS", w->L->name.c_str(), w->blk.bid.x,
                         w->blk.bid.y, w->blk.bid.z, f->ctx.tid.x, f->ctx.tid.y, f->ctx.tid.z,
                         si->si_addr,
                         overflow ? ": the CUDA thread's stack overflowed (raise RD_SIMT_STACK_KB)"
                                  : "");
        if (n > 0) {
            ssize_t r = write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
            (void)r;
        }
    }
    /* hand the signal to whoever had it before (MPI's handler, or the default action) */
    sigaction(sig, sig == SIGSEGV ? &g_old_segv : &g_old_bus, nullptr);
}

void install_signal_handlers(worker *w)
{
#ifndef SIMT_ASAN
    /* kernels run on fiber stacks: the handler needs its own */
    if (w->altstack.empty()) {
        w->altstack.resize(64 * 1024);
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_sp = w->altstack.data();
        ss.ss_size = w->altstack.size();
        sigaltstack(&ss, nullptr);
    }
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &g_old_segv);
        sigaction(SIGBUS, &sa, &g_old_bus);
    });
#else
    (void)w;
#endif
}

/* ---- one block ---- */

void run_block(worker *w, const launch_desc &L, unsigned long long blin)
{
    block_state &b = w->blk;
    const unsigned gx = L.grid.x, gy = L.grid.y;
    b.bid = make_uint3((unsigned)(blin % gx), (unsigned)((blin / gx) % gy),
                       (unsigned)(blin / ((unsigned long long)gx * gy)));
    const unsigned bx = L.block.x, by = L.block.y;
    b.n = (int)(L.block.x * L.block.y * L.block.z);
    b.live = b.n;
    b.n_warps = (b.n + 31) / 32;
    b.bar_waiting = 0;
    b.pend.assign((size_t)b.n_warps, {});
    b.exists.assign((size_t)b.n_warps, 0u);
    b.exited.assign((size_t)b.n_warps, 0u);
    for (int i = 0; i < b.n; i++) b.exists[(size_t)(i >> 5)] |= 1u << (i & 31);

    poison_static_shared(w, L.fn);

    /* dynamic shared memory between two guard zones */
    b.smem_bytes = L.smem;
    b.smem_alloc = (char *)malloc(L.smem + 2 * k_guard);
    if (!b.smem_alloc) {
        report("cannot allocate %zu bytes of dynamic shared memory", L.smem);
        abort();
    }
    b.smem = b.smem_alloc + k_guard;
    memset(b.smem_alloc, k_canary, k_guard);
    memset(b.smem, k_poison, L.smem);
    memset(b.smem + L.smem, k_canary, k_guard);
#ifdef SIMT_ASAN
    ASAN_POISON_MEMORY_REGION(b.smem_alloc, k_guard);
    ASAN_POISON_MEMORY_REGION(b.smem + L.smem, k_guard);
#endif

    if ((int)w->fibers.size() < b.n) w->fibers.resize((size_t)b.n);
    for (int i = 0; i < b.n; i++) {
        fiber &f = w->fibers[(size_t)i];
        fiber_alloc(&f);
#ifdef SIMT_ASAN
        ASAN_UNPOISON_MEMORY_REGION(f.stack_lo, f.stack_bytes);
#endif
        f.ctx.tid = make_uint3((unsigned)i % bx, ((unsigned)i / bx) % by, (unsigned)i / (bx * by));
        f.ctx.bid = b.bid;
        f.ctx.bdim = L.block;
        f.ctx.gdim = L.grid;
        f.lin = i, f.lane = i & 31, f.warp = i >> 5;
        f.st = F_RUN;
        f.asan_fake = nullptr;
        f.async_q.clear();
        f.async_batch = 0;
        fiber_prepare(w, &f);
    }

    std::vector<int> order((size_t)b.n);
    for (int i = 0; i < b.n; i++) order[(size_t)i] = config().schedule == 1 ? b.n - 1 - i : i;
    while (b.live > 0 && !w->failed) {
        if (config().schedule == 2) std::shuffle(order.begin(), order.end(), w->rng);
        int ran = 0;
        for (int idx : order) {
            fiber &f = w->fibers[(size_t)idx];
            if (f.st != F_RUN) continue;
            to_fiber(w, &f);
            ran++;
            if (w->failed) break;
        }
        if (!ran && b.live > 0 && !w->failed) describe_deadlock(w);
    }

    if (!w->failed) {
#ifdef SIMT_ASAN
        ASAN_UNPOISON_MEMORY_REGION(b.smem_alloc, k_guard);
        ASAN_UNPOISON_MEMORY_REGION(b.smem + L.smem, k_guard);
#endif
        for (size_t i = 0; i < k_guard; i++)
            if ((unsigned char)b.smem_alloc[i] != k_canary ||
                (unsigned char)b.smem[L.smem + i] != k_canary) {
                fault_block(w,
                            "a write %s its %zu bytes of dynamic shared memory (guard byte %zu "
                            "changed)",
                            (unsigned char)b.smem_alloc[i] != k_canary ? "before the start of"
                                                                       : "past the end of",
                            L.smem, i);
                break;
            }
    }
    free(b.smem_alloc);
    b.smem_alloc = b.smem = nullptr;
}

/* ---- host threads for blocks ---- */

struct pool {
    std::mutex mu;
    std::condition_variable cv, done_cv;
    int threads = 0; /* detached: they live as long as the process */
    const launch_desc *L = nullptr;
    const std::vector<unsigned long long> *order = nullptr;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    unsigned long long generation = 0;
    int busy = 0;
};
pool &g_pool = *new pool(); /* never destroyed: its threads wait on it until the process ends */

void run_blocks(worker *w, const launch_desc &L, const std::vector<unsigned long long> &order,
                std::atomic<size_t> &next, std::atomic<bool> &failed)
{
    w->L = &L;
    w->failed = false;
    w->rng.seed(config().seed ^ (L.serial * 0x9e3779b97f4a7c15ull));
    install_signal_handlers(w);
    for (;;) {
        const size_t i = next.fetch_add(1);
        if (i >= order.size() || failed.load()) break;
        run_block(w, L, order[i]);
        if (w->failed) failed.store(true);
    }
    w->L = nullptr;
}

void pool_thread()
{
    worker *w = this_worker();
    unsigned long long seen = 0;
    for (;;) {
        const launch_desc *L;
        const std::vector<unsigned long long> *order;
        {
            std::unique_lock<std::mutex> lk(g_pool.mu);
            g_pool.cv.wait(lk, [&] { return g_pool.generation != seen; });
            seen = g_pool.generation;
            L = g_pool.L;
            order = g_pool.order;
        }
        run_blocks(w, *L, *order, g_pool.next, g_pool.failed);
        std::lock_guard<std::mutex> lk(g_pool.mu);
        if (--g_pool.busy == 0) g_pool.done_cv.notify_all();
    }
}

} /* namespace detail */

using namespace detail;

/* ---- the kernel-side entry points (simt.h) ---- */

const thread_ctx *self()
{
    worker *w = tl_worker;
    if (!w || !w->cur) {
        report("a CUDA built-in variable (threadIdx, blockIdx, ...) was read outside a kernel");
        abort();
    }
    return &w->cur->ctx;
}

void *dyn_smem()
{
    worker *w = tl_worker;
    if (!w || !w->cur) {
        report("dynamic shared memory was used outside a kernel");
        abort();
    }
    return w->blk.smem;
}

int lane_id()
{
    worker *w = tl_worker;
    return w && w->cur ? w->cur->lane : 0;
}

/* ---- launches ---- */

cudaError_t run_launch(const launch_desc &L)
{
    const unsigned long long n = (unsigned long long)L.grid.x * L.grid.y * L.grid.z;
    std::vector<unsigned long long> order((size_t)n);
    for (unsigned long long i = 0; i < n; i++) order[(size_t)i] = config().schedule == 1 ? n - 1 - i : i;
    if (config().schedule == 2) {
        std::mt19937_64 rng(config().seed * 0x2545f4914f6cdd1dull + L.serial);
        std::shuffle(order.begin(), order.end(), rng);
    }
    const int threads = (int)std::min<unsigned long long>((unsigned long long)config().threads, n);
    worker *w = this_worker();
    if (threads <= 1) {
        std::atomic<size_t> next{0};
        std::atomic<bool> failed{false};
        run_blocks(w, L, order, next, failed);
        return failed.load() ? cudaErrorLaunchFailure : cudaSuccess;
    }
    {
        std::unique_lock<std::mutex> lk(g_pool.mu);
        while (g_pool.threads < config().threads - 1) {
            std::thread(pool_thread).detach();
            g_pool.threads++;
        }
        g_pool.L = &L;
        g_pool.order = &order;
        g_pool.next.store(0);
        g_pool.failed.store(false);
        g_pool.busy = g_pool.threads;
        g_pool.generation++;
    }
    g_pool.cv.notify_all();
    run_blocks(w, L, order, g_pool.next, g_pool.failed);
    std::unique_lock<std::mutex> lk(g_pool.mu);
    g_pool.done_cv.wait(lk, [] { return g_pool.busy == 0; });
    return g_pool.failed.load() ? cudaErrorLaunchFailure : cudaSuccess;
}

} /* namespace simt */
