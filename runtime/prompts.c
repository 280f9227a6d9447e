/* Prompts on the coordinator (see prompts.h). */
#include "runtime/prompts.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "runtime/tokenizer.h"

#define FAIL(st, ...)                                                                          \
    do {                                                                                       \
        snprintf(err, err_len, __VA_ARGS__);                                                   \
        return (st);                                                                           \
    } while (0)

void rd_prompts_free(struct rd_prompts *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->ids ? p->ids[i] : NULL);
        free(p->text ? p->text[i] : NULL);
    }
    free(p->ids);
    free(p->len);
    free(p->text);
    free(p->max_new);
    memset(p, 0, sizeof *p);
}

static rd_status add_prompt(struct rd_prompts *p, int32_t *ids, int n, char *text)
{
    int32_t **ni = realloc(p->ids, (size_t)(p->n + 1) * sizeof *ni);
    if (ni) p->ids = ni;
    int *nl = realloc(p->len, (size_t)(p->n + 1) * sizeof *nl);
    if (nl) p->len = nl;
    char **nt = realloc(p->text, (size_t)(p->n + 1) * sizeof *nt);
    if (nt) p->text = nt;
    int *nm = realloc(p->max_new, (size_t)(p->n + 1) * sizeof *nm);
    if (nm) p->max_new = nm;
    if (!ni || !nl || !nt || !nm) return RD_ERR_OOM;
    p->max_new[p->n] = -1;
    p->ids[p->n] = ids;
    p->len[p->n] = n;
    p->text[p->n] = text;
    p->n++;
    return RD_OK;
}

/* text: len bytes (a JSON string may hold NUL bytes; they are text like any other) */
static rd_status encode_text(const struct rd_tokenizer *tok, const struct rd_config *cfg,
                             const char *text, size_t len, int32_t **ids, int *n, char *err,
                             int err_len)
{
    if (!tok)
        FAIL(RD_ERR_INVALID_ARG, "a text prompt needs a tokenizer: none was found next to the config "
             "(give --tokenizer FILE, or use --prompt-ids)");
    if (len == 0) { /* "" means BOS only */
        int32_t bos = rd_tokenizer_bos(tok);
        if (bos < 0) bos = cfg->bos_token_id;
        if (bos < 0) FAIL(RD_ERR_INVALID_ARG, "an empty prompt means BOS only, but the model has no BOS token");
        *ids = malloc(sizeof(int32_t));
        if (!*ids) return RD_ERR_OOM;
        (*ids)[0] = bos;
        *n = 1;
        return RD_OK;
    }
    rd_status st = rd_tokenizer_encode(tok, text, len, true, ids, n);
    if (st != RD_OK) FAIL(st, "cannot tokenize the prompt: %s (is it valid UTF-8?)", rd_status_str(st));
    return RD_OK;
}

static rd_status read_jsonl(const char *path, const struct rd_tokenizer *tok,
                            const struct rd_config *cfg, struct rd_prompts *p, char *err,
                            int err_len)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        FAIL(RD_ERR_IO, "--prompts %s is a directory, not a JSONL file", path);
    FILE *f = fopen(path, "r");
    if (!f) FAIL(RD_ERR_IO, "cannot open --prompts file %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0;
    rd_status st = RD_OK;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t k = 0;
        while (k < (size_t)got && (line[k] == ' ' || line[k] == '\t' || line[k] == '\n' ||
                                   line[k] == '\r'))
            k++;
        if (k == (size_t)got) continue;
        char why[256];
        json_t *o = rd_json_parse(line + k, (size_t)got - k, RD_JSON_ANY, why, sizeof why);
        const json_t *pi = json_object_get(o, "prompt_ids");
        const json_t *pt = json_object_get(o, "prompt");
        int32_t *ids = NULL;
        int n = 0;
        char *text = NULL;
        if (!o) {
            snprintf(err, err_len, "%s line %d is not valid JSON: %s", path, lineno, why);
            st = RD_ERR_INVALID_ARG;
        } else if (!json_is_object(o)) {
            snprintf(err, err_len, "%s line %d is not a JSON object", path, lineno);
            st = RD_ERR_INVALID_ARG;
        } else if (json_is_array(pi)) {
            n = json_array_size(pi) < INT_MAX / 8 ? (int)json_array_size(pi) : INT_MAX / 8;
            ids = (size_t)n == json_array_size(pi) ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
            if (!ids) {
                snprintf(err, err_len, "%s line %d: out of memory", path, lineno);
                st = RD_ERR_OOM;
            }
            size_t i;
            const json_t *it;
            if (ids) json_array_foreach(pi, i, it)
            {
                int64_t id;
                if (!rd_json_int(it, 0, 2147483647, &id)) {
                    snprintf(err, err_len, "%s line %d: prompt_ids[%zu] is not a token id", path,
                             lineno, i);
                    st = RD_ERR_INVALID_ARG;
                    break;
                }
                ids[i] = (int32_t)id;
            }
        } else if (json_is_string(pt)) {
            char sub[512];
            size_t len = json_string_length(pt);
            st = encode_text(tok, cfg, json_string_value(pt), len, &ids, &n, sub, sizeof sub);
            if (st != RD_OK) snprintf(err, err_len, "%s line %d: %s", path, lineno, sub);
            else if ((text = malloc(len + 1))) memcpy(text, json_string_value(pt), len + 1);
        } else {
            snprintf(err, err_len, "%s line %d needs \"prompt_ids\": [...] or \"prompt\": \"...\"",
                     path, lineno);
            st = RD_ERR_INVALID_ARG;
        }
        const json_t *mn = json_object_get(o, "max_new_tokens");
        int64_t mnv = -1;
        if (st == RD_OK && mn && !rd_json_int(mn, 0, 2147483647, &mnv)) {
            snprintf(err, err_len, "%s line %d: max_new_tokens must be a non-negative integer", path,
                     lineno);
            st = RD_ERR_INVALID_ARG;
        }
        int max_new = mn && st == RD_OK ? (int)mnv : -1;
        json_decref(o);
        if (st == RD_OK) st = add_prompt(p, ids, n, text);
        if (st == RD_OK) p->max_new[p->n - 1] = max_new;
        if (st != RD_OK) {
            free(ids);
            free(text);
            break;
        }
    }
    free(line);
    if (st == RD_OK && ferror(f)) {
        snprintf(err, err_len, "cannot read --prompts file %s: %s", path, strerror(errno));
        st = RD_ERR_IO;
    }
    fclose(f);
    if (st == RD_OK && p->n == 0) FAIL(RD_ERR_INVALID_ARG, "--prompts file %s holds no prompts", path);
    return st;
}

