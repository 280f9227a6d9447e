/* The communicator: MPI on host buffers for the cpu backend; for a cuda backend the
 * all-reduce goes to NCCL (comm_nccl.c), and the host-side helpers stay on MPI. */
#include "parallel/comm.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define MPI_CHECK(x) RD_CHECK_GEN(int, x, e_ == MPI_SUCCESS, RD_ERR_MPI, "MPI call failed")

rd_status rd_comm_init(struct rd_comm *c, const struct rd_world *w, struct rd_backend *be,
                       int share_gpu)
{
    memset(c, 0, sizeof *c);
    c->world = w;
    c->be = be;
    c->rank = w->rank;
    c->size = w->size;
    if (be->device >= 0 && w->size > 1) {
#ifdef RD_WITH_CUDA
        return rd_comm_nccl_init(c, share_gpu);
#else
        (void)share_gpu;
        return RD_ERR_UNSUPPORTED;
#endif
    }
    return RD_OK;
}

void rd_comm_free(struct rd_comm *c)
{
#ifdef RD_WITH_CUDA
    if (c->nccl) rd_comm_nccl_free(c);
#endif
    c->nccl = NULL;
}

rd_status rd_comm_allreduce_sum(struct rd_comm *c, void *buf_d, size_t n)
{
    if (c->size == 1) return RD_OK;
#ifdef RD_WITH_CUDA
    if (c->nccl) return rd_comm_nccl_allreduce_sum(c, buf_d, n);
#endif
    if (c->be->dtype != RD_DTYPE_F32) return RD_ERR_UNSUPPORTED;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf_d, (int)n, MPI_FLOAT, MPI_SUM, c->world->comm));
    return RD_OK;
}

rd_status rd_comm_wait(struct rd_comm *c)
{
#ifdef RD_WITH_CUDA
    if (c->nccl) return rd_comm_nccl_wait(c);
#endif
    (void)c;
    return RD_OK;
}

rd_status rd_comm_bcast_host(struct rd_comm *c, void *buf_h, size_t bytes, int root)
{
    if (c->size == 1) return RD_OK;
    MPI_CHECK(MPI_Bcast(buf_h, (int)bytes, MPI_BYTE, root, c->world->comm));
    return RD_OK;
}

rd_status rd_comm_bcast_host_idle(struct rd_comm *c, void *buf_h, size_t bytes, int root)
{
    if (c->size == 1) return RD_OK;
    MPI_Request req;
    MPI_CHECK(MPI_Ibcast(buf_h, (int)bytes, MPI_BYTE, root, c->world->comm, &req));
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long nap_ns = 50000;
    for (;;) {
        int done = 0;
        MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done) return RD_OK;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited_us = (now.tv_sec - t0.tv_sec) * 1000000L + (now.tv_nsec - t0.tv_nsec) / 1000;
        if (waited_us < 2000) {
            sched_yield(); /* a step's plan usually comes within a millisecond */
            continue;
        }
        struct timespec nap = {0, nap_ns};
        nanosleep(&nap, NULL);
        if (nap_ns < 2000000) nap_ns *= 2;
    }
}

static rd_status gatherv(struct rd_comm *c, const void *src_h, int n_local, void *dst_h,
                         const int *counts, int root, MPI_Datatype type, size_t size)
{
    if (c->size == 1) {
        memmove(dst_h, src_h, (size_t)n_local * size);
        return RD_OK;
    }
    /* called every decode step: no allocation up to 256 ranks */
    int small[256] = {0}, *displs = NULL;
    if (c->rank == root) {
        displs = c->size <= 256 ? small : malloc((size_t)c->size * sizeof(int));
        if (!displs) return RD_ERR_OOM;
        int off = 0;
        for (int r = 0; r < c->size; r++) {
            displs[r] = off;
            off += counts[r];
        }
    }
    int rc = MPI_Gatherv(src_h, n_local, type, dst_h, counts, displs, type, root, c->world->comm);
    if (displs != small) free(displs);
    MPI_CHECK(rc);
    return RD_OK;
}

rd_status rd_comm_gatherv_f32(struct rd_comm *c, const float *src_h, int n_local, float *dst_h,
                              const int *counts, int root)
{
    return gatherv(c, src_h, n_local, dst_h, counts, root, MPI_FLOAT, sizeof(float));
}

rd_status rd_comm_gatherv_i32(struct rd_comm *c, const int32_t *src_h, int n_local, int32_t *dst_h,
                              const int *counts, int root)
{
    return gatherv(c, src_h, n_local, dst_h, counts, root, MPI_INT32_T, sizeof(int32_t));
}
