#!/usr/bin/env bash
# A single-node Slurm on this machine, to try scripts/slurm/sweep.sbatch without a cluster
# (and to run it in CI). Needs root (or sudo) and Debian/Ubuntu's slurm-wlm and munge.
#
#   sudo scripts/slurm/local-cluster.sh install   # apt-get install slurm-wlm munge
#   sudo scripts/slurm/local-cluster.sh start     # munged, slurmctld, slurmd; waits until idle
#   export SLURM_CONF=/tmp/clustersim-slurm/slurm.conf   # printed by start
#   scripts/slurm/sweep.sbatch scenarios/sweeps/fabrics.yaml output/fabrics-slurm 4
#   sudo scripts/slurm/local-cluster.sh status    # daemons, sinfo, squeue
#   sudo scripts/slurm/local-cluster.sh logs      # the daemons' logs
#   sudo scripts/slurm/local-cluster.sh stop      # stops the daemons by PID
#
# Everything lives in one folder (CLUSTERSIM_SLURM_DIR, default /tmp/clustersim-slurm):
# slurm.conf, the munge key and socket, state, spool, PID files and logs. Nothing under /etc
# is changed and no systemd is needed: the daemons are started directly as root, with
# ProctrackType=proctrack/linuxproc and TaskPlugin=task/none, one node named after
# `hostname -s` with CPUs=$(nproc), in one partition `local`. The daemons listen on
# 127.0.0.1 ports CLUSTERSIM_SLURM_PORT (default 6817) and the next one; client commands find
# the cluster through SLURM_CONF. Every wait is bounded (CLUSTERSIM_SLURM_TIMEOUT seconds,
# default 60): when a daemon does not come up, start prints its log and exits 1.
set -euo pipefail

DIR=${CLUSTERSIM_SLURM_DIR:-/tmp/clustersim-slurm}
PORT=${CLUSTERSIM_SLURM_PORT:-6817}
TIMEOUT=${CLUSTERSIM_SLURM_TIMEOUT:-60}
PARTITION=local
export SLURM_CONF=$DIR/slurm.conf
SBIN_PATH=/usr/sbin:/sbin:/usr/bin:/bin
export PATH=$PATH:$SBIN_PATH

die() {
  echo "local-cluster: error: $*" >&2
  exit 1
}
note() { echo "local-cluster: $*"; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root (run it with sudo): the daemons start as root"
}

# PID from daemon $1's PID file if that process is alive (not a zombie) and is still $1.
alive_pid() {
  local f=$DIR/$1.pid pid stat
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $stat == "$pid ($1) "[^Z]* ]] && echo "$pid"
}

cmd_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v munged >/dev/null && command -v sbatch >/dev/null; then
    note "slurm-wlm and munge already installed ($(slurmctld -V))"
    return
  fi
  need_root install
  command -v apt-get >/dev/null || die "no apt-get: install Slurm (slurmctld, slurmd, client) and munge by hand"
  export DEBIAN_FRONTEND=noninteractive
  timeout 120 apt-get update -qq || die "apt-get update failed or timed out"
  timeout 300 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
    die "apt-get install slurm-wlm munge failed or timed out"
  note "installed $(slurmctld -V)"
}

write_config() {
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  mkdir -p "$DIR"/{munge,state,spool,log}
  # Users other than root submit too: the munge socket must be reachable, the key not.
  chmod 0755 "$DIR" "$DIR/munge"
  if [[ ! -s $DIR/munge/munge.key ]]; then
    (umask 077 && head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
  fi
  cat >"$SLURM_CONF" <<EOF
# Written by scripts/slurm/local-cluster.sh: a single-node Slurm for trying sweep.sbatch.
ClusterName=clustersim-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

# Waits up to TIMEOUT seconds for "$@" to succeed; gives up at once when daemon $2 (named by
# its PID file) has died.
wait_for() {
  local what=$1 daemon=$2 end=$((SECONDS + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [[ -s $DIR/$daemon.pid ]] && ! alive_pid "$daemon" >/dev/null; then
      echo "local-cluster: error: $daemon exited" >&2
      return 1
    fi
    ((SECONDS < end)) || return 1
    sleep 0.5
  done
  note "$what up"
}

fail_start() {
  echo "local-cluster: error: $1 did not come up (it exited, or was not up within ${TIMEOUT}s); its logs:" >&2
  cmd_logs >&2 || true
  cmd_stop >&2 || true
  exit 1
}

node_idle() {
  timeout 10 sinfo -h -p "$PARTITION" -o '%t' 2>/dev/null | grep -qx 'idle'
}

cmd_start() {
  need_root start
  for c in munged slurmctld slurmd sinfo sbatch; do
    command -v "$c" >/dev/null || die "$c not found: run '$0 install' first"
  done
  if alive_pid slurmctld >/dev/null || alive_pid slurmd >/dev/null || alive_pid munged >/dev/null; then
    die "already running in $DIR ('$0 stop' first)"
  fi
  rm -f "$DIR"/log/*.log
  write_config
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" ||
    fail_start munged
  wait_for munged munged test -S "$DIR/munge/munge.socket" || fail_start munged
  # -i: ignore state saved by an earlier start (jobs, node states) of this folder.
  timeout 10 slurmctld -i || fail_start slurmctld
  wait_for slurmctld slurmctld timeout 5 scontrol ping || fail_start slurmctld
  timeout 10 slurmd || fail_start slurmd
  wait_for "node $(hostname -s) ($(nproc) CPUs, partition $PARTITION)" slurmd node_idle ||
    fail_start "slurmd (node not idle: $(timeout 5 sinfo -h -N -o '%t %E' 2>&1 | head -1))"
  note "ready; for sbatch/squeue/sinfo in other shells: export SLURM_CONF=$SLURM_CONF"
}

cmd_stop() {
  local name pid end pids=() names=()
  for name in slurmd slurmctld munged; do
    pid=$(alive_pid "$name") || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
    names+=("$name")
  done
  # slurmctld takes a few seconds to save its state: wait for all three together.
  end=$((SECONDS + 15))
  for i in "${!pids[@]}"; do
    pid=${pids[i]}
    while alive_pid "${names[i]}" >/dev/null && ((SECONDS < end)); do sleep 0.2; done
    if alive_pid "${names[i]}" >/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      note "${names[i]} ($pid) killed after 15s"
    else
      note "${names[i]} ($pid) stopped"
    fi
    rm -f "$DIR/${names[i]}.pid"
  done
}

cmd_status() {
  local name pid rc=0
  for name in munged slurmctld slurmd; do
    if pid=$(alive_pid "$name"); then
      echo "$name: running (pid $pid)"
    else
      echo "$name: not running"
      rc=3
    fi
  done
  if [[ $rc -eq 0 ]]; then
    timeout 10 sinfo || rc=3
    timeout 10 squeue || rc=3
  fi
  return $rc
}

cmd_logs() {
  local f
  for f in "$DIR"/log/*.log; do
    [[ -f $f ]] || continue
    echo "---- $f (last 40 lines)"
    tail -n 40 "$f"
  done
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
logs) cmd_logs ;;
*)
  echo "usage: $0 install|start|stop|status|logs" >&2
  exit 2
  ;;
esac
