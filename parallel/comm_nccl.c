/* The NCCL half of the communicator (built with CUDA): communicator set-up from an MPI
 * broadcast of rank 0's unique id, the in-place all-reduce on the backend's compute stream,
 * and the wait that turns a failing peer into an error instead of a hang.
 *
 * Waiting: the all-reduce is only enqueued (the host goes on launching the rest of the step;
 * an error left by an earlier one is checked before each call). Once per step, before the
 * host reads the step's results, rd_comm_nccl_wait polls the stream (cudaStreamQuery, then
 * ncclCommGetAsyncError) with a short sleep, so an asynchronous NCCL error (a peer died, a
 * network failure) aborts the communicator and returns RD_ERR_NCCL with a message, and a wait
 * longer than RD_NCCL_TIMEOUT_S (default 600) does the same; a peer process that dies is also
 * named by the liveness watchdog (parallel/watchdog.c), which ends every rank within seconds.
 * RD_NCCL_POLL=1 waits after every all-reduce instead (a bubble per call; for debugging).
 *
 * CUDA graphs: while the compute stream is being recorded (cudaStreamIsCapturing) the
 * all-reduce is only recorded, nothing runs, and a cudaStreamQuery would invalidate the
 * recording, so there is no wait; a replayed graph's all-reduces are covered by the wait of
 * the step.
 *
 * share_gpu (a test mode: several ranks on one GPU): NCCL refuses two ranks of one host on the
 * same device, so each rank gets its own NCCL_HOSTID before ncclCommInitRank and NCCL treats
 * them as separate hosts (socket transport, NCCL_SOCKET_IFNAME=lo). Correct, never fast. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "common/log.h"
#include "parallel/comm.h"

#define RD_NCCL_CHECK(x)                                                                       \
    RD_CHECK_GEN(ncclResult_t, x, e_ == ncclSuccess, RD_ERR_NCCL, ncclGetErrorString(e_))
#define RD_CUDA_CHECK(x)                                                                       \
    RD_CHECK_GEN(cudaError_t, x, e_ == cudaSuccess, RD_ERR_CUDA, cudaGetErrorString(e_))
#define MPI_CHECK(x) RD_CHECK_GEN(int, x, e_ == MPI_SUCCESS, RD_ERR_MPI, "MPI call failed")

/* what rank 0 broadcasts: whether it could make an id, and the id */
struct id_msg {
    int ok;
    ncclUniqueId id;
};

rd_status rd_comm_nccl_init(struct rd_comm *c, int share_gpu)
{
    struct id_msg msg;
    memset(&msg, 0, sizeof msg);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        msg.ok = r == ncclSuccess;
        if (!msg.ok) RD_LOG_ERROR("ncclGetUniqueId failed: %s", ncclGetErrorString(r));
    }
    /* every rank learns alike whether rank 0 succeeded, so all return together */
    MPI_CHECK(MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, c->world->comm));
    if (!msg.ok) return RD_ERR_NCCL;

    if (share_gpu) {
        char hostid[320];
        snprintf(hostid, sizeof hostid, "ropedist-%s-rank%d", c->world->host, c->rank);
        setenv("NCCL_HOSTID", hostid, 1);
        RD_LOG_DEBUG("share_gpu: NCCL_HOSTID=%s", hostid);
    }
    RD_CUDA_CHECK(cudaSetDevice(c->be->device));
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRank(&comm, c->size, msg.id, c->rank);
    if (r != ncclSuccess) {
        /* peers may be inside the same init waiting for us: end the job instead of hanging */
        char why[256];
        snprintf(why, sizeof why, "ncclCommInitRank (rank %d of %d, gpu %d) failed: %s%s",
                 c->rank, c->size, c->be->device, ncclGetErrorString(r),
                 share_gpu ? "" : " (several ranks on one GPU need share_gpu)");
        RD_LOG_ERROR("%s", why);
        rd_world_abort(c->world, 1, why);
    }
    c->nccl = comm;
    c->poll_each = rd_env_int("RD_NCCL_POLL", 0) != 0;
    c->timeout_s = rd_env_int("RD_NCCL_TIMEOUT_S", 600);
    RD_LOG_DEBUG("NCCL communicator ready: rank %d of %d on gpu %d", c->rank, c->size,
                 c->be->device);
    return RD_OK;
}

