#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests (run as root):
#   slurm_cluster.sh up STATE_DIR     start munged, slurmctld and slurmd; wait for an idle node
#   slurm_cluster.sh down STATE_DIR   stop them and every job they started
# Everything lives under STATE_DIR. After `up`, STATE_DIR/env holds what a client needs:
# SLURM_CONF (for sbatch, squeue, scancel) and the partition's name.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # the daemons, wherever root's PATH leaves them out

usage() {
    echo "usage: $0 up|down STATE_DIR" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
action=$1
state=$(realpath -m "$2")
host=$(hostname -s)
partition=tests

# A port nothing listens on, so that clusters of parallel test runs do not meet.
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

write_config() {
    local ctld_port d_port
    ctld_port=$(free_port)
    d_port=$(free_port)
    while [[ $d_port == "$ctld_port" ]]; do d_port=$(free_port); done
    # Jobs run on this host without accounting (no slurmdbd): job states come from squeue
    # while slurmctld keeps finished jobs for MinJobAge seconds. The node promises the cores
    # and memory profiles/slurm asks of a real cluster (config_overrides: slurmd does not
    # check them against this machine, and nothing here enforces them), and one GPU whose
    # device is /dev/null: a job asking for --gpus=1 is scheduled and sees
    # CUDA_VISIBLE_DEVICES=0. A cancelled job's processes are killed 5 s after their SIGTERM
    # (KillWait; 30 s by default).
    cat > "$state/etc/slurm.conf" << EOF
ClusterName=llmenergy-tests
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket.2
StateSaveLocation=$state/spool/slurmctld
SlurmdSpoolDir=$state/spool/slurmd
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MinJobAge=300
KillWait=5
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=65536 Gres=gpu:1 State=UNKNOWN
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    echo "NodeName=$host Name=gpu File=/dev/null" > "$state/etc/gres.conf"
    cat > "$state/env" << EOF
SLURM_CONF=$state/etc/slurm.conf
SLURM_PARTITION=$partition
EOF
}

node_state() {
    SLURM_CONF="$state/etc/slurm.conf" timeout 10 sinfo --noheader --nodes "$host" \
        --format %t 2> /dev/null || true
}

up() {
    mkdir -p "$state"/{etc,munge,spool/slurmctld,spool/slurmd,run,log}
    chmod 755 "$state/munge"
    write_config
    dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$state/munge/munge.key"
    trap down EXIT # a cluster that does not come up is taken down again
    # --force: munged wants every folder above its socket open to all users (pytest's
    # temporary folders are not); only root uses this cluster.
    munged --force --key-file "$state/munge/munge.key" --socket "$state/munge/munge.socket.2" \
        --pid-file "$state/run/munged.pid" --log-file "$state/log/munged.log" \
        --seed-file "$state/munge/munged.seed"
    # The executor plugin removes SLURM_CONF from each job's environment, so the srun and
    # Snakemake inside a job read /etc/slurm/slurm.conf: the daemons, and so their jobs, run
    # in a mount namespace of their own where this cluster's config is /etc/slurm.
    mkdir -p /etc/slurm
    unshare --mount --propagation private bash -c "
        set -e
        readlink /proc/self/ns/mnt > '$state/run/mnt-ns'
        mount --bind '$state/etc' /etc/slurm
        slurmctld -c
        slurmd
    "
    local waited=0 daemon
    while true; do
        for daemon in slurmctld slurmd; do
            if [[ -s $state/run/$daemon.pid ]] && ! running "$(cat "$state/run/$daemon.pid")"; then
                echo "$daemon stopped:" >&2
                tail -n 20 "$state/log/$daemon.log" >&2
                return 1
            fi
        done
        [[ $(node_state) == idle ]] && break
        if ((waited >= 60)); then
            echo "the node is not idle after 60 s (state: '$(node_state)')" >&2
            tail -n 20 "$state"/log/*.log >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    trap - EXIT
}

# Processes of this cluster: the daemons and all they started share its mount namespace.
cluster_processes() {
    local namespace=$1 pid
    for pid in /proc/[0-9]*; do
        [[ $(readlink "$pid/ns/mnt" 2> /dev/null) == "$namespace" ]] && echo "${pid#/proc/}"
    done
    return 0
}

# Whether the process runs (a zombie has ended; only its parent can still reap it).
running() {
    local process_state
    process_state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2> /dev/null) || return 1
    [[ -n $process_state && $process_state != Z ]]
}

# Send `signal` to the processes and wait up to 10 s for them to end.
stop() {
    local signal=$1 pid alive
    shift
    [[ $# -gt 0 ]] || return 0
    kill "-$signal" "$@" 2> /dev/null || true
    for _ in $(seq 100); do
        alive=0
        for pid in "$@"; do running "$pid" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    echo "still running after SIG$signal: $*" >&2
    return 1
}

down() {
    local pids=()
    if [[ -s $state/run/mnt-ns ]]; then
        mapfile -t pids < <(cluster_processes "$(cat "$state/run/mnt-ns")")
    fi
    # The daemons and whatever jobs still run: a test cluster keeps no state worth a clean
    # shutdown, and slurmstepd outlives a TERM.
    stop KILL "${pids[@]}"
    if [[ -s $state/run/munged.pid ]]; then
        stop TERM "$(cat "$state/run/munged.pid")"
    fi
    rm -f "$state"/run/*.pid "$state/run/mnt-ns"
}

case $action in
    up) up ;;
    down) down ;;
    *) usage ;;
esac
