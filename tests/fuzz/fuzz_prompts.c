/* Fuzz harness: the JSONL prompts reader (runtime/prompts.c, --prompts FILE) on a file holding
 * the input, with the embedded default model's tokenizer for text prompts. Every prompt it
 * accepts is within the vocabulary and the context. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/prompts.h"
#include "runtime/tokenizer.h"

static struct rd_tokenizer *g_tok;
static struct rd_config g_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[512];
    if (rd_tokenizer_load(RD_FUZZ_SOURCE_DIR "/configs/default/tokenizer.json", &g_tok, err,
                          sizeof err) != RD_OK)
        abort();
    rd_config_defaults(&g_cfg);
    g_cfg.vocab_size = rd_tokenizer_vocab_size(g_tok);
    g_cfg.bos_token_id = rd_tokenizer_bos(g_tok);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAX_CTX = 512 };
    char path[64], err[1024];
    int fd = rd_fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    struct rd_args a;
    memset(&a, 0, sizeof a);
    a.prompts_file = path;
    struct rd_prompts p;
    if (rd_prompts_read(&a, &g_cfg, g_tok, MAX_CTX, &p, err, sizeof err) == RD_OK) {
        for (int i = 0; i < p.n; i++) {
            if (p.len[i] < 1 || p.len[i] > MAX_CTX) abort();
            for (int j = 0; j < p.len[i]; j++)
                if (p.ids[i][j] < 0 || p.ids[i][j] >= g_cfg.vocab_size) abort();
        }
        rd_prompts_free(&p);
    }
    rd_fuzz_file_close(fd);
    return 0;
}
