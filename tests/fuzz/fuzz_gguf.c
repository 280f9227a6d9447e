/* Fuzz harness: the GGUF reader over a buffer (runtime/gguf.c), then what ropedist takes from a
 * GGUF: the llama config (runtime/gguf_model.c) and the tokenizer (runtime/tokenizer_gguf.c),
 * which is exercised like any tokenizer. */
#include <stdlib.h>

#include "fuzz.h"
#include "runtime/gguf.h"
#include "runtime/gguf_model.h"
#include "runtime/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd_gguf *g = NULL;
    char err[512];
    if (rd_gguf_open_buffer(data, size, &g, err, sizeof err) != RD_OK) return 0;
    struct rd_config cfg;
    (void)rd_gguf_model_config(g, &cfg, err, sizeof err);
    struct rd_tokenizer *tok = NULL;
    if (rd_tokenizer_load_gguf(g, &tok, err, sizeof err) == RD_OK) {
        rd_fuzz_exercise_tokenizer(tok, data, size < 48 ? size : 48);
        rd_tokenizer_free(tok);
    }
    rd_gguf_close(g);
    return 0;
}