/* The prompts as given, not yet checked against the vocabulary and the context. */
static rd_status gather(const struct rd_args *a, const struct rd_config *cfg,
                        const struct rd_tokenizer *tok, struct rd_prompts *p, char *err,
                        int err_len)
{
    rd_status st = RD_OK;
    if (a->prompt_ids) {
        int32_t *ids;
        int n;
        RD_TRY(rd_cli_parse_ids(a->prompt_ids, &ids, &n, err, err_len));
        if ((st = add_prompt(p, ids, n, NULL)) != RD_OK) free(ids);
    } else if (a->prompts_file) {
        st = read_jsonl(a->prompts_file, tok, cfg, p, err, err_len);
    } else {
        int32_t *ids;
        int n;
        RD_TRY(encode_text(tok, cfg, a->prompt, strlen(a->prompt), &ids, &n, err, err_len));
        if ((st = add_prompt(p, ids, n, strdup(a->prompt))) != RD_OK) free(ids);
    }
    return st;
}

static rd_status check(const struct rd_config *cfg, int max_ctx, const struct rd_prompts *p,
                       char *err, int err_len)
{
    for (int i = 0; i < p->n; i++) {
        const char *which = p->n > 1 ? "prompt " : "the prompt";
        char num[32] = "";
        if (p->n > 1) snprintf(num, sizeof num, "%d", i + 1);
        if (p->len[i] == 0)
            FAIL(RD_ERR_INVALID_ARG, "%s%s is empty (give at least one token id)", which, num);
        if (p->len[i] > max_ctx)
            FAIL(RD_ERR_RANGE, "%s%s has %d tokens but the context holds %d (raise --max-seq-len, "
                 "up to what the model supports)", which, num, p->len[i], max_ctx);
        for (int j = 0; j < p->len[i]; j++)
            if (p->ids[i][j] >= cfg->vocab_size)
                FAIL(RD_ERR_RANGE, "token id %d in %s%s is out of range: the vocabulary has %d tokens "
                     "(0..%d)", p->ids[i][j], which, num, cfg->vocab_size, cfg->vocab_size - 1);
    }
    return RD_OK;
}

rd_status rd_prompts_read(const struct rd_args *a, const struct rd_config *cfg,
                          const struct rd_tokenizer *tok, int max_ctx, struct rd_prompts *p,
                          char *err, int err_len)
{
    memset(p, 0, sizeof *p);
    rd_status st = gather(a, cfg, tok, p, err, err_len);
    if (st == RD_OK) st = check(cfg, max_ctx, p, err, err_len);
    if (st != RD_OK) rd_prompts_free(p); /* on failure nothing is left half-built */
    return st;
}

rd_status rd_prompts_bcast(struct rd_comm *c, bool ok, struct rd_prompts *p)
{
    /* header: [ok, n]; then the lengths; then every prompt's ids */
    int32_t hdr[2] = {ok ? 1 : 0, ok ? p->n : 0};
    RD_TRY(rd_comm_bcast_host(c, hdr, sizeof hdr, 0));
    if (!hdr[0]) return RD_ERR_INVALID_ARG;
    if (c->rank != 0) {
        memset(p, 0, sizeof *p);
        p->n = hdr[1];
        p->ids = calloc((size_t)p->n, sizeof *p->ids);
        p->len = calloc((size_t)p->n, sizeof *p->len);
        p->text = calloc((size_t)p->n, sizeof *p->text);
        p->max_new = calloc((size_t)p->n, sizeof *p->max_new);
        if (!p->ids || !p->len || !p->text || !p->max_new) return RD_ERR_OOM;
    }
    RD_TRY(rd_comm_bcast_host(c, p->len, (size_t)p->n * sizeof(int), 0));
    RD_TRY(rd_comm_bcast_host(c, p->max_new, (size_t)p->n * sizeof(int), 0));
    for (int i = 0; i < p->n; i++) {
        if (c->rank != 0) {
            p->ids[i] = malloc(((size_t)p->len[i] + 1) * sizeof(int32_t));
            if (!p->ids[i]) return RD_ERR_OOM;
        }
        RD_TRY(rd_comm_bcast_host(c, p->ids[i], (size_t)p->len[i] * sizeof(int32_t), 0));
    }
    return RD_OK;
}