void rd_comm_nccl_free(struct rd_comm *c)
{
    if (!c || !c->nccl) return;
    ncclCommDestroy((ncclComm_t)c->nccl);
    c->nccl = NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Aborts the communicator after an error so no later call waits on it. */
static rd_status fail_abort(struct rd_comm *c, const char *what, const char *detail)
{
    RD_LOG_ERROR("NCCL all-reduce: %s (%s); aborting the communicator", what, detail);
    ncclCommAbort((ncclComm_t)c->nccl);
    c->nccl = NULL;
    return RD_ERR_NCCL;
}

static rd_status check_async(struct rd_comm *c)
{
    ncclResult_t ae = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError((ncclComm_t)c->nccl, &ae);
    if (r != ncclSuccess) return fail_abort(c, "ncclCommGetAsyncError failed", ncclGetErrorString(r));
    if (ae != ncclSuccess && ae != ncclInProgress)
        return fail_abort(c, "asynchronous error", ncclGetErrorString(ae));
    return RD_OK;
}

rd_status rd_comm_nccl_allreduce_sum(struct rd_comm *c, void *buf_d, size_t n)
{
    if (!c->nccl) {
        RD_LOG_ERROR("NCCL all-reduce on a communicator that is not (or no longer) set up");
        return RD_ERR_NCCL;
    }
    if (n == 0) return RD_OK;
    ncclDataType_t dt;
    switch (c->be->dtype) {
    case RD_DTYPE_BF16: dt = ncclBfloat16; break;
    case RD_DTYPE_F16: dt = ncclFloat16; break;
    default: dt = ncclFloat32; break;
    }
    cudaStream_t stream = (cudaStream_t)c->be->ops->stream(c->be);
    RD_TRY(check_async(c)); /* an error left by an earlier, unwaited call */
    ncclResult_t r = ncclAllReduce(buf_d, buf_d, n, dt, ncclSum, (ncclComm_t)c->nccl, stream);
    if (r != ncclSuccess && r != ncclInProgress)
        return fail_abort(c, "ncclAllReduce failed", ncclGetErrorString(r));

    if (!c->poll_each) return RD_OK;
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    RD_CUDA_CHECK(cudaStreamIsCapturing(stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return RD_OK; /* recorded into a graph, not run */
    return rd_comm_nccl_wait(c);
}

rd_status rd_comm_nccl_wait(struct rd_comm *c)
{
    if (!c->nccl) {
        RD_LOG_ERROR("NCCL wait on a communicator that is not (or no longer) set up");
        return RD_ERR_NCCL;
    }
    cudaStream_t stream = (cudaStream_t)c->be->ops->stream(c->be);
    const double timeout = (double)c->timeout_s;
    const double t0 = now_s();
    for (;;) {
        cudaError_t q = cudaStreamQuery(stream);
        if (q == cudaSuccess) break;
        if (q != cudaErrorNotReady) {
            (void)cudaGetLastError();
            return fail_abort(c, "the compute stream failed while waiting",
                              cudaGetErrorString(q));
        }
        RD_TRY(check_async(c));
        /* a step ends within milliseconds: yield the core while polling, so its end is seen
         * at once; past 50 ms (a long prefill, a peer stuck) poll with a short sleep */
        if (now_s() - t0 > 0.05) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            if (timeout > 0 && now_s() - t0 > timeout) {
                char detail[96];
                snprintf(detail, sizeof detail, "no completion after %.0f s (RD_NCCL_TIMEOUT_S)",
                         timeout);
                return fail_abort(c, "timeout", detail);
            }
        } else {
            sched_yield();
        }
    }
    return RD_OK;
}
