/* Bootstrap from MPI: world rank and size, the node-local rank (MPI_Comm_split_type shared),
 * and the device a rank binds. Sets the logger's rank prefix. MPI errors return to us
 * (MPI_ERRORS_RETURN) so they reach our checks. */
#ifndef RD_BOOTSTRAP_H
#define RD_BOOTSTRAP_H

#include <stdbool.h>

#include <mpi.h>

#include "common/status.h"

struct rd_world {
    MPI_Comm comm;      /* duplicate of MPI_COMM_WORLD */
    int rank, size;
    MPI_Comm node_comm; /* ranks on this node */
    int local_rank, local_size;
    char host[256];
    /* the launcher gave each rank of this node its own GPU set: every rank of the node has a
     * different, non-empty CUDA_VISIBLE_DEVICES (srun --gpus-per-task, --gpu-bind=single:1,
     * a per-rank wrapper). Then a rank uses its device 0; otherwise local_rank % visible. */
    bool gpu_per_rank;
    char visible_devices[64]; /* CUDA_VISIBLE_DEVICES as this rank saw it ("" when unset) */
};

rd_status rd_world_init(int *argc, char ***argv, struct rd_world *w);
void rd_world_finalize(struct rd_world *w);

/* Ends every rank of the job now (MPI_Abort) after logging why; for failures that only some
 * ranks see. Never returns. */
_Noreturn void rd_world_abort(const struct rd_world *w, int code, const char *why);

/* Collective: true on every rank when ok is true on every rank. Used to turn a local check
 * into a job-wide decision before a collective that would otherwise hang. */
bool rd_world_all_ok(const struct rd_world *w, bool ok);

/* Collective: every rank passes whether its step (what, e.g. "loading the weights") went well
 * and, when not, its message; true on every rank when all are fine. Only rank 0 prints, one
 * line: its own message when it failed, else which ranks failed and the first one's message
 * (with another failing rank's when that differs), so the cause is said once, from rank 0. */
bool rd_world_agree(const struct rd_world *w, bool ok, const char *msg, const char *what);

#endif
