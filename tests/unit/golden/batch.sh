set -u
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
umask 077
if [ ! -d "$PODCTL_RUN/pods" ] || [ ! -d "$PODCTL_STATE/pods" ]; then
  mkdir -p "$PODCTL_STATE/pods" "$PODCTL_STATE/images" "$PODCTL_RUN/pods"
  chmod 0700 "$PODCTL_STATE" "$PODCTL_RUN"
fi

# Machine-readable lines for the controller; anything else on stdout is ignored.
report() { local IFS=' '; printf '@@podctl %s\n' "$*"; }
report_result() { report result "$1" "$2"; }

# Fencing token: this host refuses a batch from a controller epoch older than one it
# has already acted for, so a delayed or paused controller cannot undo a newer decision.
# (A brief lock around read-compare-write; nothing started below inherits it.)
seen=$(
  exec 9>>"$PODCTL_STATE/epoch.lock"
  flock 9
  seen=0
  [ -r "$PODCTL_STATE/epoch" ] && read -r seen <"$PODCTL_STATE/epoch"
  case $seen in ''|*[!0-9]*) seen=0 ;; esac
  if [ "$seen" -le 42 ]; then
    printf '%s\n' 42 >"$PODCTL_STATE/epoch.tmp" && mv -f "$PODCTL_STATE/epoch.tmp" "$PODCTL_STATE/epoch"
  fi
  printf '%s' "$seen"
)
if [ "$seen" -gt 42 ]; then
  report stale-epoch "$seen"
  report end
  exit 0
fi

hostpath_prepare() {
  local path=$1 type=$2 dir
  case "$type" in
    DirectoryOrCreate) mkdir -p "$path" ;;
    # (the "." keeps $(...) from eating a trailing newline of the directory's name)
    FileOrCreate) dir=$(dirname -- "$path"; echo .); mkdir -p "${dir%$'\n.'}"; [ -e "$path" ] || : >"$path" ;;
    Directory) [ -d "$path" ] || { echo "hostPath $path is not a directory" >&2; return 1; } ;;
    File) [ -f "$path" ] || { echo "hostPath $path is not a file" >&2; return 1; } ;;
    Socket) [ -S "$path" ] || { echo "hostPath $path is not a socket" >&2; return 1; } ;;
    CharDevice) [ -c "$path" ] || { echo "hostPath $path is not a character device" >&2; return 1; } ;;
    BlockDevice) [ -b "$path" ] || { echo "hostPath $path is not a block device" >&2; return 1; } ;;
    *) [ -e "$path" ] || mkdir -p "$path" ;;
  esac
}

# secrets_receive DIR END_MARKER END_LENGTH UID SIZE... [UID SIZE...]: read the payload from stdin
# into a fresh tmpfs DIR, one file per SIZE (DIR/UID/0, 1, ...), then check the end
# marker, so that a payload cut short is never mistaken for a whole one.
secrets_receive() {
  local dir=$1 end=$2 end_len=$3 uid="" i=0 total=65536 a marker=""
  shift 3
  for a in "$@"; do [[ $a == *-* ]] || total=$((total + a + 4096)); done
  # Staging areas of batches that died before cleaning up: nobody will read them.
  for a in "$PODCTL_RUN"/incoming/*; do
    [ -d "$a" ] && [ ! -d "/proc/${a##*/}" ] || continue
    umount -l "$a" 2>/dev/null || true
    rm -rf --one-file-system "$a"
  done
  mkdir -p "$dir"
  mount -t tmpfs -o "mode=0700,nosuid,nodev,noexec,size=$total" podctl-incoming "$dir"
  for a in "$@"; do
    if [[ $a == *-* ]]; then uid=$a; i=0; mkdir -p "$dir/$uid"; continue; fi
    head -c "$a" >"$dir/$uid/$i"
    i=$((i + 1))
  done
  IFS= read -r -N "$end_len" marker || true
  [ "$marker" = "$end" ]
}

# secrets_done DIR: remove the staging tmpfs.
secrets_done() {
  umount -l "$1" 2>/dev/null || true
  rm -rf --one-file-system "$1"
}

