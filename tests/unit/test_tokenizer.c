/* Unit tests of the tokenizer against the Hugging Face oracle in ../shared/golden/tokenizers
 * (every case: ids without and with special tokens, decode), round trips, the streaming
 * decoder (its pieces are valid UTF-8 and concatenate to the full decode), invalid UTF-8 input,
 * and the SentencePiece tokenizer embedded in stories260K.gguf checked against an independent
 * re-implementation of llama2.c's encoder over tok512.bin. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tokenizer.h"
#include "test_util.h"

static bool ids_equal(const int32_t *a, int na, const json_t *arr)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != na) return false;
    for (int i = 0; i < na; i++)
        if ((int)json_number_value(json_array_get(arr, i)) != a[i]) return false;
    return true;
}

static void print_ids(const char *what, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Streams ids one by one; checks every piece is valid UTF-8 and the whole equals decode. */
static void check_stream(const struct rd_tokenizer *tok, const int32_t *ids, int n, const char *label)
{
    char *full = NULL;
    size_t fl = 0;
    CHECK(rd_tokenizer_decode(tok, ids, n, &full, &fl) == RD_OK);
    struct rd_detok_stream *s = NULL;
    CHECK(rd_detok_stream_new(tok, false, &s) == RD_OK);
    if (!s || !full) {
        free(full);
        return;
    }
    char *acc = calloc(1, fl + 64);
    size_t al = 0;
    bool pieces_valid = true, fits = true;
    for (int i = 0; i <= n; i++) {
        const char *p;
        size_t k;
        rd_status st = i < n ? rd_detok_stream_push(s, ids[i], &p, &k) : rd_detok_stream_flush(s, &p, &k);
        CHECK(st == RD_OK);
        if (st != RD_OK) break;
        if (!rd_utf8_valid(p, k, NULL)) pieces_valid = false;
        if (al + k > fl) {
            fits = false;
            break;
        }
        memcpy(acc + al, p, k);
        al += k;
    }
    CHECK_MSG(pieces_valid, "%s: a streamed piece is not valid UTF-8", label);
    CHECK_MSG(fits && al == fl && memcmp(acc, full, fl) == 0, "%s: stream != decode", label);
    free(acc);
    free(full);
    rd_detok_stream_free(s);
}

static void golden_case(const struct rd_tokenizer *tok, const char *name, const json_t *c, int *pass,
                        int *roundtrip_diff)
{
    const char *text = json_string_value(json_object_get(c, "text"));
    const char *want_dec = json_string_value(json_object_get(c, "decoded"));
    int32_t *ids = NULL, *ids_sp = NULL;
    int n = 0, n_sp = 0;
    bool ok = true;
    CHECK(rd_tokenizer_encode(tok, text, strlen(text), false, &ids, &n) == RD_OK);
    CHECK(rd_tokenizer_encode(tok, text, strlen(text), true, &ids_sp, &n_sp) == RD_OK);
    bool e1 = ids_equal(ids, n, json_object_get(c, "ids"));
    bool e2 = ids_equal(ids_sp, n_sp, json_object_get(c, "ids_with_special"));
    CHECK_MSG(e1, "%s: ids of \"%s\"", name, text);
    CHECK_MSG(e2, "%s: ids_with_special of \"%s\"", name, text);
    if (!e1) print_ids("got", ids, n);
    ok = ok && e1 && e2;
    char *dec = NULL;
    CHECK(rd_tokenizer_decode(tok, ids, n, &dec, NULL) == RD_OK);
    bool d = dec && strcmp(dec, want_dec) == 0;
    CHECK_MSG(d, "%s: decode of \"%s\" gave \"%s\", want \"%s\"", name, text, dec ? dec : "(null)", want_dec);
    ok = ok && d;
    /* decode(encode(s)) == s wherever Hugging Face round-trips too */
    if (strcmp(want_dec, text) == 0) CHECK_MSG(dec && strcmp(dec, text) == 0, "%s: round trip of \"%s\"", name, text);
    else (*roundtrip_diff)++;
    /* the golden ids decode to the golden text as well (independent of our encode) */
    const json_t *gids = json_object_get(c, "ids");
    int gn = (int)json_array_size(gids);
    int32_t *g = malloc(sizeof(int32_t) * (size_t)(gn + 1));
    for (int i = 0; i < gn; i++) g[i] = (int)json_number_value(json_array_get(gids, i));
    char *gdec = NULL;
    CHECK(rd_tokenizer_decode(tok, g, gn, &gdec, NULL) == RD_OK);
    CHECK_MSG(gdec && strcmp(gdec, want_dec) == 0, "%s: decode of golden ids of \"%s\"", name, text);
    check_stream(tok, g, gn, text);
    check_stream(tok, ids_sp, n_sp, text);
    if (ok) (*pass)++;
    free(g);
    free(gdec);
    free(dec);
    free(ids);
    free(ids_sp);
}

