/* The NCCL subset of ropedist's SIMT emulation, over MPI: real multi-rank collectives, so the
 * cuda backend runs tensor parallel (tp 2, 4, ...) through its NCCL code path on CPUs.
 *
 * ncclGetUniqueId makes a random id; ncclCommInitRank splits MPI_COMM_WORLD by that id (so
 * every rank of the world calls it together, as ropedist's ranks do) and checks that the new
 * communicator has the size and rank the caller asked for. The collectives (all-reduce,
 * broadcast, reduce, all-gather, reduce-scatter) check that their buffers lie in device memory
 * and are fed to the stream like any other work: run in order, or recorded into a graph and run
 * at every replay. fp16 and bf16 reductions add two values at a time in fp32 and round to the
 * type after each addition, as NCCL's kernels do. An MPI failure sets the communicator's
 * asynchronous error (ncclCommGetAsyncError), which is what the backend polls; ncclCommAbort
 * leaves the communicator unusable without waiting for any peer. */
#include "simt.h" /* first: it defines the CUDA keywords before the toolkit headers */
#include <mpi.h>
#include <nccl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <random>

#include "simt_internal.h"

struct ncclComm {
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0, nranks = 0, device = 0;
    ncclResult_t async = ncclSuccess;
    bool aborted = false;
    char last[512] = "";
};

namespace {

using simt::report;

const char k_magic[] = "ropedist-simt-nccl";

template <class T> float to_f(T x);
template <> float to_f<__half>(__half x) { return __half2float(x); }
template <> float to_f<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> T from_f(float x);
template <> __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <class T, int OP> void half_op(void *in, void *inout, int *len, MPI_Datatype *)
{
    const T *a = (const T *)in;
    T *b = (T *)inout;
    for (int i = 0; i < *len; i++) {
        const float x = to_f(a[i]), y = to_f(b[i]);
        float r = OP == ncclSum || OP == ncclAvg ? x + y
                  : OP == ncclProd               ? x * y
                  : OP == ncclMax                ? (x > y ? x : y)
                                                 : (x < y ? x : y);
        b[i] = from_f<T>(r);
    }
}

size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64: return 8;
    default: return 0;
    }
}

MPI_Datatype mpi_type(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_UINT16_T; /* fp16, bf16: bits, reduced by our own ops */
    }
}

MPI_Op mpi_op(ncclDataType_t t, ncclRedOp_t op)
{
    if (t == ncclFloat16 || t == ncclBfloat16) {
        static MPI_Op ops[2][5];
        static bool made = false;
        if (!made) {
            MPI_Op_create(half_op<__half, ncclSum>, 1, &ops[0][ncclSum]);
            MPI_Op_create(half_op<__half, ncclProd>, 1, &ops[0][ncclProd]);
            MPI_Op_create(half_op<__half, ncclMax>, 1, &ops[0][ncclMax]);
            MPI_Op_create(half_op<__half, ncclMin>, 1, &ops[0][ncclMin]);
            MPI_Op_create(half_op<__nv_bfloat16, ncclSum>, 1, &ops[1][ncclSum]);
            MPI_Op_create(half_op<__nv_bfloat16, ncclProd>, 1, &ops[1][ncclProd]);
            MPI_Op_create(half_op<__nv_bfloat16, ncclMax>, 1, &ops[1][ncclMax]);
            MPI_Op_create(half_op<__nv_bfloat16, ncclMin>, 1, &ops[1][ncclMin]);
            made = true;
        }
        return ops[t == ncclBfloat16][op == ncclAvg ? ncclSum : op];
    }
    switch (op) {
    case ncclProd: return MPI_PROD;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: return MPI_SUM;
    }
}

/* avg = sum / nranks, in the type */
void divide(void *buf, size_t count, ncclDataType_t t, int nranks)
{
    for (size_t i = 0; i < count; i++) {
        switch (t) {
        case ncclFloat32: ((float *)buf)[i] /= (float)nranks; break;
        case ncclFloat64: ((double *)buf)[i] /= nranks; break;
        case ncclFloat16: ((__half *)buf)[i] = __float2half_rn(__half2float(((__half *)buf)[i]) / (float)nranks); break;
        case ncclBfloat16:
            ((__nv_bfloat16 *)buf)[i] =
                __float2bfloat16_rn(__bfloat162float(((__nv_bfloat16 *)buf)[i]) / (float)nranks);
            break;
        case ncclInt32: ((int32_t *)buf)[i] /= nranks; break;
        case ncclUint32: ((uint32_t *)buf)[i] /= (uint32_t)nranks; break;
        case ncclInt64: ((int64_t *)buf)[i] /= nranks; break;
        case ncclUint64: ((uint64_t *)buf)[i] /= (uint64_t)nranks; break;
        case ncclInt8: ((int8_t *)buf)[i] = (int8_t)(((int8_t *)buf)[i] / nranks); break;
        default: ((uint8_t *)buf)[i] = (uint8_t)(((uint8_t *)buf)[i] / nranks); break;
        }
    }
}