# secrets_install DST SRC SIZE DIR... -- PATH MODE...: the pod's tmpfs at DST (0700),
# the directories, then each staged file SRC/<n> moved to DST/PATH with MODE.
secrets_install() {
  local dst=$1 src=$2 size=$3 i=0
  shift 3
  mkdir -p "$dst"
  mount -t tmpfs -o "mode=0700,nosuid,nodev,size=$size" podctl-secrets "$dst"
  while [ "$1" != -- ]; do mkdir -p "$dst/$1"; shift; done
  shift
  while [ $# -gt 0 ]; do
    mkdir -p "$dst/${1%/*}"
    mv -f "$src/$i" "$dst/$1"
    chmod "$2" "$dst/$1"
    i=$((i + 1))
    shift 2
  done
}
if pid=$(supervisor_pid 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f); then kill -TERM "$pid" 2>/dev/null || true; fi
(
# -E: the ERR trap also reports failures inside the library's functions.
set -Eeuo pipefail
POD_UID=0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f
POD_HOSTNAME=web
POD_IP=10.244.1.7
POD_PREFIX=24
POD_GW=10.244.1.1
VETH=pv0d6f2a4e1b7c
IMAGE_DIRS=(/var/lib/podctl/images/abababababababababababababababababababababababababababababababab)
P="$PODCTL_STATE/pods/$POD_UID"
R="$PODCTL_RUN/pods/$POD_UID"
trap 'report error "$POD_UID" "line $LINENO: ${BASH_COMMAND//$'"'\n'"'/ }"' ERR

if supervisor_pid "$POD_UID" >/dev/null || [ -e "$P/finished" ]; then
  report exists "$POD_UID"
  exit 0
fi
for d in "${IMAGE_DIRS[@]}"; do
  if [ ! -d "$d/rootfs" ]; then
    report image-missing "$POD_UID" "$d"
    exit 3
  fi
done
pod_teardown "$POD_UID" "$VETH"

mkdir -p "$P/etc" "$P/volumes" "$R/ns" "$R/dev" "$R/volumes" /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/app/upper /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/app/work /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/app/rootfs /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/side/upper /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/side/work /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/side/rootfs
printf '%s' '{"containers":["app","side"],"images":{"app":"abababababababababababababababababababababababababababababababab","side":"abababababababababababababababababababababababababababababababab"},"name":"web","namespace":"default","uid":"0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f"}' | atomic_write "$P/pod.json"
printf '%s' '# Kubernetes-managed hosts file.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
fe00::0	ip6-mcastprefix
fe00::1	ip6-allnodes
fe00::2	ip6-allrouters
10.244.1.7	web
' >"$P/etc/hosts"
printf '%s\n' "$POD_HOSTNAME" >"$P/etc/hostname"
cat /etc/resolv.conf >"$P/etc/resolv.conf" 2>/dev/null || : >"$P/etc/resolv.conf"
printf '%s' '#!/bin/bash
# podctl pod supervisor: runs the init containers in order (sidecars kept running), then
# the app containers; restarts them per restartPolicy with Kubernetes'"'"' backoff; runs
# their probes and lifecycle hooks; records their states; and on SIGTERM stops the app
# containers, then the sidecars in reverse order.
# It runs detached (setsid) so the pod outlives the SSH session that created it.
set -u
# --- podctl host library (templates/lib.sh.j2) ---
export LC_ALL=C TZ=UTC PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PODCTL_STATE=/var/lib/podctl
PODCTL_RUN=/run/podctl
# cgroup v1 hierarchies podctl uses; cpu and cpuacct may be one co-mounted hierarchy.
PODCTL_V1_CONTROLLERS="cpu cpuacct memory pids"

# The cgroup hierarchies podctl writes to, found once: the v2 root, or each v1
# controller'"'"'s mount (cpu and cpuacct may be one co-mounted hierarchy: then a directory
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

# Is the pod'"'"'s supervisor alive? Prints its pid (status 0) if so. A pid file alone
# could name a reused pid, so the process'"'"'s command line must name the pod'"'"'s uid.
# Builtins only: no process is started (the probe asks this for every pod).
supervisor_pid() {
  local uid=$1 pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$uid/supervisor.pid"; } 2>/dev/null || [ -n "$pid" ] || return 1
  [[ -n $pid && $pid != *[!0-9]* ]] || return 1
  { mapfile -d '"'"''"'"' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  [[ ${argv[*]} == *"$uid"* ]] || return 1
  echo "$pid"
}
# shellcheck disable=SC2034  # used by the scripts that include this library
PODCTL_BRIDGE=podctl0

now_utc() { printf '"'"'%(%Y-%m-%dT%H:%M:%SZ)T'"'"' -1; }

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

# The one directory whose cgroup.procs lists a cgroup'"'"'s processes.
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
# relative to ROOT, never to the host (what runc'"'"'s securejoin does). Sets SJ to the
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

securejoin() { securejoin_var "$@" && printf '"'"'%s\n'"'"' "$SJ"; }

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

mkpath_in_root() { mkpath_var "$@" && printf '"'"'%s\n'"'"' "$MP"; }

# Atomic write: content on stdin lands in FILE all at once (readers never see half).
atomic_write() {
  local f=$1 tmp="$1.tmp.$BASHPID"
  cat >"$tmp" && mv -f "$tmp" "$f"
}

# write_atomic FILE TEXT: the same, with the text as an argument (no cat).
write_atomic() {
  local tmp="$1.tmp.$BASHPID"
  printf '"'"'%s\n'"'"' "$2" >"$tmp" && mv -f "$tmp" "$1"
}

# Unmount everything below a directory, deepest first.
umount_below() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '"'"'$5 == d || index($5, d "/") == 1 { print $5 }'"'"' /proc/self/mountinfo | sort -r)
}

# shareProcessNamespace: the pod'"'"'s one PID namespace is held by a "pause" process, its
# PID 1 (a namespace whose init died takes no new process). It reaps the orphans the
# containers leave (a bash `wait` reaps any child) and lives in a child cgroup of the
# pod'"'"'s ("_pause": no container name has a "_"; cgroup v2 allows processes in leaves
# only), so the pod'"'"'s teardown kills it and, with it, every process of the namespace.
pause_start() {
  local uid=$1 r="$PODCTL_RUN/pods/$1"
  rm -f "$r/pause.pid"
  cg_create "$uid/_pause"
  (
    cg_join "$uid/_pause"
    # shellcheck disable=SC2016  # expanded by the pause'"'"'s own bash
    exec setsid -f unshare --pid --fork -- /bin/bash -c \
      '"'"'read -r p _ </proc/self/stat; echo "$p" >"$1/pause.pid.tmp"; mv -f "$1/pause.pid.tmp" "$1/pause.pid"
       exec </dev/null >/dev/null 2>&1
       while :; do sleep 3600 & wait; done'"'"' podctl-pause "$r" "$uid" </dev/null >/dev/null 2>&1
  )
  for _ in $(seq 1 500); do [ ! -e "$r/pause.pid" ] || return 0; nap_s 0.01; done
  echo "podctl: the pod'"'"'s pause process did not start" >&2
  return 1
}

# env_from_environ FILE: a process'"'"'s environment (/proc/PID/environ) as `env -S`'"'"'s
# argument in ENV_SPLIT, with every value exported as PODCTL_E<i>: no value is ever in
# an argv (ps shows argv to every user), see container.sh.j2. Run it in a subshell.
env_from_environ() {
  local envv kv name i
  mapfile -d '"'"''"'"' envv <"$1" || return 1
  ENV_SPLIT="-i --"
  for i in "${!envv[@]}"; do
    kv=${envv[$i]}
    export "PODCTL_E$i=${kv#*=}"
    name=${kv%%=*}
    name=${name//\\/\\\\}
    name=${name//\'"'"'/\\\'"'"'}
    ENV_SPLIT+=" '"'"'$name='"'"'\"\${PODCTL_E$i}\""
  done
}

# The command that puts a container'"'"'s start script into the pod: nsenter into the
# pod'"'"'s net/ipc/uts namespaces, then its own mount namespace and either the pod'"'"'s
# shared PID namespace (a pause process holds it) or, by default, its own. A second
# argument names a PID namespace to join instead (an ephemeral container'"'"'s target).
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

# Kill the pod'"'"'s emptyDir sizeLimit watcher (emptydir_watch.sh.j2) and its `du`: it
# leads its own process group (setsid). Its command line must name the pod'"'"'s uid.
emptydir_watch_stop() {
  local pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$1/emptydir_watch.pid"; } 2>/dev/null || return 0
  [[ -n $pid && $pid != *[!0-9]* ]] || return 0
  { mapfile -d '"'"''"'"' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
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
RESTART_POLICY=OnFailure
GRACE=5
CONTAINERS=(app side)
INITS=()
# Per container: its role (init, sidecar, app) and its probes and hooks. A handler slot
# (startup, liveness, readiness, poststart, prestop) of container N is H_N_<slot>_KIND
# (exec, tcpSocket, httpGet, sleep), H_N_<slot> (its words: see runtime._handler_context)
# and, for probes, H_N_<slot>_P (initialDelay, period, timeout, successThreshold,
# failureThreshold).
declare -A IDX=() ROLE=()
def_container() { IDX[$1]=$2; ROLE[$1]=$3; }
# def_handler N SLOT KIND NPARAMS PARAM... WORD...
# shellcheck disable=SC2034  # namerefs: they set the H_ arrays
def_handler() {
  [[ $1 =~ ^[0-9]+$ && $2 =~ ^[a-z]+$ && $4 =~ ^[0-9]+$ ]] || { echo "podctl: bad handler" >&2; exit 125; }
  declare -g "H_${1}_${2}_KIND=$3"
  declare -ga "H_${1}_${2}_P=()" "H_${1}_${2}=()"
  local -n def_params="H_${1}_${2}_P" def_words="H_${1}_${2}"
  def_params=("${@:5:$4}")
  def_words=("${@:$((5 + $4))}")
}
def_container app 0 app
def_container side 1 app
P="$PODCTL_STATE/pods/$POD_UID"
R="$PODCTL_RUN/pods/$POD_UID"
# Kubernetes'"'"' crash-loop backoff: 10 s doubling to 5 min, reset after 10 min of running.
BACKOFF_START=10
BACKOFF_MAX=300
BACKOFF_RESET=600
POSTSTART_TIMEOUT=120  # a hung postStart hook fails after this long

echo $$ >"$R/supervisor.pid"

stopping() { [ -e "$R/stopping" ]; }
# A container is halted when the pod stops, or (a sidecar) when its pod has completed.
halted() { stopping || [ -e "$R/halt-$1" ]; }

# Sleep up to N seconds, waking early when the pod is being stopped.
nap() {
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt "$end" ] && ! stopping; do nap_s 0.2; done
}

# NOW_MS: the time in milliseconds (builtins only: the probe loop asks often).
now_ms() { NOW_MS=${EPOCHREALTIME/./}; NOW_MS=$((10#${NOW_MS:0:-3})); }

# Text for a JSON string: printable ASCII, quotes and backslashes escaped, at most 300
# chars, and no space (the probe reports a pod'"'"'s status as one space-free word).
json_text() {
  local s=${1:0:300}
  s=${s//[^ -~]/ }
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  JSON_TEXT=${s// /\\u0020}
}

# Wait for a background job, through the signals the supervisor traps.
wait_for() {
  local rc
  while :; do
    wait "$1"
    rc=$?
    if [ "$rc" -gt 128 ] && kill -0 "$1" 2>/dev/null; then continue; fi
    return "$rc"
  done
}

# ---------------------------------------------------------------- logs

# One stream of a container into its log in the CRI format that `podctl logs` reads:
# "<RFC 3339 UTC, microseconds> <stdout|stderr> F <line>", one write per line.
log_lines() {
  local stream=$1 line t
  while IFS= read -r line || [ -n "$line" ]; do
    t=$EPOCHREALTIME
    printf '"'"'%(%Y-%m-%dT%H:%M:%S)T.%sZ %s F %s\n'"'"' "${t%.*}" "${t#*.}" "$stream" "$line"
  done >>"$2"
}

# ---------------------------------------------------------------- handlers

# Probe actions that need no process in the container: run by a bash in the pod'"'"'s net
# namespace, on their words as arguments (never as code).
# shellcheck disable=SC2016
NET_ACTIONS='"'"'
tcp() { exec 3<>"/dev/tcp/$1/$2"; }
http() {
  local host=$1 port=$2 path=$3 h code proto
  shift 3
  exec 3<>"/dev/tcp/$host/$port" || return 1
  {
    printf "GET %s HTTP/1.1\r\n" "$path"
    for h in "$@"; do printf "%s\r\n" "$h"; done
    printf "User-Agent: kube-probe/podctl\r\nAccept: */*\r\nConnection: close\r\n\r\n"
  } >&3
  read -r proto code _ <&3 || { echo "no HTTP response"; return 1; }
  [[ $code =~ ^[0-9]{3}$ ]] || { echo "bad HTTP status line"; return 1; }
  if [ "$code" -ge 200 ] && [ "$code" -lt 400 ]; then return 0; fi
  echo "HTTP probe failed with statuscode: $code"
  return 1
}
"$@"'"'"'

# run_handler N SLOT TIMEOUT CPID: run container N'"'"'s handler once; status 0 on success,
# HANDLER_OUT says what happened otherwise.
run_handler() {
  local n=$1 slot=$2 timeout=$3 cpid=$4 kind rc=0
  local -n hwords="H_${n}_${slot}"
  kind="H_${n}_${slot}_KIND"
  kind=${!kind}
  [ "$timeout" -ge 1 ] || timeout=1
  HANDLER_OUT=""
  case "$kind" in
    exec)
      # As `podctl exec`: the container'"'"'s namespaces, root, cgroup and environment.
      HANDLER_OUT=$(
        name=${CONTAINER_OF[$n]}
        cg_join "$POD_UID/$name" 2>/dev/null
        env_from_environ "/proc/$cpid/environ" || exit 126
        exec timeout -s KILL "$timeout" env -S "$ENV_SPLIT" "$(command -v nsenter)" \
          -t "$cpid" -m -u -i -n -p -r -w -- "${hwords[@]}" </dev/null 2>&1
      ) || rc=$?
      [ "$rc" != 137 ] || HANDLER_OUT="command timed out after ${timeout}s"
      ;;
    tcpSocket)
      nsenter --net="$R/ns/net" -- timeout -s KILL "$timeout" bash -c "$NET_ACTIONS" _ tcp "${hwords[@]}" \
        </dev/null >/dev/null 2>&1 || rc=$?
      [ "$rc" = 0 ] || HANDLER_OUT="dial tcp ${hwords[0]}:${hwords[1]}: connection failed"
      ;;
    httpGet)
      HANDLER_OUT=$(nsenter --net="$R/ns/net" -- timeout -s KILL "$timeout" bash -c "$NET_ACTIONS" _ http \
        "${hwords[@]}" </dev/null 2>/dev/null) || rc=$?
      [ "$rc" = 0 ] || [ -n "$HANDLER_OUT" ] || HANDLER_OUT="Get http://${hwords[0]}:${hwords[1]}${hwords[2]}: failed"
      ;;
    sleep)
      nap "${hwords[0]}"
      ;;
    *) return 0 ;;
  esac
  return "$rc"
}

has_handler() { local k="H_${1}_${2}_KIND"; [ -n "${!k:-}" ]; }

# ---------------------------------------------------------------- one container

declare -A CONTAINER_OF=()
for c in "${!IDX[@]}"; do CONTAINER_OF[${IDX[$c]}]=$c; done

# The runner'"'"'s view of its container, published as containers/<name>/state.json in the
# shape of Kubernetes'"'"' containerStatuses[] item (plus podctl'"'"'s counters for events).
# Every value is produced here (names were validated as DNS labels), so printf is safe.
CS_RESTARTS=0 CS_STATE='"'"'{}'"'"' CS_LAST='"'"'{}'"'"' CS_READY=false CS_STARTED=false CS_READY_AT=""
declare -A COUNT=()  # Liveness/Readiness/Startup failures, kills, hook failures
declare -A NOTE=()
extra_fields() {
  local k sep="" out=""
  for k in "${!COUNT[@]}"; do
    json_text "${NOTE[$k]:-}"
    out+="$sep\"$k\":{\"count\":${COUNT[$k]},\"message\":\"$JSON_TEXT\"}"
    sep=,
  done
  EXTRA=""
  [ -z "$out" ] || EXTRA=",\"podctl\":{$out}"
  [ -z "$CS_READY_AT" ] || EXTRA+=",\"readyChangedAt\":\"$CS_READY_AT\""
}
publish() {
  extra_fields
  write_atomic "$C/state.json" \
    "$(printf '"'"'{"name":"%s","restartCount":%d,"state":%s,"lastState":%s,"ready":%s,"started":%s%s}'"'"' \
      "$NAME" "$CS_RESTARTS" "$CS_STATE" "$CS_LAST" "$CS_READY" "$CS_STARTED" "$EXTRA")"
}
# set_ready true|false: a readiness change, with its time (the Ready condition'"'"'s).
set_ready() {
  [ "$CS_READY" != "$1" ] || return 0
  CS_READY=$1
  printf -v CS_READY_AT '"'"'%(%Y-%m-%dT%H:%M:%SZ)T'"'"' -1
}
count() { COUNT[$1]=$((${COUNT[$1]:-0} + 1)); NOTE[$1]=$2; }

# Start the container (its own mount and PID namespaces, the pod'"'"'s others) with its
# stdout and stderr through log readers that stay outside its cgroup. Sets PID.
# fds 7 and 8 carry the streams (a runner is a process of its own).
launch_container() {
  exec 7> >(log_lines stdout "$C/log")
  LOG_PIDS=($!)
  exec 8> >(log_lines stderr "$C/log")
  LOG_PIDS+=($!)
  # start.sh records the running state itself, right before it execs the command.
  # pod_ns_argv: the pod'"'"'s net/ipc/uts namespaces, its shared PID namespace if it has one.
  pod_ns_argv "$R"
  "${PODNS_ARGV[@]}" /bin/bash "$C/start.sh" "$CS_RESTARTS" "$CS_LAST" "$EXTRA" </dev/null >&7 2>&8 7>&- 8>&- &
  PID=$!
  exec 7>&- 8>&-
}

# The log readers end when the container'"'"'s last process closes its output (bounded).
wait_log_readers() {
  local p end=$((SECONDS + 2))
  for p in "${LOG_PIDS[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt "$end" ]; do nap_s 0.01; done
  done
}

# stop_container NAME END: preStop hook, SIGTERM to the main process, SIGKILL to what is
# left at END (in $SECONDS). Works from any process of the supervisor.
stop_container() {
  local name=$1 end=$2 n=${IDX[$1]} pid=""
  [ -n "$(cg_procs "$POD_UID/$name")" ] || return 0
  read -r pid <"$P/containers/$name/pid" 2>/dev/null || true
  if [ -n "$pid" ] && has_handler "$n" prestop; then
    run_handler "$n" prestop $((end - SECONDS)) "$pid" >/dev/null || true
  fi
  [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
  while [ $SECONDS -lt "$end" ] && [ -n "$(cg_procs "$POD_UID/$name")" ]; do nap_s 0.1; done
  cg_signal "$POD_UID/$name" KILL
}

# Probe state, per slot: next due time (ms), consecutive successes and failures.
declare -A DUE=() OKS=() BADS=()
probe_params() { local -n pp="H_${1}_${2}_P"; PD=${pp[0]} PP=${pp[1]} PT=${pp[2]} PS=${pp[3]} PF=${pp[4]}; }

# Watch a started container until it exits: postStart first, then its probes. Sets
# KILLED (a message) when the supervisor killed it for a failed hook or probe.
watch_container() {
  local n=${IDX[$NAME]} slot started_ms kind msg at
  KILLED=""
  # As start.sh reports it once running: started unless a startup probe must pass;
  # ready once started unless a readiness probe must pass (never a regular init container).
  CS_STARTED=true
  has_handler "$n" startup && CS_STARTED=false
  CS_READY=$CS_STARTED
  if has_handler "$n" readiness || [ "${ROLE[$NAME]}" = init ]; then CS_READY=false; fi
  if has_handler "$n" poststart; then
    until [ -s "$C/started" ] || ! kill -0 "$PID" 2>/dev/null; do nap_s 0.01; done
    if [ -s "$C/started" ]; then
      read -r CPID <"$C/pid"
      if run_handler "$n" poststart "$POSTSTART_TIMEOUT" "$CPID"; then
        read -r at <"$C/started"
        CS_STATE="{\"running\":{\"startedAt\":\"$at\"}}"
        publish
      else
        count FailedPostStartHook "PostStartHook failed: $HANDLER_OUT"
        KILLED="FailedPostStartHook"
        stop_container "$NAME" $((SECONDS + GRACE))
      fi
    fi
  fi
  if [ -z "$KILLED" ] && { has_handler "$n" startup || has_handler "$n" liveness || has_handler "$n" readiness; }; then
    until [ -s "$C/started" ] || ! kill -0 "$PID" 2>/dev/null; do nap_s 0.01; done
    read -r CPID <"$C/pid" 2>/dev/null || CPID=""
    read -r at <"$C/started" 2>/dev/null || at=$(now_utc)
    CS_STATE="{\"running\":{\"startedAt\":\"$at\"}}"
    now_ms
    started_ms=$NOW_MS
    for slot in startup liveness readiness; do
      has_handler "$n" "$slot" || continue
      probe_params "$n" "$slot"
      DUE[$slot]=$((started_ms + PD * 1000))
      OKS[$slot]=0
      BADS[$slot]=0
    done
    while [ -z "$KILLED" ] && ! halted "$NAME" && kill -0 "$PID" 2>/dev/null; do
      now_ms
      for slot in startup liveness readiness; do
        has_handler "$n" "$slot" || continue
        # The startup probe runs until it succeeds; the others only after that.
        if [ "$slot" = startup ]; then [ "$CS_STARTED" = false ] || continue
        else [ "$CS_STARTED" = true ] || continue; fi
        [ "$NOW_MS" -ge "${DUE[$slot]}" ] || continue
        probe_params "$n" "$slot"
        if run_handler "$n" "$slot" "$PT" "$CPID"; then
          OKS[$slot]=$((OKS[$slot] + 1)); BADS[$slot]=0
          probe_passed "$slot"
        else
          BADS[$slot]=$((BADS[$slot] + 1)); OKS[$slot]=0
          kind=${slot^}
          msg="$kind probe failed: $HANDLER_OUT"
          count "$kind" "$msg"
          probe_failed "$slot" "$msg"
        fi
        now_ms
        DUE[$slot]=$((NOW_MS + PP * 1000))
        [ -z "$KILLED" ] || break
      done
      nap_s 0.1
    done
  fi
  wait "$PID"
}

probe_passed() {
  case "$1" in
    startup)
      CS_STARTED=true
      has_handler "${IDX[$NAME]}" readiness || [ "${ROLE[$NAME]}" = init ] || set_ready true
      publish ;;
    readiness)
      if [ "$CS_READY" = false ] && [ "${OKS[readiness]}" -ge "$PS" ]; then set_ready true; publish; fi ;;
  esac
}

probe_failed() {
  local slot=$1 msg=$2
  if [ "${BADS[$slot]}" -lt "$PF" ]; then
    publish  # the failure count is news for the events
    return
  fi
  case "$slot" in
    readiness)
      set_ready false
      publish ;;
    liveness | startup)
      set_ready false
      count Killing "Container $NAME failed $slot probe, will be restarted"
      publish
      KILLED=$slot
      stop_container "$NAME" $((SECONDS + GRACE)) ;;
  esac
}

# run_container NAME: start the container and restart it as its role says: an app
# container per the pod'"'"'s restartPolicy; an init container until it succeeds (unless
# restartPolicy Never); a sidecar always. Returns 0 when an init container succeeded
# (or the container is done), 1 when an init container failed for good.
run_container() {
  NAME=$1
  C="$P/containers/$1"
  local role=${ROLE[$1]} backoff=0 started started_s code reason oom_before
  while ! halted "$NAME"; do
    if [ "$CS_RESTARTS" -gt 0 ]; then
      # A restarted container gets a fresh writable layer, as in Kubernetes.
      rm -rf "$C/upper" "$C/work"
      mkdir -p "$C/upper" "$C/work"
      mv -f "$C/log" "$C/log.previous"
    fi
    rm -f "$C/started" "$C/pid"
    oom_before=$(cg_oom_kills "$POD_UID/$NAME")
    started_s=$SECONDS
    extra_fields
    launch_container
    code=0
    watch_container || code=$?
    wait_log_readers
    # util-linux 2.38'"'"'s unshare cannot re-raise SIGKILL: it exits 1 and says so on the
    # container'"'"'s stderr. A SIGKILLed main process (OOM killer, grace expiry) is 137.
    if [ "$code" = 1 ] && tail -c 200 "$C/log" 2>/dev/null | grep -q '"'"'unshare: sigprocmask unblock failed'"'"'; then
      code=137
    fi
    if [ "$(cg_oom_kills "$POD_UID/$NAME")" -gt "$oom_before" ]; then
      reason=OOMKilled
      code=137
    elif [ "$code" = 0 ]; then
      reason=Completed
    else
      reason=Error
    fi
    started=""
    read -r started <"$C/started" 2>/dev/null || started=$(now_utc)
    CS_LAST="{\"terminated\":{\"exitCode\":$code,\"reason\":\"$reason\",\"startedAt\":\"$started\",\"finishedAt\":\"$(now_utc)\"}}"
    set_ready false
    if [ "$role" = init ] && [ "$code" = 0 ]; then
      CS_READY=true  # Kubernetes reports a completed init container ready
      CS_STARTED=false
      CS_STATE=$CS_LAST CS_LAST='"'"'{}'"'"'
      publish
      return 0
    fi
    if halted "$NAME" || { [ "$role" != sidecar ] && { [ "$RESTART_POLICY" = Never ] \
        || { [ "$role" = app ] && [ "$RESTART_POLICY" = OnFailure ] && [ "$code" = 0 ]; }; }; }; then
      CS_STATE=$CS_LAST CS_LAST='"'"'{}'"'"'
      publish
      [ "$role" = init ] && ! stopping && return 1
      return 0
    fi
    [ $((SECONDS - started_s)) -lt $BACKOFF_RESET ] || backoff=0
    CS_RESTARTS=$((CS_RESTARTS + 1))
    if [ "$backoff" -gt 0 ]; then
      CS_STATE='"'"'{"waiting":{"reason":"CrashLoopBackOff"}}'"'"'
      publish
      nap "$backoff"
    fi
    # The first restart is immediate; then 10 s, 20 s, 40 s ... up to 5 min.
    if [ "$backoff" = 0 ]; then backoff=$BACKOFF_START; else backoff=$((backoff * 2)); fi
    [ "$backoff" -le $BACKOFF_MAX ] || backoff=$BACKOFF_MAX
  done
  return 0
}

container_started() {
  local line=""
  { read -r line <"$P/containers/$1/state.json"; } 2>/dev/null || return 1
  [[ $line == *'"'"'"started":true'"'"'* ]]
}

# ---------------------------------------------------------------- the pod

SIDECARS=()  # sidecars started so far, in order
RUNNING_INIT=""

# Stop sidecars last, in reverse order, each within what is left of END.
stop_sidecars() {
  local s end=$1 reversed=()
  for s in "${SIDECARS[@]}"; do reversed=("$s" "${reversed[@]}"); done
  for s in "${reversed[@]}"; do
    : >"$R/halt-$s"
    stop_container "$s" "$end"
  done
}

# SIGTERM: stop the app containers (and a running init container) together, then the
# sidecars in reverse order, all within terminationGracePeriodSeconds; then SIGKILL.
on_term() {
  [ -z "${IN_TERM:-}" ] || return 0  # pod_delete signals twice
  IN_TERM=1
  : >"$R/stopping"
  local c end=$((SECONDS + GRACE)) pids=()
  for c in "${CONTAINERS[@]}" $RUNNING_INIT; do
    stop_container "$c" "$end" &
    pids+=($!)
  done
  # (pod_delete signals twice: the second signal must not cut this wait short)
  for c in "${pids[@]}"; do wait_for "$c" || true; done
  stop_sidecars "$end"
  for c in "${INITS[@]}" "${CONTAINERS[@]}"; do cg_signal "$POD_UID/$c" KILL; done
}
trap on_term TERM INT

run_pod() {
  local c pid failed=""
  for c in "${INITS[@]}"; do
    stopping && break
    if [ "${ROLE[$c]}" = sidecar ]; then
      run_container "$c" &
      SIDECARS+=("$c")
      # The next init container starts once this one has started (its startup probe
      # passed, or it runs and its postStart hook completed).
      until stopping || container_started "$c"; do nap_s 0.05; done
    else
      RUNNING_INIT=$c
      run_container "$c" &
      pid=$!
      wait_for "$pid" || failed=$c
      RUNNING_INIT=""
      [ -z "$failed" ] || break
    fi
  done
  if [ -z "$failed" ] && ! stopping; then
    local pids=()
    for c in "${CONTAINERS[@]}"; do
      run_container "$c" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait_for "$pid" || true; done
  fi
  # Every app container is done (or an init container failed): the sidecars stop, so
  # that the pod completes.
  stopping || stop_sidecars $((SECONDS + GRACE))
}

run_pod
# `wait` returns early when a trapped signal arrives; keep waiting for the runners.
while [ -n "$(jobs -pr)" ]; do wait || true; done
: >"$P/finished"
rm -f "$R/supervisor.pid"
' >"$P/supervisor.sh"
printf '%s' '#!/bin/bash
# podctl container start: runs as PID 1 of the container'"'"'s own PID and mount
# namespaces, already joined to the pod'"'"'s net/ipc/uts namespaces. It builds the
# container'"'"'s root (overlay over the image, /proc, /dev, /etc/hosts, volumes) and execs
# the declared command with only the declared environment. No environment value is
# ever in an argv (ps shows argv to every user): each is exported as PODCTL_E<i> and
# `env -S` (whose argument holds only names) sets NAME from it after clearing the rest.
# Secret-backed values are read at exec time from the pod'"'"'s secrets tmpfs.
set -euo pipefail
# --- podctl host library (templates/lib.sh.j2) ---
export LC_ALL=C TZ=UTC PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PODCTL_STATE=/var/lib/podctl
PODCTL_RUN=/run/podctl
# cgroup v1 hierarchies podctl uses; cpu and cpuacct may be one co-mounted hierarchy.
PODCTL_V1_CONTROLLERS="cpu cpuacct memory pids"

# The cgroup hierarchies podctl writes to, found once: the v2 root, or each v1
# controller'"'"'s mount (cpu and cpuacct may be one co-mounted hierarchy: then a directory
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

# Is the pod'"'"'s supervisor alive? Prints its pid (status 0) if so. A pid file alone
# could name a reused pid, so the process'"'"'s command line must name the pod'"'"'s uid.
# Builtins only: no process is started (the probe asks this for every pod).
supervisor_pid() {
  local uid=$1 pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$uid/supervisor.pid"; } 2>/dev/null || [ -n "$pid" ] || return 1
  [[ -n $pid && $pid != *[!0-9]* ]] || return 1
  { mapfile -d '"'"''"'"' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  [[ ${argv[*]} == *"$uid"* ]] || return 1
  echo "$pid"
}
# shellcheck disable=SC2034  # used by the scripts that include this library
PODCTL_BRIDGE=podctl0

now_utc() { printf '"'"'%(%Y-%m-%dT%H:%M:%SZ)T'"'"' -1; }

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

# The one directory whose cgroup.procs lists a cgroup'"'"'s processes.
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
# relative to ROOT, never to the host (what runc'"'"'s securejoin does). Sets SJ to the
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

securejoin() { securejoin_var "$@" && printf '"'"'%s\n'"'"' "$SJ"; }

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

mkpath_in_root() { mkpath_var "$@" && printf '"'"'%s\n'"'"' "$MP"; }

# Atomic write: content on stdin lands in FILE all at once (readers never see half).
atomic_write() {
  local f=$1 tmp="$1.tmp.$BASHPID"
  cat >"$tmp" && mv -f "$tmp" "$f"
}

# write_atomic FILE TEXT: the same, with the text as an argument (no cat).
write_atomic() {
  local tmp="$1.tmp.$BASHPID"
  printf '"'"'%s\n'"'"' "$2" >"$tmp" && mv -f "$tmp" "$1"
}

# Unmount everything below a directory, deepest first.
umount_below() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '"'"'$5 == d || index($5, d "/") == 1 { print $5 }'"'"' /proc/self/mountinfo | sort -r)
}