static void check_invalid_utf8(const struct rd_tokenizer *tok)
{
    static const char *bad[] = {"\xff", "abc\xc3", "\xed\xa0\x80", "\xc0\xaf", "ok \xe2\x82", "\xf4\x90\x80\x80", "\x80x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        int n = 5;
        CHECK(rd_tokenizer_encode(tok, bad[i], strlen(bad[i]), false, &ids, &n) == RD_ERR_INVALID_ARG);
        CHECK(ids == NULL && n == 0);
    }
    /* an embedded NUL is valid UTF-8 */
    int32_t *ids = NULL;
    int n = 0;
    CHECK(rd_tokenizer_encode(tok, "a\0b", 3, false, &ids, &n) == RD_OK && n >= 2);
    free(ids);
    /* ids outside the vocabulary are an error, not a crash */
    int32_t badid[2] = {-1, 1 << 30};
    char *txt = NULL;
    CHECK(rd_tokenizer_decode(tok, badid, 1, &txt, NULL) == RD_ERR_RANGE);
    CHECK(rd_tokenizer_decode(tok, badid + 1, 1, &txt, NULL) == RD_ERR_RANGE);
}

static void golden_tokenizer(const char *shared, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/tokenizers/%s/tokenizer.json", shared, name);
    char err[512] = "";
    struct rd_tokenizer *tok = NULL;
    rd_status st = rd_tokenizer_load(path, &tok, err, sizeof err);
    CHECK_MSG(st == RD_OK, "%s: %s", name, err);
    if (!tok) return;
    snprintf(path, sizeof path, "%s/golden/tokenizers/%s/expected.json", shared, name);
    json_t *exp = rd_test_load_json(path);
    CHECK(exp != NULL);
    const json_t *cases = json_object_get(exp, "cases"), *c;
    int pass = 0, total = 0, rt = 0;
    size_t c_i;
    json_array_foreach(cases, c_i, c) {
        golden_case(tok, name, c, &pass, &rt);
        total++;
    }
    CHECK(total >= 45);
    printf("%s: %d/%d golden cases identical (ids, ids_with_special, decode); %d cases where HF's "
           "decode differs from the input too\n", name, pass, total, rt);
    CHECK(rd_tokenizer_bos(tok) >= 0);
    check_invalid_utf8(tok);
    json_decref(exp);
    rd_tokenizer_free(tok);
}

/* ---- llama2.c's encoder over tok512.bin, as an independent oracle for the GGUF tokenizer ---- */

struct l2c_vocab {
    int n;
    char **str;
    float *score;
};

static bool l2c_load(const char *path, int n, struct l2c_vocab *v)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    int32_t maxlen;
    bool ok = fread(&maxlen, 4, 1, f) == 1;
    v->n = n;
    v->str = calloc((size_t)n, sizeof *v->str);
    v->score = calloc((size_t)n, sizeof *v->score);
    for (int i = 0; i < n && ok; i++) {
        int32_t len;
        ok = fread(&v->score[i], 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1 && len >= 0 && len <= maxlen;
        if (!ok) break;
        v->str[i] = calloc(1, (size_t)len + 1);
        ok = fread(v->str[i], 1, (size_t)len, f) == (size_t)len;
    }
    fclose(f);
    return ok;
}

