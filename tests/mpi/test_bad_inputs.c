/* The bad-input table: each row is an input a user can give ropedist (a broken checkpoint, a
 * config of absurd sizes, a file that is too large, too deep or not Unicode, a directory where
 * a file belongs, an inconsistent GGUF, a context past the trained length), the exit code it
 * must end with and a text the one rank-0 message must hold. Errors must come as exactly one
 * "error:" line, from rank 0, with nothing on stdout and no hang; rows that must succeed (exit
 * 0) may carry one expected warning, printed once, by rank 0. The inputs are made here: a small
 * random model, copies of its checkpoint edited with the HDF5 API (the config attribute
 * removed; one tensor rewritten in checksummed chunks and the chunk that rank 1 reads
 * corrupted), a GGUF written by tests/gguf_writer.c. Runs at np 1 and 2 on the cpu backend. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "test_util.h"

static char g_tmp[256];

enum { OK_RUN = 0, FAILS = 1 };

struct row {
    const char *name;
    int np;
    const char *args; /* {T} is the scratch folder */
    int rc;           /* expected exit code */
    const char *want; /* in the rank-0 error (or warning, for rc 0) */
};

#define BASE "--prompt-ids 1,2,3 --max-new-tokens 2 --output ids"

static const struct row k_rows[] = {
    /* a checkpoint without its config attribute: named when it is needed, fine when not */
    {"h5 without config, as --config", 2, "--config {T}/nocfg.h5 " BASE, FAILS,
     "nocfg.h5: the checkpoint has no \"config\" attribute"},
    {"h5 without config, config given", 2, "--config {T}/model.json --checkpoint {T}/nocfg.h5 " BASE,
     OK_RUN, NULL},
    /* a failure on rank 1 alone: rank 0 prints rank 1's cause */
    {"corrupt chunk in rank 1's slice", 2, "--config {T}/model.json --checkpoint {T}/corrupt.h5 " BASE,
     FAILS, "failed on rank(s) 1: "},
    {"corrupt chunk, one rank reads all", 1,
     "--config {T}/model.json --checkpoint {T}/corrupt.h5 " BASE, FAILS, "q_proj"},
    /* absurd sizes: the field is named, nothing is allocated from it */
    {"hidden_size 1e9", 2, "--config {T}/hidden.json --checkpoint {T}/model.h5 " BASE, FAILS,
     "config field hidden_size (1000000000) is out of range"},
    {"intermediate_size 2e9", 2, "--config {T}/ffn.json --checkpoint {T}/model.h5 " BASE, FAILS,
     "config field intermediate_size (2000000000) is out of range"},
    {"vocab_size 2^31-1", 2, "--config {T}/vocab.json --checkpoint {T}/model.h5 " BASE, FAILS,
     "config field vocab_size (2147483647) is out of range"},
    {"heads 2^30", 2, "--config {T}/heads.json --checkpoint {T}/model.h5 " BASE, FAILS,
     "num_attention_heads (1073741824)"},
    {"intermediate_size vs checkpoint", 2, "--config {T}/ffn_big.json --checkpoint {T}/model.h5 " BASE,
     FAILS, "config field intermediate_size (500000) does not match the checkpoint"},
    {"vocab_size vs checkpoint", 2, "--config {T}/vocab_big.json --checkpoint {T}/model.h5 " BASE,
     FAILS, "config field vocab_size (4000000) does not match the checkpoint"},
    {"layers vs checkpoint", 2, "--config {T}/layers.json --checkpoint {T}/model.h5 " BASE, FAILS,
     "config field num_hidden_layers (3) does not match the checkpoint"},
    /* config files that are too large, too deep, not Unicode, or not files */
    {"config over the size limit", 2, "--config {T}/huge.json --checkpoint {T}/model.h5 " BASE,
     FAILS, "over the 64 MB limit"},
    {"config nested too deep", 2, "--config {T}/deep.json --checkpoint {T}/model.h5 " BASE, FAILS,
     "nested deeper than 2048 levels"},
    {"config with a lone surrogate", 2, "--config {T}/surrogate.json --checkpoint {T}/model.h5 " BASE,
     FAILS, "lone UTF-16 surrogate"},
    {"config with a NUL in a name", 2, "--config {T}/nul.json --checkpoint {T}/model.h5 " BASE,
     FAILS, "model_type holds a NUL byte"},
    {"config is a directory", 2, "--config {T} --checkpoint {T}/model.h5 " BASE, FAILS,
     "is a directory, not a JSON file"},
    {"--prompts is a directory", 2,
     "--config {T}/model.json --checkpoint {T}/model.h5 --prompts {T} --output ids", FAILS,
     "is a directory, not a JSONL file"},
    /* a GGUF whose embedding length is absurd: the GGUF key is named */
    {"GGUF embedding_length 1e9", 2, "--config {T}/absurd.gguf " BASE, FAILS,
     "GGUF metadata llama.embedding_length = 1000000000 is out of range"},
    {"GGUF embedding_length vs token_embd", 2, "--config {T}/mismatch.gguf " BASE, FAILS,
     "GGUF metadata llama.embedding_length (128) does not match tensor token_embd.weight"},
    /* a context far past the trained length: allowed, said once */
    {"--max-seq-len past max_position_embeddings", 2,
     "--config {T}/model.json --checkpoint {T}/model.h5 --max-seq-len 4096 " BASE, OK_RUN,
     "--max-seq-len 4096 is past the 32 positions the model was trained for"},
};

