/* The communicator of the tensor-parallel group: all-reduce, broadcast and gather on backend
 * buffers. cpu backend: MPI on host memory. cuda backend: NCCL on the backend's compute
 * stream (unique id through MPI_Bcast, ncclCommInitRank), with asynchronous NCCL errors
 * polled so a failing peer ends the job instead of hanging it. */
#ifndef RD_COMM_H
#define RD_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "parallel/bootstrap.h"

struct rd_comm {
    const struct rd_world *world;
    struct rd_backend *be;
    int rank, size;
    void *nccl; /* ncclComm_t when the backend is cuda, else NULL */
    int poll_each; /* NCCL: wait after every all-reduce (RD_NCCL_POLL=1) */
    int timeout_s; /* NCCL: RD_NCCL_TIMEOUT_S */
};

/* Collective over the world. For a cuda backend initialises NCCL (with share_gpu each rank
 * gets its own NCCL_HOSTID first so several ranks may share one GPU, a test mode). */
rd_status rd_comm_init(struct rd_comm *c, const struct rd_world *w, struct rd_backend *be,
                       int share_gpu);
void rd_comm_free(struct rd_comm *c);

/* In-place sum over ranks of n elements of the backend's dtype. NCCL: enqueued on the compute
 * stream, and the host goes on without waiting for it (RD_NCCL_POLL=1: waits for each one). */
rd_status rd_comm_allreduce_sum(struct rd_comm *c, void *buf_d, size_t n);

/* Once per step, before the host reads results: waits until the compute stream has run what
 * was enqueued, polling NCCL's asynchronous errors, so a failed peer or network ends this rank
 * with an error (and RD_NCCL_TIMEOUT_S bounds the wait) instead of a hang. MPI: returns. */
rd_status rd_comm_wait(struct rd_comm *c);

/* Host-side helpers over MPI (small metadata, logits for rank 0). */
rd_status rd_comm_bcast_host(struct rd_comm *c, void *buf_h, size_t bytes, int root);
/* The same broadcast, for a receiver that may wait long (a server's ranks between requests):
 * a non-blocking broadcast polled with a growing sleep (up to about 2 ms) once it has waited a
 * couple of milliseconds, so idle ranks do not spin a core. Every rank must call this variant
 * for the same broadcast (a non-blocking collective never matches a blocking one). */
rd_status rd_comm_bcast_host_idle(struct rd_comm *c, void *buf_h, size_t bytes, int root);
/* Gathers counts[r] floats from every rank into dst_h on root (displacements = prefix sums). */
rd_status rd_comm_gatherv_f32(struct rd_comm *c, const float *src_h, int n_local, float *dst_h,
                              const int *counts, int root);

/* The same for int32 values. */
rd_status rd_comm_gatherv_i32(struct rd_comm *c, const int32_t *src_h, int n_local, int32_t *dst_h,
                              const int *counts, int root);

/* NCCL implementation (parallel/comm_nccl.c, built with CUDA). */
rd_status rd_comm_nccl_init(struct rd_comm *c, int share_gpu);
void rd_comm_nccl_free(struct rd_comm *c);
rd_status rd_comm_nccl_allreduce_sum(struct rd_comm *c, void *buf_d, size_t n);
rd_status rd_comm_nccl_wait(struct rd_comm *c);

#endif
