/* Status codes and the check-macro family used by every layer of ropedist.
 *
 * Every function that can fail returns rd_status; results go through out-pointers.
 * The RD_*_CHECK macros log where a failure happened (file, line, function, the failing
 * expression and the library's own message) and return the status to the caller; the
 * _GOTO twins jump to a cleanup label instead. */
#ifndef RD_STATUS_H
#define RD_STATUS_H

typedef enum rd_status {
    RD_OK = 0,
    RD_ERR_INVALID_ARG,
    RD_ERR_CONFIG,
    RD_ERR_IO,
    RD_ERR_FORMAT,
    RD_ERR_OOM,
    RD_ERR_RANGE,
    RD_ERR_UNSUPPORTED,
    RD_ERR_CUDA,
    RD_ERR_CUBLAS,
    RD_ERR_NCCL,
    RD_ERR_MPI,
    RD_ERR_HDF5,
    RD_ERR_EXISTS,
    RD_ERR_INTERNAL,
} rd_status;

const char *rd_status_str(rd_status st);

/* Formats a message into err (err_len bytes) for the caller; NULL or 0 does nothing. */
void rd_err_set(char *err, int err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Logs one failure line through the logger (see log.h). */
void rd_log_fail(const char *file, int line, const char *func, const char *expr, rd_status st,
                 const char *msg);

#define RD_CHECK_GEN(T, expr, ok, st, msg)                                                     \
    do {                                                                                       \
        T e_ = (expr);                                                                         \
        if (!(ok)) {                                                                           \
            rd_log_fail(__FILE__, __LINE__, __func__, #expr, (st), (msg));                     \
            return (st);                                                                       \
        }                                                                                      \
    } while (0)

#define RD_CHECK_GEN_GOTO(T, expr, ok, st, msg, var, label)                                    \
    do {                                                                                       \
        T e_ = (expr);                                                                         \
        if (!(ok)) {                                                                           \
            rd_log_fail(__FILE__, __LINE__, __func__, #expr, (st), (msg));                     \
            (var) = (st);                                                                      \
            goto label;                                                                        \
        }                                                                                      \
    } while (0)

/* Propagate an rd_status without logging again (the callee has logged). */
#define RD_TRY(x)                                                                              \
    do {                                                                                       \
        rd_status s_ = (x);                                                                    \
        if (s_ != RD_OK) return s_;                                                            \
    } while (0)

#define RD_TRY_GOTO(x, var, label)                                                             \
    do {                                                                                       \
        (var) = (x);                                                                           \
        if ((var) != RD_OK) goto label;                                                        \
    } while (0)

/* Check a plain condition; msg is a string literal naming the cause. */
#define RD_REQUIRE(cond, st, msg) RD_CHECK_GEN(int, !!(cond), e_, st, msg)

#endif
