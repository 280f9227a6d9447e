/* Warp matrix operations (nvcuda::wmma) and asynchronous copies (cp.async) of the SIMT
 * emulation: what simt_wmma.h's functions do once the lanes of a warp have met.
 *
 * Fragment layout: slot i of lane l is element e = (l * num_elements + i) mod 256 of a 16x16
 * matrix in a permuted order, idx = (e * mul + add) mod 256 (mul odd, so a bijection), with
 * (mul, add) fixed per fragment kind and per copy (a __half A/B fragment holds every element
 * twice, the second copy in lanes 16-31 with another permutation). idx is row * 16 + column
 * of the logical matrix: A is M x K, B is K x N, the accumulator M x N. A row-major matrix in
 * memory holds (r, c) at p[r * ldm + c], a column-major one at p[c * ldm + r].
 *
 * mma_sync computes D = A B + C in fp32, summing over k in order (exact for the small integer
 * values the tests use; the hardware's order and rounding may differ in the last bits). */
#include "simt_block.h" /* first: simt.h defines the CUDA keywords before the toolkit headers */

#include <stdint.h>
#include <string.h>

namespace simt {
namespace detail {

struct kind_info {
    int use, dt, layout;
    int ne;       /* elements per lane */
    size_t es;    /* bytes per element */
};

kind_info info_of(int kind)
{
    kind_info k;
    k.use = kind / 9, k.dt = (kind / 3) % 3, k.layout = kind % 3;
    k.ne = (k.use < 2 && k.dt == 1) ? 16 : 8;
    k.es = k.dt == 0 ? 4 : 2;
    return k;
}

/* matrix index (row * 16 + column) of slot i of lane l */
int slot_index(int kind, int lane, int i, int ne)
{
    const int s = lane * ne + i, copy = s >> 8, e = s & 255;
    const int mul = 2 * ((kind * 7 + copy * 13) % 60) + 37;
    const int add = (kind * 41 + copy * 89 + 11) & 255;
    return (e * mul + add) & 255;
}

float load_elem(const void *p, int dt)
{
    if (dt == 0) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (dt == 1) {
        __half h;
        memcpy(&h, p, 2);
        return __half2float(h);
    }
    __nv_bfloat16 b;
    memcpy(&b, p, 2);
    return __bfloat162float(b);
}

const char *kind_name(int kind)
{
    static const char *use[] = {"matrix_a", "matrix_b", "accumulator"};
    static const char *dt[] = {"float", "__half", "__nv_bfloat16"};
    static const char *lay[] = {", row_major", ", col_major", ""};
    static thread_local char buf[80];
    const kind_info k = info_of(kind);
    snprintf(buf, sizeof buf, "fragment<%s, 16, 16, 16, %s%s>", use[k.use], dt[k.dt],
             lay[k.layout]);
    return buf;
}

/* the 256 elements of a fragment held by the warp, in matrix order (row * 16 + column), as
 * fp32; the second copy of a __half A/B fragment must equal the first */
void gather(worker *w, int kind, const void *const *lane_frag, float *m)
{
    const kind_info k = info_of(kind);
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < k.ne; i++) {
            const int idx = slot_index(kind, l, i, k.ne);
            const float v = load_elem((const char *)lane_frag[l] + (size_t)i * k.es, k.dt);
            if ((l * k.ne + i) < 256) {
                m[idx] = v;
            } else if (memcmp(&m[idx], &v, 4) != 0 && !(m[idx] != m[idx] && v != v)) {
                fault(w, w->cur,
                      "mma_sync: the two copies of element (%d, %d) of a %s differ (%g vs %g): "
                      "code wrote fragment.x[] assuming a layout, which CUDA leaves unspecified",
                      idx / 16, idx % 16, kind_name(kind), m[idx], v);
            }
        }
}

void wmma_complete(const void *const *in, void *const *out, unsigned mask, const void *)
{
    worker *w = tl_worker;
    (void)mask;
    const wmma_args &a0 = *(const wmma_args *)in[0];
    static const char *names[] = {"load_matrix_sync", "store_matrix_sync", "mma_sync"};
    for (int l = 1; l < 32; l++) {
        const wmma_args &a = *(const wmma_args *)in[l];
        if (a.op != a0.op || memcmp(a.kind, a0.kind, sizeof a.kind) || a.mem != a0.mem ||
            a.ldm != a0.ldm || a.layout != a0.layout)
            fault(w, w->cur,
                  "%s: lane %d passes a different pointer, ldm, layout or fragment type than lane "
                  "0 (%p ldm %u vs %p ldm %u); they must be the same for the whole warp",
                  names[a0.op], l, a.mem, a.ldm, a0.mem, a0.ldm);
    }
    if (a0.op == WMMA_MMA) {
        float A[256], B[256], C[256];
        const void *fa[32], *fb[32], *fc[32];
        for (int l = 0; l < 32; l++) {
            const wmma_args &a = *(const wmma_args *)in[l];
            fa[l] = a.frag[1], fb[l] = a.frag[2], fc[l] = a.frag[3];
        }
        gather(w, a0.kind[1], fa, A);
        gather(w, a0.kind[2], fb, B);
        gather(w, a0.kind[3], fc, C);
        float D[256];
        for (int r = 0; r < 16; r++)
            for (int c = 0; c < 16; c++) {
                float acc = C[r * 16 + c];
                for (int k = 0; k < 16; k++) acc += A[r * 16 + k] * B[k * 16 + c];
                D[r * 16 + c] = acc;
            }
        for (int l = 0; l < 32; l++)
            for (int i = 0; i < 8; i++)
                ((float *)out[l])[i] = D[slot_index(a0.kind[0], l, i, 8)];
        return;
    }
    const kind_info k = info_of(a0.kind[0]);
    const size_t need = k.es == 2 ? 8 : 4;
    if ((uintptr_t)a0.mem % 32 != 0)
        fault(w, w->cur, "%s: pointer %p is not 256-bit aligned", names[a0.op], a0.mem);
    if (a0.ldm % need != 0)
        fault(w, w->cur, "%s: ldm %u is not a multiple of %zu elements (16 bytes)", names[a0.op],
              a0.ldm, need);
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < k.ne; i++) {
            const int idx = slot_index(a0.kind[0], l, i, k.ne), r = idx / 16, c = idx % 16;
            const size_t at = a0.layout == 0 ? (size_t)r * a0.ldm + c : (size_t)c * a0.ldm + r;
            char *mem = (char *)a0.mem + at * k.es;
            if (a0.op == WMMA_LOAD)
                memcpy((char *)out[l] + (size_t)i * k.es, mem, k.es);
            else
                memcpy(mem, (const char *)((const wmma_args *)in[l])->frag[0] + (size_t)i * k.es,
                       k.es);
        }
}

