/* What the fuzz harnesses share (tests/fuzz/README.md): the libFuzzer entry points, which
 * replay_main.c also calls to replay the committed inputs under a normal ctest, and the
 * tokenizer exercise of fuzz_common.c. A harness aborts on an invariant that does not hold, so
 * the fuzzer and the replay both report it. */
#ifndef RD_FUZZ_H
#define RD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct rd_tokenizer;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Encodes fixed texts (ASCII, multi-byte UTF-8, a NUL byte, special-token text, invalid UTF-8)
 * and extra[0..n) with tok, decodes what came out whole and streamed (the two must agree, as
 * tokenizer.h promises) and decodes the first ids of the vocabulary. */
void rd_fuzz_exercise_tokenizer(const struct rd_tokenizer *tok, const uint8_t *extra, size_t n);

/* A file holding data[0..size) that the readers can open by path: /proc/self/fd/N of a memfd
 * (closed by rd_fuzz_file_close). Returns the fd, or -1. */
int rd_fuzz_file(const uint8_t *data, size_t size, char *path, size_t path_len);
void rd_fuzz_file_close(int fd);

#endif