static int l2c_lookup(const struct l2c_vocab *v, const char *s)
{
    for (int i = 0; i < v->n; i++)
        if (v->str[i] && strcmp(v->str[i], s) == 0) return i;
    return -1;
}

/* llama2.c encode(): dummy " " prefix, one token per UTF-8 char (or byte + 3), then merge the
 * best-scoring adjacent pair (leftmost on ties) until none merges. */
static int l2c_encode(const struct l2c_vocab *v, const char *text, int *out)
{
    int n = 0;
    char buf[512];
    if (text[0]) out[n++] = l2c_lookup(v, " ");
    for (const char *c = text; *c;) {
        int k = 1;
        while (((unsigned char)c[k] & 0xC0) == 0x80 && k < 4) k++;
        memcpy(buf, c, (size_t)k);
        buf[k] = 0;
        int id = l2c_lookup(v, buf);
        if (id >= 0) out[n++] = id;
        else
            for (int j = 0; j < k; j++) out[n++] = (unsigned char)c[j] + 3;
        c += k;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_i = -1;
        for (int i = 0; i + 1 < n; i++) {
            snprintf(buf, sizeof buf, "%s%s", v->str[out[i]], v->str[out[i + 1]]);
            int id = l2c_lookup(v, buf);
            if (id >= 0 && v->score[id] > best) {
                best = v->score[id];
                best_id = id;
                best_i = i;
            }
        }
        if (best_i < 0) break;
        out[best_i] = best_id;
        memmove(out + best_i + 1, out + best_i + 2, sizeof(int) * (size_t)(n - best_i - 2));
        n--;
    }
    return n;
}

