/* Helpers of the fuzz harnesses (see fuzz.h). */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/tokenizer.h"

#define CHECK_OR_ABORT(cond)                                                                   \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Decoding ids whole and through the stream gives the same bytes. */
static void check_decode(const struct rd_tokenizer *tok, const int32_t *ids, int n, bool skip)
{
    char *whole = NULL;
    size_t wl = 0;
    if (rd_tokenizer_decode_ex(tok, ids, n, skip, &whole, &wl) != RD_OK) return;
    struct rd_detok_stream *s = NULL;
    if (rd_detok_stream_new(tok, skip, &s) != RD_OK) {
        free(whole);
        return;
    }
    char *acc = malloc(wl + 1);
    size_t al = 0;
    bool fits = acc != NULL;
    for (int i = 0; fits && i <= n; i++) {
        const char *o = NULL;
        size_t ol = 0;
        rd_status st = i < n ? rd_detok_stream_push(s, ids[i], &o, &ol)
                             : rd_detok_stream_flush(s, &o, &ol);
        CHECK_OR_ABORT(st == RD_OK);
        CHECK_OR_ABORT(al + ol <= wl); /* the stream never says more than the whole */
        if (ol) memcpy(acc + al, o, ol);
        al += ol;
    }
    if (fits) CHECK_OR_ABORT(al == wl && !memcmp(acc, whole, wl));
    free(acc);
    free(whole);
    rd_detok_stream_free(s);
}

void rd_fuzz_exercise_tokenizer(const struct rd_tokenizer *tok, const uint8_t *extra, size_t n)
{
    static const struct {
        const char *s;
        size_t n;
    } texts[] = {
        {"Hello world, it's 2024!", 23},
        {"  two  spaces\n\nand\ttabs ", 24},
        {"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89", 17},
        {"a\0b", 3},
        {"<s>x</s><|begin_of_text|>", 25},
        {"\xff\xfe bad", 6},
        {"", 0},
    };
    for (size_t i = 0; i <= sizeof texts / sizeof *texts; i++) {
        const char *t = i < sizeof texts / sizeof *texts ? texts[i].s : (const char *)extra;
        size_t len = i < sizeof texts / sizeof *texts ? texts[i].n : n;
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            int k = 0;
            if (rd_tokenizer_encode(tok, t, len, special, &ids, &k) == RD_OK) {
                CHECK_OR_ABORT(ids != NULL && k >= 0);
                for (int j = 0; j < k; j++)
                    CHECK_OR_ABORT(ids[j] >= 0 && ids[j] < rd_tokenizer_vocab_size(tok));
                check_decode(tok, ids, k, false);
                check_decode(tok, ids, k, true);
            }
            free(ids);
        }
    }
    int nv = rd_tokenizer_vocab_size(tok);
    int32_t first[64];
    int m = 0;
    for (int i = 0; i < nv && m < 64; i++) first[m++] = i;
    check_decode(tok, first, m, false);
    for (int i = 0; i < m; i++) (void)rd_tokenizer_piece(tok, first[i]);
}

int rd_fuzz_file(const uint8_t *data, size_t size, char *path, size_t path_len)
{
    int fd = memfd_create("rd_fuzz", 0);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

void rd_fuzz_file_close(int fd)
{
    if (fd >= 0) close(fd);
}
