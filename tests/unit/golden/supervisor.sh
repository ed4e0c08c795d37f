#!/bin/bash
# podctl pod supervisor: starts the pod's containers, restarts them per restartPolicy
# with Kubernetes' backoff, records their states, and stops them on SIGTERM.
# It runs detached (setsid) so the pod outlives the SSH session that created it.
set -u
# --- podctl host library (templates/lib.sh.j2) ---
export LC_ALL=C TZ=UTC PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PODCTL_STATE=/var/lib/podctl
PODCTL_RUN=/run/podctl
# shellcheck disable=SC2034  # used by the scripts that include this library
PODCTL_BRIDGE=podctl0
# cgroup v1 hierarchies podctl uses; cpu and cpuacct may be one co-mounted hierarchy.
PODCTL_V1_CONTROLLERS="cpu cpuacct memory pids"

now_utc() { printf '%(%Y-%m-%dT%H:%M:%SZ)T' -1; }

cg_version() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo 2; else echo 1; fi
}
CGV=$(cg_version)

# The cgroup directories of a podctl path ("<uid>" or "<uid>/<container>"), one a line.
cg_dirs() {
  local rel=$1 c seen=""
  if [ "$CGV" = 2 ]; then
    echo "/sys/fs/cgroup/podctl/$rel"
    return
  fi
  for c in $PODCTL_V1_CONTROLLERS; do
    [ -d "/sys/fs/cgroup/$c" ] || continue
    local real
    real=$(readlink -f "/sys/fs/cgroup/$c")
    case " $seen " in *" $real "*) continue ;; esac
    seen="$seen $real"
    echo "$real/podctl/$rel"
  done
}

# The one directory whose cgroup.procs lists a cgroup's processes.
cg_main_dir() {
  if [ "$CGV" = 2 ]; then echo "/sys/fs/cgroup/podctl/$1"; else echo "$(readlink -f /sys/fs/cgroup/pids)/podctl/$1"; fi
}

cg_create() {
  local rel=$1 d
  if [ "$CGV" = 2 ]; then
    # v2 only delegates a controller to children that their parent enabled.
    mkdir -p /sys/fs/cgroup/podctl
    echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    echo "+cpu +memory +pids" >/sys/fs/cgroup/podctl/cgroup.subtree_control 2>/dev/null || true
  fi
  while read -r d; do
    mkdir -p "$d"
    if [ "$CGV" = 2 ]; then
      echo "+cpu +memory +pids" >"$d/cgroup.subtree_control" 2>/dev/null || true
    fi
  done < <(cg_dirs "$rel")
}

# cg_limits REL MEMORY_BYTES CPU_QUOTA_US CPU_SHARES PIDS_MAX ("" leaves one unset)
cg_limits() {
  local rel=$1 mem=$2 quota=$3 shares=$4 pids=$5 d
  while read -r d; do
    if [ "$CGV" = 2 ]; then
      [ -z "$mem" ] || echo "$mem" >"$d/memory.max"
      [ -z "$mem" ] || { [ ! -f "$d/memory.swap.max" ] || echo 0 >"$d/memory.swap.max"; }
      [ -z "$quota" ] || echo "$quota 100000" >"$d/cpu.max"
      # cpu.shares (2..262144) to cpu.weight (1..10000), the formula runc uses.
      [ -z "$shares" ] || echo $((1 + ((shares - 2) * 9999) / 262142)) >"$d/cpu.weight"
      [ -z "$pids" ] || echo "$pids" >"$d/pids.max"
      continue
    fi
    if [ -n "$mem" ] && [ -f "$d/memory.limit_in_bytes" ]; then
      echo "$mem" >"$d/memory.limit_in_bytes"
      [ ! -f "$d/memory.memsw.limit_in_bytes" ] || echo "$mem" >"$d/memory.memsw.limit_in_bytes"
    fi
    if [ -n "$quota" ] && [ -f "$d/cpu.cfs_quota_us" ]; then
      echo 100000 >"$d/cpu.cfs_period_us"
      echo "$quota" >"$d/cpu.cfs_quota_us"
    fi
    [ -z "$shares" ] || [ ! -f "$d/cpu.shares" ] || echo "$shares" >"$d/cpu.shares"
    [ -z "$pids" ] || [ ! -f "$d/pids.max" ] || echo "$pids" >"$d/pids.max"
  done < <(cg_dirs "$rel")
}

# Move the calling process into a cgroup ("0" is the writer itself, in any pid namespace).
cg_join() {
  local d
  while read -r d; do echo 0 >"$d/cgroup.procs"; done < <(cg_dirs "$1")
}

