/* The embedded default model (configs/default, trained by configs/default/train.py) against
 * what transformers computed for it (configs/default/expected.json): the prompt text tokenized
 * by ropedist's tokenizer gives transformers' ids, and greedy decoding gives the same 32 tokens,
 * the same text, and the same logits (after the prompt and after the 32nd token) within 1e-4,
 * at tp = 1, 2 and 4. Needs nothing outside the repository. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* the prompt as a shell-safe single-quoted word */
static void quote(char *dst, size_t n, const char *s)
{
    size_t o = 0;
    dst[o++] = '\'';
    for (; *s && o + 6 < n; s++) {
        if (*s == '\'') {
            memcpy(dst + o, "'\\''", 4);
            o += 4;
        } else {
            dst[o++] = *s;
        }
    }
    dst[o++] = '\'';
    dst[o] = 0;
}

int main(void)
{
    char path[1024], cmd[8192], q[2048];
    snprintf(path, sizeof path, "%s/configs/default/expected.json", rd_test_source_dir());
    json_t *exp = rd_test_load_json(path);
    CHECK_MSG(exp != NULL, "cannot read %s", path);
    if (!exp) return rd_test_finish("default model");
    const json_t *cases = json_object_get(exp, "cases");
    const int tps[] = {1, 2, 4};
    printf("%-48s %3s %-6s %-6s %10s %10s\n", "prompt", "tp", "ids", "text", "first_err",
           "last_err");
    size_t ci;
    const json_t *c;
    json_array_foreach(cases, ci, c)
    {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        const json_t *new_ids = json_object_get(c, "new_ids");
        const int n_new = (int)json_array_size(new_ids);
        quote(q, sizeof q, prompt);
        for (int i = 0; i < 3; i++) {
            snprintf(cmd, sizeof cmd,
                     "timeout 300 %s -np %d %s/ropedist --device cpu --config "
                     "%s/configs/default/config.json --prompt %s --max-new-tokens %d "
                     "--ignore-eos --temperature 0 --output json --with-logits",
                     rd_test_mpirun(), tps[i], rd_test_bin_dir(), rd_test_source_dir(), q,
                     n_new + 1);
            char *out = NULL, *err = NULL;
            int rc = rd_test_run(cmd, &out, &err);
            json_t *got = rc == 0 ? rd_test_parse_json(out) : NULL;
            CHECK_MSG(got != NULL, "tp=%d: run failed (rc %d): %s", tps[i], rc, err ? err : "");
            free(out);
            free(err);
            if (!got) continue;
            bool pids = rd_test_json_same_ids(json_object_get(got, "prompt_ids"),
                                              json_object_get(c, "prompt_ids"));
            /* the first n_new generated ids (one more was generated for last_logits) */
            json_t *oids = json_object_get(got, "output_ids");
            json_t *head = json_array();
            for (int k = 0; k < n_new && k < (int)json_array_size(oids); k++)
                json_array_append(head, json_array_get(oids, k));
            bool ids = rd_test_json_same_ids(head, new_ids);
            json_decref(head);
            const json_t *logits = json_object_get(got, "logits");
            double e_first = rd_test_json_rel_err(json_array_get(logits, 0),
                                                  json_object_get(c, "first_logits"));
            double e_last = rd_test_json_rel_err(json_array_get(logits, n_new),
                                                 json_object_get(c, "last_logits"));
            const json_t *text = json_object_get(got, "text");
            const char *want = json_string_value(json_object_get(c, "new_text"));
            /* the json text covers the extra token too: compare its beginning */
            bool text_ok = json_is_string(text) && !strncmp(json_string_value(text), want, strlen(want));
            printf("%-48.48s %3d %-6s %-6s %10.2e %10.2e\n", prompt, tps[i],
                   pids && ids ? "same" : "DIFFER", text_ok ? "same" : "DIFFER", e_first, e_last);
            CHECK_MSG(pids, "tp=%d: prompt ids differ from transformers'", tps[i]);
            CHECK_MSG(ids, "tp=%d: greedy ids differ", tps[i]);
            CHECK_MSG(text_ok, "tp=%d: text differs: %s", tps[i],
                      json_is_string(text) ? json_string_value(text) : "(none)");
            CHECK_MSG(e_first <= 1e-4 && e_last <= 1e-4, "tp=%d: logits differ (%.3e, %.3e)",
                      tps[i], e_first, e_last);
            json_decref(got);
        }
    }
    json_decref(exp);
    return rd_test_finish("default model");
}
