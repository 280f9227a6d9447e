# A private one-node SLURM for tests (sourced, not run): munge, slurmctld and slurmd started in a
# scratch folder as described in shared/slurm/README.md, and stopped again by rd_slurm_stop, which
# the caller puts in its EXIT trap. Only what was started here is stopped (by pid); a munged that
# already answers is reused and left running.
#
#   source slurm_lib.sh
#   rd_slurm_require           # exit 77 (skip) when SLURM is not installed, we are not root, or
#                              # the machine cannot run slurmd (no cgroup file system mounted)
#   rd_slurm_start "$SCRATCH"  # exports SLURM_CONF; waits until the node is idle
#   rd_slurm_stop              # cancels our jobs, stops the daemons; safe to call twice

RD_SLURM_DIR=""
RD_SLURM_MUNGE_PID=""

rd_slurm_require() {
    local p
    for p in slurmctld slurmd srun sbatch munged; do
        if ! command -v "$p" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$p" ]; then
            echo "SKIP: slurm not installed ($p missing; apt-get install slurmctld slurmd slurm-client munge)"
            exit 77
        fi
    done
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: the private SLURM needs root (munged runs as user munge, the daemons as root)"
        exit 77
    fi
    # slurmd (22.05) initialises its cgroup plugin whatever the config says, and refuses to start
    # without a cgroup file system: a property of the machine, not of ropedist
    if ! awk '$2 == "/sys/fs/cgroup" { found = 1 } END { exit !found }' /proc/mounts; then
        echo "SKIP: slurmd cannot run here: no cgroup file system is mounted on /sys/fs/cgroup"
        exit 77
    fi
}

# After slurmd failed to start: when its log says why and the reason is the machine's (cgroups),
# skip (exit 77, the caller's EXIT trap stops what was started) instead of failing.
rd_slurm_skip_if_machine() {
    local why
    why=$(grep -hiE "cgroup" "$RD_SLURM_DIR/log/d.log" 2>/dev/null | head -n 1)
    [ -n "$why" ] || return 0
    echo "SKIP: slurmd cannot start on this machine: ${why#*] }"
    exit 77
}

# prints a TCP port nobody listens on, starting at $1, stepping by 2 (ports p and p+1 both free)
rd_free_port_pair() {
    local p=$1 used
    used=$(awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print strtonum("0x" a[2]) }' \
           /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)
    while echo "$used" | grep -qx -e "$p" -e "$((p + 1))"; do p=$((p + 2)); done
    echo "$p"
}

rd_slurm_start() {
    RD_SLURM_DIR=$1
    local host cpus port i state
    host=$(hostname -s) # slurmd must find its NodeName; addresses are loopback, so no DNS needed
    cpus=$(nproc)
    [ "$cpus" -lt 4 ] && cpus=4 # config_overrides: 2-core CI machines still run 2-3 tasks
    port=$(rd_free_port_pair 16817)
    mkdir -p "$RD_SLURM_DIR/state" "$RD_SLURM_DIR/spool" "$RD_SLURM_DIR/log"

    # munge: reuse one that answers, else start ours
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged --force || { echo "FAIL: munged did not start"; return 1; }
        for i in $(seq 50); do
            [ -s /run/munge/munged.pid ] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
            sleep 0.1
        done
        RD_SLURM_MUNGE_PID=$(cat /run/munge/munged.pid 2>/dev/null)
        munge -n | unmunge >/dev/null || { echo "FAIL: munge does not answer"; return 1; }
    fi

    cat > "$RD_SLURM_DIR/slurm.conf" <<CONF
ClusterName=rdtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$RD_SLURM_DIR/state
SlurmdSpoolDir=$RD_SLURM_DIR/spool
SlurmctldPidFile=$RD_SLURM_DIR/slurmctld.pid
SlurmdPidFile=$RD_SLURM_DIR/slurmd.pid
SlurmctldLogFile=$RD_SLURM_DIR/log/ctld.log
SlurmdLogFile=$RD_SLURM_DIR/log/d.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    export SLURM_CONF=$RD_SLURM_DIR/slurm.conf
    # a job inside the test must not think it is nested in an outer allocation
    unset SLURM_JOB_ID SLURM_JOBID SLURM_NODELIST SLURM_NTASKS SLURM_STEP_ID SLURM_PROCID
    /usr/sbin/slurmctld -f "$SLURM_CONF" || { echo "FAIL: slurmctld did not start"; rd_slurm_logs; return 1; }
    if ! /usr/sbin/slurmd -f "$SLURM_CONF"; then
        rd_slurm_skip_if_machine
        echo "FAIL: slurmd did not start"
        rd_slurm_logs
        return 1
    fi
    for i in $(seq 120); do
        state=$(sinfo -h -o %t 2>/dev/null | head -1)
        case "$state" in idle*|mix*|alloc*) break ;; esac
        sleep 0.25
    done
    case "$state" in
        idle*|mix*|alloc*) echo "slurm: node $host $state (ports $port/$((port + 1)), $RD_SLURM_DIR)" ;;
        *) rd_slurm_skip_if_machine
           echo "FAIL: slurm node not idle after 30 s (state '$state')"; rd_slurm_logs; return 1 ;;
    esac
}

rd_slurm_logs() {
    [ -n "$RD_SLURM_DIR" ] || return 0
    local f
    for f in "$RD_SLURM_DIR"/log/*.log; do
        [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
    done
}

# kills pid $1 (TERM, then KILL after $2 tenths of a second) and waits for it to be gone
rd_stop_pid() {
    local pid=$1 tenths=${2:-50} i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null
    for i in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    for i in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

rd_slurm_stop() {
    [ -n "$RD_SLURM_DIR" ] || return 0
    local i ctld d
    if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
        # every job on this private cluster is ours
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null)
        if [ -n "$jobs" ]; then
            scancel $jobs 2>/dev/null
            for i in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
        fi
    fi
    ctld=$(cat "$RD_SLURM_DIR/slurmctld.pid" 2>/dev/null)
    d=$(cat "$RD_SLURM_DIR/slurmd.pid" 2>/dev/null)
    rd_stop_pid "$d"
    rd_stop_pid "$ctld"
    rd_stop_pid "$RD_SLURM_MUNGE_PID"
    RD_SLURM_MUNGE_PID=""
    RD_SLURM_DIR=""
}
