/* Replays inputs through a fuzz harness without libFuzzer, so a normal ctest runs every
 * committed seed and every crash the fuzzers once found (tests/fuzz/regressions/<harness>/):
 *
 *   replay_<harness> DIR_OR_FILE...
 *
 * Each file is handed to LLVMFuzzerTestOneInput once; a harness that aborts fails the test.
 * Folders that do not exist are skipped (a harness may have no regressions yet). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* only harnesses that need one define it */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) break;
            buf = b;
        }
    }
    fclose(f);
    if (!buf) return 0;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 1;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) continue;
        if (!S_ISDIR(sb.st_mode)) {
            total += replay_file(argv[i]);
            continue;
        }
        struct dirent **list = NULL;
        int n = scandir(argv[i], &list, NULL, NULL);
        if (n < 0) continue;
        char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
        int m = 0;
        for (int k = 0; k < n; k++) {
            if (list[k]->d_name[0] != '.') names[m++] = strdup(list[k]->d_name);
            free(list[k]);
        }
        free(list);
        qsort(names, (size_t)m, sizeof *names, cmp);
        for (int k = 0; k < m; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            total += replay_file(path);
            free(names[k]);
        }
        free(names);
    }
    printf("replayed %d input(s)\n", total);
    return 0;
}
