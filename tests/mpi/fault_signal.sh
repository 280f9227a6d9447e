#!/usr/bin/env bash
# SIGTERM, then SIGINT, sent to mpirun in the middle of a generation ends every rank cleanly:
# all ranks gone within RD_FAULT_LIMIT_S (30) seconds, no rank left behind, a non-zero status,
# no crash. Then SIGTERM sent to one rank only (rank 1, as a node's OOM handler or an operator
# might): the others end too and name rank 1 and the signal. The times are printed.
set -u
source "$(dirname "$0")/fault_common.bash"
rd_fault_setup
[ -n "$RD_MPIRUN" ] || rd_fault_fail "no mpirun"

NP=2
for sig in TERM INT; do
    # shellcheck disable=SC2046
    rd_launch_bg "$RD_MPIRUN" --allow-run-as-root --oversubscribe -np $NP "$RD_ROPEDIST" $(rd_long_args)
    rd_wait_generating $NP
    t0=$(date +%s.%N)
    kill -s "$sig" "$RD_LAUNCH_PID"
    rd_wait_all_gone "$t0"
    echo "mpirun -np $NP, SIG$sig to mpirun: ranks gone after ${RD_RANKS_ELAPSED}s, launcher after ${RD_ELAPSED}s, exit status $RD_LAUNCH_RC"
    grep -E "fatal|signal|lost" "$RD_SCRATCH/err.txt" | head -n 8 | sed 's/^/  | /'
    [ "$RD_LAUNCH_RC" != 0 ] || rd_fault_fail "the job exited with status 0 after SIG$sig"
    if grep -qE "Segmentation|core dumped|Abort|backtrace" "$RD_SCRATCH/err.txt"; then
        rd_fault_fail "a rank did not end cleanly on SIG$sig"
    fi
done
# shellcheck disable=SC2046
rd_launch_bg "$RD_MPIRUN" --allow-run-as-root --oversubscribe -np $NP "$RD_ROPEDIST" $(rd_long_args)
rd_wait_generating $NP
pid=$(rd_pid_of_rank 1) || rd_fault_fail "cannot find rank 1's process"
t0=$(date +%s.%N)
kill -s TERM "$pid"
rd_wait_all_gone "$t0"
echo "mpirun -np $NP, SIGTERM to rank 1 only: ranks gone after ${RD_RANKS_ELAPSED}s, launcher after ${RD_ELAPSED}s, exit status $RD_LAUNCH_RC"
grep -E "fatal|signal|lost" "$RD_SCRATCH/err.txt" | head -n 8 | sed 's/^/  | /'
[ "$RD_LAUNCH_RC" != 0 ] || rd_fault_fail "the job exited with status 0 after SIGTERM to rank 1"
grep -qE "rank 1 \(pid [0-9]+ on [^)]*\) ended on signal 15" "$RD_SCRATCH/err.txt" ||
    rd_fault_fail "no survivor said 'rank 1 (pid ...) ended on signal 15'"
echo "PASS: SIGTERM and SIGINT end all ranks within ${RD_FAULT_LIMIT_S}s"
