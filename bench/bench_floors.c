/* bench_floors: the two floors alone (bench_measure_floors: copy bandwidth, read and write
 * counted, and the GEMM rate of the backend's matmul), at the backend's thread count, for
 * scripts that time something else against them (compare_llamacpp.py reports decode as weight
 * bytes per token / copy bandwidth). One line per value on stdout; -J writes them as JSON. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/common.h"

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
    printf("copy_GBps %.3f\ncopy_MB %.0f\ngemm_GFLOPps %.2f\ngemm_n %d\n", f.copy_gbs,
           f.copy_bytes / 1048576.0, f.gemm_tflops * 1e3, f.gemm_n);
    if (a.json_path) {
        json_t *j = json_object();
        json_object_set_new(j, "benchmark", json_string("bench_floors"));
        json_object_set_new(j, "backend", json_string(be->ops->name));
        json_object_set_new(j, "describe", json_string(desc));
        json_object_set_new(j, "copy_GBps", json_real(f.copy_gbs));
        json_object_set_new(j, "copy_bytes", json_real(f.copy_bytes));
        json_object_set_new(j, "gemm_GFLOPps", json_real(f.gemm_tflops * 1e3));
        json_object_set_new(j, "gemm_n", json_integer(f.gemm_n));
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