static const char *k_config =
    "{\"model_type\": %s, \"hidden_size\": %s, \"num_attention_heads\": %s, "
    "\"num_key_value_heads\": 2, \"intermediate_size\": %s, \"vocab_size\": %s, "
    "\"num_hidden_layers\": %s, \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-5, "
    "\"bos_token_id\": 1, \"eos_token_id\": 2}";

static void write_config(const char *name, const char *type, const char *hidden, const char *heads,
                         const char *ffn, const char *vocab, const char *layers)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "w");
    fprintf(f, k_config, type, hidden, heads, ffn, vocab, layers);
    fclose(f);
}

static void write_text(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* A copy of model.h5 without its config attribute. */
static void make_nocfg(void)
{
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd, "cp %s/model.h5 %s/nocfg.h5", g_tmp, g_tmp);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/nocfg.h5", g_tmp);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0 && H5Adelete(f, "config") >= 0);
    if (f >= 0) H5Fclose(f);
}

/* A copy of model.h5 whose layer-0 q_proj is stored in two checksummed (fletcher32) chunks of
 * rows, one per rank at np 2, with a byte of the second chunk (rank 1's rows) flipped. */
static void make_corrupt(void)
{
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd, "cp %s/model.h5 %s/corrupt.h5", g_tmp, g_tmp);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/corrupt.h5", g_tmp);
    const char *name = "/model/layers/0/self_attn/q_proj/weight";
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {0, 0};
    CHECK(sp >= 0 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2);
    float *data = malloc(dims[0] * dims[1] * sizeof *data);
    CHECK(data && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    CHECK(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[2] = {dims[0] / 2, dims[1]};
    CHECK(H5Pset_chunk(dcpl, 2, chunk) >= 0 && H5Pset_fletcher32(dcpl) >= 0);
    d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    hsize_t off[2];
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    CHECK(H5Dget_chunk_info(d, sp, 1, off, &mask, &addr, &size) >= 0 && off[0] == chunk[0]);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    free(data);
    FILE *fp = fopen(path, "r+b");
    unsigned char b = 0;
    CHECK(fp && fseek(fp, (long)(addr + size / 2), SEEK_SET) == 0 && fread(&b, 1, 1, fp) == 1);
    b ^= 0x5a;
    CHECK(fseek(fp, (long)(addr + size / 2), SEEK_SET) == 0 && fwrite(&b, 1, 1, fp) == 1);
    fclose(fp);
}

/* A llama GGUF of metadata and one token_embd.weight [vocab 256 x 64]: enough for its config. */
static void make_gguf(const char *name, uint32_t embedding_length)
{
    struct rd_gguf_kv kv[6];
    memset(kv, 0, sizeof kv);
    const char *keys[] = {"general.architecture", "llama.embedding_length",
                          "llama.feed_forward_length", "llama.block_count",
                          "llama.attention.head_count", "llama.attention.head_count_kv"};
    const uint64_t vals[] = {0, embedding_length, 128, 2, 4, 2};
    static char arch[] = "llama";
    for (int i = 0; i < 6; i++) {
        kv[i].key = (char *)keys[i];
        kv[i].type = i ? RD_GGUF_TYPE_UINT32 : RD_GGUF_TYPE_STRING;
        if (i) kv[i].v.u64 = vals[i], kv[i].v.i64 = (int64_t)vals[i];
        else kv[i].v.str = (struct rd_gguf_str){5, arch};
    }
    const struct rd_gguf_kv *list[6] = {&kv[0], &kv[1], &kv[2], &kv[3], &kv[4], &kv[5]};
    static float emb[256 * 64];
    struct rd_test_gguf_tensor t = {"token_embd.weight", 2, {64, 256, 1, 1}, RD_GGML_TYPE_F32, emb,
                                    sizeof emb};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    CHECK(rd_test_gguf_write(path, list, 6, &t, 1));
}

static void make_inputs(void)
{
    write_config("model.json", "\"llama\"", "64", "4", "128", "256", "2");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/ropedist-convert --random --config %s/model.json -o %s/model.h5 "
             ">/dev/null", rd_test_bin_dir(), g_tmp, g_tmp);
    CHECK(rd_test_run(cmd, NULL, NULL) == 0);
    make_nocfg();
    make_corrupt();
    write_config("hidden.json", "\"llama\"", "1000000000", "4", "128", "256", "2");
    write_config("ffn.json", "\"llama\"", "64", "4", "2000000000", "256", "2");
    write_config("vocab.json", "\"llama\"", "64", "4", "128", "2147483647", "2");
    write_config("heads.json", "\"llama\"", "64", "1073741824", "128", "256", "2");
    write_config("ffn_big.json", "\"llama\"", "64", "4", "500000", "256", "2");
    write_config("vocab_big.json", "\"llama\"", "64", "4", "128", "4000000", "2");
    write_config("layers.json", "\"llama\"", "64", "4", "128", "256", "3");
    write_config("surrogate.json", "\"ll\\ud800ama\"", "64", "4", "128", "256", "2");
    write_config("nul.json", "\"llama\\u0000\"", "64", "4", "128", "256", "2");
    char path[512];
    snprintf(path, sizeof path, "%s/huge.json", g_tmp);
    FILE *f = fopen(path, "w");
    CHECK(f && ftruncate(fileno(f), (64l << 20) + 1) == 0); /* sparse: no disk is used */
    fclose(f);
    static char deep[6002];
    memset(deep, '[', 3000);
    memset(deep + 3000, ']', 3000);
    write_text("deep.json", deep);
    make_gguf("absurd.gguf", 1000000000);
    make_gguf("mismatch.gguf", 128);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The line of text that holds at. */
static void line_of(const char *text, const char *at, char *line, size_t n)
{
    const char *b = at, *e = strchr(at, '\n');
    while (b > text && b[-1] != '\n') b--;
    snprintf(line, n, "%.*s", (int)((e ? e : at + strlen(at)) - b), b);
}

static void run_row(const struct row *r)
{
    char args[2048] = "", cmd[4096];
    for (const char *s = r->args; *s;) { /* expand {T} */
        size_t l = strlen(args);
        if (!strncmp(s, "{T}", 3)) {
            snprintf(args + l, sizeof args - l, "%s", g_tmp);
            s += 3;
        } else {
            snprintf(args + l, sizeof args - l, "%c", *s++);
        }
    }
    snprintf(cmd, sizeof cmd, "timeout 60 %s -np %d %s/ropedist --device cpu %s", rd_test_mpirun(),
             r->np, rd_test_bin_dir(), args);
    char *out = NULL, *err = NULL;
    int rc = rd_test_run(cmd, &out, &err);
    const char *e = err ? err : "";
    const char *first = strstr(e, "] error:");
    printf("%-44s np=%d rc=%-3d %s\n", r->name, r->np, rc,
           first ? first + 9 : (r->want && strstr(e, r->want) ? r->want : "(no message)"));
    CHECK_MSG(rc == r->rc, "%s: exit %d, expected %d:\n%s", r->name, rc, r->rc, e);
    char line[4096] = "";
    if (r->rc != 0) {
        CHECK_MSG(count(e, "] error:") == 1, "%s: expected one error line:\n%s", r->name, e);
        if (first) line_of(e, first, line, sizeof line);
        CHECK_MSG(!strncmp(line, "[rank 0/", 8), "%s: the error is not from rank 0:\n%s",
                  r->name, e);
        CHECK_MSG(!out || !*out, "%s: stdout should be empty: %s", r->name, out);
    }
    if (r->want) {
        const char *at = strstr(e, r->want);
        CHECK_MSG(count(e, r->want) == 1, "%s: stderr should hold \"%s\" once:\n%s", r->name,
                  r->want, e);
        if (at) line_of(e, at, line, sizeof line);
        CHECK_MSG(at && (strstr(line, "[rank 0/") || strstr(line, "[r0/")),
                  "%s: \"%s\" is not on a rank-0 line:\n%s", r->name, r->want, e);
    }
    free(out);
    free(err);
}

int main(void)
{
    rd_test_tmpdir(g_tmp, sizeof g_tmp);
    if (!g_tmp[0]) {
        fprintf(stderr, "FAIL: cannot make a temporary directory\n");
        return 1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    make_inputs();
    for (size_t i = 0; i < sizeof k_rows / sizeof *k_rows; i++) run_row(&k_rows[i]);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    rd_test_run(cmd, NULL, NULL);
    return rd_test_finish("bad inputs");
}
