/* A small GGUF v3 writer for the tests (rd_test_gguf_ prefix): writes given metadata kvs
 * (struct rd_gguf_kv, as runtime/gguf.h reads them) and tensors of any ggml type number, with
 * the data section and every tensor aligned to general.alignment (or 32), the layout
 * llama.cpp's writer uses; plus what a round trip needs: the kvs and tensors of an open file
 * as lists to write again, and comparisons of a re-read file with what was written. Nothing
 * here checks its own input: a test can write files ropedist must refuse. */
#ifndef RD_TEST_GGUF_WRITER_H
#define RD_TEST_GGUF_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/gguf.h"

/* One tensor to write: data holds nbytes bytes as stored (borrowed, not copied). */
struct rd_test_gguf_tensor {
    const char *name;
    int n_dims;
    int64_t ne[RD_GGUF_MAX_DIMS]; /* ggml order, ne[0] fastest */
    uint32_t type;                /* ggml type number, written as is */
    const void *data;
    uint64_t nbytes;
};

/* Writes a GGUF v3 file: the kvs in order, the tensor infos, then the data section at
 * general.alignment (u32; 32 when absent), each tensor at an aligned offset. Array kvs hold
 * packed host copies (strings as struct rd_gguf_str). false (after a message on stderr) when
 * a kv has a type it cannot write or the file cannot be written. */
bool rd_test_gguf_write(const char *path, const struct rd_gguf_kv *const *kvs, int64_t n_kv,
                        const struct rd_test_gguf_tensor *t, int64_t n_t);

/* The kvs of g as pointers, in order (calloc'd array; the kvs stay g's). */
const struct rd_gguf_kv **rd_test_gguf_kv_list(const struct rd_gguf *g);
/* The tensors of g as they are stored (calloc'd array; names and data stay g's). */
struct rd_test_gguf_tensor *rd_test_gguf_tensor_list(const struct rd_gguf *g);

/* 0 when g holds exactly the n kvs of want, equal and in the same places; otherwise the
 * number that differ (1 for a different count), each named on stderr. */
int rd_test_gguf_check_kvs(const struct rd_gguf *g, const struct rd_gguf_kv *const *want, int64_t n);
/* 0 when g holds exactly the n tensors of want with their names, shapes, types and bytes, each
 * at an aligned offset after an aligned data section; otherwise the number that differ. */
int rd_test_gguf_check_tensors(const struct rd_gguf *g, const struct rd_test_gguf_tensor *want,
                               int64_t n);

#endif
