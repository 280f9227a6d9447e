/* Implementation of the test helpers (see test_util.h). */
#include "test_util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int rd_test_failures = 0;
int rd_test_checks = 0;

int rd_test_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, rd_test_checks, rd_test_failures);
    return rd_test_failures ? 1 : 0;
}

const char *rd_test_shared_dir(void)
{
    static char buf[4096];
    const char *d = getenv("RD_SHARED_DIR");
    if (!d) d = "../shared";
    snprintf(buf, sizeof buf, "%s/golden", d);
    struct stat sb;
    if (stat(buf, &sb) != 0) {
        printf("SKIP: shared test data not found at %s (set RD_SHARED_DIR)\n", d);
        return NULL;
    }
    snprintf(buf, sizeof buf, "%s", d);
    return buf;
}

const char *rd_test_bin_dir(void)
{
    const char *d = getenv("RD_BIN_DIR");
    return d ? d : ".";
}

const char *rd_test_source_dir(void)
{
    const char *d = getenv("RD_SOURCE_DIR");
    return d ? d : "..";
}

const char *rd_test_mpirun(void)
{
    static char buf[1024];
    const char *m = getenv("RD_MPIRUN");
    snprintf(buf, sizeof buf, "%s --allow-run-as-root --oversubscribe --bind-to none",
             (m && *m) ? m : "mpirun");
    return buf;
}

char *rd_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

json_t *rd_test_parse_json(const char *text)
{
    return text ? rd_json_parse(text, strlen(text), RD_JSON_ANY, NULL, 0) : NULL;
}

char *rd_test_json_compact(const json_t *v) { return rd_json_dump_line(v); }

json_t *rd_test_load_json(const char *path)
{
    size_t len = 0;
    char *txt = rd_test_read_file(path, &len);
    if (!txt) return NULL;
    json_t *j = rd_json_parse(txt, len, RD_JSON_ANY, NULL, 0);
    free(txt);
    return j;
}

static char *slurp_fd(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    return buf;
}

int rd_test_run(const char *cmd, char **out, char **err)
{
    char errpath[] = "/tmp/rd_test_errXXXXXX";
    int efd = mkstemp(errpath);
    if (efd < 0) return -1;
    close(efd);
    size_t len = strlen(cmd) + strlen(errpath) + 32;
    char *full = malloc(len);
    snprintf(full, len, "( %s ) 2>%s", cmd, errpath);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    char *o = slurp_fd(p);
    int st = pclose(p);
    if (out) *out = o;
    else free(o);
    if (err) *err = rd_test_read_file(errpath, NULL);
    unlink(errpath);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

void rd_test_tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/rd_testXXXXXX");
    if (!mkdtemp(buf)) buf[0] = 0;
}

int rd_test_program_setup(const char *program, char *bin, size_t nbin, const char **shared,
                          char *dir, size_t ndir)
{
    snprintf(bin, nbin, "%s/%s", rd_test_bin_dir(), program);
    if (access(bin, X_OK) != 0) {
        printf("SKIP: %s not built\n", bin);
        return RD_TEST_SKIP;
    }
    *shared = rd_test_shared_dir();
    if (!*shared) return RD_TEST_SKIP;
    rd_test_tmpdir(dir, ndir);
    if (!dir[0]) {
        fprintf(stderr, "FAIL: cannot make a temporary directory\n");
        return 1;
    }
    return 0;
}

