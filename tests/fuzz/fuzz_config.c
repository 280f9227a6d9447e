/* Fuzz harness: the config parser (runtime/config.c). Any text is parsed; one that parses must
 * also write out (rd_config_to_json), parse back to the same model, and build its rope table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "runtime/config.h"
#include "runtime/rope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct rd_config cfg, back;
    char err[1024];
    if (rd_config_parse(text, "/base", &cfg, err, sizeof err) == RD_OK) {
        char *json = rd_config_to_json(&cfg);
        if (!json || rd_config_parse(json, NULL, &back, err, sizeof err) != RD_OK) {
            fprintf(stderr, "a parsed config does not parse back: %s\n%s\n", err, json);
            abort();
        }
        if (back.hidden_size != cfg.hidden_size || back.n_heads != cfg.n_heads ||
            back.n_kv_heads != cfg.n_kv_heads || back.head_dim != cfg.head_dim ||
            back.rotary_dim != cfg.rotary_dim || back.vocab_size != cfg.vocab_size ||
            back.rope.type != cfg.rope.type || back.rope.theta != cfg.rope.theta) {
            fprintf(stderr, "a config changed on its way back:\n%s\n", json);
            abort();
        }
        free(json);
        static struct rd_rope_table table;
        int len = cfg.max_position_embeddings < 4096 ? cfg.max_position_embeddings : 4096;
        (void)rd_rope_build(&cfg, len, &table);
    }
    free(text);
    return 0;
}
