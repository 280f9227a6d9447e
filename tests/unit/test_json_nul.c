/* Unit test: a NUL byte ("\u0000") inside a JSON string is kept, never cut short. A JSONL
 * prompt "Once\u0000upon" tokenizes as all nine bytes; a tokenizer.json whose vocab, merges,
 * added tokens and unk_token hold NUL bytes encodes and decodes them as the tokens they are
 * (not as byte fallbacks or unknowns); strings used as names (config fields, tokenizer
 * component strings) that hold a NUL byte are refused with a message saying so; and a
 * tokenizer whose vocab holds both a NUL byte and U+FFFF is refused rather than confused. GGUF
 * strings carry their length too: a GGUF vocabulary with NUL bytes in its pieces and merges
 * keeps them. Uses the embedded default model's tokenizer (configs/default) and a GGUF written
 * here; no ../shared needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "runtime/cli.h"
#include "runtime/gguf.h"
#include "runtime/config.h"
#include "runtime/prompts.h"
#include "runtime/tokenizer.h"
#include "test_util.h"

static char g_dir[256];

static struct rd_tokenizer *load_text(const char *json, char *err, int err_len)
{
    struct rd_tokenizer *t = NULL;
    rd_status st = rd_tokenizer_load_json(json, strlen(json), &t, err, err_len);
    return st == RD_OK ? t : NULL;
}

/* JSONL prompts keep a NUL byte inside the text. */
static void test_prompt(void)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/configs/default/tokenizer.json", rd_test_source_dir());
    struct rd_tokenizer *tok = NULL;
    CHECK_MSG(rd_tokenizer_load(path, &tok, err, sizeof err) == RD_OK, "%s", err);
    if (!tok) return;
    struct rd_config cfg;
    rd_config_defaults(&cfg);
    cfg.vocab_size = rd_tokenizer_vocab_size(tok);
    snprintf(path, sizeof path, "%s/prompts.jsonl", g_dir);
    FILE *f = fopen(path, "w");
    fputs("{\"prompt\": \"Once\\u0000upon\"}\n{\"prompt\": \"\\u0000\"}\n", f);
    fclose(f);
    struct rd_args a;
    memset(&a, 0, sizeof a);
    a.prompts_file = path;
    struct rd_prompts p;
    rd_status st = rd_prompts_read(&a, &cfg, tok, 1000, &p, err, sizeof err);
    CHECK_MSG(st == RD_OK && p.n == 2, "%s", err);
    int32_t *want = NULL, *cut = NULL, *nul = NULL;
    int nw = 0, nc = 0, nn = 0;
    CHECK(rd_tokenizer_encode(tok, "Once\0upon", 9, true, &want, &nw) == RD_OK);
    CHECK(rd_tokenizer_encode(tok, "Once", 4, true, &cut, &nc) == RD_OK);
    CHECK(rd_tokenizer_encode(tok, "\0", 1, true, &nul, &nn) == RD_OK);
    if (st == RD_OK && p.n == 2) {
        CHECK_MSG(p.len[0] == nw && !memcmp(p.ids[0], want, (size_t)nw * sizeof *want),
                  "prompt 1 has %d ids, \"Once\\0upon\" has %d (\"Once\" has %d)", p.len[0], nw, nc);
        CHECK(p.len[1] == nn && nn >= 2 && !memcmp(p.ids[1], nul, (size_t)nn * sizeof *nul));
        /* and the NUL byte is there when decoded back */
        char *text = NULL;
        size_t len = 0;
        CHECK(rd_tokenizer_decode_ex(tok, p.ids[0], p.len[0], true, &text, &len) == RD_OK);
        CHECK_MSG(text && len == 9 && !memcmp(text, "Once\0upon", 9), "decoded %zu bytes", len);
        free(text);
        rd_prompts_free(&p);
    }
    free(want), free(cut), free(nul);
    rd_tokenizer_free(tok);
}

