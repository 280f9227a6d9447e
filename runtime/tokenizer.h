/* The tokenizer: text to token ids and back, matching Hugging Face tokenizers exactly for the
 * Llama families, with no Python at run time.
 *
 * Two sources:
 * - a Hugging Face tokenizer.json with a BPE model: byte-level (Llama 3 / GPT-2: Split
 *   pre-tokenizer regex + ByteLevel, merges by rank, ignore_merges) or SentencePiece-style
 *   (Llama 2: Prepend("▁") + Replace(" ", "▁") normalizer, or Metaspace, BPE with byte_fallback
 *   <0xNN> tokens). Added tokens are split out of the text first (longest match, honouring
 *   lstrip / rstrip / single_word); the post-processor (TemplateProcessing, Roberta/Bert,
 *   ByteLevel, Sequence) decides BOS/EOS for add_special.
 * - a GGUF file's tokenizer.ggml.* metadata (or the same arrays handed over directly):
 *   model "llama" is SentencePiece BPE by score (llama.cpp's algorithm: merge the adjacent pair
 *   whose merged piece has the highest score, leftmost first; unknown characters fall back to
 *   <0xNN> byte tokens), model "gpt2" is byte-level BPE by merge rank with the pre-tokenizer
 *   regex named by tokenizer.ggml.pre.
 *
 * Decoding follows the tokenizer's decoder (ByteLevel; Replace/ByteFallback/Fuse/Strip;
 * Metaspace): rd_tokenizer_decode equals HF decode(ids, skip_special_tokens=False) and the
 * streaming decoder (rd_detok_stream) emits exactly the same bytes, piece by piece, holding back
 * bytes that cannot be decided yet (an incomplete UTF-8 sequence, a run of <0xNN> byte tokens,
 * the leading space that the decoder strips). Input to encode must be valid UTF-8
 * (RD_ERR_INVALID_ARG otherwise). A tokenizer is immutable after loading and may be shared by
 * threads; a stream belongs to one thread. */
#ifndef RD_TOKENIZER_H
#define RD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

struct rd_tokenizer;
struct rd_gguf;

/* Loads a tokenizer.json (or any JSON file) or a .gguf, chosen by the file's first bytes. On
 * error err (when not NULL) says why. */
rd_status rd_tokenizer_load(const char *path, struct rd_tokenizer **out, char *err, int err_len);
/* len bytes of tokenizer.json text; tokens keep their exact bytes, NUL bytes included. */
rd_status rd_tokenizer_load_json(const char *json_text, size_t len, struct rd_tokenizer **out,
                                 char *err, int err_len);
rd_status rd_tokenizer_load_gguf(const struct rd_gguf *g, struct rd_tokenizer **out, char *err,
                                 int err_len);

/* GGUF token types (tokenizer.ggml.token_type), as llama.cpp numbers them. */
enum rd_token_type {
    RD_TOKEN_TYPE_UNDEFINED = 0,
    RD_TOKEN_TYPE_NORMAL = 1,
    RD_TOKEN_TYPE_UNKNOWN = 2,
    RD_TOKEN_TYPE_CONTROL = 3,
    RD_TOKEN_TYPE_USER_DEFINED = 4,
    RD_TOKEN_TYPE_UNUSED = 5,
    RD_TOKEN_TYPE_BYTE = 6,
};

/* What a GGUF reader (or anyone holding raw vocab arrays) hands over. Arrays are copied. */
struct rd_tokenizer_vocab {
    const char *model;          /* "llama" (SentencePiece, by score) or "gpt2" (byte-level BPE) */
    const char *pre;            /* gpt2: pre-tokenizer name ("llama-bpe", "gpt2", ...); NULL = gpt2 */
    int n_tokens;
    const char *const *tokens;  /* [n_tokens] pieces */
    const size_t *token_lens;   /* [n_tokens] their lengths (a piece may hold NUL bytes); NULL:
                                 * the pieces are NUL-terminated */
    const float *scores;        /* [n_tokens] llama: merge priority; may be NULL for gpt2 */
    const int32_t *types;       /* [n_tokens] enum rd_token_type; NULL = all normal */
    int n_merges;               /* gpt2: merges "left right", rank = index */
    const char *const *merges;
    const size_t *merge_lens;   /* [n_merges] their lengths; NULL: NUL-terminated */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 = none */
    bool add_bos, add_eos;
    bool add_space_prefix;      /* llama: prepend "▁" to each text segment (SentencePiece default) */
};
rd_status rd_tokenizer_from_vocab(const struct rd_tokenizer_vocab *v, struct rd_tokenizer **out,
                                  char *err, int err_len);

void rd_tokenizer_free(struct rd_tokenizer *tok); /* NULL: nothing */

/* Encodes len bytes of UTF-8 text into *ids (malloc'd, caller frees; non-NULL even when
 * *n == 0). add_special applies the post-processor (BOS/EOS). */
rd_status rd_tokenizer_encode(const struct rd_tokenizer *tok, const char *text, size_t len,
                              bool add_special, int32_t **ids, int *n);

/* Decodes ids into *text (malloc'd, NUL-terminated; len may be NULL). Special tokens are
 * decoded as their text unless skip_special (HF's skip_special_tokens). Ids outside the vocab
 * are RD_ERR_RANGE. */
rd_status rd_tokenizer_decode(const struct rd_tokenizer *tok, const int32_t *ids, int n,
                              char **text, size_t *len);
rd_status rd_tokenizer_decode_ex(const struct rd_tokenizer *tok, const int32_t *ids, int n,
                                 bool skip_special, char **text, size_t *len);

int rd_tokenizer_vocab_size(const struct rd_tokenizer *tok); /* max id + 1 */
int32_t rd_tokenizer_bos(const struct rd_tokenizer *tok);    /* -1 when none */
int32_t rd_tokenizer_eos(const struct rd_tokenizer *tok);    /* -1 when none */
/* The token's stored piece (e.g. "Ġthe", "▁the", "<0x0A>", "<s>"), or NULL for an unknown id. */
const char *rd_tokenizer_piece(const struct rd_tokenizer *tok, int32_t id);
/* The id of an exact piece, or -1. */
int32_t rd_tokenizer_piece_id(const struct rd_tokenizer *tok, const char *piece);
bool rd_tokenizer_is_special(const struct rd_tokenizer *tok, int32_t id);

/* Streaming decoder: push ids one at a time; each push returns (in *out, borrowed until the
 * next call) the bytes that are now final. The concatenation of everything returned by the
 * pushes and the final flush equals rd_tokenizer_decode_ex of all ids. */
struct rd_detok_stream;
rd_status rd_detok_stream_new(const struct rd_tokenizer *tok, bool skip_special,
                              struct rd_detok_stream **out);
rd_status rd_detok_stream_push(struct rd_detok_stream *s, int32_t id, const char **out,
                               size_t *len);
/* Emits whatever is held back (an incomplete UTF-8 tail becomes U+FFFD, as in decode) and
 * resets the stream for a new sequence. */
rd_status rd_detok_stream_flush(struct rd_detok_stream *s, const char **out, size_t *len);
void rd_detok_stream_free(struct rd_detok_stream *s);

/* UTF-8 helpers shared with the tools: true when the bytes are valid UTF-8 (no surrogates, no
 * overlongs); *bad_at gets the first bad offset otherwise. */
bool rd_utf8_valid(const char *s, size_t len, size_t *bad_at);

#endif
