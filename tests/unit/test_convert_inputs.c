/* Unit test: ropedist-convert never writes over a file it reads, with or without --force. Copies
 * of a golden Hugging Face folder (single file and 7 shards), of stories260K.gguf and of a config
 * for --random are given as their own output in every spelling: the same path, another path to
 * it (./, .., a linked folder), a symbolic link, a hard link. Each run must fail with a message
 * saying the output is an input, leave every input byte for byte as it was (same inode), and
 * leave no temporary file behind; an output next to the inputs still converts. Skipped (77)
 * when ropedist-convert is not built or ../shared is absent. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static char g_dir[256];
static char g_conv[1024];

struct snapshot {
    char path[1024];
    char *bytes;
    size_t len;
    ino_t ino;
};

static void snap(struct snapshot *s, const char *path)
{
    struct stat sb;
    snprintf(s->path, sizeof s->path, "%s", path);
    s->bytes = rd_test_read_file(path, &s->len);
    s->ino = stat(path, &sb) == 0 ? sb.st_ino : 0;
    CHECK_MSG(s->bytes && s->ino, "cannot read %s", path);
}

static void check_unchanged(const struct snapshot *s, const char *after)
{
    struct stat sb;
    size_t len = 0;
    char *now = rd_test_read_file(s->path, &len);
    CHECK_MSG(now && len == s->len && !memcmp(now, s->bytes, len), "%s changed after %s",
              s->path, after);
    CHECK_MSG(stat(s->path, &sb) == 0 && sb.st_ino == s->ino, "%s replaced after %s", s->path,
              after);
    free(now);
}

/* No "*.tmp.*" file left in dir. */
static void check_no_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        CHECK_MSG(!strstr(e->d_name, ".tmp."), "temporary file %s/%s left", dir, e->d_name);
    if (d) closedir(d);
}

/* Runs the converter with args; it must refuse, saying the output is an input. */
static void expect_refused(const char *args, const struct snapshot *snaps, int n)
{
    char cmd[4096], *err = NULL;
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", g_dir, g_conv, args);
    int rc = rd_test_run(cmd, NULL, &err);
    CHECK_MSG(rc == 1, "'%s' exited %d", args, rc);
    CHECK_MSG(err && strstr(err, "an input of this conversion") && strstr(err, "--force"),
              "'%s': %s", args, err ? err : "");
    CHECK_MSG(err && !strchr(strchr(err, '\n') ? strchr(err, '\n') + 1 : "", '\n'),
              "'%s': more than one line: %s", args, err ? err : "");
    free(err);
    for (int i = 0; i < n; i++) check_unchanged(&snaps[i], args);
}

/* copies shared/FROM (a file or a folder) to g_dir/TO, writable */
static void copy_in(const char *shared, const char *from, const char *to)
{
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "cp -r '%s/%s' '%s/%s' && chmod -R u+w '%s/%s'", shared, from, g_dir,
             to, g_dir, to);
    CHECK_MSG(system(cmd) == 0, "cannot copy %s/%s", shared, from);
}

int main(void)
{
    const char *shared;
    int setup = rd_test_program_setup("ropedist-convert", g_conv, sizeof g_conv, &shared, g_dir,
                                      sizeof g_dir);
    if (setup != 0) return setup;
    copy_in(shared, "golden/models/tiny_mha_tied", "hf");
    copy_in(shared, "golden/models/tiny_mqa_headdim_sharded", "sh");
    copy_in(shared, "models/stories260K/stories260K.gguf", "s.gguf");
    copy_in(shared, "golden/models/tiny_gqa_bf16/config.json", "random.json");
    char path[1400];

    struct snapshot s[6];
    const char *names[6] = {"hf/model.safetensors", "hf/config.json", "sh/config.json",
                            "sh/model.safetensors.index.json",
                            "sh/model-00003-of-00007.safetensors", "s.gguf"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        snap(&s[i], path);
    }
    struct snapshot r;
    snprintf(path, sizeof path, "%s/random.json", g_dir);
    snap(&r, path);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && ln -s hf/model.safetensors sym.h5 && ln hf/config.json hard.h5 && "
             "ln -s hf hflink && ln s.gguf hard.gguf && ln -s random.json rlink.json",
             g_dir);
    CHECK(system(cmd) == 0);

    /* a Hugging Face folder: its weights and config, as named, respelled and linked */
    const char *hf_outs[] = {"hf/model.safetensors",   "hf/config.json",  "./hf/./config.json",
                             "hf/../hf/model.safetensors", "sym.h5",      "hard.h5",
                             "hflink/model.safetensors",   "hflink/config.json"};
    for (int i = 0; i < 8; i++) {
        char args[512];
        snprintf(args, sizeof args, "hf -o '%s' --force", hf_outs[i]);
        expect_refused(args, s, 2);
        snprintf(args, sizeof args, "hflink -o '%s'", hf_outs[i]);
        expect_refused(args, s, 2);
    }
    /* the shards and the index of a sharded folder */
    expect_refused("sh -o sh/model-00003-of-00007.safetensors --force", s + 2, 3);
    expect_refused("sh -o sh/model.safetensors.index.json --force", s + 2, 3);
    expect_refused("sh/ -o sh/config.json --force --dtype bf16", s + 2, 3);
    /* a GGUF file, also through a hard link */
    expect_refused("s.gguf -o s.gguf --force", s + 5, 1);
    expect_refused("s.gguf -o hard.gguf --force", s + 5, 1);
    expect_refused("hard.gguf -o ./s.gguf", s + 5, 1);
    /* the config of --random */
    expect_refused("--random --config random.json -o random.json --force", &r, 1);
    expect_refused("--random --config rlink.json -o random.json --force", &r, 1);
    expect_refused("--random --config random.json -o rlink.json --force", &r, 1);
    check_no_tmp(g_dir);
    snprintf(path, sizeof path, "%s/hf", g_dir);
    check_no_tmp(path);
    snprintf(path, sizeof path, "%s/sh", g_dir);
    check_no_tmp(path);

    /* an output beside the inputs, or another existing file with --force, is fine */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' hf -o hf/model.h5 >/dev/null && '%s' sh -o hf/model.h5 --force "
             ">/dev/null && '%s' s.gguf -o s.h5 >/dev/null",
             g_dir, g_conv, g_conv, g_conv);
    CHECK(rd_test_run(cmd, NULL, NULL) == 0);
    for (int i = 0; i < 6; i++) check_unchanged(&s[i], "the good conversions");

    for (int i = 0; i < 6; i++) free(s[i].bytes);
    free(r.bytes);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rd_test_finish("test_convert_inputs");
}
