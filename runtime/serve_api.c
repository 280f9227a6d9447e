/* OpenAI request parsing and response building (see serve_api.h). Unknown fields are ignored,
 * as the OpenAI API does; fields it knows but ropedist does not implement are refused when they
 * ask for something other than their default, so a request never silently means less. */
#include "runtime/serve_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

#define BAD(p, ...)                                                                            \
    do {                                                                                       \
        rd_err_set(why, why_len, __VA_ARGS__);                                                 \
        *param = (p);                                                                          \
        return RD_ERR_INVALID_ARG;                                                             \
    } while (0)

void rd_api_req_free(struct rd_api_req *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    free(r->msgs);
    free(r->prompt_ids);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

static bool is_int(const json_t *v) { return json_is_integer(v); }

/* a number given as JSON integer or real */
static bool num(const json_t *v, double *out)
{
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return isfinite(*out);
}

static rd_status parse_ids(const json_t *arr, struct rd_api_req *r, char *why, int why_len,
                           const char **param)
{
    size_t n = json_array_size(arr);
    r->prompt_ids = malloc((n + 1) * sizeof(int32_t));
    if (!r->prompt_ids) return RD_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!is_int(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            BAD("prompt", "prompt[%zu] is not a token id (a non-negative integer)", i);
        r->prompt_ids[i] = (int32_t)json_integer_value(v);
    }
    r->n_prompt_ids = (int)n;
    return RD_OK;
}

static rd_status parse_prompt(const json_t *p, struct rd_api_req *r, char *why, int why_len,
                              const char **param)
{
    if (json_is_string(p)) {
        r->prompt_text = json_string_value(p), r->prompt_len = json_string_length(p);
        return RD_OK;
    }
    if (!json_is_array(p)) BAD("prompt", "prompt must be a string or an array of token ids");
    const json_t *first = json_array_get(p, 0);
    /* one prompt per request: ["text"] and [[ids]] are accepted as one */
    if (json_array_size(p) == 1 && json_is_string(first)) {
        r->prompt_text = json_string_value(first), r->prompt_len = json_string_length(first);
        return RD_OK;
    }
    if (json_array_size(p) == 1 && json_is_array(first)) return parse_ids(first, r, why, why_len, param);
    if (json_is_string(first) || json_is_array(first))
        BAD("prompt", "one prompt per request is supported (got %zu)", json_array_size(p));
    if (json_array_size(p) == 0) BAD("prompt", "prompt must not be empty");
    return parse_ids(p, r, why, why_len, param);
}

static rd_status keep(struct rd_api_req *r, char *s)
{
    char **no = realloc(r->owned, (size_t)(r->n_owned + 1) * sizeof *no);
    if (!no) {
        free(s);
        return RD_ERR_OOM;
    }
    r->owned = no;
    r->owned[r->n_owned++] = s;
    return RD_OK;
}

static rd_status parse_messages(const json_t *m, struct rd_api_req *r, char *why, int why_len,
                                const char **param)
{
    if (!json_is_array(m) || json_array_size(m) == 0)
        BAD("messages", "messages must be a non-empty array");
    size_t n = json_array_size(m);
    r->msgs = calloc(n, sizeof *r->msgs);
    if (!r->msgs) return RD_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        const json_t *msg = json_array_get(m, i);
        const json_t *role = json_object_get(msg, "role"), *content = json_object_get(msg, "content");
        if (!json_is_object(msg)) BAD("messages", "messages[%zu] must be an object", i);
        if (!json_is_string(role) || rd_json_has_nul(role))
            BAD("messages", "messages[%zu].role must be a string", i);
        if ((json_is_string(content) && rd_json_has_nul(content)))
            BAD("messages", "messages[%zu].content holds a NUL character (\\u0000), which the chat "
                "template cannot render (a completions prompt may hold it)", i);
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "developer")) rs = "system"; /* the newer name of the system role */
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            BAD("messages", "messages[%zu].role \"%s\" is not supported (system, user, assistant)",
                i, rs);
        r->msgs[i].role = rs;
        if (json_is_string(content)) {
            r->msgs[i].content = json_string_value(content);
        } else if (json_is_null(content) && !strcmp(rs, "assistant")) {
            r->msgs[i].content = "";
        } else if (json_is_array(content)) {
            /* content parts: the text ones, joined */
            size_t total = 1, j;
            const json_t *part;
            json_array_foreach(content, j, part)
            {
                const json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
                if (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text))
                    BAD("messages", "messages[%zu].content[%zu]: only text parts are supported", i, j);
                if (rd_json_has_nul(text))
                    BAD("messages", "messages[%zu].content[%zu] holds a NUL character (\\u0000), "
                        "which the chat template cannot render", i, j);
                total += json_string_length(text);
            }
            char *s = malloc(total), *o = s;
            if (!s) return RD_ERR_OOM;
            json_array_foreach(content, j, part)
            {
                const json_t *text = json_object_get(part, "text");
                memcpy(o, json_string_value(text), json_string_length(text));
                o += json_string_length(text);
            }
            *o = 0;
            RD_TRY(keep(r, s));
            r->msgs[i].content = s;
        } else {
            BAD("messages", "messages[%zu].content must be a string or an array of text parts", i);
        }
    }
    r->n_msgs = (int)n;
    return RD_OK;
}

