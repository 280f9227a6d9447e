/* ropedist-tokenize: the runtime's tokenizer on the command line (DESIGN.md, "Tokenizer tool").
 *
 *   ropedist-tokenize --tokenizer FILE [--special]   UTF-8 text on stdin -> JSON array of ids
 *   ropedist-tokenize --tokenizer FILE --decode      JSON array of ids on stdin -> text
 *
 * FILE is a tokenizer.json or a .gguf. --special adds BOS/EOS as the tokenizer's post-processor
 * does. The text is taken byte for byte (no newline is stripped); decoded text is written
 * without a trailing newline. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "runtime/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ropedist-tokenize --tokenizer FILE [--special] [--decode]\n"
            "  reads UTF-8 text on stdin and prints its token ids as one JSON array\n"
            "  --tokenizer FILE  a tokenizer.json or a .gguf with an embedded tokenizer\n"
            "  --special         add BOS/EOS as the tokenizer's post-processor does\n"
            "  --decode          read a JSON array of ids instead and print the text\n");
}

static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int special = 0, decode = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) path = argv[++i];
        else if (strcmp(argv[i], "--special") == 0) special = 1;
        else if (strcmp(argv[i], "--decode") == 0) decode = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ropedist-tokenize: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "ropedist-tokenize: --tokenizer FILE is required\n");
        usage(stderr);
        return 2;
    }
    char err[1024] = "";
    struct rd_tokenizer *tok = NULL;
    rd_status st = rd_tokenizer_load(path, &tok, err, sizeof err);
    if (st != RD_OK) {
        fprintf(stderr, "ropedist-tokenize: %s (%s)\n", err[0] ? err : "cannot load tokenizer",
                rd_status_str(st));
        return 1;
    }
    size_t len = 0;
    char *in = read_stdin(&len);
    if (!in) {
        fprintf(stderr, "ropedist-tokenize: cannot read stdin\n");
        rd_tokenizer_free(tok);
        return 1;
    }
    int rc = 0;
    if (decode) {
        json_t *j = rd_json_parse(in, len, 0, NULL, 0);
        size_t count = json_is_array(j) ? json_array_size(j) : 0;
        int n = json_is_array(j) && count < INT_MAX / 8 ? (int)count : -1;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
        size_t i;
        const json_t *e;
        json_array_foreach(ids && n > 0 ? j : NULL, i, e)
        {
            int64_t id;
            if (!rd_json_int(e, 0, INT32_MAX, &id)) {
                n = -1;
                break;
            }
            ids[i] = (int32_t)id;
        }
        char *text = NULL;
        size_t tl = 0;
        if (n < 0 || !ids) {
            fprintf(stderr, "ropedist-tokenize: --decode expects a JSON array of token ids\n");
            rc = 1;
        } else if ((st = rd_tokenizer_decode(tok, ids, n, &text, &tl)) != RD_OK) {
            fprintf(stderr, "ropedist-tokenize: cannot decode: %s (ids must be < %d)\n",
                    rd_status_str(st), rd_tokenizer_vocab_size(tok));
            rc = 1;
        } else {
            fwrite(text, 1, tl, stdout);
        }
        free(text);
        free(ids);
        json_decref(j);
    } else {
        int32_t *ids = NULL;
        int n = 0;
        st = rd_tokenizer_encode(tok, in, len, special != 0, &ids, &n);
        if (st != RD_OK) {
            fprintf(stderr, "ropedist-tokenize: cannot encode: %s%s\n", rd_status_str(st),
                    st == RD_ERR_INVALID_ARG ? " (the input is not valid UTF-8)" : "");
            rc = 1;
        } else {
            putchar('[');
            for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
            printf("]\n");
        }
        free(ids);
    }
    free(in);
    rd_tokenizer_free(tok);
    return rc;
}
