/* Barriers and warp collectives of the SIMT emulation: what happens when a CUDA thread (a
 * fiber, simt_exec.cpp) reaches __syncthreads or a warp-level intrinsic.
 *
 * A thread that arrives waits (gives control back to the scheduler) until its group is
 * complete: for a barrier every live thread of the block at the same call site, for a warp
 * collective every lane of the mask at the same call site with the same mask. The last to
 * arrive computes every participant's result (from each lane's input, read in place on the
 * lanes' stacks) and makes them runnable. Everything that cannot complete, or would complete
 * on the hardware only by undefined behaviour, is a fault: see the messages below and
 * tests/simt/README.md. */
#include "simt_block.h" /* first: simt.h defines the CUDA keywords before the toolkit headers */

#include <string.h>

namespace simt {
namespace detail {

void release_barrier(block_state &b, std::vector<fiber> &fibers)
{
    const int result = b.bar_acc;
    for (int i = 0; i < b.n; i++)
        if (fibers[i].st == F_BAR) fibers[i].st = F_RUN, fibers[i].bar_result = result;
    b.bar_waiting = 0;
}

void on_thread_exit(worker *w, fiber *f)
{
    block_state &b = w->blk;
    land_all(f); /* copies still in flight land as the thread ends */
    f->st = F_DONE;
    b.live--;
    b.exited[f->warp] |= 1u << f->lane;
    for (const group &g : b.pend[f->warp])
        if (((g.mask >> f->lane) & 1u) && !((g.arrived >> f->lane) & 1u))
            fault(w, f,
                  "exits while lanes 0x%08x of its warp wait for it at %s (%s:%d, mask 0x%08x): "
                  "a warp collective whose mask names a lane that never reaches it",
                  g.arrived, op_name(g.op), g.file, g.line, g.mask);
    if (b.bar_waiting > 0 && b.bar_waiting == b.live) release_barrier(b, w->fibers);
}

/* the lane a shuffle reads for lane i (CUDA's rules for width < 32 included) */
int shfl_src(int op, int i, int arg, int width)
{
    const int seg = i & ~(width - 1);
    switch (op) {
    case COLL_SHFL_IDX: return seg + (arg & (width - 1));
    case COLL_SHFL_UP: return (i - seg) >= arg ? i - arg : i;
    case COLL_SHFL_DOWN: return (i - seg) + arg < width ? i + arg : i;
    default: { /* xor: lanes past the own segment give the own value */
        const int j = i ^ arg;
        return (j < 0 || j >= seg + width) ? i : j;
    }
    }
}

void complete(worker *w, fiber *last, const group &g, int warp)
{
    fiber *lanes[32] = {nullptr};
    for (int l = 0; l < 32; l++)
        if ((g.mask >> l) & 1u) lanes[l] = &w->fibers[warp * 32 + l];
    switch (g.op) {
    case COLL_SHFL_IDX:
    case COLL_SHFL_UP:
    case COLL_SHFL_DOWN:
    case COLL_SHFL_XOR:
        for (int l = 0; l < 32; l++) {
            if (!lanes[l]) continue;
            const int s = shfl_src(g.op, l, lanes[l]->carg, g.width);
            if (s < 0 || s > 31 || !((g.mask >> s) & 1u))
                fault(w, last,
                      "%s (%s:%d): lane %d reads lane %d, which is not in the mask 0x%08x (the "
                      "value would be undefined)",
                      op_name(g.op), g.file, g.line, l, s, g.mask);
            memcpy(lanes[l]->cout, lanes[s]->cin, (size_t)g.size);
        }
        break;
    case COLL_BALLOT: {
        unsigned r = 0;
        for (int l = 0; l < 32; l++)
            if (lanes[l] && *(const int *)lanes[l]->cin) r |= 1u << l;
        for (int l = 0; l < 32; l++)
            if (lanes[l]) memcpy(lanes[l]->cout, &r, 4);
        break;
    }
    case COLL_RED_ADD:
    case COLL_RED_MIN:
    case COLL_RED_MAX:
    case COLL_RED_AND:
    case COLL_RED_OR:
    case COLL_RED_XOR: {
        bool first = true;
        uint32_t acc = 0;
        for (int l = 0; l < 32; l++) {
            if (!lanes[l]) continue;
            uint32_t v;
            memcpy(&v, lanes[l]->cin, 4);
            if (first) {
                acc = v, first = false;
                continue;
            }
            switch (g.op) {
            case COLL_RED_ADD: acc += v; break;
            case COLL_RED_AND: acc &= v; break;
            case COLL_RED_OR: acc |= v; break;
            case COLL_RED_XOR: acc ^= v; break;
            default: {
                const bool less = g.arg ? (int32_t)v < (int32_t)acc : v < acc;
                if (g.op == COLL_RED_MIN ? less : (!less && v != acc)) acc = v;
            }
            }
        }
        for (int l = 0; l < 32; l++)
            if (lanes[l]) memcpy(lanes[l]->cout, &acc, 4);
        break;
    }
    case COLL_MATCH_ANY:
        for (int l = 0; l < 32; l++) {
            if (!lanes[l]) continue;
            unsigned r = 0;
            for (int m = 0; m < 32; m++)
                if (lanes[m] && !memcmp(lanes[l]->cin, lanes[m]->cin, (size_t)g.size)) r |= 1u << m;
            memcpy(lanes[l]->cout, &r, 4);
        }
        break;
    case COLL_MATCH_ALL: {
        const void *ref = nullptr;
        bool all = true;
        for (int l = 0; l < 32; l++) {
            if (!lanes[l]) continue;
            if (!ref) ref = lanes[l]->cin;
            else if (memcmp(ref, lanes[l]->cin, (size_t)g.size)) all = false;
        }
        unsigned r[2] = {all ? g.mask : 0u, all ? 1u : 0u};
        for (int l = 0; l < 32; l++)
            if (lanes[l]) memcpy(lanes[l]->cout, r, 8);
        break;
    }
    case COLL_SYNCWARP: break;
    default: {
        const void *in[32];
        void *out[32];
        for (int l = 0; l < 32; l++) {
            in[l] = lanes[l] ? lanes[l]->cin : nullptr;
            out[l] = lanes[l] ? lanes[l]->cout : nullptr;
        }
        g.fn(in, out, g.mask, g.fn_arg);
    }
    }
    for (int l = 0; l < 32; l++)
        if (lanes[l]) lanes[l]->st = F_RUN;
}

void describe_deadlock(worker *w)
{
    block_state &b = w->blk;
    char msg[1400];
    int n = snprintf(msg, sizeof msg, "no thread can continue (%d of %d threads live):", b.live,
                     b.n);
    if (b.bar_waiting)
        n += snprintf(msg + n, sizeof msg - (size_t)n,
                      " %d wait at __syncthreads (%s:%d) for the others;", b.bar_waiting,
                      b.bar_file, b.bar_line);
    for (int wp = 0; wp < b.n_warps && n < (int)sizeof msg - 200; wp++)
        for (const group &g : b.pend[wp]) {
            unsigned at_bar = 0;
            for (int l = 0; l < 32; l++)
                if (((g.mask & ~g.arrived) >> l) & 1u && w->fibers[wp * 32 + l].st == F_BAR)
                    at_bar |= 1u << l;
            n += snprintf(msg + n, sizeof msg - (size_t)n,
                          " warp %d lanes 0x%08x wait at %s (%s:%d) for lanes 0x%08x%s;", wp,
                          g.arrived, op_name(g.op), g.file, g.line, g.mask & ~g.arrived,
                          at_bar ? " (some of which wait at __syncthreads)" : "");
        }
    fault_block(w, "%s a barrier or warp collective that not every thread reaches", msg);
}

} /* namespace detail */

using namespace detail;

int sync_threads(int kind, int pred, const char *file, int line)
{
    worker *w = tl_worker;
    fiber *f = w ? w->cur : nullptr;
    if (!f) {
        report("__syncthreads called outside a kernel (%s:%d)", file, line);
        abort();
    }
    block_state &b = w->blk;
    if (b.bar_waiting == 0) {
        b.bar_file = file, b.bar_line = line, b.bar_kind = kind;
        b.bar_acc = kind == 2 ? 1 : 0;
    } else if (b.bar_line != line || (b.bar_file != file && strcmp(b.bar_file, file) != 0)) {
        fault(w, f,
              "reaches __syncthreads at %s:%d while %d threads of the block wait at the one at "
              "%s:%d (a barrier that not every thread reaches)",
              file, line, b.bar_waiting, b.bar_file, b.bar_line);
    }
    if (kind == 1) b.bar_acc += pred;
    else if (kind == 2) b.bar_acc &= pred;
    else if (kind == 3) b.bar_acc |= pred;
    f->st = F_BAR;
    if (++b.bar_waiting == b.live) release_barrier(b, w->fibers);
    to_scheduler(w, f, false);
    return f->bar_result;
}

void warp_coll(int op, unsigned mask, const void *in, void *out, int size, int arg, int width,
               const char *file, int line, coll_fn fn, const void *fn_arg)
{
    worker *w = tl_worker;
    fiber *f = w ? w->cur : nullptr;
    if (!f) {
        report("%s called outside a kernel (%s:%d)", op_name(op), file, line);
        abort();
    }
    block_state &b = w->blk;
    const unsigned bit = 1u << f->lane;
    const int wp = f->warp;
    if (!(mask & bit))
        fault(w, f, "calls %s (%s:%d) with mask 0x%08x, which does not name its own lane %d",
              op_name(op), file, line, mask, f->lane);
    if (mask & ~b.exists[(size_t)wp])
        fault(w, f,
              "calls %s (%s:%d) with mask 0x%08x, which names lanes 0x%08x that do not exist "
              "(block of %d threads)",
              op_name(op), file, line, mask, mask & ~b.exists[(size_t)wp], b.n);
    if (mask & b.exited[(size_t)wp])
        fault(w, f,
              "calls %s (%s:%d) with mask 0x%08x, which names lanes 0x%08x that have already "
              "exited",
              op_name(op), file, line, mask, mask & b.exited[(size_t)wp]);
    if (op <= COLL_SHFL_XOR && (width < 1 || width > 32 || (width & (width - 1))))
        fault(w, f, "calls %s (%s:%d) with width %d (a power of two up to 32)", op_name(op), file,
              line, width);
    std::vector<group> &pend = b.pend[(size_t)wp];
    group *g = nullptr;
    for (group &x : pend)
        if (x.mask & mask) g = &x;
    if (g) {
        if (g->mask != mask || g->op != op || g->line != line ||
            (g->file != file && strcmp(g->file, file) != 0) || g->size != size ||
            g->width != width)
            fault(w, f,
                  "reaches %s (%s:%d, mask 0x%08x) while lanes 0x%08x of its warp wait at %s "
                  "(%s:%d, mask 0x%08x): a warp collective under divergence",
                  op_name(op), file, line, mask, g->arrived, op_name(g->op), g->file, g->line,
                  g->mask);
    } else {
        pend.push_back(group{op, mask, 0u, file, line, size, width, arg, fn, fn_arg});
        g = &pend.back();
    }
    f->cin = in, f->cout = out, f->carg = arg;
    f->st = F_WARP;
    g->arrived |= bit;
    if (g->arrived == mask) {
        const group done = *g;
        pend.erase(pend.begin() + (g - pend.data()));
        complete(w, f, done, wp);
    }
    to_scheduler(w, f, false);
}

unsigned active_mask()
{
    worker *w = tl_worker;
    if (!w || !w->cur) return 0;
    const int wp = w->cur->warp;
    return w->blk.exists[(size_t)wp] & ~w->blk.exited[(size_t)wp];
}

} /* namespace simt */
