/* The benchmarks' shared driver (nccl-tests style): arguments, the backend, a clock that
 * uses CUDA events on cuda and sync + CLOCK_MONOTONIC on cpu, min/median/max statistics,
 * the fixed-width table with a units row and '#' footers, the JSON written with -J, and the
 * two floors every benchmark is compared against, measured in the same run: device copy
 * bandwidth and the GEMM rate of the backend's matmul on a large square product.
 *
 * Each bench_<name>.c is one small main() over this file and bench/model_bench.h. */
#ifndef RD_BENCH_COMMON_H
#define RD_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/json.h"

#include "kernels/ops.h"
#include "runtime/config.h"

#define BENCH_MAX_LIST 16

struct bench_args {
    const char *name;        /* benchmark name (bench_decode, ...) */
    const char *model;       /* llama-3-8b | llama-2-7b | llama-70b | tiny | path to config.json */
    const char *device;      /* auto | cpu | cuda */
    int dtype;               /* -1: bf16 on cuda, fp32 on cpu */
    int layers;              /* build only this many layers (0 = all); see model_bench.h */
    int tp;                  /* --simulate-tp P: rank 0's shard of a P-way group */
    int tp_list[BENCH_MAX_LIST], n_tp;          /* --tp 1,2,4,8 (scaling) */
    int batch[BENCH_MAX_LIST], n_batch;         /* --batch 1,8,64 */
    int ctx[BENCH_MAX_LIST], n_ctx;             /* --ctx 128,2048,32768 */
    int prompt[BENCH_MAX_LIST], n_prompt;       /* --prompt 128,512,2048 */
    int warmup, iters;
    const char *json_path;   /* -J FILE */
    uint64_t seed;
    double ar_latency_us;    /* all-reduce model: fixed cost per call */
    double ar_busbw_gbs;     /* all-reduce model: NCCL bus bandwidth */
    double copy_mb;          /* floor: bytes of the device copy */
    int gemm_n;              /* floor: n of the n x n x n GEMM */
    double mem_frac;         /* share of free device memory a row may take */
};

/* Parses argv into a (defaults first). Returns 0 to run, or an exit code (help: 0 printed
 * as -1 -> caller exits 0; errors: 2). extra_usage documents the benchmark's own defaults. */
int bench_parse(int argc, char **argv, const char *name, const char *about, struct bench_args *a);

/* Opens the backend asked for (cuda when a GPU is visible and --device auto). */
rd_status bench_backend_open(const struct bench_args *a, struct rd_backend **be);

/* Loads a named shape (configs/<name>.json, or the built-in "tiny") or a config.json path. */
rd_status bench_config_load(const char *model, struct rd_config *cfg, char *err, int err_len);

/* Free bytes of backend memory (cuda: cudaMemGetInfo; cpu: available physical memory). */
size_t bench_free_bytes(struct rd_backend *be);

/* ---- time ---- */

double bench_now_ms(void);

/* A sequence of marks on the backend's stream; ms between two marks once waited for. */
struct bench_clock;
rd_status bench_clock_create(struct rd_backend *be, int max_marks, struct bench_clock **out);
void bench_clock_free(struct bench_clock *c);
void bench_clock_reset(struct bench_clock *c);
rd_status bench_clock_mark(struct bench_clock *c); /* returns the mark's index via count */
int bench_clock_count(const struct bench_clock *c);
rd_status bench_clock_wait(struct bench_clock *c);
double bench_clock_ms(const struct bench_clock *c, int from, int to);

struct bench_stat {
    double min, med, max;
};
/* sorts v in place */
struct bench_stat bench_stat_of(double *v, int n);

/* ---- floors ---- */

struct bench_floors {
    double copy_gbs;       /* (read + write) bytes / s of a large device-to-device copy */
    double copy_bytes;
    double gemm_tflops;    /* 2 n^3 / s of be->ops->matmul (cuBLAS on cuda) */
    int gemm_n;
};
rd_status bench_measure_floors(struct rd_backend *be, const struct bench_args *a,
                               struct bench_floors *f);
/* Fills bytes of a device buffer with small random values of the backend's dtype (one
 * uploaded chunk, then device copies that double it). */
rd_status bench_fill_random(struct rd_backend *be, void *p_d, size_t bytes, uint64_t seed);

/* ---- output ---- */

struct bench_col {
    const char *name, *unit;
    int width;
    int prec; /* decimals; -1 = integer */
};

#define BENCH_MAX_COLS 16
struct bench_table {
    const char *title;
    int ncol;
    struct bench_col cols[BENCH_MAX_COLS];
    json_t *json; /* this table in the run's document */
};

/* Starts the run's document (header lines on stdout with device, model, dtype, floors). */
void bench_begin(const struct bench_args *a, struct rd_backend *be, const struct rd_config *cfg,
                 const struct bench_floors *f);
void bench_table_begin(struct bench_table *t, const char *title, const struct bench_col *cols,
                       int ncol);
/* One row: vals[i] for numeric columns; strs[i] (when strs and strs[i]) prints text instead.
 * A NaN value prints "-" and is null in JSON. */
void bench_table_row(struct bench_table *t, const double *vals, const char *const *strs);
void bench_table_note(struct bench_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes the JSON (-J) and returns the exit code. */
int bench_finish(const struct bench_args *a, int failures);

/* Human-readable bytes and shape helpers. */
double bench_gb(double bytes);

#endif
