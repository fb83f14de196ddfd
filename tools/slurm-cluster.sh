#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the Slurm integration tests.
#   tools/slurm-cluster.sh start   install (Debian packages) when missing, configure, start
#   tools/slurm-cluster.sh stop    stop only the daemons that `start` started
#   tools/slurm-cluster.sh status
# The node advertises one fake GPU (gres on /dev/null) so that GPU rules schedule.
# Needs root (CI machines are root); no systemd is assumed: daemons are started by hand.
set -euo pipefail

STATE=${ITLAB_SLURM_STATE:-/tmp/itlab-slurm}
PARTITION=${ITLAB_SLURM_PARTITION:-itlab}
CONF=/etc/slurm

log() { echo "[slurm-cluster] $*" >&2; }

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n1; }

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
    local host node_line
    host=$(hostname -s)
    # the node's real CPUs and memory; keep some memory for the OS
    node_line=$(slurmd -C | head -n1)
    local cpus mem
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
    mem=$((mem * 9 / 10))
    mkdir -p "$CONF" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    chown -R slurm:slurm /var/spool/slurmctld /var/log/slurm 2>/dev/null || true
    cat >"$CONF/slurm.conf" <<CONFEOF
# written by itlab tools/slurm-cluster.sh: a one-node test cluster
ClusterName=itlab
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} Gres=gpu:1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONFEOF
    echo "NodeName=${host} Name=gpu File=/dev/null Count=1" >"$CONF/gres.conf"
}

start_daemon() {  # name, command...; records the pid if we started it
    local name=$1
    shift
    if pgrep -x "$name" >/dev/null; then
        log "$name already running: leaving it alone"
        return 0
    fi
    "$@"
    sleep 1
    pgrep -x "$name" >"$STATE/$name.pid" || { log "$name failed to start"; return 1; }
}

start() {
    if [ "$(node_state)" = "idle" ] || [ "$(node_state)" = "mixed" ]; then
        log "a Slurm cluster is already up ($(node_state)); using it"
        return 0
    fi
    install_packages
    mkdir -p "$STATE"
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key
    start_daemon munged runuser -u munge -- /usr/sbin/munged
    write_config
    start_daemon slurmctld /usr/sbin/slurmctld
    start_daemon slurmd /usr/sbin/slurmd
    for _ in $(seq 1 60); do
        case "$(node_state)" in
        idle | mixed | allocated)
            log "node is $(node_state): partition ${PARTITION} ready"
            return 0
            ;;
        *drain* | *inval* | down*)
            scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
            ;;
        esac
        sleep 1
    done
    log "node did not become idle: $(node_state)"
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    return 1
}

stop() {
    # cancel the test jobs first, then stop what start() started, in reverse order
    if [ -f "$STATE/slurmctld.pid" ]; then
        scancel --user="$(id -un)" 2>/dev/null || true
    fi
    for name in slurmd slurmctld munged; do
        if [ -f "$STATE/$name.pid" ]; then
            local pid
            pid=$(cat "$STATE/$name.pid")
            # only if that pid is still the daemon we started (pids are recycled)
            if [ "$(ps -p "$pid" -o comm= 2>/dev/null)" = "$name" ]; then
                kill "$pid" 2>/dev/null || true
                log "stopped $name"
            fi
            rm -f "$STATE/$name.pid"
        fi
    done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) sinfo ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
