/* Entry points of the cuda backend for builds without CUDA (ROPEDIST_CUDA=OFF or no nvcc):
 * they report that the backend is not part of this build. */
#include "kernels/ops.h"

rd_status rd_backend_cuda_create(const struct rd_backend_opts *opts, struct rd_backend **out)
{
    (void)opts;
    *out = 0;
    return RD_ERR_UNSUPPORTED;
}

int rd_backend_cuda_device_count(void) { return 0; }