void land(const async_rec &r)
{
    memcpy(r.dst, r.src, r.size - r.zfill);
    memset((char *)r.dst + (r.size - r.zfill), 0, r.zfill);
}

void land_all(fiber *f)
{
    for (const async_rec &r : f->async_q) land(r);
    f->async_q.clear();
}

} /* namespace detail */

using namespace detail;

void wmma_op(const wmma_args &a, void *out, const char *file, int line)
{
    warp_coll(COLL_CUSTOM, 0xffffffffu, &a, out, (int)sizeof a, a.op, 32, file, line,
              wmma_complete, nullptr);
}

static fiber *current(const char *what, const char *file, int line)
{
    worker *w = tl_worker;
    if (!w || !w->cur) {
        report("%s called outside a kernel (%s:%d)", what, file, line);
        abort();
    }
    return w->cur;
}

void async_copy(void *dst, const void *src, size_t size, size_t zfill, const char *file, int line)
{
    fiber *f = current("__pipeline_memcpy_async", file, line);
    worker *w = tl_worker;
    if (size != 4 && size != 8 && size != 16)
        fault(w, f, "__pipeline_memcpy_async (%s:%d): size %zu (4, 8 or 16 bytes)", file, line,
              size);
    if (zfill > size)
        fault(w, f, "__pipeline_memcpy_async (%s:%d): zfill %zu over size %zu", file, line, zfill,
              size);
    if ((uintptr_t)dst % size || (uintptr_t)src % size)
        fault(w, f, "__pipeline_memcpy_async (%s:%d): %p <- %p not aligned to %zu bytes", file,
              line, dst, src, size);
    if (!in_block_shared(w, dst, size))
        fault(w, f,
              "__pipeline_memcpy_async (%s:%d): destination %p is not in this block's shared "
              "memory",
              file, line, dst);
    if (zfill < size && !in_device_memory(src, size - zfill))
        fault(w, f,
              "__pipeline_memcpy_async (%s:%d): source %p (%zu bytes) is not inside a device "
              "allocation",
              file, line, src, size - zfill);
    const async_rec r = {dst, src, (unsigned)size, (unsigned)zfill, f->async_batch};
    const int sched = config().schedule;
    if (sched == 1 || (sched == 2 && (w->rng() & 1)))
        land(r); /* the copy may land as soon as it is issued */
    else
        f->async_q.push_back(r);
}

void async_commit()
{
    fiber *f = current("__pipeline_commit", "?", 0);
    f->async_batch++;
}

void async_wait_prior(size_t prior, const char *file, int line)
{
    fiber *f = current("__pipeline_wait_prior", file, line);
    if (f->async_batch < prior) return; /* fewer batches than that: nothing to wait for */
    const unsigned long long upto = f->async_batch - prior; /* batches [0, upto) complete */
    std::vector<async_rec> keep;
    for (const async_rec &r : f->async_q) {
        if (r.batch < upto) land(r);
        else keep.push_back(r);
    }
    f->async_q.swap(keep);
}

} /* namespace simt */
