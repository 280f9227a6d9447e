/* A real trained model: ../shared/models/stories260K/stories260K.gguf (Karpathy's tinyllamas,
 * GQA 8 query / 4 kv heads, tokenizer embedded) greedy from BOS must print the story its
 * README quotes, at tp = 1, 2, 4 and 8 (8 replicates kv heads) on the cpu backend, streamed
 * with --output text; the same through the json output and through a checkpoint converted
 * from the GGUF (ropedist-convert model.gguf -o model.h5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

int main(void)
{
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    char gguf[1024], readme[1024], cmd[4096], tmp[256], h5[512];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K/stories260K.gguf", shared);
    snprintf(readme, sizeof readme, "%s/models/stories260K/README.md", shared);
    char *story = rd_test_published_story(readme);
    CHECK_MSG(story && strlen(story) > 100, "cannot find the published story in %s", readme);
    if (!story) return rd_test_finish("stories260K");
    printf("published: %s\n", story);
    const char *bin = rd_test_bin_dir();
    const int tps[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd,
                 "timeout 300 %s -np %d %s/ropedist --device cpu --config %s --prompt \"\" "
                 "--max-new-tokens 64 --temperature 0 --output text",
                 rd_test_mpirun(), tps[i], bin, gguf);
        char *out = NULL, *err = NULL;
        int rc = rd_test_run(cmd, &out, &err);
        rd_test_squeeze(out);
        bool ok = rc == 0 && !strncmp(out, story, strlen(story));
        printf("tp=%d text: %s\n", tps[i], ok ? "the published story" : out);
        CHECK_MSG(ok, "tp=%d: rc %d, got \"%s\"\n%s", tps[i], rc, out, err ? err : "");
        free(out);
        free(err);
    }
    /* json output carries the same text */
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np 2 %s/ropedist --device cpu --config %s --prompt-ids 1 "
             "--max-new-tokens 64 --output json", rd_test_mpirun(), bin, gguf);
    char *out = NULL;
    rd_test_run(cmd, &out, NULL);
    json_t *j = out ? rd_test_parse_json(out) : NULL;
    const json_t *text = j ? json_object_get(j, "text") : NULL;
    char *t = json_is_string(text) ? strdup(json_string_value(text)) : strdup("");
    rd_test_squeeze(t);
    CHECK_MSG(!strncmp(t, story, strlen(story)), "json text: \"%s\"", t);
    free(t);
    json_decref(j);
    free(out);
    /* through the converter: GGUF -> HDF5 checkpoint, tokenizer from the GGUF */
    rd_test_tmpdir(tmp, sizeof tmp);
    snprintf(h5, sizeof h5, "%s/stories260K.h5", tmp);
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert %s -o %s", bin, gguf, h5);
    CHECK(rd_test_run(cmd, NULL, NULL) == 0);
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np 4 %s/ropedist --device cpu --config %s --tokenizer %s --prompt \"\" "
             "--max-new-tokens 64 --output text", rd_test_mpirun(), bin, h5, gguf);
    out = NULL;
    int rc = rd_test_run(cmd, &out, NULL);
    rd_test_squeeze(out);
    printf("converted, tp=4: %s\n", rc == 0 && !strncmp(out, story, strlen(story)) ? "the published story" : out);
    CHECK_MSG(rc == 0 && !strncmp(out, story, strlen(story)), "converted: \"%s\"", out);
    free(out);
    remove(h5);
    rmdir(tmp);
    free(story);
    return rd_test_finish("stories260K");
}
