/* Loading OpenBLAS for the cpu backend (see cpu_impl.h).
 *
 * Why the backend loads the library itself (dlopen) instead of linking it: OpenBLAS picks its
 * kernels ("core") once, in its load-time constructor, from the CPU model, and a release does
 * not know the CPUs that came after it. Debian 12's 0.3.21 takes a Sapphire / Emerald Rapids
 * Xeon for an unknown model and falls back to its SSE3 "Prescott" kernels, 4-5x slower than
 * its AVX-512 ones (GEMM at ~32 instead of ~150 GFLOP/s on one core). OPENBLAS_CORETYPE
 * overrides the choice, but is read only while the library loads. So when the user has not set
 * it, and the CPU is an Intel one, the backend sets it from the CPU's features before loading:
 * AVX-512 F/DQ/BW/VL -> SkylakeX, AVX2 + FMA -> Haswell (the kernels OpenBLAS gives every Intel
 * CPU of those families it knows). Other vendors are left to OpenBLAS's own detection, which
 * goes by family numbers that stay valid. The library path is the one CMake found
 * (RD_OPENBLAS_LIB: the OpenMP build, see the README's library table); the environment variable
 * of the same name overrides it, for a binary run where the library lives elsewhere (a private
 * prefix on a machine without the package). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common/log.h"
#include "kernels/cpu/cpu_impl.h"

#ifndef RD_OPENBLAS_LIB
#error "RD_OPENBLAS_LIB (the OpenBLAS shared library to load) must be defined by the build"
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct rd_cpu_blas g_blas;
static bool g_loaded;
static char g_core_from[96]; /* how the kernels were chosen, for the log */

/* The OpenBLAS core for this CPU when OpenBLAS may not know the model, else NULL. */
static const char *core_for_cpu(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_is("intel")) return NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

/* the library to load: $RD_OPENBLAS_LIB, else the build's */
static const char *lib_path(void)
{
    const char *env = getenv("RD_OPENBLAS_LIB");
    return env && *env ? env : RD_OPENBLAS_LIB;
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) RD_LOG_ERROR("%s has no symbol %s: %s", lib_path(), name, dlerror());
    return p;
}

static void load(void)
{
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) {
        snprintf(g_core_from, sizeof g_core_from, "OPENBLAS_CORETYPE=%s from the environment",
                 user);
    } else {
        const char *core = core_for_cpu();
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 1);
            snprintf(g_core_from, sizeof g_core_from,
                     "OPENBLAS_CORETYPE=%s set from the CPU's "
                     "features",
                     core);
        } else {
            snprintf(g_core_from, sizeof g_core_from, "detected by OpenBLAS");
        }
    }
    void *lib = dlopen(lib_path(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        RD_LOG_ERROR("cannot load the BLAS library %s: %s (Debian: apt-get install "
                     "libopenblas0-openmp)",
                     lib_path(), dlerror());
        return;
    }
    /* POSIX allows converting dlsym's object pointer to a function pointer */
    *(void **)&g_blas.sgemm = sym(lib, "cblas_sgemm");
    *(void **)&g_blas.sgemv = sym(lib, "cblas_sgemv");
    *(void **)&g_blas.get_corename = sym(lib, "openblas_get_corename");
    *(void **)&g_blas.get_config = sym(lib, "openblas_get_config");
    *(void **)&g_blas.get_parallel = sym(lib, "openblas_get_parallel");
    g_loaded = g_blas.sgemm && g_blas.sgemv && g_blas.get_corename && g_blas.get_config &&
               g_blas.get_parallel;
    if (g_loaded && g_blas.get_parallel() != 2)
        RD_LOG_WARN("%s is not OpenBLAS's OpenMP build: its threads and the backend's compete "
                    "for the cores",
                    lib_path());
}

const struct rd_cpu_blas *rd_cpu_blas_get(void)
{
    pthread_once(&g_once, load);
    return g_loaded ? &g_blas : NULL;
}

void rd_cpu_blas_describe(char *buf, size_t len)
{
    const struct rd_cpu_blas *b = rd_cpu_blas_get();
    if (!b) {
        snprintf(buf, len, "no BLAS");
        return;
    }
    static const char *const k_par[] = {"sequential", "pthreads", "OpenMP"};
    const int par = b->get_parallel();
    char config[64];
    snprintf(config, sizeof config, "%s", b->get_config());
    char *sp = strchr(config, ' ');
    if (sp && (sp = strchr(sp + 1, ' '))) *sp = 0; /* "OpenBLAS 0.3.21" */
    snprintf(buf, len, "%s (%s build), %s kernels (%s)", config,
             par >= 0 && par <= 2 ? k_par[par] : "?", b->get_corename(), g_core_from);
}

void rd_cpu_blas_threads(int threads)
{
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

rd_status rd_cpu_grow(void **buf, size_t *cap, size_t n, size_t elem)
{
    if (*cap >= n) return RD_OK;
    void *p = realloc(*buf, (n ? n : 1) * elem);
    if (!p) {
        RD_LOG_ERROR("cpu backend: cannot allocate %zu bytes of scratch", n * elem);
        return RD_ERR_OOM;
    }
    *buf = p;
    *cap = n;
    return RD_OK;
}
