#!/usr/bin/env bash
# A real Slurm cluster on this machine, for the Slurm integration tests.
#   tools/slurm-cluster.sh start [NODES]  install (Debian packages) when missing, configure, start
#                                          NODES slurmd (default 2, or $ITLAB_SLURM_NODES)
#   tools/slurm-cluster.sh stop           stop exactly the daemons that `start` started
#   tools/slurm-cluster.sh status
#   tools/slurm-cluster.sh leftovers      list live Slurm/munge daemons not running before `start`
#
# Several nodes on one machine: Debian's slurmd is not built with --enable-multiple-slurmd
# (its library rejects two nodes with one NodeHostname), so each node gets its own name
# (itlab-n1, itlab-n2, ...), its own loopback address (127.0.0.11, .12, ...: reachable from
# this machine only), its own slurmd port, spool, pid and log file, and its slurmd runs as
# `slurmd -N <name>`. Both nodes advertise the machine's CPUs and memory
# (SlurmdParameters=config_overrides), so the cluster is oversubscribed: fine for tests.
# One node (NODES=1) keeps the machine's own hostname. Every node advertises one fake GPU
# (gres on /dev/null) so that GPU rules schedule.
#
# Pids: every daemon double-forks, so `pgrep` right after starting one finds the exiting
# parent as well (two pids, or a zombie that PID 1 never reaps here). `start` therefore
# reads each daemon's own pid file and records "pid start-time"; `stop` kills a pid only
# when its start time still matches (pids are recycled), waits for it to exit, and SIGKILLs
# after a grace period. The record lives in /run (not /tmp, which test runs and cleaners may
# wipe): stop works from any shell, also after a full CI run.
#
# Config: `start` writes /etc/slurm/slurm.conf and gres.conf; `stop` puts back what was there
# before (or removes them). A slurm.conf left behind names a controller that is no longer
# running, and every Slurm client then waits ~9 s for it: `scontrol show config` took 9.0 s,
# and the Slurm executor plugin runs it when Snakemake starts (snakemake_executor_plugin_slurm
# job_status_query.get_min_job_age, at import, whatever the executor), so every snakemake
# command on the machine took 9 s longer (`snakemake --version` 11.2 s against 2.3 s without
# the file, 7 Dec 2026). A file that carries this script's header is a leftover of an earlier
# run, not the machine's own: it is not kept.
# Needs root (CI machines are root); no systemd is assumed: daemons are started by hand.
set -euo pipefail

STATE=${ITLAB_SLURM_STATE:-/run/itlab-slurm}
PARTITION=${ITLAB_SLURM_PARTITION:-itlab}
NODES=${ITLAB_SLURM_NODES:-2}
CONF=/etc/slurm
CONF_FILES="slurm.conf gres.conf"
HEADER="# written by itlab tools/slurm-cluster.sh"
DAEMONS="munged slurmctld slurmscriptd slurmd slurmstepd"

log() { echo "[slurm-cluster] $*" >&2; }

node_names() {
    if [ "$NODES" -eq 1 ]; then hostname -s; else for i in $(seq 1 "$NODES"); do echo "itlab-n$i"; done; fi
}

# states of all nodes, one per line
node_states() { sinfo -h -N -o '%T' 2>/dev/null || true; }

all_nodes_up() {
    local states
    states=$(node_states)
    [ -n "$states" ] && [ "$(grep -c . <<<"$states")" -ge "$NODES" ] &&
        ! grep -qvE '^(idle|mixed|allocated)$' <<<"$states"
}

