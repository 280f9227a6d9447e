/* The OpenAI API's request and response shapes for `ropedist serve` (JSON through jansson):
 * parsing and checking of /v1/completions and /v1/chat/completions bodies, and the response,
 * stream-chunk and error objects. No HTTP and no model here. */
#ifndef RD_SERVE_API_H
#define RD_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/status.h"
#include "runtime/chat_template.h"

#define RD_API_MAX_STOP 4

struct rd_api_req {
    bool chat;
    json_t *root;             /* the parsed body; the strings below point into it */
    const char *model;        /* NULL when not given */
    /* completions: a text prompt (prompt_len bytes, NUL bytes kept) or token ids (exactly one) */
    const char *prompt_text;
    size_t prompt_len;
    int32_t *prompt_ids;      /* malloc'd */
    int n_prompt_ids;
    /* chat */
    struct rd_chat_msg *msgs; /* malloc'd; content strings may be malloc'd (parts joined) */
    char **owned;             /* strings to free */
    int n_msgs, n_owned;
    int max_tokens;           /* -1: not given */
    float temperature, top_p;
    int top_k;                /* 0 = off (extension; -1 is taken as off too) */
    uint64_t seed;
    bool seed_given;
    const char *stop[RD_API_MAX_STOP];
    int n_stop;
    bool stream, include_usage;
    int logprobs;             /* -1: none; N: the chosen token's logprob and N alternatives */
    bool ignore_eos;          /* extension */
};

/* Parses and checks a request body. On a client error returns RD_ERR_INVALID_ARG with why (the
 * message) and *param (the offending field, or NULL). */
rd_status rd_api_parse(const char *body, size_t len, bool chat, struct rd_api_req *r, char *why,
                       int why_len, const char **param);
void rd_api_req_free(struct rd_api_req *r);

/* {"error": {"message", "type", "param", "code"}} as a malloc'd string. */
char *rd_api_error(const char *message, const char *type, const char *param, const char *code);

/* One token's logprobs, as the response wants them. */
struct rd_api_logprob {
    const char *text;          /* the token's text */
    float logprob;
    int n_top;
    const char *top_text[20];
    float top_logprob[20];
};

/* The choice's logprobs object: completions {tokens, token_logprobs, top_logprobs,
 * text_offset} or chat {content: [{token, logprob, bytes, top_logprobs}]}; NULL when n == 0
 * and the request asked for none. text_offset counts from offset0. */
json_t *rd_api_logprobs_json(bool chat, const struct rd_api_logprob *lp, int n, size_t offset0);

/* The whole (non-streamed) response; steals logprobs (may be NULL). */
char *rd_api_response(bool chat, const char *id, long long created, const char *model,
                      const char *text, size_t text_len, const char *finish_reason,
                      json_t *logprobs, int prompt_tokens, int completion_tokens);
/* One "data: {...}\n\n" event of a stream (malloc'd): a chunk of text (first: chat's role
 * delta), a final chunk with finish_reason, or (usage_only) the usage chunk. Steals logprobs. */
char *rd_api_chunk(bool chat, const char *id, long long created, const char *model,
                   const char *text, size_t text_len, bool first, const char *finish_reason,
                   json_t *logprobs);
char *rd_api_usage_chunk(bool chat, const char *id, long long created, const char *model,
                         int prompt_tokens, int completion_tokens);

#endif
