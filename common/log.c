/* Implementation of the logger and of rd_status_str (see log.h, status.h). */
#include "log.h"
#include "status.h"

#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_rank = 0, g_world = 1, g_device = -1;
static enum rd_log_level g_level = RD_LOG_INFO;
static bool g_all_ranks = false;
static bool g_level_from_env = false;

static void init_level_from_env(void)
{
    if (g_level_from_env) return;
    g_level_from_env = true;
    const char *v = getenv("RD_LOG_LEVEL");
    if (!v) return;
    if (!strcmp(v, "debug")) g_level = RD_LOG_DEBUG, g_all_ranks = true;
    else if (!strcmp(v, "info")) g_level = RD_LOG_INFO;
    else if (!strcmp(v, "warn")) g_level = RD_LOG_WARN;
    else if (!strcmp(v, "error")) g_level = RD_LOG_ERROR;
}

void rd_log_set_rank(int rank, int world, int device)
{
    g_rank = rank;
    g_world = world;
    g_device = device;
}
void rd_log_set_level(enum rd_log_level lvl) { init_level_from_env(), g_level = lvl; }
void rd_log_set_all_ranks(bool all) { g_all_ranks = all; }
enum rd_log_level rd_log_get_level(void) { init_level_from_env(); return g_level; }
int rd_log_rank(void) { return g_rank; }

static const char *level_name(enum rd_log_level l)
{
    switch (l) {
    case RD_LOG_DEBUG: return "DEBUG";
    case RD_LOG_INFO: return "INFO";
    case RD_LOG_WARN: return "WARN";
    default: return "ERROR";
    }
}

static void prefix(char *buf, size_t n)
{
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    if (g_device >= 0)
        snprintf(buf, n, "%s:%d [r%d/%d gpu%d]", host, (int)getpid(), g_rank, g_world, g_device);
    else
        snprintf(buf, n, "%s:%d [r%d/%d]", host, (int)getpid(), g_rank, g_world);
}

/* one fprintf per line so lines of different ranks do not interleave mid-line */
static void emit(enum rd_log_level lvl, const char *file, int line, const char *fmt, va_list ap)
{
    char pre[160], msg[2048];
    prefix(pre, sizeof pre);
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *base = strrchr(file, '/');
    fprintf(stderr, "%s %s %s:%d %s\n", pre, level_name(lvl), base ? base + 1 : file, line, msg);
    fflush(stderr);
}

void rd_log_msg(enum rd_log_level lvl, const char *file, int line, const char *fmt, ...)
{
    init_level_from_env();
    if (lvl < g_level) return;
    if (lvl <= RD_LOG_INFO && g_rank != 0 && !g_all_ranks) return;
    va_list ap;
    va_start(ap, fmt);
    emit(lvl, file, line, fmt, ap);
    va_end(ap);
}

void rd_log_every_rank(const char *file, int line, const char *fmt, ...)
{
    init_level_from_env();
    if (g_level > RD_LOG_INFO) return;
    va_list ap;
    va_start(ap, fmt);
    emit(RD_LOG_INFO, file, line, fmt, ap);
    va_end(ap);
}

void rd_log_user_error(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[rank %d/%d] error: %s\n", g_rank, g_world, msg);
    fflush(stderr);
}

void rd_log_fail(const char *file, int line, const char *func, const char *expr, rd_status st,
                 const char *msg)
{
    rd_log_msg(RD_LOG_ERROR, file, line, "%s: %s failed (%s)%s%s", func, expr, rd_status_str(st),
               msg ? ": " : "", msg ? msg : "");
}

const char *rd_status_str(rd_status st)
{
    switch (st) {
    case RD_OK: return "ok";
    case RD_ERR_INVALID_ARG: return "invalid argument";
    case RD_ERR_CONFIG: return "invalid config";
    case RD_ERR_IO: return "i/o error";
    case RD_ERR_FORMAT: return "bad file format";
    case RD_ERR_OOM: return "out of memory";
    case RD_ERR_RANGE: return "out of range";
    case RD_ERR_UNSUPPORTED: return "not supported";
    case RD_ERR_CUDA: return "cuda error";
    case RD_ERR_CUBLAS: return "cublas error";
    case RD_ERR_NCCL: return "nccl error";
    case RD_ERR_MPI: return "mpi error";
    case RD_ERR_HDF5: return "hdf5 error";
    case RD_ERR_EXISTS: return "already exists";
    case RD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void rd_err_set(char *err, int err_len, const char *fmt, ...)
{
    if (!err || err_len <= 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)err_len, fmt, ap);
    va_end(ap);
}

const char *rd_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

int rd_env_int(const char *name, int def)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    return *end ? def : (int)x;
}