rd_status rd_api_parse(const char *body, size_t len, bool chat, struct rd_api_req *r, char *why,
                       int why_len, const char **param)
{
    memset(r, 0, sizeof *r);
    *param = NULL;
    r->chat = chat;
    r->max_tokens = -1;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->logprobs = -1;
    json_error_t jerr;
    r->root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr); /* prompts keep NUL bytes */
    if (!r->root)
        BAD(NULL, "We could not parse the JSON body of your request (%s at line %d, column %d).",
            jerr.text, jerr.line, jerr.column);
    const json_t *o = r->root, *v;
    if (!json_is_object(o)) BAD(NULL, "The request body must be a JSON object.");
#define FIELD(name) ((v = json_object_get(o, name)) != NULL && !json_is_null(v))
    if (FIELD("model")) {
        if (!json_is_string(v) || rd_json_has_nul(v)) BAD("model", "model must be a string");
        r->model = json_string_value(v);
    }
    if (chat) {
        if (!json_object_get(o, "messages")) BAD("messages", "messages is required");
        RD_TRY(parse_messages(json_object_get(o, "messages"), r, why, why_len, param));
    } else {
        if (!FIELD("prompt")) BAD("prompt", "prompt is required");
        RD_TRY(parse_prompt(v, r, why, why_len, param));
    }
    const char *mt = chat && json_object_get(o, "max_completion_tokens") ? "max_completion_tokens"
                                                                          : "max_tokens";
    if (FIELD(mt)) {
        if (!is_int(v)) BAD(mt, "%s must be an integer", mt);
        if (json_integer_value(v) < 1)
            BAD(mt, "%s must be at least 1, got %lld", mt, (long long)json_integer_value(v));
        r->max_tokens = json_integer_value(v) > INT32_MAX ? INT32_MAX : (int)json_integer_value(v);
    }
    double d;
    if (FIELD("temperature")) {
        if (!num(v, &d) || d < 0 || d > 2) BAD("temperature", "temperature must be a number in [0, 2]");
        r->temperature = (float)d;
    }
    if (FIELD("top_p")) {
        if (!num(v, &d) || !(d > 0 && d <= 1)) BAD("top_p", "top_p must be a number in (0, 1]");
        r->top_p = (float)d;
    }
    if (FIELD("top_k")) {
        if (!is_int(v) || json_integer_value(v) < -1 || json_integer_value(v) > INT32_MAX)
            BAD("top_k", "top_k must be an integer >= -1 (0 or -1: off)");
        r->top_k = json_integer_value(v) < 0 ? 0 : (int)json_integer_value(v);
    }
    if (FIELD("seed")) {
        if (!is_int(v)) BAD("seed", "seed must be an integer");
        r->seed = (uint64_t)json_integer_value(v);
        r->seed_given = true;
    }
    if (FIELD("stop")) {
        if (json_is_string(v)) {
            r->stop[r->n_stop++] = json_string_value(v);
        } else if (json_is_array(v) && json_array_size(v) <= RD_API_MAX_STOP) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                const json_t *s = json_array_get(v, i);
                if (!json_is_string(s)) BAD("stop", "stop must be a string or an array of strings");
                r->stop[r->n_stop++] = json_string_value(s);
            }
        } else {
            BAD("stop", "stop must be a string or an array of up to %d strings", RD_API_MAX_STOP);
        }
        for (int i = 0; i < r->n_stop; i++)
            if (!*r->stop[i]) BAD("stop", "stop strings must not be empty nor hold a NUL character");
    }
    if (FIELD("n") && (!is_int(v) || json_integer_value(v) != 1)) BAD("n", "only n = 1 is supported");
    if (FIELD("stream")) {
        if (!json_is_boolean(v)) BAD("stream", "stream must be a boolean");
        r->stream = json_is_true(v);
    }
    if (FIELD("stream_options")) {
        const json_t *u = json_object_get(v, "include_usage");
        if (!json_is_object(v) || (u && !json_is_boolean(u)))
            BAD("stream_options", "stream_options must be {\"include_usage\": bool}");
        r->include_usage = json_is_true(u);
    }
    if (FIELD("echo") && (!json_is_boolean(v) || json_is_true(v)))
        BAD("echo", "echo = true is not supported");
    if (FIELD("ignore_eos")) {
        if (!json_is_boolean(v)) BAD("ignore_eos", "ignore_eos must be a boolean");
        r->ignore_eos = json_is_true(v);
    }
    if (chat) {
        if (FIELD("logprobs")) {
            if (!json_is_boolean(v)) BAD("logprobs", "logprobs must be a boolean");
            if (json_is_true(v)) r->logprobs = 0;
        }
        if (FIELD("top_logprobs")) {
            if (!is_int(v) || json_integer_value(v) < 0 || json_integer_value(v) > 20)
                BAD("top_logprobs", "top_logprobs must be an integer in 0..20");
            if (r->logprobs < 0) BAD("top_logprobs", "top_logprobs needs logprobs = true");
            r->logprobs = (int)json_integer_value(v);
        }
    } else if (FIELD("logprobs")) {
        if (!is_int(v) || json_integer_value(v) < 0 || json_integer_value(v) > 20)
            BAD("logprobs", "logprobs must be an integer in 0..20");
        r->logprobs = (int)json_integer_value(v);
    }
    /* known fields ropedist does not implement: only their defaults are accepted */
    static const char *const k_zero[] = {"frequency_penalty", "presence_penalty"};
    for (size_t i = 0; i < 2; i++)
        if (FIELD(k_zero[i]) && (!num(v, &d) || d != 0)) BAD(k_zero[i], "%s is not supported", k_zero[i]);
    if (FIELD("best_of") && (!is_int(v) || json_integer_value(v) != 1)) BAD("best_of", "best_of is not supported");
    if (FIELD("logit_bias") && (!json_is_object(v) || json_object_size(v)))
        BAD("logit_bias", "logit_bias is not supported");
    if (FIELD("suffix")) BAD("suffix", "suffix is not supported");
    if (FIELD("tools") && json_array_size(v)) BAD("tools", "tools are not supported");
