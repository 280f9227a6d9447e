/* NUL bytes in the object keys of a tokenizer.json (a vocab token holding "\u0000"), which
 * jansson cannot hold: before parsing, each "\u0000" escape inside a key is rewritten, in a copy
 * of the text, as "\uffff" (U+FFFF, a noncharacter; the same six bytes, so nothing moves), and
 * the vocab reader turns each U+FFFF of a key back into a NUL byte. A text that holds U+FFFF
 * itself as well (raw or escaped) is refused, since the two could not be told apart. A string
 * is a key when the next thing after its closing quote is ':'; escapes are walked one by one,
 * so an escaped backslash before "u0000" is not taken for an escape of NUL. */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/tokenizer_impl.h"

#define MARK "\xEF\xBF\xBF" /* U+FFFF in UTF-8 */

/* Walks the string whose text starts at i (just past its opening quote) to its closing quote,
 * returning that index (len when unterminated). *nul: whether it holds a "\u0000" escape;
 * *mark: whether it holds a "\uffff" one. With out, each "\u0000" is rewritten there. */
static size_t walk_string(const char *t, size_t len, size_t i, bool *nul, bool *mark, char *out)
{
    while (i < len && t[i] != '"') {
        if (t[i] != '\\') {
            i++;
        } else if (i + 6 <= len && t[i + 1] == 'u') {
            if (!memcmp(t + i, "\\u0000", 6)) {
                *nul = true;
                if (out) memcpy(out + i, "\\uffff", 6);
            }
            *mark |= !strncasecmp(t + i, "\\uffff", 6);
            i += 6;
        } else {
            i += 2; /* any other escape, including an escaped backslash or quote */
        }
    }
    return i < len ? i : len;
}

/* Whether the text after a closing quote continues with ':' (the string was a key). */
static bool key_follows(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i < n && s[i] == ':';
}

rd_status tok_json_mark_nul_keys(const char *text, size_t len, char **copy, char *err,
                                 int err_len)
{
    *copy = NULL;
    if (!memmem(text, len, "\\u0000", 6)) return RD_OK; /* the common case: nothing to do */
    bool mark = memmem(text, len, MARK, 3) != NULL;
    char *out = NULL;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '"') continue;
        bool nul = false;
        size_t end = walk_string(text, len, i + 1, &nul, &mark, NULL);
        if (nul && end < len && key_follows(text + end + 1, len - end - 1)) {
            if (!out) {
                if (!(out = malloc(len + 1))) return RD_ERR_OOM;
                memcpy(out, text, len);
                out[len] = 0;
            }
            walk_string(text, len, i + 1, &nul, &mark, out);
        }
        i = end;
    }
    if (out && mark) {
        free(out);
        tok_err(err, err_len, "tokenizer.json: a vocab token holds a NUL byte (\\u0000) and the "
                "file also holds U+FFFF; ropedist cannot load both");
        return RD_ERR_UNSUPPORTED;
    }
    *copy = out;
    return RD_OK;
}

const char *tok_json_real_key(const char *key, size_t *n, struct bytebuf *buf)
{
    *n = strlen(key);
    if (!memmem(key, *n, MARK, 3)) return key;
    buf->n = 0;
    for (size_t i = 0; i < *n;) {
        static const char zero = 0;
        bool m = i + 3 <= *n && !memcmp(key + i, MARK, 3);
        if (bb_put(buf, m ? &zero : key + i, 1) != RD_OK) return NULL;
        i += m ? 3 : 1;
    }
    *n = buf->n;
    return buf->p;
}
