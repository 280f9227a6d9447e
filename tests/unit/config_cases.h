/* The parser harness the config tests share (test_config.c, test_config_errors.c): a small
 * valid config (k_base) and parse_edit, which parses it with edits (a key set to some JSON, or
 * removed), so each case says only what it changes. Header-only (static inline) because no
 * other test wants it. */
#ifndef RD_TEST_CONFIG_CASES_H
#define RD_TEST_CONFIG_CASES_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/config.h"
#include "test_util.h"

#define ERR_LEN 1024
#define BASE_DIR "/base/dir"

/* D 64, F 176, 2 layers, 4 heads of 16: the smallest config that parses */
static const char *const k_base =
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 176,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 256}";

/* Parses k_base with edits: (key, JSON value) pairs ending with a NULL key; a NULL value
 * removes the key. */
static inline rd_status parse_editv(struct rd_config *cfg, char *err, va_list ap)
{
    json_t *root = rd_test_parse_json(k_base);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);
        json_object_del(root, key);
        if (!val) continue;
        json_t *v = rd_test_parse_json(val);
        if (!v) {
            fprintf(stderr, "test bug: edit %s=%s is not JSON\n", key, val);
            exit(2);
        }
        json_object_set_new(root, key, v);
    }
    char *txt = rd_test_json_compact(root);
    json_decref(root);
    err[0] = 0;
    rd_status st = rd_config_parse(txt, BASE_DIR, cfg, err, ERR_LEN);
    free(txt);
    return st;
}

static inline rd_status parse_edit(struct rd_config *cfg, char *err, ...)
{
    va_list ap;
    va_start(ap, err);
    rd_status st = parse_editv(cfg, err, ap);
    va_end(ap);
    return st;
}

#endif