#undef FIELD
    return RD_OK;
}

char *rd_api_error(const char *message, const char *type, const char *param, const char *code)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type,
                          "param", param, "code", code);
    char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    return s;
}

json_t *rd_api_logprobs_json(bool chat, const struct rd_api_logprob *lp, int n, size_t offset0)
{
    if (chat) {
        json_t *content = json_array();
        for (int i = 0; i < n; i++) {
            json_t *tops = json_array();
            for (int j = 0; j < lp[i].n_top; j++)
                json_array_append_new(tops, json_pack("{s:s, s:f}", "token", lp[i].top_text[j],
                                                      "logprob", (double)lp[i].top_logprob[j]));
            json_array_append_new(content, json_pack("{s:s, s:f, s:o}", "token", lp[i].text,
                                                     "logprob", (double)lp[i].logprob,
                                                     "top_logprobs", tops));
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *values = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = offset0;
    for (int i = 0; i < n; i++) {
        json_array_append_new(tokens, json_string(lp[i].text));
        json_array_append_new(values, json_real(lp[i].logprob));
        json_t *t = json_object();
        for (int j = 0; j < lp[i].n_top; j++)
            json_object_set_new(t, lp[i].top_text[j], json_real(lp[i].top_logprob[j]));
        json_array_append_new(tops, t);
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += strlen(lp[i].text);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", values,
                     "top_logprobs", tops, "text_offset", offs);
}

static json_t *usage(int p, int c)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", p, "completion_tokens", c, "total_tokens",
                     p + c);
}

