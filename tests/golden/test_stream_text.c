/* --output text streams: tokens reach stdout as they are sampled, not at the end. Runs
 * stories260K (../shared) for 480 tokens at tp = 2 and records how many reads the output takes and
 * when the first and last bytes arrive: the text must arrive in pieces over the decoding, not at
 * once, and the streamed text must equal the json output's decoded text of the same generation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void)
{
    const char *shared = rd_test_shared_dir();
    if (!shared) return RD_TEST_SKIP;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np 2 %s/ropedist --device cpu --config "
             "%s/models/stories260K/stories260K.gguf --prompt-ids 1 --max-new-tokens 480 "
             "--ignore-eos --max-seq-len 512 --output text 2>/dev/null",
             rd_test_mpirun(), rd_test_bin_dir(), shared);
    double t0 = now(), t_first = -1, t_last = -1;
    int reads = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char buf[1 << 16];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fileno(p), buf + n, sizeof buf - 1 - n)) > 0) {
        t_last = now() - t0;
        reads++;
        if (t_first < 0) t_first = t_last;
        n += (size_t)r;
    }
    double t_end = now() - t0;
    buf[n] = 0;
    int st = pclose(p);
    printf("first text after %.3f s, last after %.3f s, end of output after %.3f s, %zu bytes in "
           "%d reads\n",
           t_first, t_last, t_end, n, reads);
    CHECK(st == 0);
    CHECK(n > 1000);
    /* a generation written at the end arrives in one read (1-2 KB, under a pipe buffer); streamed,
     * each token's bytes are a write of their own and the reader, blocked on the pipe, takes them
     * in hundreds of reads (about 400 here, 270 with the cores busy), spread over the decoding.
     * Counting reads does not depend on the machine's speed as a time gap would. */
    CHECK_MSG(t_first >= 0 && reads >= 20 && t_last > t_first,
              "no streaming: %d reads, first text after %.3f s, last after %.3f s", reads, t_first,
              t_last);

    snprintf(cmd, sizeof cmd,
             "timeout 300 %s -np 2 %s/ropedist --device cpu --config "
             "%s/models/stories260K/stories260K.gguf --prompt-ids 1 --max-new-tokens 480 "
             "--ignore-eos --max-seq-len 512 --output json",
             rd_test_mpirun(), rd_test_bin_dir(), shared);
    char *out = NULL;
    CHECK(rd_test_run(cmd, &out, NULL) == 0);
    json_t *j = out ? rd_test_parse_json(out) : NULL;
    const json_t *text = j ? json_object_get(j, "text") : NULL;
    /* the stream ends with a newline after the generation */
    if (n && buf[n - 1] == '\n') buf[--n] = 0;
    CHECK_MSG(json_is_string(text) && !strcmp(json_string_value(text), buf),
              "streamed text differs from the json text");
    json_decref(j);
    free(out);
    return rd_test_finish("streaming text");
}