ncclResult_t usable(ncclComm_t c, const char *api)
{
    if (!c) return ncclInvalidArgument;
    if (c->aborted || c->comm == MPI_COMM_NULL) {
        report("%s on a communicator that was aborted or destroyed", api);
        return ncclInvalidUsage;
    }
    return c->async == ncclSuccess ? ncclSuccess : c->async;
}

bool buffer_ok(ncclComm_t c, const char *api, const char *which, const void *p, size_t bytes)
{
    if (!bytes || simt::in_device_memory(p, bytes)) return true;
    snprintf(c->last, sizeof c->last, "%s: %s buffer %p (%zu bytes) is not device memory", api,
             which, p, bytes);
    report("%s", c->last);
    return false;
}

/* feeds one collective to the stream; an MPI failure becomes the communicator's async error */
ncclResult_t submit(ncclComm_t c, cudaStream_t stream, const char *api,
                    std::function<int()> collective)
{
    cudaError_t e = simt::enqueue(stream, api, [c, api, collective]() {
        if (c->aborted) return cudaSuccess; /* as a kernel of an aborted communicator: no-op */
        const int r = collective();
        if (r != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(r, msg, &len);
            snprintf(c->last, sizeof c->last, "%s failed in MPI: %.300s", api, msg);
            report("%s", c->last);
            c->async = ncclSystemError;
        }
        return cudaSuccess;
    });
    if (e != cudaSuccess) return ncclUnhandledCudaError;
    return c->async;
}

} /* namespace */

extern "C" {

ncclResult_t ncclGetVersion(int *v)
{
    *v = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t c) { return c ? c->last : ""; }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    memcpy(id->internal, k_magic, sizeof k_magic);
    std::random_device rd;
    uint64_t r = ((uint64_t)rd() << 32) ^ rd() ^ ((uint64_t)getpid() << 16);
    memcpy(id->internal + 32, &r, sizeof r);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank)
{
    *out = nullptr;
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
        report("ncclCommInitRank: the emulated NCCL runs over MPI, which is not initialised");
        return ncclInvalidUsage;
    }
    if (memcmp(id.internal, k_magic, sizeof k_magic) != 0) {
        report("ncclCommInitRank: the unique id does not come from ncclGetUniqueId");
        return ncclInvalidArgument;
    }
    if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    uint64_t r;
    memcpy(&r, id.internal + 32, sizeof r);
    const int color = (int)((r ^ (r >> 31)) & 0x7fffffff);
    MPI_Comm comm = MPI_COMM_NULL;
    if (MPI_Comm_split(MPI_COMM_WORLD, color, rank, &comm) != MPI_SUCCESS) return ncclSystemError;
    int size = 0, me = -1;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &me);
    if (size != nranks || me != rank) {
        report("ncclCommInitRank: %d ranks joined with this id where %d were announced (rank %d "
               "here, %d asked for): every rank of MPI_COMM_WORLD must call it together",
               size, nranks, me, rank);
        MPI_Comm_free(&comm);
        return ncclInvalidUsage;
    }
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    ncclComm *c = new ncclComm();
    c->comm = comm, c->rank = rank, c->nranks = nranks;
    cudaGetDevice(&c->device);
    *out = c;
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t *config)
{
    (void)config;
    return ncclCommInitRank(out, nranks, id, rank);
}

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist)
{
    (void)comms, (void)ndev, (void)devlist;
    report("ncclCommInitAll (several GPUs in one process) is not emulated: one rank per process");
    return ncclInvalidUsage;
}

ncclResult_t ncclCommFinalize(ncclComm_t c) { return c ? ncclSuccess : ncclInvalidArgument; }

