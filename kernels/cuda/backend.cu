/* The cuda backend's lifetime and memory ops: create/destroy (device binding, the compute
 * stream, the cuBLAS handle and the fixed workspaces), alloc/free with an OOM message that
 * names the request and the free memory, uploads and downloads (fp32 <-> dtype conversion on
 * the host), uploads that do not wait (through a ring of page-locked staging memory), zero,
 * copy, sync, CUDA graphs (stream capture of the compute stream), and the ops table that
 * points at the kernels in the other files of kernels/cuda. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.h"

/* ---- memory ---- */

static rd_status cuda_alloc(struct rd_backend *be, size_t bytes, void **p_d)
{
    *p_d = NULL;
    if (bytes == 0) return RD_OK;
    RD_TRY(rd_cuda_not_capturing(be, "alloc"));
    cudaError_t e = cudaMalloc(p_d, bytes);
    if (e == cudaSuccess) return RD_OK;
    (void)cudaGetLastError(); /* clear the sticky-free allocation error */
    *p_d = NULL;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    if (e == cudaErrorMemoryAllocation) {
        RD_LOG_ERROR("cuda backend (gpu %d): out of memory allocating %zu bytes (%.1f MiB); "
                     "%zu bytes (%.1f MiB) free of %.1f MiB",
                     be->device, bytes, bytes / 1048576.0, free_b, free_b / 1048576.0,
                     total_b / 1048576.0);
        return RD_ERR_OOM;
    }
    RD_LOG_ERROR("cuda backend (gpu %d): cudaMalloc of %zu bytes failed: %s", be->device, bytes,
                 cudaGetErrorString(e));
    return RD_ERR_CUDA;
}

static rd_status cuda_mem_info(struct rd_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    RD_CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return RD_OK;
}

static void cuda_free(struct rd_backend *be, void *p_d)
{
    (void)be;
    if (p_d) cudaFree(p_d);
}

static rd_status cuda_upload(struct rd_backend *be, void *dst_d, const void *src_h, size_t bytes)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (!bytes) return RD_OK;
    RD_TRY(rd_cuda_not_capturing(be, "upload"));
    RD_CUDA_CHECK(cudaMemcpyAsync(dst_d, src_h, bytes, cudaMemcpyHostToDevice, impl->stream));
    /* src_h may be reused as soon as we return */
    RD_CUDA_CHECK(cudaStreamSynchronize(impl->stream));
    return RD_OK;
}

/* The ring of page-locked staging memory: bytes [lo, hi) for a copy, waiting first for every
 * earlier copy still reading them (normally long done: a step's download waits for the
 * stream) and for the copy that last used this event slot. */
static rd_status stage_take(struct rd_cuda_impl *impl, size_t bytes, size_t *lo)
{
    size_t at = (impl->stage_head + 63) / 64 * 64;
    if (at + bytes > impl->stage_bytes) at = 0;
    for (int i = 0; i < 16; i++) {
        struct rd_cuda_staged *s = &impl->staged[i];
        const bool overlap = s->lo < at + bytes && at < s->hi;
        if (s->pending && (overlap || i == impl->staged_next)) {
            RD_CUDA_CHECK(cudaEventSynchronize(s->done));
            s->pending = 0;
        }
    }
    *lo = at;
    return RD_OK;
}

static rd_status cuda_upload_async(struct rd_backend *be, void *dst_d, const void *src_h,
                                   size_t bytes)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (!bytes) return RD_OK;
    if (bytes > impl->stage_bytes) return cuda_upload(be, dst_d, src_h, bytes);
    RD_TRY(rd_cuda_not_capturing(be, "upload_async"));
    size_t lo = 0;
    RD_TRY(stage_take(impl, bytes, &lo));
    char *stage = (char *)impl->stage_h + lo;
    memcpy(stage, src_h, bytes);
    RD_CUDA_CHECK(cudaMemcpyAsync(dst_d, stage, bytes, cudaMemcpyHostToDevice, impl->stream));
    struct rd_cuda_staged *s = &impl->staged[impl->staged_next];
    RD_CUDA_CHECK(cudaEventRecord(s->done, impl->stream));
    s->lo = lo, s->hi = lo + bytes, s->pending = 1;
    impl->staged_next = (impl->staged_next + 1) % 16;
    impl->stage_head = lo + bytes;
    return RD_OK;
}

