set -euo pipefail
# --- podctl host library (templates/lib.sh.j2) ---
export LC_ALL=C TZ=UTC PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PODCTL_STATE=/var/lib/podctl
PODCTL_RUN=/run/podctl
# cgroup v1 hierarchies podctl uses; cpu and cpuacct may be one co-mounted hierarchy.
PODCTL_V1_CONTROLLERS="cpu cpuacct memory pids"

# The cgroup hierarchies podctl writes to, found once: the v2 root, or each v1
# controller's mount (cpu and cpuacct may be one co-mounted hierarchy: then a directory
# shows up twice, which every caller tolerates; it saves resolving symlinks).
# shellcheck disable=SC2034  # CG_ROOTS: used by the scripts that include lib.sh.j2
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  CGV=2
  CG_ROOTS=(/sys/fs/cgroup/podctl)
  CG_MAIN=/sys/fs/cgroup/podctl
else
  CGV=1
  CG_ROOTS=()
  for c in $PODCTL_V1_CONTROLLERS; do
    [ ! -d "/sys/fs/cgroup/$c" ] || CG_ROOTS+=("/sys/fs/cgroup/$c/podctl")
  done
  CG_MAIN=/sys/fs/cgroup/pids/podctl
fi

# Is the pod's supervisor alive? Prints its pid (status 0) if so. A pid file alone
# could name a reused pid, so the process's command line must name the pod's uid.
# Builtins only: no process is started (the probe asks this for every pod).
supervisor_pid() {
  local uid=$1 pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$uid/supervisor.pid"; } 2>/dev/null || [ -n "$pid" ] || return 1
  [[ -n $pid && $pid != *[!0-9]* ]] || return 1
  { mapfile -d '' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  [[ ${argv[*]} == *"$uid"* ]] || return 1
  echo "$pid"
}
# shellcheck disable=SC2034  # used by the scripts that include this library
PODCTL_BRIDGE=podctl0

now_utc() { printf '%(%Y-%m-%dT%H:%M:%SZ)T' -1; }

# Sleep without starting a process (a read that times out on a pipe nobody writes).
nap_s() {
  [ -n "${PODCTL_NAP_FD:-}" ] || exec {PODCTL_NAP_FD}<> <(:)
  read -r -t "$1" -u "$PODCTL_NAP_FD" _ || true
}

# The cgroup directories of a podctl path ("<uid>" or "<uid>/<container>"), one a line.
cg_dirs() {
  local d
  for d in "${CG_ROOTS[@]}"; do echo "$d/$1"; done
}

# The one directory whose cgroup.procs lists a cgroup's processes.
cg_main_dir() { echo "$CG_MAIN/$1"; }

# cg_create REL...: make cgroups (and, on v2, delegate the controllers down to them).
cg_create() {
  local rel d dirs=()
  for rel in "$@"; do
    for d in "${CG_ROOTS[@]}"; do dirs+=("$d/$rel"); done
  done
  mkdir -p "${dirs[@]}"
  if [ "$CGV" = 2 ]; then
    echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    echo "+cpu +memory +pids" >/sys/fs/cgroup/podctl/cgroup.subtree_control 2>/dev/null || true
    for rel in "$@"; do
      [[ $rel == */* ]] || echo "+cpu +memory +pids" >"/sys/fs/cgroup/podctl/$rel/cgroup.subtree_control" 2>/dev/null || true
    done
  fi
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
  for d in "${CG_ROOTS[@]}"; do echo 0 >"$d/$1/cgroup.procs"; done
}

cg_procs() {
  local d="$CG_MAIN/$1"
  [ -d "$d" ] || return 0
  find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

cg_signal() {
  local p
  for p in $(cg_procs "$1"); do kill "-$2" "$p" 2>/dev/null || true; done
}

# The OOM kill counter of a cgroup, to tell an OOM kill from any other SIGKILL.
cg_oom_kills() {
  local f key value
  if [ "$CGV" = 2 ]; then f="/sys/fs/cgroup/podctl/$1/memory.events"; else f="/sys/fs/cgroup/memory/podctl/$1/memory.oom_control"; fi
  if [ -r "$f" ]; then
    while read -r key value; do
      [ "$key" != oom_kill ] || { echo "$value"; return; }
    done <"$f"
  fi
  echo 0
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
# relative to ROOT, never to the host (what runc's securejoin does). Sets SJ to the
# host path (no subshell: this is on the container start path); `securejoin` prints it.
securejoin_var() {
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
  SJ="$root$cur"
}

securejoin() { securejoin_var "$@" && printf '%s\n' "$SJ"; }

# A directory (or, with "file", an empty file) at PATH inside ROOT, created if missing.
# Sets MP to its host path; `mkpath_in_root` prints it.
mkpath_var() {
  local root=$1 path=$2 kind=${3:-dir}
  securejoin_var "$root" "$path" || return 1
  MP=$SJ
  if [ "$kind" = file ]; then
    [ -d "${MP%/*}" ] || mkdir -p "${MP%/*}"
    [ -e "$MP" ] || : >"$MP"
  else
    [ -d "$MP" ] || mkdir -p "$MP"
  fi
}

mkpath_in_root() { mkpath_var "$@" && printf '%s\n' "$MP"; }

# Atomic write: content on stdin lands in FILE all at once (readers never see half).
atomic_write() {
  local f=$1 tmp="$1.tmp.$BASHPID"
  cat >"$tmp" && mv -f "$tmp" "$f"
}

# write_atomic FILE TEXT: the same, with the text as an argument (no cat).
write_atomic() {
  local tmp="$1.tmp.$BASHPID"
  printf '%s\n' "$2" >"$tmp" && mv -f "$tmp" "$1"
}

# Unmount everything below a directory, deepest first.
umount_below() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

# shareProcessNamespace: the pod's one PID namespace is held by a "pause" process, its
# PID 1 (a namespace whose init died takes no new process). It reaps the orphans the
# containers leave (a bash `wait` reaps any child) and lives in a child cgroup of the
# pod's ("_pause": no container name has a "_"; cgroup v2 allows processes in leaves
# only), so the pod's teardown kills it and, with it, every process of the namespace.
pause_start() {
  local uid=$1 r="$PODCTL_RUN/pods/$1"
  rm -f "$r/pause.pid"
  cg_create "$uid/_pause"
  (
    cg_join "$uid/_pause"
    # shellcheck disable=SC2016  # expanded by the pause's own bash
    exec setsid -f unshare --pid --fork -- /bin/bash -c \
      'read -r p _ </proc/self/stat; echo "$p" >"$1/pause.pid.tmp"; mv -f "$1/pause.pid.tmp" "$1/pause.pid"
       exec </dev/null >/dev/null 2>&1
       while :; do sleep 3600 & wait; done' podctl-pause "$r" "$uid" </dev/null >/dev/null 2>&1
  )
  for _ in $(seq 1 500); do [ ! -e "$r/pause.pid" ] || return 0; nap_s 0.01; done
  echo "podctl: the pod's pause process did not start" >&2
  return 1
}

# env_from_environ FILE: a process's environment (/proc/PID/environ) as `env -S`'s
# argument in ENV_SPLIT, with every value exported as PODCTL_E<i>: no value is ever in
# an argv (ps shows argv to every user), see container.sh.j2. Run it in a subshell.
env_from_environ() {
  local envv kv name i
  mapfile -d '' envv <"$1" || return 1
  ENV_SPLIT="-i --"
  for i in "${!envv[@]}"; do
    kv=${envv[$i]}
    export "PODCTL_E$i=${kv#*=}"
    name=${kv%%=*}
    name=${name//\\/\\\\}
    name=${name//\'/\\\'}
    ENV_SPLIT+=" '$name='\"\${PODCTL_E$i}\""
  done
}

# The command that puts a container's start script into the pod: nsenter into the
# pod's net/ipc/uts namespaces, then its own mount namespace and either the pod's
# shared PID namespace (a pause process holds it) or, by default, its own. A second
# argument names a PID namespace to join instead (an ephemeral container's target).
# Sets PODNS_ARGV.
pod_ns_argv() {
  local r=$1 pidns=${2:-} pause=""
  PODNS_ARGV=(nsenter --net="$r/ns/net" --ipc="$r/ns/ipc" --uts="$r/ns/uts")
  if [ -z "$pidns" ] && [ -e "$r/pause.pid" ]; then
    read -r pause <"$r/pause.pid" || true
    pidns="/proc/$pause/ns/pid"
  fi
  if [ -n "$pidns" ]; then
    PODNS_ARGV+=(--pid="$pidns" -- unshare --mount --propagation private --)
  else
    PODNS_ARGV+=(-- unshare --mount --pid --fork --propagation private --)
  fi
}

# Kill the pod's emptyDir sizeLimit watcher (emptydir_watch.sh.j2) and its `du`: it
# leads its own process group (setsid). Its command line must name the pod's uid.
emptydir_watch_stop() {
  local pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$1/emptydir_watch.pid"; } 2>/dev/null || return 0
  [[ -n $pid && $pid != *[!0-9]* ]] || return 0
  { mapfile -d '' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
  [[ ${argv[*]} == *"$1/emptydir_watch.sh"* ]] || return 0
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

# Remove every trace of a pod on this host: processes, mounts, namespaces, veth,
# cgroups, directories. Safe to run on a pod that is half made or already gone.
pod_teardown() {
  local uid=$1 veth=$2
  # Nothing of this pod here (the common case on create): nothing to do.
  if [ ! -e "$PODCTL_RUN/pods/$uid" ] && [ ! -e "$PODCTL_STATE/pods/$uid" ] && [ ! -d "$CG_MAIN/$uid" ] \
     && [ ! -e "/sys/class/net/$veth" ]; then
    return 0
  fi
  emptydir_watch_stop "$uid"
  cg_signal "$uid" KILL
  cg_destroy "$uid"
  ip link del "$veth" 2>/dev/null || true
  umount_below "$PODCTL_RUN/pods/$uid"
  umount_below "$PODCTL_STATE/pods/$uid"
  rm -rf --one-file-system "$PODCTL_RUN/pods/$uid" "$PODCTL_STATE/pods/$uid"
}
# --- end of podctl host library ---
POD_UID=0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f
NAME=app
CMD=(sh -c 'echo $HOSTNAME')
C="$PODCTL_STATE/pods/$POD_UID/containers/$NAME"
pid=$(cat "$C/pid" 2>/dev/null || true)
if [ -z "$pid" ] || [ ! -r "/proc/$pid/environ" ] || ! grep -q running "$C/state.json" 2>/dev/null; then
  echo "error: container $NAME is not running" >&2
  exit 126
fi
# The container's environment without any value in an argv (see container.sh.j2).
env_from_environ "/proc/$pid/environ"
NSENTER=$(command -v nsenter)
cg_join "$POD_UID/$NAME"
exec env -S "$ENV_SPLIT" "$NSENTER" -t "$pid" -m -u -i -n -p -r -w -- "${CMD[@]}" </dev/null