# shareProcessNamespace: the pod'"'"'s one PID namespace is held by a "pause" process, its
# PID 1 (a namespace whose init died takes no new process). It reaps the orphans the
# containers leave (a bash `wait` reaps any child) and lives in a child cgroup of the
# pod'"'"'s ("_pause": no container name has a "_"; cgroup v2 allows processes in leaves
# only), so the pod'"'"'s teardown kills it and, with it, every process of the namespace.
pause_start() {
  local uid=$1 r="$PODCTL_RUN/pods/$1"
  rm -f "$r/pause.pid"
  cg_create "$uid/_pause"
  (
    cg_join "$uid/_pause"
    # shellcheck disable=SC2016  # expanded by the pause'"'"'s own bash
    exec setsid -f unshare --pid --fork -- /bin/bash -c \
      '"'"'read -r p _ </proc/self/stat; echo "$p" >"$1/pause.pid.tmp"; mv -f "$1/pause.pid.tmp" "$1/pause.pid"
       exec </dev/null >/dev/null 2>&1
       while :; do sleep 3600 & wait; done'"'"' podctl-pause "$r" "$uid" </dev/null >/dev/null 2>&1
  )
  for _ in $(seq 1 500); do [ ! -e "$r/pause.pid" ] || return 0; nap_s 0.01; done
  echo "podctl: the pod'"'"'s pause process did not start" >&2
  return 1
}