static rd_status cuda_download(struct rd_backend *be, void *dst_h, const void *src_d,
                               size_t bytes)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (!bytes) return RD_OK;
    RD_TRY(rd_cuda_not_capturing(be, "download"));
    RD_CUDA_CHECK(cudaMemcpyAsync(dst_h, src_d, bytes, cudaMemcpyDeviceToHost, impl->stream));
    RD_CUDA_CHECK(cudaStreamSynchronize(impl->stream));
    return RD_OK;
}

static rd_status cuda_upload_f32(struct rd_backend *be, void *dst_d, const float *src_h,
                                 size_t n)
{
    if (be->dtype == RD_DTYPE_F32) return cuda_upload(be, dst_d, src_h, n * sizeof(float));
    if (!n) return RD_OK;
    size_t es = rd_dtype_size(be->dtype);
    void *tmp_h = malloc(n * es);
    if (!tmp_h) {
        RD_LOG_ERROR("upload_f32: cannot allocate %zu host bytes for conversion", n * es);
        return RD_ERR_OOM;
    }
    rd_convert_from_f32(tmp_h, src_h, be->dtype, n);
    rd_status st = cuda_upload(be, dst_d, tmp_h, n * es);
    free(tmp_h);
    return st;
}

static rd_status cuda_download_f32(struct rd_backend *be, float *dst_h, const void *src_d,
                                   size_t n)
{
    if (be->dtype == RD_DTYPE_F32) return cuda_download(be, dst_h, src_d, n * sizeof(float));
    if (!n) return RD_OK;
    size_t es = rd_dtype_size(be->dtype);
    void *tmp_h = malloc(n * es);
    if (!tmp_h) {
        RD_LOG_ERROR("download_f32: cannot allocate %zu host bytes for conversion", n * es);
        return RD_ERR_OOM;
    }
    rd_status st = cuda_download(be, tmp_h, src_d, n * es);
    if (st == RD_OK) rd_convert_to_f32(dst_h, tmp_h, be->dtype, n);
    free(tmp_h);
    return st;
}

static rd_status cuda_zero(struct rd_backend *be, void *p_d, size_t bytes)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (!bytes) return RD_OK;
    RD_CUDA_CHECK(cudaMemsetAsync(p_d, 0, bytes, impl->stream));
    return rd_cuda_after_launch(be, "zero");
}

static rd_status cuda_copy(struct rd_backend *be, void *dst_d, const void *src_d, size_t bytes)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (!bytes) return RD_OK;
    RD_CUDA_CHECK(cudaMemcpyAsync(dst_d, src_d, bytes, cudaMemcpyDeviceToDevice, impl->stream));
    return rd_cuda_after_launch(be, "copy");
}

static rd_status cuda_sync(struct rd_backend *be)
{
    RD_TRY(rd_cuda_not_capturing(be, "sync"));
    RD_CUDA_CHECK(cudaStreamSynchronize(rd_cuda_impl_of(be)->stream));
    return RD_OK;
}

static void *cuda_stream(struct rd_backend *be) { return (void *)rd_cuda_impl_of(be)->stream; }

/* ---- graphs ----
 *
 * A graph is a cudaGraphExec_t (the captured cudaGraph_t is destroyed once instantiated).
 * Thread-local capture mode: an unsafe call (cudaMalloc, a sync) from this thread fails the
 * recording loudly, while other threads (NCCL's proxy thread) are not affected. Every op the
 * forward pass enqueues between begin and end is capture-safe: kernel launches, cuBLAS GEMMs
 * (fixed workspace, set after cublasSetStream), device-to-device cudaMemcpyAsync,
 * cudaMemsetAsync and ncclAllReduce (whose wait the communicator skips while recording);
 * cudaFuncSetAttribute (prefill attention) is not a stream operation. upload(_async),
 * download, sync, topk and alloc refuse (rd_cuda_not_capturing). */

static rd_status cuda_graph_begin(struct rd_backend *be)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    RD_REQUIRE(!impl->capturing, RD_ERR_INVALID_ARG, "graph_begin: a graph is already recording");
    RD_CUDA_CHECK(cudaStreamBeginCapture(impl->stream, cudaStreamCaptureModeThreadLocal));
    impl->capturing = 1;
    return RD_OK;
}