static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

char *rd_api_response(bool chat, const char *id, long long created, const char *model,
                      const char *text, size_t text_len, const char *finish_reason,
                      json_t *logprobs, int prompt_tokens, int completion_tokens)
{
    json_t *lp = logprobs ? logprobs : json_null();
    json_t *choice =
        chat ? json_pack("{s:i, s:{s:s, s:s%}, s:o, s:s}", "index", 0, "message", "role",
                         "assistant", "content", text, text_len, "logprobs", lp, "finish_reason",
                         finish_reason)
             : json_pack("{s:i, s:s%, s:o, s:s}", "index", 0, "text", text, text_len, "logprobs",
                         lp, "finish_reason", finish_reason);
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", id, "object",
                          chat ? "chat.completion" : "text_completion", "created", (json_int_t)created,
                          "model", model, "choices", choice, "usage",
                          usage(prompt_tokens, completion_tokens)));
}

static char *event(json_t *j)
{
    char *s = dump(j);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *e = malloc(n + 9);
    if (e) {
        memcpy(e, "data: ", 6);
        memcpy(e + 6, s, n);
        memcpy(e + 6 + n, "\n\n", 3);
    }
    free(s);
    return e;
}

char *rd_api_chunk(bool chat, const char *id, long long created, const char *model,
                   const char *text, size_t text_len, bool first, const char *finish_reason,
                   json_t *logprobs)
{
    json_t *lp = logprobs ? logprobs : json_null();
    json_t *fr = finish_reason ? json_string(finish_reason) : json_null();
    json_t *choice;
    if (chat) {
        json_t *delta = json_object();
        if (first) json_object_set_new(delta, "role", json_string("assistant"));
        if (text_len || first) json_object_set_new(delta, "content", json_stringn(text, text_len));
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "delta", delta, "logprobs", lp,
                           "finish_reason", fr);
    } else {
        choice = json_pack("{s:i, s:s%, s:o, s:o}", "index", 0, "text", text, text_len,
                           "logprobs", lp, "finish_reason", fr);
    }
    return event(json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", id, "object",
                           chat ? "chat.completion.chunk" : "text_completion", "created",
                           (json_int_t)created, "model", model, "choices", choice));
}

char *rd_api_usage_chunk(bool chat, const char *id, long long created, const char *model,
                         int prompt_tokens, int completion_tokens)
{
    return event(json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", id, "object",
                           chat ? "chat.completion.chunk" : "text_completion", "created",
                           (json_int_t)created, "model", model, "choices", "usage",
                           usage(prompt_tokens, completion_tokens)));
}
