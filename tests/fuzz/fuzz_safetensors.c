/* Fuzz harness: the safetensors reader (runtime/safetensors.c) on a file holding the input:
 * header length, JSON header and layout checks; every tensor an accepted file lists is read and
 * found by name. */
#include <stdlib.h>

#include "fuzz.h"
#include "runtime/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    int fd = rd_fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    struct rd_safetensors *st = NULL;
    if (rd_st_open(path, &st, err, sizeof err) == RD_OK) {
        for (int i = 0; i < st->n_tensors; i++) {
            const struct rd_st_tensor *t = &st->tensors[i];
            /* the reader promised the range is inside the file */
            if (t->end < t->begin || t->end > size) abort();
            void *buf = malloc(t->end - t->begin + 1);
            if (buf && rd_st_read(st, i, buf) != RD_OK) abort();
            free(buf);
            if (rd_st_find(st, t->name) < 0) abort();
        }
        rd_st_close(st);
    }
    rd_fuzz_file_close(fd);
    return 0;
}
