/* ropedist-chat-template: the server's chat template rendering on the command line.
 *
 *   ropedist-chat-template tokenizer_config.json < conversation.json
 *
 * The conversation is {"messages": [{"role": ..., "content": ...}, ...],
 * "add_generation_prompt": true|false (default true)}; the rendered prompt is written to stdout
 * as is (no newline added). Exit 0; 2 with a message on stderr when the template is unknown or
 * refuses the conversation (the message the server would answer with), 1 on bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/chat_template.h"

int main(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: ropedist-chat-template tokenizer_config.json < conversation.json\n"
                "  renders {\"messages\": [...], \"add_generation_prompt\": bool} with the chat\n"
                "  template recognised in tokenizer_config.json, as ropedist serve does\n");
        return argc == 2 ? 0 : 1;
    }
    char why[512];
    struct rd_chat_template t;
    if (rd_chat_template_load(argv[1], &t, why, sizeof why) != RD_OK) {
        fprintf(stderr, "ropedist-chat-template: %s: %s\n", argv[1], why);
        return 2;
    }
    json_error_t jerr;
    json_t *in = json_loadf(stdin, 0, &jerr);
    json_t *msgs = json_object_get(in, "messages");
    if (!json_is_array(msgs)) {
        fprintf(stderr, "ropedist-chat-template: stdin is not {\"messages\": [...]} (%s)\n", jerr.text);
        json_decref(in);
        rd_chat_template_free(&t);
        return 1;
    }
    size_t n = json_array_size(msgs);
    struct rd_chat_msg *m = calloc(n + 1, sizeof *m);
    for (size_t i = 0; m && i < n; i++) {
        json_t *e = json_array_get(msgs, i);
        m[i].role = json_string_value(json_object_get(e, "role"));
        m[i].content = json_string_value(json_object_get(e, "content"));
        if (!m[i].role || !m[i].content) {
            fprintf(stderr, "ropedist-chat-template: messages[%zu] needs string role and content\n", i);
            return 1;
        }
    }
    json_t *agp = json_object_get(in, "add_generation_prompt");
    char *out = NULL;
    rd_status st = m ? rd_chat_render(&t, m, (int)n, agp ? json_is_true(agp) : true, &out, why,
                                      sizeof why)
                     : RD_ERR_OOM;
    int code = 0;
    if (st == RD_OK) {
        fwrite(out, 1, strlen(out), stdout);
    } else {
        fprintf(stderr, "ropedist-chat-template: %s\n", why);
        code = 2;
    }
    free(out);
    free(m);
    json_decref(in);
    rd_chat_template_free(&t);
    return code;
}
