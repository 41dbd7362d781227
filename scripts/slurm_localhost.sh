#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests and for trying the SLURM plugins.
#
#   sudo scripts/slurm_localhost.sh          # install (Debian/Ubuntu), configure, start
#   sudo scripts/slurm_localhost.sh status   # exit 0 when the node takes jobs
#
# Installs Debian's slurm-wlm and munge when they are missing, writes a single-node
# /etc/slurm/slurm.conf for this host (CPUs from nproc, capped by SLURM_LOCAL_CPUS,
# default 2; RealMemory from /proc/meminfo) and starts munged, slurmctld and slurmd
# without systemd (containers have none). Idempotent: daemons already answering are
# left running, an identical configuration is not rewritten, a second run changes
# nothing. Exits 0 once `sinfo` shows the node idle or mixed; 1 with the reason otherwise.
set -euo pipefail

say() { printf 'slurm_localhost: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

node_ready() {
    local state
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
    [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]
}

if [[ "${1:-}" == "status" ]]; then
    node_ready && { say "node ready"; exit 0; }
    say "node not ready"; exit 1
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages and starts daemons)"

# ---------------------------------------------------------------- packages
need=()
command -v munged >/dev/null 2>&1 || need+=(munge)
for tool in slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null 2>&1 || { need+=(slurm-wlm); break; }
done
if ((${#need[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "${need[*]} missing and apt-get is not available"
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
        die "apt-get install ${need[*]} failed"
fi

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- configuration
host=$(hostname -s)
# nproc honours OMP_NUM_THREADS, which mriproc sets to 1 for its own processes.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
max_cpus=${SLURM_LOCAL_CPUS:-2}
((cpus > max_cpus)) && cpus=$max_cpus
# Leave 512 MiB to the system; slurmd refuses to start if RealMemory exceeds what it sees.
mem_mib=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 - 512}' /proc/meminfo)
install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf=$(cat <<EOF
# Written by mriproc scripts/slurm_localhost.sh: a single-node cluster on $host.
ClusterName=localhost
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups in containers: track processes by their parent, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((mem_mib / cpus))
EOF
)
changed=0
if [[ ! -f /etc/slurm/slurm.conf ]] || [[ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]]; then
    say "writing /etc/slurm/slurm.conf ($host: CPUs=$cpus RealMemory=${mem_mib} MiB)"
    printf '%s\n' "$conf" > /etc/slurm/slurm.conf.tmp
    mv /etc/slurm/slurm.conf.tmp /etc/slurm/slurm.conf
    changed=1
fi

# ---------------------------------------------------------------- daemons
running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {  # a changed node definition needs both daemons restarted, not reconfigured
    local pid
    running "$1" || return 0
    pid=$(cat "$1")
    say "stopping $2 (configuration changed)"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    die "$2 (pid $pid) did not stop"
}
if ((changed)); then
    stop /run/slurmd.pid slurmd
    stop /run/slurmctld.pid slurmctld
fi
if ! running /run/slurmctld.pid; then
    say "starting slurmctld"
    slurmctld
fi
if ! running /run/slurmd.pid; then
    say "starting slurmd"
    slurmd
fi

for _ in $(seq 60); do
    node_ready && break
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
    if [[ "$state" == down* || "$state" == drain* ]]; then
        scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 1
done
node_ready || die "node $host is not ready (sinfo: $(sinfo -h -N 2>&1 | head -n1)); see /var/log/slurm/"
say "node $host ready ($(sinfo -h -N -o '%T %c CPUs %m MiB' | head -n1))"
