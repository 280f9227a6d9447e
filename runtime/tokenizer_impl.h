/* Inside the tokenizer: the struct every tokenizer_*.c file shares, the small containers they
 * use (a string hash map, a pair hash map, growable byte and id buffers, a list of pieces) and
 * the internal entry points between the files. Not for use outside runtime/tokenizer*.c. */
#ifndef RD_TOKENIZER_IMPL_H
#define RD_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/tokenizer.h"

/* Token ids and merge ranks are below this (4M; the largest vocabularies hold ~260k tokens):
 * the id-indexed arrays are sized by the largest id, so a file cannot make them huge. */
#define RD_TOK_MAX_ID (1 << 22)

/* ---- containers ---- */

/* Open-addressing map from byte strings to int32 values; it owns copies of its keys; a second
 * put of a key replaces its value. */
struct strmap {
    uint32_t cap, n;
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
};
void strmap_free(struct strmap *m);
rd_status strmap_put(struct strmap *m, const char *key, uint32_t len, int32_t val);
int32_t strmap_get(const struct strmap *m, const char *key, size_t len); /* -1 when absent */

/* Map from a pair of token ids to a merge (its rank and the id of the merged token). */
struct pairmap {
    uint32_t cap, n;
    uint64_t *keys; /* (left << 32 | right) + 1; 0 = empty */
    int32_t *rank, *new_id;
};
void pairmap_free(struct pairmap *m);
rd_status pairmap_put(struct pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t new_id);
bool pairmap_get(const struct pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *new_id);

struct bytebuf {
    char *p;
    size_t n, cap;
};
rd_status bb_put(struct bytebuf *b, const void *s, size_t n);

struct idbuf {
    int32_t *p;
    int n, cap;
};
rd_status ib_push(struct idbuf *b, int32_t id);

/* A list of owned byte strings (the pieces a pre-tokenizer produces). */
struct piece {
    char *s;
    size_t n;
    bool at_start; /* begins at offset 0 of the original input (Metaspace "first") */
};
struct pieces {
    struct piece *p;
    int n, cap;
};
rd_status pieces_add(struct pieces *l, const char *s, size_t n, bool at_start);
void pieces_free(struct pieces *l);

/* out = s[0..n) with every from replaced by to */
rd_status replace_all(const char *s, size_t n, const char *from, const char *to, struct bytebuf *out);

/* ---- UTF-8 ---- */

/* Length of the UTF-8 sequence at s[0..n): > 0 a valid sequence of that length; 0 an incomplete
 * but so far valid prefix (needs more bytes); < 0 invalid, -k meaning the maximal invalid
 * subpart is k bytes (one U+FFFD replaces it, as Rust's from_utf8_lossy does). */
int utf8_seq(const uint8_t *s, size_t n);
/* Appends the lossy UTF-8 conversion of s[0..n) to out; when hold is true an incomplete tail is
 * not converted and its length is returned in *held (it stays at s + n - *held). */
rd_status utf8_lossy(struct bytebuf *out, const uint8_t *s, size_t n, bool hold, size_t *held);

/* ---- the tokenizer ---- */

enum model_kind { MODEL_BPE_RANK, MODEL_SPM_SCORE };
enum norm_kind { NORM_PREPEND, NORM_REPLACE };
enum pre_kind { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum split_behavior { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum dec_kind { DEC_NONE, DEC_BYTELEVEL, DEC_PIECES };
enum prepend_scheme { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

struct normalizer {
    enum norm_kind kind;
    char *a, *b; /* PREPEND: a; REPLACE: a -> b */
};

struct pretok {
    enum pre_kind kind;
    pcre2_code *re;          /* SPLIT with a regex, BYTELEVEL with use_regex */
    char *literal;           /* SPLIT with a String pattern */
    enum split_behavior behavior;
    bool invert;
    bool add_prefix_space;   /* BYTELEVEL */
    char *replacement;       /* METASPACE */
    enum prepend_scheme scheme;
    bool split;              /* METASPACE */
};

struct added_token {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
};

struct rd_tokenizer {
    enum model_kind model;
    int n_vocab;                 /* max id + 1 over model and added tokens */
    char **piece;                /* [n_vocab] owned, NUL-terminated; NULL for holes */
    uint32_t *piece_len;
    uint8_t *is_special;         /* [n_vocab] */
    struct strmap vocab;         /* model vocabulary: piece -> id */
    float *score;                /* [n_vocab] SPM_SCORE */
    struct pairmap merges;       /* BPE_RANK */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    int32_t byte_id[256];        /* <0xNN> in the model vocab, -1 when absent */

    struct added_token *added;
    int n_added;
    uint8_t added_first[256];    /* 1 where some added token starts with that byte */

    struct normalizer *norm;
    int n_norm;
    struct pretok *pre;
    int n_pre;
    bool spm_prefix_space;       /* SPM_SCORE: prepend "▁" to each text segment */

    int32_t *post_pre, *post_post; /* ids the post-processor puts before / after a sequence */
    int n_post_pre, n_post_post;
    int32_t bos_id, eos_id;

    enum dec_kind dec;
    char **dec_from, **dec_to;   /* DEC_PIECES: per-token string replacements, in order */
    int n_dec_replace;
    bool dec_byte_fallback;
    int dec_strip_start;         /* leading ' ' stripped from the whole output */
    char *dec_strip_content;     /* the char Strip removes (UTF-8) */
    char *dec_meta_first;        /* Metaspace decoder: remove this from the first token */
};

/* the byte-level map of GPT-2: byte -> UTF-8 of its printable stand-in (returns its length) */
int bytelevel_char(uint8_t b, char out[4]);
/* the reverse: codepoint -> byte, or -1 */
int bytelevel_byte(uint32_t cp);

/* pre-tokenizer regexes of GPT-2 and Llama 3 */
extern const char *const tok_regex_gpt2;
extern const char *const tok_regex_llama3;

/* decode one valid UTF-8 char at s (of length k from utf8_seq) */
uint32_t utf8_cp(const uint8_t *s, int k);

/* tokenizer.c */
struct rd_tokenizer *tok_alloc(void);
rd_status tok_set_piece(struct rd_tokenizer *t, int32_t id, const char *s, size_t n);
rd_status tok_finish(struct rd_tokenizer *t, char *err, int err_len); /* byte ids, bos/eos */
void tok_err(char *err, int err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
pcre2_code *tok_compile_regex(const char *pattern, char *err, int err_len);

/* tokenizer_json_keys.c: NUL bytes in tokenizer.json keys. When an object key of text holds
 * "\u0000", *copy gets the text with each such escape in a key replaced by "\uffff" (else *copy
 * stays NULL); a text that also holds U+FFFF is refused. tok_json_real_key gives a key of such
 * a text as the document meant it (U+FFFF back to NUL bytes, into buf), its length in *n. */
rd_status tok_json_mark_nul_keys(const char *text, size_t len, char **copy, char *err,
                                 int err_len);
const char *tok_json_real_key(const char *key, size_t *n, struct bytebuf *buf);

/* tokenizer_model.c: the models and the pre-tokenizers */
rd_status model_bpe_word(const struct rd_tokenizer *t, const char *w, size_t n, struct idbuf *out);
rd_status model_spm_word(const struct rd_tokenizer *t, const char *w, size_t n, struct idbuf *out);
rd_status pretok_apply(const struct rd_tokenizer *t, const struct pretok *p, struct pieces *in,
                       struct pieces *out);

#endif
