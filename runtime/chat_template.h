/* Chat templates without Jinja: the common templates of tokenizer_config.json's
 * `chat_template` are recognised by their markers and rendered natively, giving the same text
 * as transformers' apply_chat_template (jinja2) does for conversations of system, user and
 * assistant messages.
 *
 *   llama3   <|start_header_id|>role<|end_header_id|>\n\n content (trimmed) <|eot_id|>, BOS
 *            before the first message (Meta-Llama-3-*-Instruct's template; the 3.1+ templates,
 *            which add a dated system header and tools, are not recognised)
 *   llama2   BOS [INST] <<SYS>>\n system \n<</SYS>>\n\n user [/INST] assistant EOS, roles
 *            alternating user/assistant (Llama-2-*-chat)
 *   chatml   <|im_start|>role\n content <|im_end|>\n, with the template's default system
 *            message when the conversation has none (Qwen2, ChatML fine-tunes)
 *   mistral  BOS [INST] user [/INST] assistant EOS, user/assistant only, alternating
 *            (Mistral-7B-Instruct v0.1/v0.2; v0.1 puts a space after EOS)
 * A template that matches none of these is "unknown": rendering it is refused (the server then
 * answers chat requests with an error and still serves completions). */
#ifndef RD_CHAT_TEMPLATE_H
#define RD_CHAT_TEMPLATE_H

#include <stdbool.h>

#include "common/status.h"

enum rd_chat_style {
    RD_CHAT_UNKNOWN = 0,
    RD_CHAT_LLAMA3,
    RD_CHAT_LLAMA2,
    RD_CHAT_CHATML,
    RD_CHAT_MISTRAL,
};

struct rd_chat_template {
    enum rd_chat_style style;
    char bos[64], eos[64];   /* bos_token / eos_token of tokenizer_config.json */
    char *default_system;    /* chatml: system message when none is given (malloc'd), or NULL */
    bool eos_space;          /* mistral v0.1: a space after each assistant EOS */
};

struct rd_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content;
};

const char *rd_chat_style_name(enum rd_chat_style s);

/* Recognises the chat template of a tokenizer_config.json text. RD_ERR_UNSUPPORTED (with t
 * zeroed, style unknown) when the file has no chat_template or an unknown one, RD_ERR_FORMAT
 * when it is not JSON; why says which. */
rd_status rd_chat_template_parse(const char *json_text, struct rd_chat_template *t, char *why,
                                 int why_len);
/* The same from a file. */
rd_status rd_chat_template_load(const char *path, struct rd_chat_template *t, char *why,
                                int why_len);
void rd_chat_template_free(struct rd_chat_template *t);

/* Renders the conversation into *out (malloc'd, NUL-terminated). RD_ERR_INVALID_ARG with why
 * (the template's own message where it raises one) for a conversation the template refuses;
 * RD_ERR_UNSUPPORTED for an unknown template. */
rd_status rd_chat_render(const struct rd_chat_template *t, const struct rd_chat_msg *msgs, int n,
                         bool add_generation_prompt, char **out, char *why, int why_len);

#endif