static rd_status cuda_graph_end(struct rd_backend *be, void **graph)
{
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    *graph = NULL;
    RD_REQUIRE(impl->capturing, RD_ERR_INVALID_ARG, "graph_end: no graph is recording");
    impl->capturing = 0;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(impl->stream, &g);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        RD_LOG_ERROR("cuda backend: recording a graph failed: %s", cudaGetErrorString(e));
        return RD_ERR_CUDA;
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        RD_LOG_ERROR("cuda backend: cudaGraphInstantiate failed: %s", cudaGetErrorString(e));
        return RD_ERR_CUDA;
    }
    /* move the graph's setup to the device now rather than at the first launch */
    e = cudaGraphUpload(exec, impl->stream);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        cudaGraphExecDestroy(exec);
        RD_LOG_ERROR("cuda backend: cudaGraphUpload failed: %s", cudaGetErrorString(e));
        return RD_ERR_CUDA;
    }
    *graph = (void *)exec;
    return RD_OK;
}

static rd_status cuda_graph_launch(struct rd_backend *be, void *graph)
{
    RD_REQUIRE(graph, RD_ERR_INVALID_ARG, "graph_launch: graph is NULL");
    RD_TRY(rd_cuda_not_capturing(be, "graph_launch"));
    RD_CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, rd_cuda_impl_of(be)->stream));
    return rd_cuda_after_launch(be, "graph_launch");
}

static void cuda_graph_free(struct rd_backend *be, void *graph)
{
    (void)be;
    if (graph) cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

/* ---- lifetime ---- */

static void cuda_destroy(struct rd_backend *be)
{
    if (!be) return;
    struct rd_cuda_impl *impl = rd_cuda_impl_of(be);
    if (impl) {
        if (be->device >= 0) cudaSetDevice(be->device);
        if (impl->capturing) { /* a recording left open by an error: end and drop it */
            cudaGraph_t g = NULL;
            if (cudaStreamEndCapture(impl->stream, &g) == cudaSuccess && g) cudaGraphDestroy(g);
            (void)cudaGetLastError();
            impl->capturing = 0;
        }
        if (impl->stream) cudaStreamSynchronize(impl->stream);
        if (impl->cublas) cublasDestroy(impl->cublas);
        if (impl->cublas_ws_d) cudaFree(impl->cublas_ws_d);
        if (impl->attn_ws_d) cudaFree(impl->attn_ws_d);
        if (impl->topk_ws_d) cudaFree(impl->topk_ws_d);
        if (impl->norm_count_d) cudaFree(impl->norm_count_d);
        if (impl->stage_h) cudaFreeHost(impl->stage_h);
        for (int i = 0; i < 16; i++)
            if (impl->staged[i].done) cudaEventDestroy(impl->staged[i].done);
        if (impl->stream) cudaStreamDestroy(impl->stream);
        free(impl);
    }
    free(be);
}

static const struct rd_ops k_cuda_ops = {
    /* .name = */ "cuda",
    /* .destroy = */ cuda_destroy,
    /* .stream = */ cuda_stream,
    /* .alloc = */ cuda_alloc,
    /* .free = */ cuda_free,
    /* .upload = */ cuda_upload,
    /* .download = */ cuda_download,
    /* .upload_f32 = */ cuda_upload_f32,
    /* .download_f32 = */ cuda_download_f32,
    /* .zero = */ cuda_zero,
    /* .sync = */ cuda_sync,
    /* .embed = */ rd_cuda_embed,
    /* .rmsnorm = */ rd_cuda_rmsnorm,
    /* .add_rmsnorm = */ rd_cuda_add_rmsnorm,
    /* .matmul = */ rd_cuda_matmul,
    /* .swiglu = */ rd_cuda_swiglu,
    /* .rope_attention = */ rd_cuda_rope_attention,
    /* .copy = */ cuda_copy,
    /* .topk = */ rd_cuda_topk,
    /* .graph_begin = */ cuda_graph_begin,
    /* .graph_end = */ cuda_graph_end,
    /* .graph_launch = */ cuda_graph_launch,
    /* .graph_free = */ cuda_graph_free,
    /* .mem_info = */ cuda_mem_info,
    /* .upload_async = */ cuda_upload_async,
};

extern "C" int rd_backend_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" rd_status rd_backend_cuda_create(const struct rd_backend_opts *opts,
                                            struct rd_backend **out)
{
    *out = NULL;
    rd_status st = RD_OK;
    const int device = opts ? opts->device : 0;
    const enum rd_dtype dtype = opts ? opts->dtype : RD_DTYPE_BF16;
    if (dtype != RD_DTYPE_F32 && dtype != RD_DTYPE_BF16 && dtype != RD_DTYPE_F16) {
        RD_LOG_ERROR("cuda backend: unknown dtype %d", (int)dtype);
        return RD_ERR_INVALID_ARG;
    }
    const int n_dev = rd_backend_cuda_device_count();
    if (device < 0 || device >= n_dev) {
        RD_LOG_ERROR("cuda backend: device %d asked for, %d visible", device, n_dev);
        return n_dev == 0 ? RD_ERR_UNSUPPORTED : RD_ERR_INVALID_ARG;
    }

