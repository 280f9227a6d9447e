/* bench_floors: the two floors alone (bench_measure_floors: copy bandwidth, read and write
 * counted, and the GEMM rate of the backend's matmul), at the backend's thread count, for
 * scripts that time something else against them (compare_llamacpp.py reports decode as weight
 * bytes per token / copy bandwidth). On the cpu backend also the read bandwidth: a sum over a
 * buffer of --copy-mb, split over OMP_NUM_THREADS threads, the floor of a stream of reads such
 * as decode's (a copy writes as many bytes as it reads). One line per value on stdout; -J
 * writes them as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <omp.h>

#include "bench/common.h"

/* the sum of x[i0, i1), sixty-four partial sums (vectorized for AVX-512 / AVX2 where there) */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
static double
sum_range(const float *x, size_t i0, size_t i1)
{
    float acc[64] = {0};
    size_t i = i0;
    for (; i + 64 <= i1; i += 64)
        for (int l = 0; l < 64; l++)
            acc[l] += x[i + l];
    double total = 0;
    for (int l = 0; l < 64; l++)
        total += acc[l];
    return total;
}

/* bytes / s of reading n floats, the best of iters passes */
static double read_gbs(const float *x, size_t n, int iters)
{
    double best = 0, sink = 0;
    for (int it = 0; it < iters; it++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        double total = 0;
#pragma omp parallel reduction(+ : total)
        {
            const size_t p = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
            total += sum_range(x, n / p * id, id + 1 == p ? n : n / p * (id + 1));
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sink += total;
        const double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (n * sizeof(float) / s > best) best = n * sizeof(float) / s;
    }
    return sink == -1.0 ? 0 : best / 1e9; /* sink keeps the sums alive */
}

int main(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, "bench_floors",
                         "copy bandwidth and GEMM rate of the backend (--copy-mb, --gemm-n)", &a);
    if (rc) return rc < 0 ? 0 : rc;
    struct rd_backend *be = NULL;
    if (bench_backend_open(&a, &be) != RD_OK) return 1;
    struct bench_floors f;
    rd_status st = bench_measure_floors(be, &a, &f);
    if (st != RD_OK) {
        fprintf(stderr, "bench_floors: %s\n", rd_status_str(st));
        rd_backend_free(be);
        return 1;
    }
    char desc[512] = "";
    if (be->device < 0) rd_backend_cpu_describe(be, desc, sizeof desc);
    printf("# bench_floors  device %s%s%s\n", be->ops->name, desc[0] ? ", " : "", desc);
    double rd_gbs = 0;
    if (be->device < 0) {
        /* uploaded, so that the buffer lies where weights do (huge pages on the cpu backend) */
        const size_t n = (size_t)f.copy_bytes / sizeof(float);
        float *h = malloc(n * sizeof(float));
        void *x = NULL;
        if (h)
            for (size_t i = 0; i < n; i++)
                h[i] = (float)(i % 251) * (1.0f / 256.0f);
        if (!h || be->ops->alloc(be, n * sizeof(float), &x) != RD_OK ||
            be->ops->upload(be, x, h, n * sizeof(float)) != RD_OK) {
            fprintf(stderr, "bench_floors: no memory for %.0f MB to read\n",
                    f.copy_bytes / 1048576.0);
            free(h);
            rd_backend_free(be);
            return 1;
        }
        free(h);
        rd_gbs = read_gbs(x, n, a.iters < 5 ? 5 : a.iters);
        be->ops->free(be, x);
    }
    printf("copy_GBps %.3f\ncopy_MB %.0f\ngemm_GFLOPps %.2f\ngemm_n %d\nread_GBps %.3f\n",
           f.copy_gbs, f.copy_bytes / 1048576.0, f.gemm_tflops * 1e3, f.gemm_n, rd_gbs);
    if (a.json_path) {
        json_t *j = json_object();
        json_object_set_new(j, "benchmark", json_string("bench_floors"));
        json_object_set_new(j, "backend", json_string(be->ops->name));
        json_object_set_new(j, "describe", json_string(desc));
        json_object_set_new(j, "copy_GBps", json_real(f.copy_gbs));
        json_object_set_new(j, "copy_bytes", json_real(f.copy_bytes));
        json_object_set_new(j, "gemm_GFLOPps", json_real(f.gemm_tflops * 1e3));
        json_object_set_new(j, "gemm_n", json_integer(f.gemm_n));
        json_object_set_new(j, "read_GBps", json_real(rd_gbs));
        char *s = rd_json_dump(j);
        FILE *fp = fopen(a.json_path, "w");
        if (!fp || !s || fputs(s, fp) < 0) {
            fprintf(stderr, "bench_floors: cannot write %s\n", a.json_path);
            rc = 1;
        }
        if (fp) fclose(fp);
        free(s);
        json_decref(j);
    }
    rd_backend_free(be);
    return rc;
}
