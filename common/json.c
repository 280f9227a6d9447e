/* JSON through jansson (see json.h): parsing with lengths kept and errors in words, and a
 * dump whose reals read back exactly without 17-digit noise (1e-05 stays "1e-05"). */
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

json_t *rd_json_parse(const char *text, size_t len, int flags, char *err, int err_len)
{
    size_t jflags = JSON_ALLOW_NUL;
    if (flags & RD_JSON_NO_DUPLICATES) jflags |= JSON_REJECT_DUPLICATES;
    if (flags & RD_JSON_ANY) jflags |= JSON_DECODE_ANY;
    json_error_t e;
    json_t *v = json_loadb(text ? text : "", text ? len : 0, jflags, &e);
    if (v) return v;
    char where[64];
    snprintf(where, sizeof where, "line %d, column %d", e.line, e.column);
    switch (json_error_code(&e)) {
    case json_error_out_of_memory:
        rd_err_set(err, err_len, "out of memory");
        break;
    case json_error_stack_overflow:
        rd_err_set(err, err_len, "%s: nested deeper than %d levels (the limit)", where,
                   RD_JSON_MAX_DEPTH);
        break;
    case json_error_invalid_utf8:
        rd_err_set(err, err_len, "%s: not UTF-8 text (%s)", where, e.text);
        break;
    case json_error_premature_end_of_input:
        rd_err_set(err, err_len, "%s: the text ends too early (%s)", where, e.text);
        break;
    case json_error_null_byte_in_key:
        rd_err_set(err, err_len, "%s: an object key holds a NUL byte (\\u0000), which is not "
                   "supported", where);
        break;
    case json_error_duplicate_key:
        rd_err_set(err, err_len, "%s: a key appears twice in one object (%s)", where, e.text);
        break;
    case json_error_numeric_overflow:
        rd_err_set(err, err_len, "%s: number out of range (%s)", where, e.text);
        break;
    default:
        /* jansson says "invalid Unicode '\uD800'" for an escape that is half of a UTF-16
         * surrogate pair: name it, since the text looks like a valid escape */
        if (!strncmp(e.text, "invalid Unicode", 15))
            rd_err_set(err, err_len, "%s: lone UTF-16 surrogate in a string (%s): an escape "
                       "\\uD800-\\uDFFF must be half of a high+low pair", where, e.text + 16);
        else
            rd_err_set(err, err_len, "%s: %s", where, e.text);
    }
    return NULL;
}

/* The fewest significant digits (1..17) that print x so that it reads back the same. */
static int real_digits(double x)
{
    char buf[40];
    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return p;
    }
    return 17;
}

static int max_digits(const json_t *v, int depth)
{
    int best = 1;
    if (depth > RD_JSON_MAX_DEPTH) return 17;
    if (json_is_real(v) && isfinite(json_real_value(v))) return real_digits(json_real_value(v));
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach((json_t *)v, i, e)
        {
            int d = max_digits(e, depth + 1);
            if (d > best) best = d;
        }
    } else if (json_is_object(v)) {
        const char *k;
        const json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            int d = max_digits(e, depth + 1);
            if (d > best) best = d;
        }
    }
    return best;
}

char *rd_json_dump(const json_t *v)
{
    if (!v) return NULL;
    int digits = max_digits(v, 0);
    return json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(digits) | JSON_ENCODE_ANY);
}

char *rd_json_dump_line(const json_t *v)
{
    if (!v) return NULL;
    int digits = max_digits(v, 0);
    return json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(digits) | JSON_ENCODE_ANY);
}

bool rd_json_int(const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < lo || x > hi) return false;
        *out = (int64_t)x;
        return true;
    }
    if (!json_is_real(v)) return false;
    double x = json_real_value(v);
    /* the bounds as doubles may round; compare strictly inside 2^63 */
    if (!(x == floor(x)) || x < (double)lo || x > (double)hi || fabs(x) >= 9.2e18) return false;
    *out = (int64_t)x;
    return *out >= lo && *out <= hi;
}

const char *rd_json_str(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return NULL;
    if (len) *len = json_string_length(v);
    return json_string_value(v);
}

bool rd_json_has_nul(const json_t *str)
{
    return json_is_string(str) &&
           memchr(json_string_value(str), 0, json_string_length(str)) != NULL;
}