# env_from_environ FILE: a process'"'"'s environment (/proc/PID/environ) as `env -S`'"'"'s
# argument in ENV_SPLIT, with every value exported as PODCTL_E<i>: no value is ever in
# an argv (ps shows argv to every user), see container.sh.j2. Run it in a subshell.
env_from_environ() {
  local envv kv name i
  mapfile -d '"'"''"'"' envv <"$1" || return 1
  ENV_SPLIT="-i --"
  for i in "${!envv[@]}"; do
    kv=${envv[$i]}
    export "PODCTL_E$i=${kv#*=}"
    name=${kv%%=*}
    name=${name//\\/\\\\}
    name=${name//\'"'"'/\\\'"'"'}
    ENV_SPLIT+=" '"'"'$name='"'"'\"\${PODCTL_E$i}\""
  done
}

# The command that puts a container'"'"'s start script into the pod: nsenter into the
# pod'"'"'s net/ipc/uts namespaces, then its own mount namespace and either the pod'"'"'s
# shared PID namespace (a pause process holds it) or, by default, its own. A second
# argument names a PID namespace to join instead (an ephemeral container'"'"'s target).
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

# Kill the pod'"'"'s emptyDir sizeLimit watcher (emptydir_watch.sh.j2) and its `du`: it
# leads its own process group (setsid). Its command line must name the pod'"'"'s uid.
emptydir_watch_stop() {
  local pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$1/emptydir_watch.pid"; } 2>/dev/null || return 0
  [[ -n $pid && $pid != *[!0-9]* ]] || return 0
  { mapfile -d '"'"''"'"' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
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
IMAGE_DIR=/var/lib/podctl/images/abababababababababababababababababababababababababababababababab/rootfs
WORKDIR=/data
ARGV=(sh -c '"'"'echo "$GREETING" > /data/out; sleep 3600'"'"')
ARGV_FILES=('"'"''"'"' '"'"''"'"' '"'"''"'"')
ENV_SPLIT='"'"'-i -- '"'"'"'"'"'"'"'"'PATH='"'"'"'"'"'"'"'"'"${PODCTL_E0}" '"'"'"'"'"'"'"'"'GREETING='"'"'"'"'"'"'"'"'"${PODCTL_E1}" '"'"'"'"'"'"'"'"'HOSTNAME='"'"'"'"'"'"'"'"'"${PODCTL_E2}"'"'"'
ENV_VALUES=(/usr/sbin:/usr/bin:/sbin:/bin '"'"'it'"'"'"'"'"'"'"'"'s $(not run) `nor this`; echo x'"'"' web)
ENV_FILES=('"'"''"'"' '"'"''"'"' '"'"''"'"')
OOM_SCORE_ADJ=999
MOUNT_SRC=(/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/volumes/shared /srv/data)
MOUNT_DST=(/data /host)
MOUNT_RO=(rw ro)
STARTED_FLAG=true
READY_FLAG=true
HOLD_RUNNING=no
# The capabilities Docker and containerd grant a container by default.
CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
P="$PODCTL_STATE/pods/$POD_UID"
R="$PODCTL_RUN/pods/$POD_UID"
C=/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/app
ROOT="$C/rootfs"

RESTARTS=$1
LAST_STATE=$2
EXTRA=${3:-}  # more status fields from the supervisor (its probe and hook counters)
[[ $RESTARTS =~ ^[0-9]+$ ]] || { echo "podctl: bad restart count" >&2; exit 125; }

cg_join "$POD_UID/$NAME"
# Our pid as the host sees it, so the supervisor can signal the main process.
read -r host_pid _ </proc/self/stat
echo "$host_pid" >"$C/pid"

if [ ! -d "$IMAGE_DIR" ]; then
  echo "podctl: image rootfs $IMAGE_DIR is missing on this host" >&2
  exit 125
fi
mount -t overlay overlay -o "lowerdir=$IMAGE_DIR,upperdir=$C/upper,workdir=$C/work" "$ROOT"

mkpath_var "$ROOT" /proc
mount -t proc -o nosuid,nodev,noexec proc "$MP"
mkpath_var "$ROOT" /sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$MP" 2>/dev/null || mount --rbind -o ro /sys "$MP"
# The pod'"'"'s /dev (device nodes, /dev/shm, /dev/pts), made once per pod by the create script.
mkpath_var "$ROOT" /dev
mount --rbind "$R/dev" "$MP"

for f in hosts hostname resolv.conf; do
  mkpath_var "$ROOT" "/etc/$f" file
  mount --bind "$P/etc/$f" "$MP"
done

for i in "${!MOUNT_DST[@]}"; do
  src=${MOUNT_SRC[$i]}
  if [ -d "$src" ]; then
    mkpath_var "$ROOT" "${MOUNT_DST[$i]}"
  else
    mkpath_var "$ROOT" "${MOUNT_DST[$i]}" file
  fi
  mount --rbind "$src" "$MP"
  if [ "${MOUNT_RO[$i]}" = ro ]; then
    mount -o remount,bind,ro "$MP"
  fi
done

[ -z "$WORKDIR" ] || mkpath_var "$ROOT" "$WORKDIR"
printf -v STARTED '"'"'%(%Y-%m-%dT%H:%M:%SZ)T'"'"' -1
echo "$STARTED" >"$C/started"
# With a postStart hook the supervisor reports running once the hook has completed.
if [ "$HOLD_RUNNING" != yes ]; then
  printf -v STATE '"'"'{"name":"%s","restartCount":%d,"state":{"running":{"startedAt":"%s"}},"lastState":%s,"ready":%s,"started":%s%s}'"'"' \
    "$NAME" "$RESTARTS" "$STARTED" "$LAST_STATE" "$READY_FLAG" "$STARTED_FLAG" "$EXTRA"
  write_atomic "$C/state.json" "$STATE"
fi
# QoS: the kernel'"'"'s OOM killer picks BestEffort first, Guaranteed last (inherited).
echo "$OOM_SCORE_ADJ" 2>/dev/null >/proc/self/oom_score_adj || true  # not fatal (a read-only /proc)
for i in "${!ARGV_FILES[@]}"; do
  [ -z "${ARGV_FILES[$i]}" ] || { IFS= read -r -d '"'"''"'"' "ARGV[$i]" <"${ARGV_FILES[$i]}" || true; }
done
for i in "${!ENV_VALUES[@]}"; do
  v=${ENV_VALUES[$i]}
  [ -z "${ENV_FILES[$i]}" ] || { IFS= read -r -d '"'"''"'"' v <"${ENV_FILES[$i]}" || true; }
  export "PODCTL_E$i=$v"
done
unset v
exec env -S "$ENV_SPLIT" "$(command -v setpriv)" --bounding-set "$CAPS" -- \
  "$(command -v unshare)" --root="$ROOT" --wd="${WORKDIR:-/}" -- "${ARGV[@]}"
' >/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/app/start.sh
printf '%s' '#!/bin/bash
# podctl container start: runs as PID 1 of the container'"'"'s own PID and mount
# namespaces, already joined to the pod'"'"'s net/ipc/uts namespaces. It builds the
# container'"'"'s root (overlay over the image, /proc, /dev, /etc/hosts, volumes) and execs
# the declared command with only the declared environment. No environment value is
# ever in an argv (ps shows argv to every user): each is exported as PODCTL_E<i> and
# `env -S` (whose argument holds only names) sets NAME from it after clearing the rest.
# Secret-backed values are read at exec time from the pod'"'"'s secrets tmpfs.
set -euo pipefail
# --- podctl host library (templates/lib.sh.j2) ---
export LC_ALL=C TZ=UTC PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PODCTL_STATE=/var/lib/podctl
PODCTL_RUN=/run/podctl
# cgroup v1 hierarchies podctl uses; cpu and cpuacct may be one co-mounted hierarchy.
PODCTL_V1_CONTROLLERS="cpu cpuacct memory pids"

# The cgroup hierarchies podctl writes to, found once: the v2 root, or each v1
# controller'"'"'s mount (cpu and cpuacct may be one co-mounted hierarchy: then a directory
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

# Is the pod'"'"'s supervisor alive? Prints its pid (status 0) if so. A pid file alone
# could name a reused pid, so the process'"'"'s command line must name the pod'"'"'s uid.
# Builtins only: no process is started (the probe asks this for every pod).
supervisor_pid() {
  local uid=$1 pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$uid/supervisor.pid"; } 2>/dev/null || [ -n "$pid" ] || return 1
  [[ -n $pid && $pid != *[!0-9]* ]] || return 1
  { mapfile -d '"'"''"'"' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  [[ ${argv[*]} == *"$uid"* ]] || return 1
  echo "$pid"
}
# shellcheck disable=SC2034  # used by the scripts that include this library
PODCTL_BRIDGE=podctl0

now_utc() { printf '"'"'%(%Y-%m-%dT%H:%M:%SZ)T'"'"' -1; }

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

# The one directory whose cgroup.procs lists a cgroup'"'"'s processes.
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
# relative to ROOT, never to the host (what runc'"'"'s securejoin does). Sets SJ to the
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

securejoin() { securejoin_var "$@" && printf '"'"'%s\n'"'"' "$SJ"; }

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

mkpath_in_root() { mkpath_var "$@" && printf '"'"'%s\n'"'"' "$MP"; }

# Atomic write: content on stdin lands in FILE all at once (readers never see half).
atomic_write() {
  local f=$1 tmp="$1.tmp.$BASHPID"
  cat >"$tmp" && mv -f "$tmp" "$f"
}

# write_atomic FILE TEXT: the same, with the text as an argument (no cat).
write_atomic() {
  local tmp="$1.tmp.$BASHPID"
  printf '"'"'%s\n'"'"' "$2" >"$tmp" && mv -f "$tmp" "$1"
}

# Unmount everything below a directory, deepest first.
umount_below() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '"'"'$5 == d || index($5, d "/") == 1 { print $5 }'"'"' /proc/self/mountinfo | sort -r)
}

# shareProcessNamespace: the pod'"'"'s one PID namespace is held by a "pause" process, its
# PID 1 (a namespace whose init died takes no new process). It reaps the orphans the
# containers leave (a bash `wait` reaps any child) and lives in a child cgroup of the
# pod'"'"'s ("_pause": no container name has a "_"; cgroup v2 allows processes in leaves
# only), so the pod'"'"'s teardown kills it and, with it, every process of the namespace.
pause_start() {
  local uid=$1 r="$PODCTL_RUN/pods/$1"
  rm -f "$r/pause.pid"
  cg_create "$uid/_pause"
  (
    cg_join "$uid/_pause"
    # shellcheck disable=SC2016  # expanded by the pause'"'"'s own bash
    exec setsid -f unshare --pid --fork -- /bin/bash -c \
      '"'"'read -r p _ </proc/self/stat; echo "$p" >"$1/pause.pid.tmp"; mv -f "$1/pause.pid.tmp" "$1/pause.pid"
       exec </dev/null >/dev/null 2>&1
       while :; do sleep 3600 & wait; done'"'"' podctl-pause "$r" "$uid" </dev/null >/dev/null 2>&1
  )
  for _ in $(seq 1 500); do [ ! -e "$r/pause.pid" ] || return 0; nap_s 0.01; done
  echo "podctl: the pod'"'"'s pause process did not start" >&2
  return 1
}

# env_from_environ FILE: a process'"'"'s environment (/proc/PID/environ) as `env -S`'"'"'s
# argument in ENV_SPLIT, with every value exported as PODCTL_E<i>: no value is ever in
# an argv (ps shows argv to every user), see container.sh.j2. Run it in a subshell.
env_from_environ() {
  local envv kv name i
  mapfile -d '"'"''"'"' envv <"$1" || return 1
  ENV_SPLIT="-i --"
  for i in "${!envv[@]}"; do
    kv=${envv[$i]}
    export "PODCTL_E$i=${kv#*=}"
    name=${kv%%=*}
    name=${name//\\/\\\\}
    name=${name//\'"'"'/\\\'"'"'}
    ENV_SPLIT+=" '"'"'$name='"'"'\"\${PODCTL_E$i}\""
  done
}

# The command that puts a container'"'"'s start script into the pod: nsenter into the
# pod'"'"'s net/ipc/uts namespaces, then its own mount namespace and either the pod'"'"'s
# shared PID namespace (a pause process holds it) or, by default, its own. A second
# argument names a PID namespace to join instead (an ephemeral container'"'"'s target).
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

# Kill the pod'"'"'s emptyDir sizeLimit watcher (emptydir_watch.sh.j2) and its `du`: it
# leads its own process group (setsid). Its command line must name the pod'"'"'s uid.
emptydir_watch_stop() {
  local pid="" argv=()
  { read -r pid <"$PODCTL_RUN/pods/$1/emptydir_watch.pid"; } 2>/dev/null || return 0
  [[ -n $pid && $pid != *[!0-9]* ]] || return 0
  { mapfile -d '"'"''"'"' argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
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
NAME=side
IMAGE_DIR=/var/lib/podctl/images/abababababababababababababababababababababababababababababababab/rootfs
WORKDIR='"'"''"'"'
ARGV=(sleep 3600)
ARGV_FILES=('"'"''"'"' '"'"''"'"')
ENV_SPLIT='"'"'-i -- '"'"'"'"'"'"'"'"'PATH='"'"'"'"'"'"'"'"'"${PODCTL_E0}" '"'"'"'"'"'"'"'"'HOSTNAME='"'"'"'"'"'"'"'"'"${PODCTL_E1}"'"'"'
ENV_VALUES=(/usr/sbin:/usr/bin:/sbin:/bin web)
ENV_FILES=('"'"''"'"' '"'"''"'"')
OOM_SCORE_ADJ=999
MOUNT_SRC=(/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/volumes/shared /run/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/volumes/cache)
MOUNT_DST=(/data /cache)
MOUNT_RO=(rw rw)
STARTED_FLAG=true
READY_FLAG=true
HOLD_RUNNING=no
# The capabilities Docker and containerd grant a container by default.
CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
P="$PODCTL_STATE/pods/$POD_UID"
R="$PODCTL_RUN/pods/$POD_UID"
C=/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/side
ROOT="$C/rootfs"

RESTARTS=$1
LAST_STATE=$2
EXTRA=${3:-}  # more status fields from the supervisor (its probe and hook counters)
[[ $RESTARTS =~ ^[0-9]+$ ]] || { echo "podctl: bad restart count" >&2; exit 125; }

cg_join "$POD_UID/$NAME"
# Our pid as the host sees it, so the supervisor can signal the main process.
read -r host_pid _ </proc/self/stat
echo "$host_pid" >"$C/pid"

if [ ! -d "$IMAGE_DIR" ]; then
  echo "podctl: image rootfs $IMAGE_DIR is missing on this host" >&2
  exit 125
fi
mount -t overlay overlay -o "lowerdir=$IMAGE_DIR,upperdir=$C/upper,workdir=$C/work" "$ROOT"

mkpath_var "$ROOT" /proc
mount -t proc -o nosuid,nodev,noexec proc "$MP"
mkpath_var "$ROOT" /sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$MP" 2>/dev/null || mount --rbind -o ro /sys "$MP"
# The pod'"'"'s /dev (device nodes, /dev/shm, /dev/pts), made once per pod by the create script.
mkpath_var "$ROOT" /dev
mount --rbind "$R/dev" "$MP"

for f in hosts hostname resolv.conf; do
  mkpath_var "$ROOT" "/etc/$f" file
  mount --bind "$P/etc/$f" "$MP"
done

for i in "${!MOUNT_DST[@]}"; do
  src=${MOUNT_SRC[$i]}
  if [ -d "$src" ]; then
    mkpath_var "$ROOT" "${MOUNT_DST[$i]}"
  else
    mkpath_var "$ROOT" "${MOUNT_DST[$i]}" file
  fi
  mount --rbind "$src" "$MP"
  if [ "${MOUNT_RO[$i]}" = ro ]; then
    mount -o remount,bind,ro "$MP"
  fi
done

[ -z "$WORKDIR" ] || mkpath_var "$ROOT" "$WORKDIR"
printf -v STARTED '"'"'%(%Y-%m-%dT%H:%M:%SZ)T'"'"' -1
echo "$STARTED" >"$C/started"
# With a postStart hook the supervisor reports running once the hook has completed.
if [ "$HOLD_RUNNING" != yes ]; then
  printf -v STATE '"'"'{"name":"%s","restartCount":%d,"state":{"running":{"startedAt":"%s"}},"lastState":%s,"ready":%s,"started":%s%s}'"'"' \
    "$NAME" "$RESTARTS" "$STARTED" "$LAST_STATE" "$READY_FLAG" "$STARTED_FLAG" "$EXTRA"
  write_atomic "$C/state.json" "$STATE"
fi
# QoS: the kernel'"'"'s OOM killer picks BestEffort first, Guaranteed last (inherited).
echo "$OOM_SCORE_ADJ" 2>/dev/null >/proc/self/oom_score_adj || true  # not fatal (a read-only /proc)
for i in "${!ARGV_FILES[@]}"; do
  [ -z "${ARGV_FILES[$i]}" ] || { IFS= read -r -d '"'"''"'"' "ARGV[$i]" <"${ARGV_FILES[$i]}" || true; }
done
for i in "${!ENV_VALUES[@]}"; do
  v=${ENV_VALUES[$i]}
  [ -z "${ENV_FILES[$i]}" ] || { IFS= read -r -d '"'"''"'"' v <"${ENV_FILES[$i]}" || true; }
  export "PODCTL_E$i=$v"
done
unset v
exec env -S "$ENV_SPLIT" "$(command -v setpriv)" --bounding-set "$CAPS" -- \
  "$(command -v unshare)" --root="$ROOT" --wd="${WORKDIR:-/}" -- "${ARGV[@]}"
' >/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/side/start.sh

# Namespaces the containers share, kept alive by bind mounts on files.
: >"$R/ns/net"
: >"$R/ns/ipc"
: >"$R/ns/uts"
unshare --net="$R/ns/net" --ipc="$R/ns/ipc" --uts="$R/ns/uts" -- true
printf '%s' "$POD_HOSTNAME" | nsenter --uts="$R/ns/uts" -- tee /proc/sys/kernel/hostname >/dev/null

# The pod's /dev, bound into every container: the safe device nodes, a /dev/shm tmpfs
# shared by the pod's containers (POSIX shm), its own devpts instance.
mount -t tmpfs -o nosuid,noexec,mode=0755,size=1024k poddev "$R/dev"
mkdir "$R/dev/shm" "$R/dev/pts"
for n in null zero full random urandom tty; do
  : >"$R/dev/$n"
  mount --bind "/dev/$n" "$R/dev/$n"
done
mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev shm "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts" 2>/dev/null || true
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"

# Network: a veth from the pod into the host's bridge, the pod IP, a default route.
# One `ip -batch` a side: each ip process costs more than the netlink work it does.
if [ ! -e "/sys/class/net/$PODCTL_BRIDGE" ]; then
  ip link add "$PODCTL_BRIDGE" type bridge 2>/dev/null || [ -e "/sys/class/net/$PODCTL_BRIDGE" ]
fi
# The pod's end is born inside the pod's namespace as eth0 (no move, no rename); in
# the VXLAN mode both ends fit in the tunnel (net_apply.sh.j2 writes pod.mtu).
POD_MTU=""
{ read -r POD_MTU <"$PODCTL_RUN/pod.mtu"; } 2>/dev/null || true
[[ $POD_MTU =~ ^[0-9]+$ ]] && POD_MTU="mtu $POD_MTU" || POD_MTU=""
printf '%s\n' "addr replace $POD_GW/$POD_PREFIX dev $PODCTL_BRIDGE" "link set $PODCTL_BRIDGE up" \
  "link add $VETH $POD_MTU type veth peer name eth0 $POD_MTU netns $R/ns/net" \
  "link set $VETH master $PODCTL_BRIDGE up" | ip -batch -
printf '%s\n' "link set lo up" "addr add $POD_IP/$POD_PREFIX dev eth0" \
  "link set eth0 up" "route add default via $POD_GW" | nsenter --net="$R/ns/net" -- ip -batch -

# cgroups: one for the pod, a child per container (limits as the manifest says).
cg_create "$POD_UID" 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/app 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/side
cg_limits "$POD_UID" '' '' 256 4096
cg_limits 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/app 67108864 50000 256 ''
cg_limits 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/side '' '' 2 ''

# Volumes: emptyDir on disk lives with the pod; medium Memory is a tmpfs.
mkdir -p /var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/volumes/shared
mkdir -p /run/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/volumes/cache
mount -t tmpfs -o mode=0777,nosuid,nodev,size=16777216 tmpfs /run/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/volumes/cache
hostpath_prepare /srv/data DirectoryOrCreate

setsid -f /bin/bash "$P/supervisor.sh" </dev/null >>"$P/supervisor.log" 2>&1
# Wait (briefly) until every container has started or ended, so the caller sees
# Running in the same round trip. Builtins only: this loop is on the hot path.
for _ in $(seq 1 2500); do
  started=0
  for n in app side; do
    state=""
    { read -r state <"$P/containers/$n/state.json"; } 2>/dev/null || true
    case "$state" in *'"running"'* | *'"terminated"'* | *CrashLoopBackOff*) started=$((started + 1)) ;; esac
  done
  [ "$started" -lt 2 ] || break
  nap_s 0.002
done
report created "$POD_UID"
)
report_result 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f $?
(
set -uo pipefail
POD_UID=0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f
VETH=pv0d6f2a4e1b7c
GRACE=5
if pid=$(supervisor_pid "$POD_UID"); then
  kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + GRACE + 5))
  while [ $SECONDS -lt $end ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
fi
pod_teardown "$POD_UID" "$VETH"
report deleted "$POD_UID"
)
report_result 0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f $?
report end
