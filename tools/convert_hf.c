/* The Hugging Face half of ropedist-convert: opens the safetensors files of a model folder
 * (model.safetensors, or the shards named by model.safetensors.index.json) and finds every
 * tensor the model needs, checking its shape against the config. Also the helpers both halves
 * share: the error printer, whole-file reads, and the check that refuses an output that is one
 * of the files the conversion reads (writing it would destroy the input: the checkpoint is
 * renamed into place over it). */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "runtime/config.h"
#include "tools/convert.h"

void rd_conv_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, RD_CONV_PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

char *rd_conv_read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
                buf[n] = 0;
                if (len) *len = (size_t)n;
            }
            else free(buf), buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *dims)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

void rd_conv_hf_close(struct rd_conv_hf *h)
{
    for (int i = 0; i < h->n_shards; i++) {
        rd_st_close(h->shards[i]);
        free(h->shard_names[i]);
    }
    free(h->shards);
    free(h->shard_names);
    free(h->index_path);
    memset(h, 0, sizeof *h);
}

static int shard_index(struct rd_conv_hf *h, const char *file)
{
    for (int i = 0; i < h->n_shards; i++)
        if (!strcmp(h->shard_names[i], file)) return i;
    return -1;
}

static rd_status hf_add_shard(struct rd_conv_hf *h, const char *dir, const char *file)
{
    if (shard_index(h, file) >= 0) return RD_OK;
    char path[RD_PATH_MAX], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct rd_safetensors *st = NULL;
    rd_status rc = rd_st_open(path, &st, err, sizeof err);
    if (rc != RD_OK) {
        rd_conv_fail("%s", err);
        return rc;
    }
    void *a = realloc(h->shards, (size_t)(h->n_shards + 1) * sizeof *h->shards);
    void *b = a ? realloc(h->shard_names, (size_t)(h->n_shards + 1) * sizeof(char *)) : NULL;
    if (a) h->shards = a;
    if (b) h->shard_names = b;
    char *name = strdup(file);
    if (!a || !b || !name) {
        free(name);
        rd_st_close(st);
        rd_conv_fail("out of memory");
        return RD_ERR_OOM;
    }
    h->shards[h->n_shards] = st;
    h->shard_names[h->n_shards++] = name;
    return RD_OK;
}