# "pid starttime" of live (non-zombie) processes named $1
live_pids() {
    local pid
    for pid in $(pgrep -x "$1" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        # fields after the ")" of comm: state is 1st, starttime is 20th
        local rest
        rest=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        set -- $rest
        [ "$1" = Z ] && continue
        echo "$pid ${20}"
    done
}

starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sinfo munged; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

write_config() {
    local host node_line cpus mem names
    host=$(hostname -s)
    node_line=$(slurmd -C | head -n1) # the machine's real CPUs and memory; keep some for the OS
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
    mem=$((mem * 9 / 10))
    mkdir -p "$CONF" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    chown -R slurm:slurm /var/spool/slurmctld /var/log/slurm 2>/dev/null || true
    names=$(node_names | paste -sd, -)
    save_config
    {
        echo "$HEADER: a ${NODES}-node test cluster on one machine"
        cat <<CONFEOF
ClusterName=itlab
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
# a requeued job may start again after cred_expire seconds (default 120): short for tests
# (10: the requeue test waited ~22 s at 20; a step credential is checked within a second here)
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# schedule a submitted batch job at once: by default slurmctld may defer it up to 3 s
# (batch_sched_delay), and each job of the test chain waited 1.3-2.8 s from sbatch to start
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MinJobAge=300
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
CONFEOF
        if [ "$NODES" -eq 1 ]; then
            echo "NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} Gres=gpu:1 State=UNKNOWN"
        else
            local i=0 name
            for name in $(node_names); do
                i=$((i + 1))
                echo "NodeName=${name} NodeHostname=${name} NodeAddr=127.0.0.$((10 + i)) Port=$((6817 + i))" \
                    "CPUs=${cpus} RealMemory=${mem} Gres=gpu:1 State=UNKNOWN"
            done
        fi
        echo "PartitionName=${PARTITION} Nodes=${names} Default=YES MaxTime=INFINITE State=UP"
    } >"$CONF/slurm.conf"
    {
        echo "$HEADER"
        node_names | sed 's/.*/NodeName=& Name=gpu File=\/dev\/null Count=1/'
    } >"$CONF/gres.conf"
}

# keep the machine's own config files (once per start) so that stop can put them back
save_config() {
    local f
    mkdir -p "$STATE/config"
    for f in $CONF_FILES; do
        [ -e "$STATE/config/$f" ] || [ -e "$STATE/config/$f.absent" ] && continue
        if [ -f "$CONF/$f" ] && ! ours "$CONF/$f"; then
            cp -p "$CONF/$f" "$STATE/config/$f"
        else
            touch "$STATE/config/$f.absent"
        fi
    done
}

# a file this script wrote (its header on the first line)
ours() { head -n1 "$1" 2>/dev/null | grep -qF "$HEADER"; }

restore_config() {
    local f
    for f in $CONF_FILES; do
        if [ -f "$STATE/config/$f" ]; then
            mv -f "$STATE/config/$f" "$CONF/$f"
            log "restored $CONF/$f"
        elif [ -e "$STATE/config/$f.absent" ]; then
            ours "$CONF/$f" && rm -f "$CONF/$f" && log "removed $CONF/$f"
            rm -f "$STATE/config/$f.absent"
        fi
    done
}

# start a daemon and record the pid its own pid file names, with that process's start time
start_daemon() { # record-name pidfile command...
    local name=$1 pidfile=$2 pid
    shift 2
    rm -f "$pidfile"
    "$@"
    for _ in $(seq 1 50); do
        [ -s "$pidfile" ] && pid=$(tr -dc 0-9 <"$pidfile") && [ -n "$pid" ] && [ -d "/proc/$pid" ] && break
        sleep 0.2
    done
    if [ -z "${pid:-}" ] || [ ! -d "/proc/$pid" ]; then
        log "$name failed to start"
        return 1
    fi
    echo "$pid $(starttime "$pid")" >"$STATE/$name.pid"
}

start() {
    if all_nodes_up; then
        log "a Slurm cluster is already up; using it (stop will leave it alone)"
        return 0
    fi
    local d
    for d in munged slurmctld slurmd; do
        if [ -n "$(live_pids "$d")" ]; then
            log "a $d not started by this script is running (pids: $(live_pids "$d" | cut -d' ' -f1 | xargs));" \
                "stop it first or use that cluster"
            return 1
        fi
    done
    install_packages
    mkdir -p "$STATE"
    rm -f "$STATE"/*.pid
    # what was running before: `leftovers` reports only what appeared after this
    for d in $DAEMONS; do live_pids "$d"; done >"$STATE/before"
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key
    start_daemon munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
    write_config
    start_daemon slurmctld /run/slurmctld.pid /usr/sbin/slurmctld
    local name
    if [ "$NODES" -eq 1 ]; then
        start_daemon slurmd "/run/slurmd-$(hostname -s).pid" /usr/sbin/slurmd
    else
        for name in $(node_names); do
            mkdir -p "/var/spool/slurmd/$name"
            start_daemon "slurmd-$name" "/run/slurmd-$name.pid" /usr/sbin/slurmd -N "$name"
        done
    fi
    for _ in $(seq 1 60); do
        if all_nodes_up; then
            log "$NODES node(s) up: partition ${PARTITION} ready"
            sinfo -N >&2
            return 0
        fi
        for name in $(sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 ~ /drain|inval|down/ {print $1}'); do
            scontrol update nodename="$name" state=resume 2>/dev/null || true
        done
        sleep 1
    done
    log "nodes did not become idle: $(node_states | xargs)"
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd*.log >&2 || true
    return 1
}

# kill one recorded daemon if it is still the process we started; wait for it to exit
stop_recorded() {
    local file=$1 name pid start
    name=$(basename "$file" .pid)
    read -r pid start <"$file" || true
    if [ -n "${pid:-}" ] && [ "$(starttime "$pid")" = "$start" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ "$(starttime "$pid")" = "$start" ] || break
            grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null && break # exited, left as a zombie
            sleep 0.2
        done
        if [ "$(starttime "$pid")" = "$start" ] && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then
            log "$name ($pid) ignored SIGTERM for 20 s: SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped $name ($pid)"
    else
        log "$name (${pid:-?}) is no longer running"
    fi
    rm -f "$file"
}

stop() {
    if [ ! -d "$STATE" ] || [ -z "$(ls "$STATE"/*.pid 2>/dev/null)" ]; then
        log "nothing recorded in $STATE: no daemon started by this script to stop"
        restore_config # a no-op when start saved nothing
        return 0
    fi
    if [ -f "$STATE/slurmctld.pid" ]; then
        # cancel the test jobs, and give their steps time to end before slurmd goes
        scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 1 30); do
            [ -z "$(squeue -h -u "$(id -un)" -t RUNNING,COMPLETING 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    local f
    for f in "$STATE"/slurmd*.pid; do [ -f "$f" ] && stop_recorded "$f"; done
    for f in "$STATE/slurmctld.pid" "$STATE/munged.pid"; do [ -f "$f" ] && stop_recorded "$f"; done
    restore_config
    return 0
}

# live Slurm/munge daemons that were not running before `start`, and config files this script
# wrote that are still in place: non-empty means a leak
leftovers() {
    local d line f
    for d in $DAEMONS; do
        live_pids "$d" | while read -r line; do
            grep -qxF "$line" "$STATE/before" 2>/dev/null || echo "$d ${line%% *}"
        done
    done
    for f in $CONF_FILES; do ours "$CONF/$f" && echo "config $CONF/$f"; done
    return 0
}

case "${1:-}" in
start)
    [ -n "${2:-}" ] && NODES=$2
    start
    ;;
stop) stop ;;
status) sinfo -N ;;
leftovers) leftovers ;;
*)
    echo "usage: $0 start [NODES]|stop|status|leftovers" >&2
    exit 2
    ;;
esac
