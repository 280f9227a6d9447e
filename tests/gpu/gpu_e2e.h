/* Helpers shared by the gpu end-to-end tests (tests/gpu/test_cuda_*.c; header-only so CTest's
 * one-program-per-test_*.c rule stays): the skip rule (no CUDA build, or no visible device:
 * exit 77 with a SKIP line), the environment NCCL needs for several ranks on one GPU, the
 * command prefix that starts ropedist under mpirun on the cuda backend, and JSON comparisons. */
#ifndef RD_GPU_E2E_H
#define RD_GPU_E2E_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "test_util.h"

/* true (after a SKIP line) when this build or machine cannot run the cuda backend */
static inline bool gpu_e2e_skip(void)
{
#ifndef RD_WITH_CUDA
    printf("SKIP: built without CUDA (ROPEDIST_CUDA=OFF or no nvcc)\n");
    return true;
#else
    if (rd_backend_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device visible\n");
        return true;
    }
    /* several ranks on the one GPU (--share-gpu) talk over NCCL's socket transport on
     * loopback; ranks started by mpirun on this host inherit the environment */
    setenv("NCCL_SOCKET_IFNAME", "lo", 0);
    return false;
#endif
}

/* "timeout 300 mpirun ... -np N BIN/ropedist --device DEV [--share-gpu]" into buf */
static inline void gpu_e2e_prefix(char *buf, size_t n, int np, const char *device)
{
    snprintf(buf, n, "timeout 300 %s -np %d %s/ropedist --device %s%s", rd_test_mpirun(), np,
             rd_test_bin_dir(), device, np > 1 && !strcmp(device, "cuda") ? " --share-gpu" : "");
}

/* runs cmd and parses its stdout as JSON; NULL (after printing why) on failure */
static inline json_t *gpu_e2e_run_json(const char *cmd)
{
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    json_t *j = rc == 0 && out ? rd_test_parse_json(out) : NULL;
    if (!j) fprintf(stderr, "run failed (rc %d): %s\n%s\n", rc, cmd, err ? err : "");
    free(out);
    free(err);
    return j;
}


#endif
