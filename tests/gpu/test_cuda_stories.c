/* A real trained model on the cuda backend (the gpu twin of tests/golden/test_stories260k.c):
 * <shared>/models/stories260K/stories260K.gguf, greedy from BOS (`--prompt ""`) with
 * `--device cuda --dtype fp32`, must print the story its README quotes at tp = 1, 2, 4 and 8
 * (several ranks on the one GPU with --share-gpu; tp 8 replicates the 4 kv heads).
 *
 * <shared> is RD_SHARED_DIR (see tests/gpu/pack_shared.sh). Skips (77) without CUDA, without a
 * device or without the data. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_e2e.h"

/* collapses whitespace runs to one space and trims */
static void squeeze(char *s)
{
    char *w = s;
    bool space = true;
    for (char *r = s; *r; r++) {
        if (isspace((unsigned char)*r)) {
            if (!space) *w++ = ' ';
            space = true;
        } else {
            *w++ = *r;
            space = false;
        }
    }
    while (w > s && w[-1] == ' ') w--;
    *w = 0;
}

/* The indented block after "Known greedy output" in the model's README. */
static char *published_story(const char *readme)
{
    char *txt = rd_test_read_file(readme, NULL);
    if (!txt) return NULL;
    char *at = strstr(txt, "Known greedy output");
    char *story = calloc(1, 4096);
    if (at) {
        char *line = strchr(at, '\n');
        while (line && *line) {
            line++;
            char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            if (len >= 4 && !strncmp(line, "    ", 4)) {
                strncat(story, line, len < 1000 ? len : 1000);
                strcat(story, " ");
            } else if (story[0] && len > 0) {
                break;
            }
            line = end;
        }
    }
    free(txt);
    squeeze(story);
    return story;
}

int main(void)
{
    if (gpu_e2e_skip()) return RD_TEST_SKIP;
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    char gguf[1024], readme[1024], pre[2048], cmd[4096];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K/stories260K.gguf", shared);
    snprintf(readme, sizeof readme, "%s/models/stories260K/README.md", shared);
    char *story = published_story(readme);
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
        squeeze(out);
        bool ok = rc == 0 && !strncmp(out, story, strlen(story));
        printf("tp=%d text: %s\n", tps[i], ok ? "the published story" : out);
        CHECK_MSG(ok, "tp=%d: rc %d, got \"%s\"\n%s", tps[i], rc, out, err ? err : "");
        free(out);
        free(err);
    }
    free(story);
    return rd_test_finish("cuda stories260K");
}
