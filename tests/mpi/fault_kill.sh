#!/usr/bin/env bash
# A rank killed with SIGKILL in the middle of generation ends the whole job: with mpirun -np 3,
# rank 1 and then (a second run) rank 0 are killed; every other rank must be gone within
# RD_FAULT_LIMIT_S (30) seconds, the job's status must be non-zero, and the survivors must
# print a message naming the lost rank ("lost rank R"). The time it took is printed.
set -u
source "$(dirname "$0")/fault_common.bash"
rd_fault_setup
[ -n "$RD_MPIRUN" ] || rd_fault_fail "no mpirun"

NP=3
for victim in 1 0; do
    # shellcheck disable=SC2046
    rd_launch_bg "$RD_MPIRUN" --allow-run-as-root --oversubscribe -np $NP "$RD_ROPEDIST" $(rd_long_args)
    rd_wait_generating $NP
    pid=$(rd_pid_of_rank $victim) || rd_fault_fail "cannot find rank $victim's process"
    t0=$(date +%s.%N)
    kill -9 "$pid"
    rd_wait_all_gone "$t0"
    echo "mpirun -np $NP, SIGKILL to rank $victim (pid $pid): ranks gone after ${RD_RANKS_ELAPSED}s, launcher after ${RD_ELAPSED}s," \
         "mpirun exit status $RD_LAUNCH_RC"
    grep -E "fatal|lost|rank $victim|signal" "$RD_SCRATCH/err.txt" | head -n 8 | sed 's/^/  | /'
    [ "$RD_LAUNCH_RC" != 0 ] || rd_fault_fail "the job exited with status 0 after losing rank $victim"
    grep -q "lost rank $victim " "$RD_SCRATCH/err.txt" ||
        rd_fault_fail "no survivor said 'lost rank $victim' (ropedist's liveness watchdog)"
done
echo "PASS: a killed rank ends the job within ${RD_FAULT_LIMIT_S}s and is named"
