/* Logging for every rank: one line per message on stderr with where it comes from.
 *
 *   host:pid [r3/8 gpu3] WARN comm.c:142 message
 *
 * WARN and ERROR are printed by every rank; INFO by rank 0 only unless RD_LOG_LEVEL=debug or
 * --verbose asks every rank to speak (rd_log_set_all_ranks). DEBUG only with RD_LOG_LEVEL=debug.
 * The rank prefix is set once by the bootstrap (rd_log_set_rank). */
#ifndef RD_LOG_H
#define RD_LOG_H

#include <stdbool.h>

enum rd_log_level { RD_LOG_DEBUG = 0, RD_LOG_INFO, RD_LOG_WARN, RD_LOG_ERROR };

void rd_log_set_rank(int rank, int world, int device);
void rd_log_set_level(enum rd_log_level lvl);
void rd_log_set_all_ranks(bool all);
enum rd_log_level rd_log_get_level(void);
int rd_log_rank(void);

void rd_log_msg(enum rd_log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An INFO line printed by every rank (what each rank runs on, once at start-up). */
void rd_log_every_rank(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* User-facing error: printed by the calling rank without file/line noise, prefixed only
 * with [rank R/N]. Used for errors the user caused (bad flag, bad config). */
void rd_log_user_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define RD_LOG_DEBUG(...) rd_log_msg(RD_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define RD_LOG_INFO(...) rd_log_msg(RD_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define RD_LOG_WARN(...) rd_log_msg(RD_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define RD_LOG_ERROR(...) rd_log_msg(RD_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)

/* Settings from the environment: returns the variable's value or def when unset/empty. */
const char *rd_env_str(const char *name, const char *def);
int rd_env_int(const char *name, int def);

#endif