cg_procs() {
  local d
  d=$(cg_main_dir "$1")
  [ -d "$d" ] || return 0
  find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

cg_signal() {
  local p
  for p in $(cg_procs "$1"); do kill "-$2" "$p" 2>/dev/null || true; done
}

# The OOM kill counter of a cgroup, to tell an OOM kill from any other SIGKILL.
cg_oom_kills() {
  local d n
  d=$(cg_main_dir "$1")
  if [ "$CGV" = 2 ]; then
    n=$(sed -n 's/^oom_kill //p' "$d/memory.events" 2>/dev/null)
  else
    d="$(readlink -f /sys/fs/cgroup/memory)/podctl/$1"
    n=$(sed -n 's/^oom_kill //p' "$d/memory.oom_control" 2>/dev/null)
  fi
  echo "${n:-0}"
}

# Kill everything in a cgroup tree, then remove its directories bottom-up.
cg_destroy() {
  local rel=$1 d
  for _ in $(seq 1 100); do
    [ -n "$(cg_procs "$rel")" ] || break
    cg_signal "$rel" KILL
    sleep 0.05
  done
  while read -r d; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(cg_dirs "$rel")
}

# Resolve PATH inside ROOT the way the container will see it: symlinks are followed
# relative to ROOT, never to the host (what runc's securejoin does). Prints the host path.
securejoin() {
  local root=$1 rest=$2 cur="" comp target hops=0
  rest=${rest#/}
  while [ -n "$rest" ]; do
    comp=${rest%%/*}
    if [ "$comp" = "$rest" ]; then rest=""; else rest=${rest#*/}; fi
    case "$comp" in
      "" | .) continue ;;
      ..) cur=${cur%/*}; continue ;;
    esac
    if [ -L "$root$cur/$comp" ]; then
      hops=$((hops + 1))
      [ "$hops" -le 40 ] || { echo "securejoin: too many symlinks" >&2; return 1; }
      target=$(readlink "$root$cur/$comp")
      case "$target" in
        /*) cur="" ;;
      esac
      rest="${target#/}${rest:+/$rest}"
      continue
    fi
    cur="$cur/$comp"
  done
  printf '%s\n' "$root$cur"
}

# A directory (or, with "file", an empty file) at PATH inside ROOT, created if missing.
mkpath_in_root() {
  local root=$1 path=$2 kind=${3:-dir} host
  host=$(securejoin "$root" "$path")
  if [ "$kind" = file ]; then
    mkdir -p "$(dirname "$host")"
    [ -e "$host" ] || : >"$host"
  else
    mkdir -p "$host"
  fi
  printf '%s\n' "$host"
}

# Atomic write: content on stdin lands in FILE all at once (readers never see half).
atomic_write() {
  local f=$1
  cat >"$f.tmp.$$" && mv -f "$f.tmp.$$" "$f"
}

# Is the pod's supervisor alive? A pid file alone could name a reused pid.
supervisor_pid() {
  local uid=$1 pid
  pid=$(cat "$PODCTL_RUN/pods/$uid/supervisor.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$uid" || return 1
  echo "$pid"
}

# Unmount everything below a directory, deepest first.
umount_below() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

# Remove every trace of a pod on this host: processes, mounts, namespaces, veth,
# cgroups, directories. Safe to run on a pod that is half made or already gone.
pod_teardown() {
  local uid=$1 veth=$2
  cg_signal "$uid" KILL
  cg_destroy "$uid"
  ip link del "$veth" 2>/dev/null || true
  umount_below "$PODCTL_RUN/pods/$uid"
  umount_below "$PODCTL_STATE/pods/$uid"
  rm -rf --one-file-system "$PODCTL_RUN/pods/$uid" "$PODCTL_STATE/pods/$uid"
}
# --- end of podctl host library ---
POD_UID=0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f
RESTART_POLICY=OnFailure
GRACE=5
CONTAINERS=(app side)
P="$PODCTL_STATE/pods/$POD_UID"
R="$PODCTL_RUN/pods/$POD_UID"
# Kubernetes' crash-loop backoff: 10 s doubling to 5 min, reset after 10 min of running.
BACKOFF_START=10
BACKOFF_MAX=300
BACKOFF_RESET=600

echo $$ >"$R/supervisor.pid"

# One container's status entry, shaped like Kubernetes' containerStatuses[] item.
# Every value is produced here (names were validated as DNS labels), so printf is safe.
write_cstate() {
  local name=$1 state=$2 restarts=$3 last=$4
  printf '{"name":"%s","restartCount":%d,"state":%s,"lastState":%s}\n' \
    "$name" "$restarts" "$state" "$last" | atomic_write "$P/containers/$name/state.json"
  write_status
}

# status.json = every container's state, rebuilt under a lock, replaced atomically.
write_status() {
  (
    flock 9
    local first=1 c
    {
      printf '{"uid":"%s","supervisorPid":%d,"updatedAt":"%s","containers":[' "$POD_UID" "$$" "$(now_utc)"
      for c in "${CONTAINERS[@]}"; do
        [ -f "$P/containers/$c/state.json" ] || continue
        [ $first = 1 ] || printf ','
        first=0
        tr -d '\n' <"$P/containers/$c/state.json"
      done
      printf ']}\n'
    } | atomic_write "$P/status.json"
  ) 9>"$P/.status.lock"
}

stopping() { [ -e "$R/stopping" ]; }

# Sleep up to N seconds, waking early when the pod is being stopped.
nap() {
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt "$end" ] && ! stopping; do sleep 0.2; done
}

run_container() {
  local name=$1 C="$P/containers/$1"
  local restarts=0 backoff=0 last='{}' started started_s code reason oom_before pid
  write_cstate "$name" '{"waiting":{"reason":"ContainerCreating"}}' 0 '{}'
  while ! stopping; do
    # A restarted container gets a fresh writable layer, as in Kubernetes.
    rm -rf "$C/upper" "$C/work"
    mkdir -p "$C/upper" "$C/work" "$C/rootfs"
    [ ! -f "$C/log" ] || mv -f "$C/log" "$C/log.previous"
    oom_before=$(cg_oom_kills "$POD_UID/$name")
    started=$(now_utc)
    started_s=$SECONDS
    nsenter --net="$R/ns/net" --ipc="$R/ns/ipc" --uts="$R/ns/uts" -- \
      unshare --mount --pid --fork --propagation private -- \
      /bin/bash "$P/containers/$name/start.sh" </dev/null >"$C/log" 2>&1 &
    pid=$!
    write_cstate "$name" "{\"running\":{\"startedAt\":\"$started\"}}" "$restarts" "$last"
    code=0
    wait "$pid" || code=$?
    # util-linux 2.38's unshare cannot re-raise SIGKILL: it exits 1 and says so on the
    # container's stderr. A SIGKILLed main process (OOM killer, grace expiry) is 137.
    if [ "$code" = 1 ] && tail -c 200 "$C/log" 2>/dev/null | grep -q 'unshare: sigprocmask unblock failed'; then
      code=137
    fi
    if [ "$(cg_oom_kills "$POD_UID/$name")" -gt "$oom_before" ]; then
      reason=OOMKilled
      code=137
    elif [ "$code" = 0 ]; then
      reason=Completed
    else
      reason=Error
    fi
    last="{\"terminated\":{\"exitCode\":$code,\"reason\":\"$reason\",\"startedAt\":\"$started\",\"finishedAt\":\"$(now_utc)\"}}"
    if stopping || [ "$RESTART_POLICY" = Never ] || { [ "$RESTART_POLICY" = OnFailure ] && [ "$code" = 0 ]; }; then
      write_cstate "$name" "$last" "$restarts" '{}'
      return
    fi
    [ $((SECONDS - started_s)) -lt $BACKOFF_RESET ] || backoff=0
    restarts=$((restarts + 1))
    if [ "$backoff" -gt 0 ]; then
      write_cstate "$name" '{"waiting":{"reason":"CrashLoopBackOff"}}' "$restarts" "$last"
      nap "$backoff"
    fi
    # The first restart is immediate; then 10 s, 20 s, 40 s ... up to 5 min.
    if [ "$backoff" = 0 ]; then backoff=$BACKOFF_START; else backoff=$((backoff * 2)); fi
    [ "$backoff" -le $BACKOFF_MAX ] || backoff=$BACKOFF_MAX
  done
}

# SIGTERM: stop every container gracefully (their main process first), then SIGKILL
# whatever is left after terminationGracePeriodSeconds.
on_term() {
  : >"$R/stopping"
  local c pid
  for c in "${CONTAINERS[@]}"; do
    pid=$(cat "$P/containers/$c/pid" 2>/dev/null) || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  local end=$((SECONDS + GRACE))
  while [ $SECONDS -lt "$end" ]; do
    local alive=0
    for c in "${CONTAINERS[@]}"; do
      [ -z "$(cg_procs "$POD_UID/$c")" ] || alive=1
    done
    [ $alive = 1 ] || break
    sleep 0.1
  done
  for c in "${CONTAINERS[@]}"; do cg_signal "$POD_UID/$c" KILL; done
}
trap on_term TERM INT

for c in "${CONTAINERS[@]}"; do
  run_container "$c" &
done
# `wait` returns early when a trapped signal arrives; keep waiting for the runners.
while [ -n "$(jobs -pr)" ]; do wait || true; done
write_status
: >"$P/finished"
rm -f "$R/supervisor.pid"