static void gguf_tokenizer(const char *shared)
{
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared);
    struct rd_tokenizer *tok = NULL;
    rd_status st = rd_tokenizer_load(path, &tok, err, sizeof err);
    CHECK_MSG(st == RD_OK, "stories260K.gguf: %s", err);
    if (!tok) return;
    CHECK(rd_tokenizer_vocab_size(tok) == 512);
    CHECK(rd_tokenizer_bos(tok) == 1 && rd_tokenizer_eos(tok) == 2);

    struct l2c_vocab v = {0};
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", shared);
    bool have = l2c_load(path, 512, &v);
    CHECK(have);
    /* the GGUF's pieces are tok512.bin's with ' ' written as ▁ */
    int same = 0;
    for (int i = 0; have && i < 512; i++) {
        const char *p = rd_tokenizer_piece(tok, i);
        char conv[256];
        size_t o = 0;
        for (size_t j = 0; p && p[j] && o + 1 < sizeof conv;) {
            if (strncmp(p + j, "\xE2\x96\x81", 3) == 0) {
                conv[o++] = ' ';
                j += 3;
            } else {
                conv[o++] = p[j++];
            }
        }
        conv[o] = 0;
        /* llama2.c's exporter wrote BOS and EOS as "\n<s>\n" and "\n</s>\n" */
        const char *want = v.str[i];
        if (strcmp(want, "\n<s>\n") == 0) want = "<s>";
        if (strcmp(want, "\n</s>\n") == 0) want = "</s>";
        same += p && strcmp(conv, want) == 0;
    }
    CHECK_MSG(same == 512, "%d/512 GGUF pieces match tok512.bin", same);

    static const char *texts[] = {"Once upon a time", "Once upon a time, there was a little girl named Lily.",
                                  "She loved to play outside in the park.", "Tom and Sue's big red ball!",
                                  "  two leading spaces", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "a\nb\n\nc", ""};
    for (size_t t = 0; have && t < sizeof texts / sizeof texts[0]; t++) {
        int want[1024];
        int wn = l2c_encode(&v, texts[t], want);
        int32_t *ids = NULL;
        int n = 0;
        CHECK(rd_tokenizer_encode(tok, texts[t], strlen(texts[t]), false, &ids, &n) == RD_OK);
        bool eq = n == wn;
        for (int i = 0; eq && i < n; i++) eq = ids[i] == want[i];
        CHECK_MSG(eq, "stories260K: \"%s\" differs from llama2.c's encoding", texts[t]);
        if (!eq) print_ids("got", ids, n);
        char *dec = NULL;
        CHECK(rd_tokenizer_decode(tok, ids, n, &dec, NULL) == RD_OK);
        CHECK_MSG(dec && strcmp(dec, texts[t]) == 0, "stories260K: round trip of \"%s\" gave \"%s\"", texts[t], dec);
        check_stream(tok, ids, n, texts[t]);
        free(dec);
        free(ids);
    }
    int32_t *ids = NULL;
    int n = 0;
    CHECK(rd_tokenizer_encode(tok, "Once upon a time", 16, true, &ids, &n) == RD_OK);
    CHECK(n >= 2 && ids[0] == 1);
    printf("stories260K: \"Once upon a time\" ->");
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
    char *dec = NULL;
    CHECK(rd_tokenizer_decode_ex(tok, ids, n, true, &dec, NULL) == RD_OK);
    CHECK(dec && strcmp(dec, "Once upon a time") == 0);
    free(dec);
    free(ids);

    /* every golden text round-trips through the byte-fallback SentencePiece tokenizer, except
     * those holding literal special-token text */
    snprintf(path, sizeof path, "%s/golden/tok_tests.json", shared);
    json_t *tests = rd_test_load_json(path), *e;
    int rt = 0, rt_total = 0;
    size_t e_i;
    json_array_foreach(tests, e_i, e) {
        const char *s = json_string_value(e);
        if (!s || strstr(s, "<s>") || strstr(s, "</s>") || strstr(s, "<unk>")) continue;
        rt_total++;
        CHECK(rd_tokenizer_encode(tok, s, strlen(s), true, &ids, &n) == RD_OK);
        CHECK(rd_tokenizer_decode_ex(tok, ids, n, true, &dec, NULL) == RD_OK);
        bool ok = dec && strcmp(dec, s) == 0;
        CHECK_MSG(ok, "stories260K: round trip of \"%s\" gave \"%s\"", s, dec ? dec : "(null)");
        rt += ok;
        check_stream(tok, ids, n, s);
        free(dec);
        free(ids);
    }
    printf("stories260K: %d/%d golden texts round-trip\n", rt, rt_total);
    json_decref(tests);
    for (int i = 0; i < v.n; i++) free(v.str ? v.str[i] : NULL);
    free(v.str);
    free(v.score);
    rd_tokenizer_free(tok);
}

/* The gpt2 kind of rd_tokenizer_from_vocab (what a Llama 3 GGUF holds), built from the golden
 * byte-level tokenizer's vocab and merges, must reproduce the same golden ids. */
