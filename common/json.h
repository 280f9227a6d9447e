/* JSON for every reader and writer in ropedist, through jansson (libjansson-dev).
 *
 * Strings keep their length: "\u0000" inside a string value is a NUL byte of the string
 * (jansson's JSON_ALLOW_NUL), so readers take json_string_length(), never strlen(). jansson
 * cannot hold a NUL byte in an object key; such a document is refused with a message saying
 * so (the tokenizer.json reader works around it for vocab keys, see tokenizer_json.c).
 * Documents nest at most RD_JSON_MAX_DEPTH levels. A parse error comes back as one line naming
 * the cause in words and where it is ("line 3, column 14: lone UTF-16 surrogate \uD800 ..."). */
#ifndef RD_JSON_H
#define RD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RD_JSON_MAX_DEPTH JSON_PARSER_MAX_DEPTH

/* rd_json_parse flags */
enum {
    RD_JSON_NO_DUPLICATES = 1, /* a key twice in one object is an error (else the last wins) */
    RD_JSON_ANY = 2,           /* any value at the top, not only an object or array */
};

/* Parses len bytes of text. NULL on error, with "line L, column C: cause" in err. */
json_t *rd_json_parse(const char *text, size_t len, int flags, char *err, int err_len);

/* The text of v, indented by 2 spaces, reals with the fewest digits that read back to the same
 * double (malloc'd; NULL when out of memory). */
char *rd_json_dump(const json_t *v);
/* The same on one line, without spaces. */
char *rd_json_dump_line(const json_t *v);

/* A number (integer, or real with an integral value) within [lo, hi]. */
bool rd_json_int(const json_t *v, int64_t lo, int64_t hi, int64_t *out);
/* The string member key of obj (its length in *len when len is not NULL), or NULL. */
const char *rd_json_str(const json_t *obj, const char *key, size_t *len);
/* Whether a string holds a NUL byte (such strings are refused where a C string is needed). */
bool rd_json_has_nul(const json_t *str);

#endif