ncclResult_t ncclCommDestroy(ncclComm_t c)
{
    if (!c) return ncclSuccess;
    if (!c->aborted && c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
    delete c;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t c)
{
    if (!c) return ncclSuccess;
    /* no MPI call (a peer may be gone), and the object stays: a recorded graph may still name it */
    c->aborted = true;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t c, ncclResult_t *async)
{
    if (!c) return ncclInvalidArgument;
    *async = c->async;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t c, int *count)
{
    if (!c) return ncclInvalidArgument;
    *count = c->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t c, int *device)
{
    if (!c) return ncclInvalidArgument;
    *device = c->device;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t c, int *rank)
{
    if (!c) return ncclInvalidArgument;
    *rank = c->rank;
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(void) { return ncclSuccess; }
ncclResult_t ncclGroupEnd(void) { return ncclSuccess; }

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t t,
                           ncclRedOp_t op, ncclComm_t c, cudaStream_t stream)
{
    ncclResult_t r = usable(c, "ncclAllReduce");
    if (r != ncclSuccess) return r;
    const size_t es = type_size(t);
    if (!es || (int)op < 0 || (int)op > ncclAvg) return ncclInvalidArgument;
    if (!buffer_ok(c, "ncclAllReduce", "send", send, count * es) ||
        !buffer_ok(c, "ncclAllReduce", "receive", recv, count * es))
        return ncclInvalidArgument;
    return submit(c, stream, "ncclAllReduce", [=]() {
        const void *src = send == recv ? MPI_IN_PLACE : send;
        int rc = MPI_Allreduce(src, recv, (int)count, mpi_type(t), mpi_op(t, op), c->comm);
        if (rc == MPI_SUCCESS && op == ncclAvg) divide(recv, count, t, c->nranks);
        return rc;
    });
}

ncclResult_t ncclReduce(const void *send, void *recv, size_t count, ncclDataType_t t,
                        ncclRedOp_t op, int root, ncclComm_t c, cudaStream_t stream)
{
    ncclResult_t r = usable(c, "ncclReduce");
    if (r != ncclSuccess) return r;
    const size_t es = type_size(t);
    if (!es || root < 0 || root >= c->nranks || (int)op < 0 || (int)op > ncclAvg)
        return ncclInvalidArgument;
    if (!buffer_ok(c, "ncclReduce", "send", send, count * es) ||
        (c->rank == root && !buffer_ok(c, "ncclReduce", "receive", recv, count * es)))
        return ncclInvalidArgument;
    return submit(c, stream, "ncclReduce", [=]() {
        const bool in_place = c->rank == root && send == recv;
        int rc = MPI_Reduce(in_place ? MPI_IN_PLACE : send, recv, (int)count, mpi_type(t),
                            mpi_op(t, op), root, c->comm);
        if (rc == MPI_SUCCESS && op == ncclAvg && c->rank == root) divide(recv, count, t, c->nranks);
        return rc;
    });
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t t, int root,
                           ncclComm_t c, cudaStream_t stream)
{
    ncclResult_t r = usable(c, "ncclBroadcast");
    if (r != ncclSuccess) return r;
    const size_t es = type_size(t);
    if (!es || root < 0 || root >= c->nranks) return ncclInvalidArgument;
    if ((c->rank == root && !buffer_ok(c, "ncclBroadcast", "send", send, count * es)) ||
        !buffer_ok(c, "ncclBroadcast", "receive", recv, count * es))
        return ncclInvalidArgument;
    return submit(c, stream, "ncclBroadcast", [=]() {
        if (c->rank == root && send != recv) memmove(recv, send, count * es);
        return MPI_Bcast(recv, (int)(count * es), MPI_BYTE, root, c->comm);
    });
}

ncclResult_t ncclBcast(void *buf, size_t count, ncclDataType_t t, int root, ncclComm_t c,
                       cudaStream_t stream)
{
    return ncclBroadcast(buf, buf, count, t, root, c, stream);
}

ncclResult_t ncclAllGather(const void *send, void *recv, size_t count, ncclDataType_t t,
                           ncclComm_t c, cudaStream_t stream)
{
    ncclResult_t r = usable(c, "ncclAllGather");
    if (r != ncclSuccess) return r;
    const size_t es = type_size(t);
    if (!es) return ncclInvalidArgument;
    if (!buffer_ok(c, "ncclAllGather", "send", send, count * es) ||
        !buffer_ok(c, "ncclAllGather", "receive", recv, count * es * (size_t)c->nranks))
        return ncclInvalidArgument;
    return submit(c, stream, "ncclAllGather", [=]() {
        const bool in_place = (const char *)send == (const char *)recv + (size_t)c->rank * count * es;
        return MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)(count * es), MPI_BYTE, recv,
                             (int)(count * es), MPI_BYTE, c->comm);
    });
}

ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t count, ncclDataType_t t,
                               ncclRedOp_t op, ncclComm_t c, cudaStream_t stream)
{
    ncclResult_t r = usable(c, "ncclReduceScatter");
    if (r != ncclSuccess) return r;
    const size_t es = type_size(t);
    if (!es || (int)op < 0 || (int)op > ncclAvg) return ncclInvalidArgument;
    if (!buffer_ok(c, "ncclReduceScatter", "send", send, count * es * (size_t)c->nranks) ||
        !buffer_ok(c, "ncclReduceScatter", "receive", recv, count * es))
        return ncclInvalidArgument;
    return submit(c, stream, "ncclReduceScatter", [=]() {
        int rc = MPI_Reduce_scatter_block(send, recv, (int)count, mpi_type(t), mpi_op(t, op),
                                          c->comm);
        if (rc == MPI_SUCCESS && op == ncclAvg) divide(recv, count, t, c->nranks);
        return rc;
    });
}

} /* extern "C" */