static void gpt2_from_vocab(const char *shared)
{
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/golden/tokenizers/bytelevel_bpe/tokenizer.json", shared);
    json_t *tj = rd_test_load_json(path);
    snprintf(path, sizeof path, "%s/golden/tokenizers/bytelevel_bpe/expected.json", shared);
    json_t *exp = rd_test_load_json(path);
    CHECK(tj && exp);
    if (!tj || !exp) return;
    const json_t *model = json_object_get(tj, "model");
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges"), *e;
    int nv = (int)json_object_size(vocab), nm = (int)json_array_size(merges);
    const char **toks = calloc((size_t)nv, sizeof *toks);
    int32_t *types = calloc((size_t)nv, sizeof *types);
    char **mer = calloc((size_t)nm, sizeof *mer);
    const char *key;
    json_object_foreach((json_t *)vocab, key, e) {
        int id = (int)json_number_value(e);
        if (id >= 0 && id < nv) {
            toks[id] = key;
            types[id] = id <= 1 ? RD_TOKEN_TYPE_CONTROL : RD_TOKEN_TYPE_NORMAL;
        }
    }
    int k = 0;
    size_t e_i;
    json_array_foreach(merges, e_i, e) {
        const char *a = json_is_array(e) ? json_string_value(json_array_get(e, 0)) : json_string_value(e);
        const char *b = json_is_array(e) ? json_string_value(json_array_get(e, 1)) : "";
        mer[k] = malloc(strlen(a) + strlen(b) + 2);
        sprintf(mer[k], json_is_array(e) ? "%s %s" : "%s%s", a, b);
        k++;
    }
    struct rd_tokenizer_vocab v = {.model = "gpt2", .pre = "llama-bpe", .n_tokens = nv, .tokens = toks,
                                   .types = types, .n_merges = nm, .merges = (const char *const *)mer,
                                   .bos_id = 0, .eos_id = 1, .unk_id = -1, .pad_id = -1, .add_bos = true};
    struct rd_tokenizer *tok = NULL;
    CHECK_MSG(rd_tokenizer_from_vocab(&v, &tok, err, sizeof err) == RD_OK, "%s", err);
    int pass = 0, total = 0;
    json_t *cases = tok ? json_object_get(exp, "cases") : NULL;
    json_array_foreach(cases, e_i, e) {
        const char *text = json_string_value(json_object_get(e, "text"));
        int32_t *ids = NULL, *ids_sp = NULL;
        int n = 0, n_sp = 0;
        CHECK(rd_tokenizer_encode(tok, text, strlen(text), false, &ids, &n) == RD_OK);
        CHECK(rd_tokenizer_encode(tok, text, strlen(text), true, &ids_sp, &n_sp) == RD_OK);
        bool ok = ids_equal(ids, n, json_object_get(e, "ids")) &&
                  ids_equal(ids_sp, n_sp, json_object_get(e, "ids_with_special"));
        char *dec = NULL;
        CHECK(rd_tokenizer_decode(tok, ids, n, &dec, NULL) == RD_OK);
        ok = ok && dec && strcmp(dec, json_string_value(json_object_get(e, "decoded"))) == 0;
        CHECK_MSG(ok, "gpt2 from vocab: \"%s\"", text);
        pass += ok;
        total++;
        free(dec);
        free(ids);
        free(ids_sp);
    }
    printf("gpt2 kind from raw vocab/merges (llama-bpe pre-tokenizer): %d/%d golden cases identical\n", pass, total);
    rd_tokenizer_free(tok);
    for (int i = 0; i < nm; i++) free(mer[i]);
    free(mer);
    free(toks);
    free(types);
    json_decref(tj);
    json_decref(exp);
}

static void bad_files(void)
{
    char err[256] = "";
    struct rd_tokenizer *tok = (struct rd_tokenizer *)1;
    CHECK(rd_tokenizer_load("/nonexistent/tokenizer.json", &tok, err, sizeof err) == RD_ERR_IO && !tok);
    CHECK(rd_tokenizer_load_json("{not json", 9, &tok, err, sizeof err) == RD_ERR_FORMAT && !tok);
    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    CHECK(rd_tokenizer_load_json(wp, strlen(wp), &tok, err, sizeof err) != RD_OK);
    const char *bad_merge = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}";
    CHECK(rd_tokenizer_load_json(bad_merge, strlen(bad_merge), &tok, err, sizeof err) == RD_ERR_FORMAT);
    /* a minimal byte-level-free BPE with no decoder joins pieces with spaces, like HF */
    const char *mini = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                       "\"merges\": [[\"a\", \"b\"]]}}";
    CHECK(rd_tokenizer_load_json(mini, strlen(mini), &tok, err, sizeof err) == RD_OK);
    if (tok) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK(rd_tokenizer_encode(tok, "abab", 4, true, &ids, &n) == RD_OK && n == 2 && ids[0] == 2);
        char *d = NULL;
        CHECK(rd_tokenizer_decode(tok, ids, n, &d, NULL) == RD_OK && d && strcmp(d, "ab ab") == 0);
        free(d);
        free(ids);
        rd_tokenizer_free(tok);
    }
}

int main(void)
{
    bad_files();
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    golden_tokenizer(shared, "bytelevel_bpe");
    golden_tokenizer(shared, "sentencepiece_bpe");
    gguf_tokenizer(shared);
    gpt2_from_vocab(shared);
    return rd_test_finish("test_tokenizer");
}
