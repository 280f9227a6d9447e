/* Bootstrap from MPI (see bootstrap.h). */
#include "parallel/bootstrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "parallel/watchdog.h"

rd_status rd_world_init(int *argc, char ***argv, struct rd_world *w)
{
    memset(w, 0, sizeof *w);
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "error: MPI_Init failed\n");
        return RD_ERR_MPI;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (MPI_Comm_dup(MPI_COMM_WORLD, &w->comm) != MPI_SUCCESS) return RD_ERR_MPI;
    MPI_Comm_set_errhandler(w->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(w->comm, &w->rank);
    MPI_Comm_size(w->comm, &w->size);
    if (MPI_Comm_split_type(w->comm, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &w->node_comm) !=
        MPI_SUCCESS)
        return RD_ERR_MPI;
    MPI_Comm_rank(w->node_comm, &w->local_rank);
    MPI_Comm_size(w->node_comm, &w->local_size);
    gethostname(w->host, sizeof w->host - 1);
    rd_log_set_rank(w->rank, w->size, -1);

    /* did the launcher bind one GPU set per rank? (collective on the node) */
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    snprintf(w->visible_devices, sizeof w->visible_devices, "%s", cvd ? cvd : "");
    char *all = calloc((size_t)w->local_size, sizeof w->visible_devices);
    if (!all || MPI_Allgather(w->visible_devices, sizeof w->visible_devices, MPI_CHAR, all,
                              sizeof w->visible_devices, MPI_CHAR, w->node_comm) != MPI_SUCCESS) {
        free(all);
        return RD_ERR_MPI;
    }
    w->gpu_per_rank = w->local_size > 1;
    for (int i = 0; i < w->local_size && w->gpu_per_rank; i++) {
        const char *a = all + (size_t)i * sizeof w->visible_devices;
        if (!a[0]) w->gpu_per_rank = false;
        for (int j = 0; j < i && w->gpu_per_rank; j++)
            if (!strcmp(a, all + (size_t)j * sizeof w->visible_devices)) w->gpu_per_rank = false;
    }
    free(all);
    return RD_OK;
}

void rd_world_finalize(struct rd_world *w)
{
    if (w->node_comm != MPI_COMM_NULL && w->node_comm) MPI_Comm_free(&w->node_comm);
    if (w->comm != MPI_COMM_NULL && w->comm) MPI_Comm_free(&w->comm);
    MPI_Finalize();
}

_Noreturn void rd_world_abort(const struct rd_world *w, int code, const char *why)
{
    fprintf(stderr, "[rank %d/%d] fatal: %s; ending all ranks\n", w ? w->rank : 0,
            w ? w->size : 1, why);
    fflush(stderr);
    rd_watchdog_announce_abort(why); /* peers say "rank R ended the job: why", not "lost" */
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    _exit(code ? code : 1);
}

bool rd_world_all_ok(const struct rd_world *w, bool ok)
{
    int mine = ok ? 1 : 0, all = 0;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, w->comm) != MPI_SUCCESS)
        rd_world_abort(w, 1, "MPI_Allreduce failed while agreeing on a status");
    return all == 1;
}

/* Each rank's message travels as AGREE_MSG bytes ("" when fine) in one MPI_Allgather. */
#define AGREE_MSG 512
bool rd_world_agree(const struct rd_world *w, bool ok, const char *msg, const char *what)
{
    char mine[AGREE_MSG] = "";
    if (!ok) snprintf(mine, sizeof mine, "%s", msg && *msg ? msg : "(no message)");
    char *all = malloc((size_t)w->size * AGREE_MSG);
    if (!all || MPI_Allgather(mine, AGREE_MSG, MPI_CHAR, all, AGREE_MSG, MPI_CHAR, w->comm) !=
                    MPI_SUCCESS)
        rd_world_abort(w, 1, "MPI_Allgather failed while agreeing on a status");
    char list[256] = "";
    int first = -1, other = -1; /* the first failing rank, and one whose message differs */
    for (int r = 0; r < w->size; r++) {
        const char *m = all + (size_t)r * AGREE_MSG;
        if (!m[0]) continue;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%d", l ? ", " : "", r);
        if (first < 0) first = r;
        else if (other < 0 && strcmp(m, all + (size_t)first * AGREE_MSG) != 0) other = r;
    }
    if (w->rank == 0 && first >= 0) {
        char also[AGREE_MSG + 64] = "";
        if (other >= 0)
            snprintf(also, sizeof also, " (rank %d: %s)", other, all + (size_t)other * AGREE_MSG);
        if (first == 0)
            rd_log_user_error("%s%s", msg, also);
        else
            rd_log_user_error("%s failed on rank(s) %s: %s%s", what, list,
                              all + (size_t)first * AGREE_MSG, also);
    }
    free(all);
    return first < 0;
}
