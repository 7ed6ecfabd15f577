#!/usr/bin/env bash
# A real one-node Slurm cluster in a directory of its own, for tests and benchmarks.
#
#   scripts/slurm.sh start DIR [CPUS]   starts munged, slurmctld and slurmd under DIR and
#                                       prints the SLURM_CONF path once the node takes jobs
#   scripts/slurm.sh stop DIR           stops them by their PID files
#
# Needs Debian's `slurmctld slurmd slurm-client munge` (see .ci/run). No systemd, no
# cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none. The node declares CPUS
# CPUs (default 8) whatever the machine has, so that tests can run jobs side by side.
set -euo pipefail

cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [CPUS]" >&2; exit 2; }

stop() {
    for p in slurmd slurmctld munged; do
        f="$dir/run/$p.pid"
        [ -f "$f" ] || continue
        pid="$(cat "$f")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "unknown command: $cmd" >&2; exit 2 ;;
esac

for p in munged slurmctld slurmd scontrol sbatch; do
    command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || {
        echo "$p is not installed (Debian: slurmctld slurmd slurm-client munge)" >&2; exit 1; }
done
PATH="$PATH:/usr/sbin"
cpus="${3:-8}"
# A port of its own, so that clusters of several checkouts do not meet.
port="${SLURM_TEST_PORT:-$(( 20000 + RANDOM % 20000 ))}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
stop
rm -rf "$dir/state" "$dir/spool" "$dir/munge" "$dir/run" "$dir/log"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge/key" "$dir/run" "$dir/log"
chmod 0700 "$dir/munge/key"; chmod 0755 "$dir/munge" "$dir/run"
head -c 1024 /dev/urandom > "$dir/munge/key/munge.key"
chmod 0400 "$dir/munge/key/munge.key"
sock="$dir/munge/munge.socket"
munged --key-file="$dir/munge/key/munge.key" --socket="$sock" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/seed" --force

node="$(hostname -s 2>/dev/null || hostname)"
mem="$(slurmd -C 2>/dev/null | grep -o 'RealMemory=[0-9]*' || echo RealMemory=1000)"
user="$(id -un)"
conf="$dir/slurm.conf"
cat > "$conf" <<CONF
ClusterName=massgen
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
MailProg=/bin/true
SlurmctldPort=$port
SlurmdPort=$(( port + 1 ))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus $mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf" -N "$node"

# Ready once the node is idle and the scheduler made its first pass.
for _ in $(seq 300); do
    if sinfo -h -o %t 2>/dev/null | grep -q '^idle' \
        && [ "$(sdiag 2>/dev/null | awk '/Total cycles/ {print $3; exit}')" != "0" ] \
        && sdiag >/dev/null 2>&1; then
        echo "$conf"
        exit 0
    fi
    sleep 0.1
done
echo "Slurm did not become ready in 30 s; see $dir/log" >&2
tail -5 "$dir"/log/*.log >&2 || true
exit 1