double rd_test_rel_l2(const double *a, const double *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double rd_test_rel_l2f(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double *rd_test_json_doubles(const json_t *arr, int *n)
{
    *n = (int)json_array_size(arr);
    double *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
    int i = 0;
    size_t it_i;
    const json_t *it;
    json_array_foreach(arr, it_i, it) v[i++] = json_number_value(it);
    return v;
}

double rd_test_json_rel_err(const json_t *got, const json_t *want)
{
    int n1, n2;
    double *a = rd_test_json_doubles(got, &n1), *b = rd_test_json_doubles(want, &n2);
    double e = n1 == n2 && n1 > 0 ? rd_test_rel_l2(a, b, n1) : INFINITY;
    free(a);
    free(b);
    return e;
}

double rd_test_json_rows_err(const json_t *got, const json_t *want)
{
    int n = (int)json_array_size(want);
    if ((int)json_array_size(got) < n) return INFINITY;
    double worst = 0;
    for (int s = 0; s < n; s++) {
        double e = rd_test_json_rel_err(json_array_get(got, s), json_array_get(want, s));
        if (e > worst || isnan(e)) worst = e;
    }
    return worst;
}

bool rd_test_json_same_ids(const json_t *a, const json_t *b)
{
    if (!a || !b || (int)json_array_size(a) != (int)json_array_size(b)) return false;
    for (int i = 0; i < (int)json_array_size(a); i++)
        if ((int)json_number_value(json_array_get(a, i)) != (int)json_number_value(json_array_get(b, i))) return false;
    return true;
}

void rd_test_squeeze(char *s)
{
    char *w = s;
    bool space = true;
    for (char *r = s; *r; r++) {
        if (isspace((unsigned char)*r)) {
            if (!space) *w++ = ' ';
            space = true;
        } else {
            *w++ = *r;
            space = false;
        }
    }
    while (w > s && w[-1] == ' ') w--;
    *w = 0;
}

char *rd_test_published_story(const char *readme)
{
    char *txt = rd_test_read_file(readme, NULL);
    if (!txt) return NULL;
    char *at = strstr(txt, "Known greedy output");
    const size_t cap = 4096;
    char *story = calloc(1, cap);
    if (at && story) {
        char *line = strchr(at, '\n');
        while (line && *line) {
            line++;
            char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            if (len >= 4 && !strncmp(line, "    ", 4)) {
                if (strlen(story) + len + 2 > cap) break;
                strncat(story, line, len);
                strcat(story, " ");
            } else if (story[0] && len > 0) {
                break;
            }
            line = end;
        }
    }
    free(txt);
    if (story) rd_test_squeeze(story);
    return story;
}

json_t *rd_test_golden_case(const char *shared, const char *name, const char *tmp, char *h5,
                           size_t h5_len, char *ids_csv, size_t ids_len)
{
    char dir[1024], cmd[4096], path[1200];
    snprintf(dir, sizeof dir, "%s/golden/models/%s", shared, name);
    snprintf(h5, h5_len, "%s/%s.h5", tmp, name);
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert %s -o %s", rd_test_bin_dir(), dir, h5);
    char *err = NULL;
    int rc = rd_test_run(cmd, NULL, &err);
    CHECK_MSG(rc == 0, "convert %s failed: %s", name, err ? err : "");
    free(err);
    if (rc) return NULL;
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_t *exp = rd_test_load_json(path);
    CHECK_MSG(exp != NULL, "cannot read %s", path);
    if (!exp) return NULL;
    const json_t *pids = json_object_get(exp, "prompt_ids");
    ids_csv[0] = 0;
    for (int i = 0; i < (int)json_array_size(pids); i++) {
        size_t l = strlen(ids_csv);
        snprintf(ids_csv + l, ids_len - l, "%s%d", i ? "," : "",
                 (int)json_number_value(json_array_get(pids, i)));
    }
    return exp;
}

int rd_test_random_model(const char *cfg_path, const char *h5_path, int hidden, int heads, int kv,
                         int head_dim, int ffn, int vocab, int layers, bool tied, int max_pos,
                         const char *extra, unsigned seed)
{
    FILE *f = fopen(cfg_path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"model_type\": \"llama\", \"hidden_size\": %d, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"intermediate_size\": %d, \"vocab_size\": %d, "
            "\"num_hidden_layers\": %d, \"tie_word_embeddings\": %s, \"rms_norm_eps\": 1e-5, "
            "\"max_position_embeddings\": %d, \"rope_theta\": 10000.0, \"bos_token_id\": 1, "
            "\"eos_token_id\": 2",
            hidden, heads, kv, ffn, vocab, layers, tied ? "true" : "false", max_pos);
    if (head_dim) fprintf(f, ", \"head_dim\": %d", head_dim);
    fprintf(f, "%s}\n", extra ? extra : "");
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert --random --config %s --seed %u -o %s",
             rd_test_bin_dir(), cfg_path, seed, h5_path);
    char *err = NULL;
    int rc = rd_test_run(cmd, NULL, &err);
    if (rc) fprintf(stderr, "convert --random %s failed: %s\n", cfg_path, err ? err : "");
    free(err);
    return rc;
}
