/* Tokenizer encode speed: MB/s of UTF-8 text encoded by the native tokenizer, one line at a
 * time on one thread (the same unit bench/compare_tokenizers.py gives the `tokenizers` library).
 *
 *   bench_tokenize --tokenizer FILE [--text FILE] [--mb N] [--iters N] [-J out.json]
 *
 * Without --text the input is built from the licence texts every Debian system has under
 * /usr/share/common-licenses, repeated to --mb megabytes (default 8). Prints a table and, with
 * -J, writes JSON. It also writes the ids of every line (--ids FILE) so the peer script can
 * count lines encoded differently (#wrong). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"

#include "runtime/tokenizer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

/* the licence texts, repeated to at least mb megabytes */
static char *default_text(double mb, size_t *len)
{
    static const char *k_files[] = {"GPL-3", "LGPL-3", "Apache-2.0", "MPL-2.0", "Artistic",
                                    "GFDL-1.3", "BSD", "CC0-1.0"};
    size_t cap = (size_t)(mb * 1e6) + (1 << 20), n = 0;
    char *out = malloc(cap);
    size_t added;
    do {
        added = 0;
        for (size_t i = 0; i < sizeof k_files / sizeof *k_files; i++) {
            char path[256];
            snprintf(path, sizeof path, "/usr/share/common-licenses/%s", k_files[i]);
            size_t l;
            char *t = read_all(path, &l);
            if (!t) continue;
            if (n + l + 1 >= cap) {
                free(t);
                break;
            }
            memcpy(out + n, t, l);
            n += l;
            added += l;
            free(t);
        }
    } while (added && n < (size_t)(mb * 1e6));
    out[n] = 0;
    *len = n;
    return out;
}

int main(int argc, char **argv)
{
    const char *tok_path = NULL, *text_path = NULL, *json = NULL, *ids_path = NULL;
    double mb = 8;
    int iters = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text_path = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-J") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s --tokenizer FILE [--text FILE] [--mb N] [--iters N] "
                    "[-J out.json] [--ids out.txt]\n", argv[0]);
            return 2;
        }
    }
    if (!tok_path || iters < 1) {
        fprintf(stderr, "bench_tokenize: --tokenizer FILE is required\n");
        return 2;
    }
    char err[512] = "";
    struct rd_tokenizer *tok = NULL;
    if (rd_tokenizer_load(tok_path, &tok, err, sizeof err) != RD_OK) {
        fprintf(stderr, "bench_tokenize: %s\n", err);
        return 1;
    }
    size_t len = 0;
    char *text = text_path ? read_all(text_path, &len) : default_text(mb, &len);
    if (!text || !len) {
        fprintf(stderr, "bench_tokenize: no input text\n");
        return 1;
    }
    /* lines, newline excluded (what the python peer encodes too) */
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    FILE *ids_out = ids_path ? fopen(ids_path, "w") : NULL;
    double best = 1e30, total = 0;
    long long n_tokens = 0;
    for (int it = 0; it < iters; it++) {
        double t0 = now_s();
        long long toks = 0;
        for (char *p = text, *end = text + len; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
            int32_t *ids = NULL;
            int n = 0;
            if (rd_tokenizer_encode(tok, p, l, false, &ids, &n) == RD_OK) {
                toks += n;
                if (ids_out && it == 0) {
                    for (int k = 0; k < n; k++) fprintf(ids_out, k ? " %d" : "%d", ids[k]);
                    fputc('\n', ids_out);
                }
            }
            free(ids);
            p += l + 1;
        }
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        total += dt;
        n_tokens = toks;
        if (ids_out && it == 0) fclose(ids_out), ids_out = NULL;
    }
    double mbs = len / 1e6 / best;
    printf("#%11s %10s %10s %10s %10s\n", "tokenizer", "bytes", "lines", "tokens", "encode");
    printf("#%11s %10s %10s %10s %10s\n", "", "MB", "", "", "MB/s");
    const char *base = strrchr(tok_path, '/');
    printf("%12.12s %10.2f %10zu %10lld %10.2f\n", base ? base + 1 : tok_path, len / 1e6, n_lines,
           n_tokens, mbs);
    printf("# ropedist native tokenizer, one thread, one line per call, best of %d\n", iters);
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f}", "benchmark", "tokenize",
                              "tokenizer", tok_path, "bytes", (json_int_t)len, "lines",
                              (json_int_t)n_lines, "tokens", (json_int_t)n_tokens, "best_s", best,
                              "mean_s", total / iters, "mb_per_s", mbs);
        char *s = rd_json_dump(o);
        FILE *f = s ? fopen(json, "w") : NULL;
        if (f) fputs(s, f), fclose(f);
        free(s);
        json_decref(o);
    }
    free(text);
    rd_tokenizer_free(tok);
    return 0;
}
