/* Fuzz harness: tokenizer.json loading (runtime/tokenizer_json.c) and, for a file that loads,
 * encoding and decoding (fixed texts and the input's last bytes as text). */
#include <stdlib.h>

#include "fuzz.h"
#include "runtime/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd_tokenizer *tok = NULL;
    char err[512];
    if (rd_tokenizer_load_json((const char *)data, size, &tok, err, sizeof err) != RD_OK)
        return 0;
    size_t n = size < 48 ? size : 48;
    rd_fuzz_exercise_tokenizer(tok, data + size - n, n);
    rd_tokenizer_free(tok);
    return 0;
}
