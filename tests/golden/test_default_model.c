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
    cJSON *exp = rd_test_load_json(path);
    CHECK_MSG(exp != NULL, "cannot read %s", path);
    if (!exp) return rd_test_finish("default model");
    const cJSON *cases = cJSON_GetObjectItem(exp, "cases");
    const int tps[] = {1, 2, 4};
    printf("%-48s %3s %-6s %-6s %10s %10s\n", "prompt", "tp", "ids", "text", "first_err",
           "last_err");
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        const cJSON *new_ids = cJSON_GetObjectItem(c, "new_ids");
        const int n_new = cJSON_GetArraySize(new_ids);
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
            cJSON *got = rc == 0 ? cJSON_Parse(out) : NULL;
            CHECK_MSG(got != NULL, "tp=%d: run failed (rc %d): %s", tps[i], rc, err ? err : "");
            free(out);
            free(err);
            if (!got) continue;
            bool pids = rd_test_json_same_ids(cJSON_GetObjectItem(got, "prompt_ids"),
                                              cJSON_GetObjectItem(c, "prompt_ids"));
            /* the first n_new generated ids (one more was generated for last_logits) */
            cJSON *oids = cJSON_GetObjectItem(got, "output_ids");
            cJSON *head = cJSON_CreateArray();
            for (int k = 0; k < n_new && k < cJSON_GetArraySize(oids); k++)
                cJSON_AddItemToArray(head, cJSON_CreateNumber(cJSON_GetArrayItem(oids, k)->valuedouble));
            bool ids = rd_test_json_same_ids(head, new_ids);
            cJSON_Delete(head);
            const cJSON *logits = cJSON_GetObjectItem(got, "logits");
            double e_first = rd_test_json_rel_err(cJSON_GetArrayItem(logits, 0),
                                                  cJSON_GetObjectItem(c, "first_logits"));
            double e_last = rd_test_json_rel_err(cJSON_GetArrayItem(logits, n_new),
                                                 cJSON_GetObjectItem(c, "last_logits"));
            const cJSON *text = cJSON_GetObjectItem(got, "text");
            const char *want = cJSON_GetObjectItem(c, "new_text")->valuestring;
            /* the json text covers the extra token too: compare its beginning */
            bool text_ok = cJSON_IsString(text) && !strncmp(text->valuestring, want, strlen(want));
            printf("%-48.48s %3d %-6s %-6s %10.2e %10.2e\n", prompt, tps[i],
                   pids && ids ? "same" : "DIFFER", text_ok ? "same" : "DIFFER", e_first, e_last);
            CHECK_MSG(pids, "tp=%d: prompt ids differ from transformers'", tps[i]);
            CHECK_MSG(ids, "tp=%d: greedy ids differ", tps[i]);
            CHECK_MSG(text_ok, "tp=%d: text differs: %s", tps[i],
                      cJSON_IsString(text) ? text->valuestring : "(none)");
            CHECK_MSG(e_first <= 1e-4 && e_last <= 1e-4, "tp=%d: logits differ (%.3e, %.3e)",
                      tps[i], e_first, e_last);
            cJSON_Delete(got);
        }
    }
    cJSON_Delete(exp);
    return rd_test_finish("default model");
}