    struct rd_backend *be = (struct rd_backend *)calloc(1, sizeof *be);
    struct rd_cuda_impl *impl = (struct rd_cuda_impl *)calloc(1, sizeof *impl);
    if (!be || !impl) {
        free(be);
        free(impl);
        return RD_ERR_OOM;
    }
    be->ops = &k_cuda_ops;
    be->dtype = dtype;
    be->device = device;
    be->impl = impl;

    cudaDeviceProp prop;
    RD_CUDA_CHECK_GOTO(cudaSetDevice(device), st, fail);
    RD_CUDA_CHECK_GOTO(cudaGetDeviceProperties(&prop, device), st, fail);
    impl->n_sm = prop.multiProcessorCount;
    impl->max_smem_optin = prop.sharedMemPerBlockOptin;
    impl->debug_sync = rd_env_int("RD_DEBUG_SYNC", 0) != 0;
    RD_CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking), st, fail);

    RD_CUBLAS_CHECK_GOTO(cublasCreate(&impl->cublas), st, fail);
    RD_CUBLAS_CHECK_GOTO(cublasSetStream(impl->cublas, impl->stream), st, fail);
    /* fp32 stays true fp32 (no TF32): the cpu reference is matched to 1e-5; and a GEMM split
     * over k sums its parts in fp32 even when its output is bf16/fp16 (the golden bf16 logits
     * come within 1.3-1.7e-2 of transformers against a bound of 2e-2: no margin to give away) */
    RD_CUBLAS_CHECK_GOTO(cublasSetMathMode(impl->cublas,
                                           (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                          CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
                         st, fail);
    impl->cublas_ws_bytes = (size_t)32 << 20;
    RD_TRY_GOTO(cuda_alloc(be, impl->cublas_ws_bytes, &impl->cublas_ws_d), st, fail);
    RD_CUBLAS_CHECK_GOTO(cublasSetWorkspace(impl->cublas, impl->cublas_ws_d,
                                            impl->cublas_ws_bytes),
                         st, fail);

    /* split-K partials of decode attention; the split count adapts to what fits */
    impl->attn_ws_bytes = (size_t)rd_env_int("RD_ATTN_WORKSPACE_MB", 64) << 20;
    if (impl->attn_ws_bytes) {
        void *ws = NULL;
        RD_TRY_GOTO(cuda_alloc(be, impl->attn_ws_bytes, &ws), st, fail);
        impl->attn_ws_d = (float *)ws;
    }

    /* topk candidates: 4 MiB holds the first pass of 40 rows of 128k columns at k = 64 (4096
     * columns per block); larger calls go in chunks of rows */
    impl->topk_ws_bytes = (size_t)4 << 20;
    RD_TRY_GOTO(cuda_alloc(be, impl->topk_ws_bytes, &impl->topk_ws_d), st, fail);

    /* counters of the split add_rmsnorm (rows of a decode step), zero between launches */
    impl->norm_count_n = 1024;
    RD_TRY_GOTO(cuda_alloc(be, impl->norm_count_n * sizeof(unsigned), (void **)&impl->norm_count_d),
                st, fail);
    RD_CUDA_CHECK_GOTO(cudaMemsetAsync(impl->norm_count_d, 0, impl->norm_count_n * sizeof(unsigned),
                                       impl->stream),
                       st, fail);

    /* page-locked staging of upload_async (the per-step metadata) */
    impl->stage_bytes = (size_t)1 << 20;
    RD_CUDA_CHECK_GOTO(cudaMallocHost(&impl->stage_h, impl->stage_bytes), st, fail);
    for (int i = 0; i < 16; i++)
        RD_CUDA_CHECK_GOTO(cudaEventCreateWithFlags(&impl->staged[i].done,
                                                    cudaEventDisableTiming),
                           st, fail);
    RD_CUDA_CHECK_GOTO(cudaStreamSynchronize(impl->stream), st, fail);

    RD_LOG_INFO("cuda backend: gpu %d %s (sm_%d%d, %d SMs, %.1f GiB), dtype %s%s", device,
                prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                prop.totalGlobalMem / 1073741824.0, rd_dtype_name(dtype),
                impl->debug_sync ? ", RD_DEBUG_SYNC=1" : "");
    *out = be;
    return RD_OK;

fail:
    cuda_destroy(be);
    return st;
}
