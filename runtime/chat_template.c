/* Chat template recognition and rendering (see chat_template.h). Each renderer follows its
 * Jinja template statement by statement, including the exceptions it raises; trim/strip are
 * Python's str.strip() (Unicode whitespace). */
#include "runtime/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

const char *rd_chat_style_name(enum rd_chat_style s)
{
    switch (s) {
    case RD_CHAT_LLAMA3: return "llama3";
    case RD_CHAT_LLAMA2: return "llama2";
    case RD_CHAT_CHATML: return "chatml";
    case RD_CHAT_MISTRAL: return "mistral";
    default: return "unknown";
    }
}

void rd_chat_template_free(struct rd_chat_template *t)
{
    if (!t) return;
    free(t->default_system);
    memset(t, 0, sizeof *t);
}

/* a special token of tokenizer_config.json: a string, or {"content": "..."} */
static void token_text(json_t *root, const char *key, char *out, size_t n)
{
    json_t *v = json_object_get(root, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    snprintf(out, n, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* chatml: the text of a literal default system message, '<|im_start|>system\n...<|im_end|>'
 * inside one Jinja string (escapes undone), or NULL */
static char *default_system(const char *tpl)
{
    static const char *const k_heads[] = {"'<|im_start|>system\\n", "'<|im_start|>system\n",
                                          "\"<|im_start|>system\\n", "\"<|im_start|>system\n"};
    for (size_t h = 0; h < sizeof k_heads / sizeof *k_heads; h++) {
        const char *p = strstr(tpl, k_heads[h]);
        if (!p) continue;
        const char quote = k_heads[h][0];
        p += strlen(k_heads[h]);
        const char *end = strstr(p, "<|im_end|>");
        if (!end) continue;
        bool literal = end > p;
        for (const char *c = p; c < end && literal; c++)
            if (*c == quote && (c == p || c[-1] != '\\')) literal = false;
        if (!literal) continue;
        char *out = malloc((size_t)(end - p) + 1), *o = out;
        if (!out) return NULL;
        for (const char *c = p; c < end; c++) {
            if (*c == '\\' && c + 1 < end) {
                c++;
                *o++ = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
            } else {
                *o++ = *c;
            }
        }
        *o = 0;
        return out;
    }
    return NULL;
}

rd_status rd_chat_template_parse(const char *json_text, struct rd_chat_template *t, char *why,
                                 int why_len)
{
    memset(t, 0, sizeof *t);
    json_error_t jerr;
    json_t *root = json_loads(json_text, 0, &jerr);
    if (!json_is_object(root)) {
        rd_err_set(why, why_len, "not a JSON object (line %d: %s)", jerr.line, jerr.text);
        json_decref(root);
        return RD_ERR_FORMAT;
    }
    json_t *ct = json_object_get(root, "chat_template");
    if (json_is_array(ct)) { /* named templates: the "default" one */
        size_t i;
        json_t *item, *found = NULL;
        json_array_foreach(ct, i, item)
        {
            json_t *name = json_object_get(item, "name");
            if (json_is_string(name) && !strcmp(json_string_value(name), "default"))
                found = json_object_get(item, "template");
        }
        ct = found;
    }
    if (!json_is_string(ct)) {
        rd_err_set(why, why_len, "no chat_template");
        json_decref(root);
        return RD_ERR_UNSUPPORTED;
    }
    const char *tpl = json_string_value(ct);
    token_text(root, "bos_token", t->bos, sizeof t->bos);
    token_text(root, "eos_token", t->eos, sizeof t->eos);
    if (strstr(tpl, "<|start_header_id|>") && strstr(tpl, "<|eot_id|>") &&
        !strstr(tpl, "Cutting Knowledge Date") && !strstr(tpl, "tools"))
        t->style = RD_CHAT_LLAMA3;
    else if (strstr(tpl, "[INST]") && strstr(tpl, "<<SYS>>"))
        t->style = RD_CHAT_LLAMA2;
    else if (strstr(tpl, "[INST]") && !strstr(tpl, "system") && !strstr(tpl, "tools"))
        t->style = RD_CHAT_MISTRAL;
    else if (strstr(tpl, "<|im_start|>") && strstr(tpl, "<|im_end|>") && !strstr(tpl, "tool"))
        t->style = RD_CHAT_CHATML;
    if (t->style == RD_CHAT_MISTRAL) t->eos_space = strstr(tpl, "eos_token + ' '") != NULL;
    if (t->style == RD_CHAT_CHATML) t->default_system = default_system(tpl);
    json_decref(root);
    if (t->style == RD_CHAT_UNKNOWN) {
        rd_err_set(why, why_len, "a chat_template that is not one of llama3, llama2, chatml, "
                   "mistral");
        return RD_ERR_UNSUPPORTED;
    }
    return RD_OK;
}

rd_status rd_chat_template_load(const char *path, struct rd_chat_template *t, char *why,
                                int why_len)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        rd_err_set(why, why_len, "cannot open %s", path);
        return RD_ERR_IO;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text || got != (size_t)n) {
        free(text);
        rd_err_set(why, why_len, "cannot read %s", path);
        return RD_ERR_IO;
    }
    text[n] = 0;
    rd_status st = rd_chat_template_parse(text, t, why, why_len);
    free(text);
    return st;
}

/* ---- rendering ---- */

struct sb {
    char *s;
    size_t n, cap;
    bool oom;
};

static void put_n(struct sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void put(struct sb *b, const char *s) { put_n(b, s, strlen(s)); }

/* length of the Unicode whitespace character at s (Python's str.isspace), 0 if none */
static int space_at(const unsigned char *s, size_t left)
{
    if (left >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))) return 1;
    if (left >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (left >= 3) {
        unsigned cp = ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
        if ((s[0] & 0xf0) == 0xe0 &&
            (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
             cp == 0x202f || cp == 0x205f || cp == 0x3000))
            return 3;
    }
    return 0;
}

/* appends s with leading and trailing whitespace removed */
static void put_stripped(struct sb *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    int k;
    while (p < end && (k = space_at(p, (size_t)(end - p))) > 0) p += k;
    const unsigned char *last = p; /* end of the last non-space character */
    for (const unsigned char *c = p; c < end;) {
        k = space_at(c, (size_t)(end - c));
        if (k) {
            c += k;
            continue;
        }
        c++;
        while (c < end && (*c & 0xc0) == 0x80) c++;
        last = c;
    }
    put_n(b, (const char *)p, (size_t)(last - p));
}

static bool is(const char *role, const char *what) { return role && !strcmp(role, what); }

static rd_status refuse(struct sb *b, char *why, int why_len, const char *msg)
{
    free(b->s);
    b->s = NULL;
    rd_err_set(why, why_len, "%s", msg);
    return RD_ERR_INVALID_ARG;
}

static const char *const k_alternate =
    "Conversation roles must alternate user/assistant/user/assistant/...";

rd_status rd_chat_render(const struct rd_chat_template *t, const struct rd_chat_msg *msgs, int n,
                         bool add_generation_prompt, char **out, char *why, int why_len)
{
    *out = NULL;
    struct sb b = {0};
    switch (t->style) {
    case RD_CHAT_LLAMA3:
        for (int i = 0; i < n; i++) {
            if (i == 0) put(&b, t->bos);
            put(&b, "<|start_header_id|>");
            put(&b, msgs[i].role);
            put(&b, "<|end_header_id|>\n\n");
            put_stripped(&b, msgs[i].content);
            put(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) put(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case RD_CHAT_LLAMA2: {
        const bool has_sys = n > 0 && is(msgs[0].role, "system");
        const struct rd_chat_msg *loop = has_sys ? msgs + 1 : msgs;
        for (int i = 0; i < n - (has_sys ? 1 : 0); i++) {
            if (is(loop[i].role, "user") != (i % 2 == 0)) return refuse(&b, why, why_len, k_alternate);
            struct sb c = {0};
            if (i == 0 && has_sys) {
                put(&c, "<<SYS>>\n");
                put(&c, msgs[0].content);
                put(&c, "\n<</SYS>>\n\n");
            }
            put(&c, loop[i].content);
            if (c.oom) b.oom = true;
            const char *content = c.s ? c.s : "";
            if (is(loop[i].role, "user")) {
                put(&b, t->bos);
                put(&b, "[INST] ");
                put_stripped(&b, content);
                put(&b, " [/INST]");
            } else if (is(loop[i].role, "assistant")) {
                put(&b, " ");
                put_stripped(&b, content);
                put(&b, " ");
                put(&b, t->eos);
            }
            free(c.s);
        }
        break;
    }
    case RD_CHAT_MISTRAL:
        put(&b, t->bos);
        for (int i = 0; i < n; i++) {
            if (is(msgs[i].role, "user") != (i % 2 == 0)) return refuse(&b, why, why_len, k_alternate);
            if (is(msgs[i].role, "user")) {
                put(&b, "[INST] ");
                put(&b, msgs[i].content);
                put(&b, " [/INST]");
            } else if (is(msgs[i].role, "assistant")) {
                put(&b, msgs[i].content);
                put(&b, t->eos);
                if (t->eos_space) put(&b, " ");
            } else {
                return refuse(&b, why, why_len, "Only user and assistant roles are supported!");
            }
        }
        break;
    case RD_CHAT_CHATML:
        for (int i = 0; i < n; i++) {
            if (i == 0 && t->default_system && !is(msgs[0].role, "system")) {
                put(&b, "<|im_start|>system\n");
                put(&b, t->default_system);
                put(&b, "<|im_end|>\n");
            }
            put(&b, "<|im_start|>");
            put(&b, msgs[i].role);
            put(&b, "\n");
            put(&b, msgs[i].content);
            put(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) put(&b, "<|im_start|>assistant\n");
        break;
    default:
        rd_err_set(why, why_len, "the model's chat template is not one ropedist renders");
        return RD_ERR_UNSUPPORTED;
    }
    put(&b, ""); /* an empty conversation still gives a string */
    if (b.oom) {
        free(b.s);
        rd_err_set(why, why_len, "out of memory rendering the chat");
        return RD_ERR_OOM;
    }
    *out = b.s;
    return RD_OK;
}