/* A vocab, merges (both spellings), an added token and unk_token holding NUL bytes. */
static void test_tokenizer_tokens(void)
{
    const char *json =
        "{\"added_tokens\": [{\"id\": 6, \"content\": \"<x\\u0000y>\", \"special\": true}],"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"\\u0000unk\","
        "  \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0000\": 2, \"a\\u0000\": 3, \"a\\u0000b\": 4,"
        "            \"\\u0000unk\": 5},"
        "  \"merges\": [[\"a\", \"\\u0000\"], \"a\\u0000 b\"]}}";
    char err[512] = "";
    struct rd_tokenizer *t = load_text(json, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    if (!t) return;
    int32_t *ids = NULL;
    int n = 0;
    CHECK(rd_tokenizer_encode(t, "a\0b\0", 4, false, &ids, &n) == RD_OK);
    CHECK_MSG(n == 2 && ids[0] == 4 && ids[1] == 2, "a\\0b\\0 -> %d ids, first %d", n,
              n ? ids[0] : -1);
    free(ids);
    CHECK(rd_tokenizer_encode(t, "z", 1, false, &ids, &n) == RD_OK);
    CHECK_MSG(n == 1 && ids[0] == 5, "an unknown character should be unk_token (5), got %d",
              n ? ids[0] : -1);
    free(ids);
    CHECK(rd_tokenizer_encode(t, "a<x\0y>", 6, false, &ids, &n) == RD_OK);
    CHECK_MSG(n == 2 && ids[0] == 0 && ids[1] == 6, "the added token with a NUL byte: %d ids", n);
    free(ids);
    int32_t dec_ids[] = {4, 2, 6};
    char *text = NULL;
    size_t len = 0;
    CHECK(rd_tokenizer_decode(t, dec_ids, 3, &text, &len) == RD_OK);
    /* no decoder: pieces joined by spaces, as Hugging Face does */
    CHECK_MSG(text && len == 11 && !memcmp(text, "a\0b \0 <x\0y>", 11), "decoded %zu bytes", len);
    free(text);
    rd_tokenizer_free(t);

    /* NUL in a key of another object is carried too; an escaped backslash before "u0000" is
     * not an escape of NUL */
    const char *json2 = "{\"model\": {\"vocab\": {\"\\\\u0000\": 0, \"x\": 1}, \"merges\": []}}";
    t = load_text(json2, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    if (t) {
        CHECK(rd_tokenizer_piece_id(t, "\\u0000") == 0);
        rd_tokenizer_free(t);
    }
}

static void expect_refused(const char *json, const char *needle)
{
    char err[512] = "";
    struct rd_tokenizer *t = load_text(json, err, sizeof err);
    CHECK_MSG(!t, "accepted: %s", json);
    CHECK_MSG(strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
    rd_tokenizer_free(t);
}

static void test_refused(void)
{
    /* U+FFFF as well as a NUL byte in the vocab: ambiguous */
    expect_refused("{\"model\": {\"vocab\": {\"\\u0000\": 0, \"\\uffff\": 1}, \"merges\": []}}",
                   "U+FFFF");
    expect_refused("{\"model\": {\"vocab\": {\"\\u0000\": 0, \"\xEF\xBF\xBF\": 1}, \"merges\": []}}",
                   "U+FFFF");
    /* a component string with a NUL byte */
    expect_refused("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"normalizer\": {\"type\": \"Prepend\", \"prepend\": \"\\u0000\"}}",
                   "\"prepend\" string holds a NUL byte");
    expect_refused("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"pre_tokenizer\": {\"type\": \"Split\", \"behavior\": \"Isolated\","
                   " \"pattern\": {\"Regex\": \"a\\u0000\"}}}",
                   "NUL byte");
    /* a config name holding a NUL byte is refused, not read as "llama" */
    struct rd_config c;
    char err[512] = "";
    rd_status st = rd_config_parse("{\"model_type\": \"llama\\u0000x\", \"hidden_size\": 64, "
                                   "\"intermediate_size\": 128, \"num_hidden_layers\": 1, "
                                   "\"num_attention_heads\": 4, \"vocab_size\": 10}",
                                   NULL, &c, err, sizeof err);
    CHECK_MSG(st == RD_ERR_CONFIG && strstr(err, "model_type") && strstr(err, "NUL"), "%s", err);
}

/* A SentencePiece-kind GGUF vocabulary whose pieces hold NUL bytes: "a\0" encodes as its own
 * piece and decodes back to both bytes. */
static void test_gguf_tokens(void)
{
    static struct rd_gguf_str toks[] = {{5, "<unk>"}, {3, "<s>"},   {4, "</s>"},
                                        {1, "a"},     {1, "\0"},    {2, "a\0"}};
    static float scores[] = {0, 0, 0, -2, -2, -1};
    static int32_t types[] = {RD_TOKEN_TYPE_UNKNOWN, RD_TOKEN_TYPE_CONTROL, RD_TOKEN_TYPE_CONTROL,
                              RD_TOKEN_TYPE_NORMAL, RD_TOKEN_TYPE_NORMAL, RD_TOKEN_TYPE_NORMAL};
    struct rd_gguf_kv kv[6];
    memset(kv, 0, sizeof kv);
    kv[0] = (struct rd_gguf_kv){.key = "tokenizer.ggml.model", .type = RD_GGUF_TYPE_STRING,
                                .v.str = {5, "llama"}};
    kv[1] = (struct rd_gguf_kv){.key = "tokenizer.ggml.tokens", .type = RD_GGUF_TYPE_ARRAY,
                                .arr_type = RD_GGUF_TYPE_STRING, .n = 6, .arr = toks};
    kv[2] = (struct rd_gguf_kv){.key = "tokenizer.ggml.scores", .type = RD_GGUF_TYPE_ARRAY,
                                .arr_type = RD_GGUF_TYPE_FLOAT32, .n = 6, .arr = scores};
    kv[3] = (struct rd_gguf_kv){.key = "tokenizer.ggml.token_type", .type = RD_GGUF_TYPE_ARRAY,
                                .arr_type = RD_GGUF_TYPE_INT32, .n = 6, .arr = types};
    kv[4] = (struct rd_gguf_kv){.key = "tokenizer.ggml.add_space_prefix",
                                .type = RD_GGUF_TYPE_BOOL, .v.b = false};
    kv[5] = (struct rd_gguf_kv){.key = "tokenizer.ggml.add_bos_token", .type = RD_GGUF_TYPE_BOOL,
                                .v.b = false};
    const struct rd_gguf_kv *list[] = {&kv[0], &kv[1], &kv[2], &kv[3], &kv[4], &kv[5]};
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/nul.gguf", g_dir);
    CHECK(rd_test_gguf_write(path, list, 6, NULL, 0));
    struct rd_gguf *g = NULL;
    CHECK_MSG(rd_gguf_open(path, &g, err, sizeof err) == RD_OK, "%s", err);
    struct rd_tokenizer *t = NULL;
    CHECK_MSG(g && rd_tokenizer_load_gguf(g, &t, err, sizeof err) == RD_OK, "%s", err);
    rd_gguf_close(g);
    if (!t) return;
    int32_t *ids = NULL;
    int n = 0;
    CHECK(rd_tokenizer_encode(t, "a\0a", 3, true, &ids, &n) == RD_OK);
    CHECK_MSG(n == 2 && ids[0] == 5 && ids[1] == 3, "\"a\\0a\" -> %d ids, first %d", n,
              n ? ids[0] : -1);
    char *text = NULL;
    size_t len = 0;
    CHECK(n > 0 && rd_tokenizer_decode(t, ids, n, &text, &len) == RD_OK);
    CHECK_MSG(text && len == 3 && !memcmp(text, "a\0a", 3), "decoded %zu bytes", len);
    free(text);
    free(ids);
    rd_tokenizer_free(t);
}

int main(void)
{
    rd_test_tmpdir(g_dir, sizeof g_dir);
    if (!g_dir[0]) {
        fprintf(stderr, "FAIL: cannot make a temporary directory\n");
        return 1;
    }
    test_prompt();
    test_tokenizer_tokens();
    test_refused();
    test_gguf_tokens();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rd_test_finish("test_json_nul");
}
