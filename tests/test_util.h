/* Small helpers shared by the test programs: checks that count failures, a skip exit
 * (77, which CTest reports as skipped), paths to ../shared and the build, and a runner for
 * child commands. */
#ifndef RD_TEST_UTIL_H
#define RD_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define RD_TEST_SKIP 77

extern int rd_test_failures;
extern int rd_test_checks;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        rd_test_checks++;                                                                      \
        if (!(cond)) {                                                                         \
            rd_test_failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
        }                                                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        rd_test_checks++;                                                                      \
        if (!(cond)) {                                                                         \
            rd_test_failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
    } while (0)

/* Prints a summary line and returns the exit code (0 or 1). */
int rd_test_finish(const char *name);

/* ../shared directory, or NULL (after printing a visible SKIP line) when absent. */
const char *rd_test_shared_dir(void);
const char *rd_test_bin_dir(void);
const char *rd_test_source_dir(void);
/* mpirun with the flags a root, oversubscribed run needs ("mpirun --allow-run-as-root
 * --oversubscribe"); static string. */
const char *rd_test_mpirun(void);

/* Reads a whole file (malloc'd, NUL-terminated); NULL on error. */
char *rd_test_read_file(const char *path, size_t *len);
/* Parses a JSON file; NULL on error. */
cJSON *rd_test_load_json(const char *path);

/* Runs a shell command, capturing stdout (malloc'd) and stderr (malloc'd) when the pointers are
 * not NULL. Returns the exit status (or 128 + signal). */
int rd_test_run(const char *cmd, char **out, char **err);

/* A fresh temporary directory (static buffer per call is NOT kept: caller copies). */
void rd_test_tmpdir(char *buf, size_t n);

/* relative L2 error ||a - b|| / ||b|| */
double rd_test_rel_l2(const double *a, const double *b, int n);
double rd_test_rel_l2f(const float *a, const float *b, int n);

#endif
