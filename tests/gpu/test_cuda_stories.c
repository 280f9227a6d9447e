/* A real trained model on the cuda backend (the gpu twin of tests/golden/test_stories260k.c):
 * <shared>/models/stories260K/stories260K.gguf, greedy from BOS (`--prompt ""`) with
 * `--device cuda --dtype fp32`, must print the story its README quotes at tp = 1, 2, 4 and 8
 * (several ranks on the one GPU with --share-gpu; tp 8 replicates the 4 kv heads).
 *
 * <shared> is RD_SHARED_DIR (see tests/gpu/pack.sh). Skips (77) without CUDA, without a
 * device or without the data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_e2e.h"

int main(void)
{
    if (gpu_e2e_skip()) return RD_TEST_SKIP;
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    char gguf[1024], readme[1024], pre[2048], cmd[4096];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K/stories260K.gguf", shared);
    snprintf(readme, sizeof readme, "%s/models/stories260K/README.md", shared);
    char *story = rd_test_published_story(readme);
    CHECK_MSG(story && strlen(story) > 100, "cannot find the published story in %s", readme);
    if (!story || strlen(story) <= 100) {
        free(story);
        return rd_test_finish("cuda stories260K");
    }
    printf("published: %s\n", story);
    const int tps[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        gpu_e2e_prefix(pre, sizeof pre, tps[i], "cuda");
        snprintf(cmd, sizeof cmd,
                 "%s --dtype fp32 --config %s --prompt \"\" --max-new-tokens 64 --temperature 0 "
                 "--output text",
                 pre, gguf);
        char *out = NULL, *err = NULL;
        int rc = rd_test_run(cmd, &out, &err);
        if (!out) out = strdup("");
        rd_test_squeeze(out);
        bool ok = rc == 0 && !strncmp(out, story, strlen(story));
        printf("tp=%d text: %s\n", tps[i], ok ? "the published story" : out);
        CHECK_MSG(ok, "tp=%d: rc %d, got \"%s\"\n%s", tps[i], rc, out, err ? err : "");
        free(out);
        free(err);
    }
    free(story);
    return rd_test_finish("cuda stories260K");
}
