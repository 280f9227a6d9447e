/* Small helpers shared by the test programs: checks that count failures, a skip exit
 * (77, which CTest reports as skipped), paths to ../shared and the build, a runner for
 * child commands, comparisons of `ropedist --output json` results, and the text helpers of
 * the stories260K tests. */
#ifndef RD_TEST_UTIL_H
#define RD_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/json.h"

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
json_t *rd_test_load_json(const char *path);
/* Parses JSON text (any value at the top); NULL on error. */
json_t *rd_test_parse_json(const char *text);
/* One-line JSON text of v (malloc'd). */
char *rd_test_json_compact(const json_t *v);

/* Runs a shell command, capturing stdout (malloc'd) and stderr (malloc'd) when the pointers are
 * not NULL. Returns the exit status (or 128 + signal). */
int rd_test_run(const char *cmd, char **out, char **err);

/* A fresh temporary directory (static buffer per call is NOT kept: caller copies). */
void rd_test_tmpdir(char *buf, size_t n);

/* The set-up of a test of one of ropedist's programs (e.g. "ropedist-convert"): its path in bin,
 * ../shared in *shared and a fresh temporary directory in dir. Returns 0; RD_TEST_SKIP, after a
 * visible SKIP line, when the program is not built or ../shared is absent; 1 when no directory
 * could be made. */
int rd_test_program_setup(const char *program, char *bin, size_t nbin, const char **shared,
                          char *dir, size_t ndir);

/* relative L2 error ||a - b|| / ||b|| */
double rd_test_rel_l2(const double *a, const double *b, int n);
double rd_test_rel_l2f(const float *a, const float *b, int n);

/* ---- JSON results (`ropedist --output json`, expected.json of the golden models) ---- */

/* The numbers of a JSON array (malloc'd, at least one element long); *n gets the count. */
double *rd_test_json_doubles(const json_t *arr, int *n);
/* Relative L2 error ||got - want|| / ||want|| of two JSON number arrays; INFINITY when the
 * lengths differ or are 0. */
double rd_test_json_rel_err(const json_t *got, const json_t *want);
/* The largest rd_test_json_rel_err over the rows of want (an array of logit rows) against the
 * same rows of got, which may have more (transformers' step_logits keep only the first
 * steps); INFINITY when got has fewer rows, NaN when a row's error is. */
double rd_test_json_rows_err(const json_t *got, const json_t *want);
/* Whether two JSON arrays of token ids are equal; false when either is NULL. */
bool rd_test_json_same_ids(const json_t *a, const json_t *b);

/* ---- text ---- */

/* Collapses whitespace runs to one space and trims both ends, in place. */
void rd_test_squeeze(char *s);
/* The indented block after "Known greedy output" in a model's README (stories260K), squeezed;
 * malloc'd ("" when the README has none), NULL when the README cannot be read. */
char *rd_test_published_story(const char *readme);

/* Converts ../shared/golden/models/<name> into <tmp>/<name>.h5 (path in h5) and loads its
 * expected.json; ids_csv gets prompt_ids as "1,2,3". NULL (after a failed CHECK naming why) on
 * failure. The caller deletes the JSON. */
json_t *rd_test_golden_case(const char *shared, const char *name, const char *tmp, char *h5,
                           size_t h5_len, char *ids_csv, size_t ids_len);

/* Writes a Llama config.json at cfg_path (sizes, max_position_embeddings, then `extra`: more
 * ",\"field\": value" text) and a random checkpoint for it at h5_path. Returns 0 on success. */
int rd_test_random_model(const char *cfg_path, const char *h5_path, int hidden, int heads, int kv,
                         int head_dim, int ffn, int vocab, int layers, bool tied, int max_pos,
                         const char *extra, unsigned seed);

#endif