rd_status rd_conv_hf_open(struct rd_conv_hf *h, const char *dir, struct rd_conv_want *want, int n_want,
                         bool tied)
{
    char path[RD_PATH_MAX];
    json_t *index = NULL;
    rd_status rc = RD_OK;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (file_exists(path)) {
        if (!(h->index_path = strdup(path))) {
            rd_conv_fail("out of memory");
            return RD_ERR_OOM;
        }
        size_t len = 0;
        char *txt = rd_conv_read_text(path, &len), why[256] = "cannot read the file";
        index = txt ? rd_json_parse(txt, len, 0, why, sizeof why) : NULL;
        free(txt);
        if (!index) {
            rd_conv_fail("%s: not valid JSON: %s", path, why);
            return RD_ERR_FORMAT;
        }
        const json_t *map = json_object_get(index, "weight_map");
        if (!json_is_object(map)) {
            rd_conv_fail("%s: no \"weight_map\" object", path);
            json_decref(index);
            return RD_ERR_FORMAT;
        }
        const char *key;
        const json_t *e;
        json_object_foreach((json_t *)map, key, e)
        {
            if (!json_is_string(e) || rd_json_has_nul(e) || strstr(json_string_value(e), "..")) {
                rd_conv_fail("%s: weight_map entry '%s' is not a file name in the folder", path,
                             key);
                json_decref(index);
                return RD_ERR_FORMAT;
            }
            if ((rc = hf_add_shard(h, dir, json_string_value(e))) != RD_OK) {
                json_decref(index);
                return rc;
            }
        }
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!file_exists(path)) {
            rd_conv_fail("%s has neither model.safetensors nor model.safetensors.index.json", dir);
            return RD_ERR_IO;
        }
        RD_TRY(hf_add_shard(h, dir, "model.safetensors"));
    }
    const json_t *map = json_object_get(index, "weight_map");
    for (int k = 0; k < n_want && rc == RD_OK; k++) {
        struct rd_conv_want *w = &want[k];
        w->shard = -1;
        if (map) {
            const char *f = json_string_value(json_object_get(map, w->name));
            w->shard = f ? shard_index(h, f) : -1;
        } else {
            w->shard = 0;
        }
        w->idx = w->shard >= 0 ? rd_st_find(h->shards[w->shard], w->name) : -1;
        if (w->idx < 0) {
            rd_conv_fail("tensor '%s' is missing from %s%s", w->name, dir,
                 w->shard >= 0 && map ? " (not in the shard the index names)" : "");
            rc = RD_ERR_FORMAT;
            break;
        }
        const struct rd_st_tensor *t = &h->shards[w->shard]->tensors[w->idx];
        bool ok = t->ndim == w->ndim && t->shape[0] == w->dims[0] &&
                  (w->ndim == 1 || t->shape[1] == w->dims[1]);
        if (!ok) {
            char got[96], exp[64];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(exp, sizeof exp, w->ndim, w->dims);
            rd_conv_fail("tensor '%s' in %s has shape %s, but the config needs %s", w->name,
                 h->shard_names[w->shard], got, exp);
            rc = RD_ERR_FORMAT;
        }
    }
    /* tensors the model will not use: biases would silently change results, so refuse */
    for (int s = 0; s < h->n_shards && rc == RD_OK; s++) {
        for (int i = 0; i < h->shards[s]->n_tensors && rc == RD_OK; i++) {
            const char *name = h->shards[s]->tensors[i].name;
            bool used = false;
            for (int k = 0; k < n_want && !used; k++) used = !strcmp(want[k].name, name);
            if (used) continue;
            size_t len = strlen(name);
            if (len > 5 && !strcmp(name + len - 5, ".bias")) {
                rd_conv_fail("tensor '%s': ropedist's Llama has no bias terms (attention_bias/mlp_bias "
                     "models are not supported)",
                     name);
                rc = RD_ERR_UNSUPPORTED;
            } else if (!strstr(name, "rotary_emb.inv_freq") &&
                       !(tied && !strcmp(name, "lm_head.weight"))) {
                fprintf(stderr, RD_CONV_PROG ": note: skipping tensor '%s' (not used by the model)\n",
                        name);
            }
        }
    }
    json_decref(index);
    return rc;
}

/* path with its folder resolved (the file itself need not exist); false when the folder
 * cannot be resolved. */
static bool resolve_parent(const char *path, char *out, size_t n)
{
    char a[RD_PATH_MAX], b[RD_PATH_MAX], dir[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    if (!realpath(dirname(a), dir)) return false;
    return (size_t)snprintf(out, n, "%s/%s", dir, basename(b)) < n;
}

bool rd_conv_output_is_input(const char *output, const char *const *inputs, int n)
{
    struct stat so, si;
    bool out_exists = stat(output, &so) == 0;
    char out_path[RD_PATH_MAX + PATH_MAX], in_path[RD_PATH_MAX + PATH_MAX];
    bool out_resolved = resolve_parent(output, out_path, sizeof out_path);
    for (int i = 0; i < n; i++) {
        bool same = out_exists && stat(inputs[i], &si) == 0 && so.st_dev == si.st_dev &&
                    so.st_ino == si.st_ino;
        if (!same && out_resolved && resolve_parent(inputs[i], in_path, sizeof in_path))
            same = !strcmp(out_path, in_path);
        if (same) {
            if (!strcmp(output, inputs[i]))
                rd_conv_fail("output %s is an input of this conversion; an input is never "
                             "overwritten, not even with --force: choose another output",
                             output);
            else
                rd_conv_fail("output %s is the same file as %s, an input of this conversion; an "
                             "input is never overwritten, not even with --force: choose another "
                             "output",
                             output, inputs[i]);
            return true;
        }
    }
    return false;
}
