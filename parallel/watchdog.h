/* Liveness watchdog: a dead rank never leaves its peers hanging in a collective, and every
 * surviving rank says which rank was lost.
 *
 * Why: when a rank dies (SIGKILL, OOM killer, segfault, lost node) or leaves early (exit() on
 * one rank only) its peers block in MPI_Allreduce or an NCCL kernel. Open MPI's mpirun then
 * kills the job ("mpirun noticed that process rank R ... exited on signal 9") and srun with
 * --kill-on-bad-exit ends the step ("task R: Killed"), but each in its own words, srun without
 * that flag lets a step run on after a task's bad exit, and other launchers (a per-node script,
 * MPICH's hydra, a container runtime) may do neither. The watchdog makes every launcher behave
 * alike and says, in ropedist's own log, which rank was lost, on which host, with which pid.
 *
 * How: a star of TCP connections outside MPI. Rank 0 listens; every other rank connects to it
 * and says hello (rank, pid, host). A thread on each rank polls its connection(s):
 *   - a connection that closes without a goodbye means that rank is gone: rank 0 tells every
 *     other rank "lost rank R (pid P on host H)", every rank prints
 *     `[rank r/N] fatal: lost rank R (pid P on host H): ...; ending all ranks` and exits with
 *     RD_WATCHDOG_EXIT_CODE, so the launcher ends the job at once;
 *   - SIGTERM / SIGINT are caught: the rank tells its peer(s) which signal ended it, then dies of
 *     that signal; the others exit with 128 + signal, naming the rank and the signal;
 *   - rd_watchdog_stop sends the goodbye before MPI_Finalize, so a normal end is silent.
 * Detection is immediate for a dead process (the kernel closes its sockets); TCP keepalive
 * (about 25 s) covers a node that vanishes. The thread makes no MPI call (MPI_THREAD_FUNNELED).
 *
 * Environment: RD_WATCHDOG=0 turns it off; RD_WATCHDOG_PORT=N makes rank 0 listen on port N
 * (default: any free port); RD_WATCHDOG_ADDR=a.b.c.d is the address other nodes use to reach
 * rank 0 (default: every IPv4 address of rank 0's interfaces, loopback first on its own node).
 * When the star cannot be built (firewall, no route) every rank logs a warning and the job runs
 * without the watchdog: the launcher's own cleanup still applies. */
#ifndef RD_WATCHDOG_H
#define RD_WATCHDOG_H

#include <stdatomic.h>

#include "common/status.h"
#include "parallel/bootstrap.h"

/* exit status of a rank ended by the watchdog (not by a signal) */
#define RD_WATCHDOG_EXIT_CODE 70

struct rd_watchdog;

/* Collective over w->comm. *out is NULL (and RD_OK) when the watchdog is off: one rank,
 * RD_WATCHDOG=0, or the connections could not be made (a warning says why). Installs the
 * SIGTERM/SIGINT handlers. */
rd_status rd_watchdog_start(const struct rd_world *w, struct rd_watchdog **out);

/* Not collective. Says goodbye to the peer(s), stops the thread, closes the sockets, restores
 * the signal handlers. Call it right before rd_world_finalize on every normal exit path,
 * including a common error exit. NULL: nothing. */
void rd_watchdog_stop(struct rd_watchdog *wd);

/* Serving: SIGTERM and SIGINT ask rank 0 to drain instead of ending the rank. The first such
 * signal on any rank stores the signal number in *flag on rank 0 (another rank forwards it over
 * its watchdog connection, frame D, and keeps running); a second signal on a rank ends it as
 * before (peers told, then the signal's default action). Call after rd_watchdog_start on every
 * rank; works without a watchdog (one rank) too. */
void rd_watchdog_drain_on_signal(atomic_int *flag);

/* Before MPI_Abort: tells the peers that this rank ends the job on purpose and why, so they
 * report "rank R ended the job: why" rather than "lost rank R". Safe without a watchdog. */
void rd_watchdog_announce_abort(const char *why);

#endif
