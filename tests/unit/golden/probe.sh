set -u
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
report() { local IFS=' '; printf '@@podctl %s\n' "$*"; }
# Facts, from /sys and /proc.
cpus=0
online=""
read -r online </sys/devices/system/cpu/online 2>/dev/null || true
IFS=, read -r -a ranges <<<"$online"
for r in "${ranges[@]}"; do
  if [[ $r == *-* ]]; then cpus=$((cpus + ${r#*-} - ${r%-*} + 1)); else cpus=$((cpus + 1)); fi
done
mem_total=0
mem_available=0
while read -r key value _; do
  case "$key" in
    MemTotal:) mem_total=$value ;;
    MemAvailable:) mem_available=$value; break ;;
  esac
done </proc/meminfo
boot_id=unknown
read -r boot_id </proc/sys/kernel/random/boot_id 2>/dev/null || true
kernel=""
read -r kernel </proc/sys/kernel/osrelease || true
report fact cgroup "$CGV"
report fact cpus "$cpus"
report fact mem_total_kb "$mem_total"
report fact mem_available_kb "$mem_available"
report fact boot_id "$boot_id"
report fact kernel "${kernel//[^[:alnum:]._+-]/}"
report fact arch "$HOSTTYPE"
# The pod network this host last applied (podnet.py); gone after a reboot, like its routes.
net_digest=""
{ read -r net_digest <"$PODCTL_RUN/net.digest"; } 2>/dev/null || true
report fact net_digest "${net_digest//[^0-9a-f]/}"
for d in "$PODCTL_STATE"/images/*/rootfs; do
  [ -d "$d" ] || continue
  d=${d%/rootfs}
  report image "${d##*/}"
done
# Pods are found by uid wherever podctl leaves a trace: state, runtime dir, cgroup.
# A glob, not a regex: bash compiles a regex at every test.
shopt -s nullglob
declare -A seen=()
x='[0-9a-f]'
x4=$x$x$x$x
for d in "$PODCTL_STATE"/pods/*/ "$PODCTL_RUN"/pods/*/ "$CG_MAIN"/*/; do
  d=${d%/}
  d=${d##*/}
  # shellcheck disable=SC2254  # a pattern on purpose
  case $d in $x4$x4-$x4-$x4-$x4-$x4$x4$x4) seen[$d]=1 ;; esac
done
uids=("${!seen[@]}")
# Memory in use per pod (node-pressure eviction ranks pods by it).
if [ "$CGV" = 2 ]; then CG_MEM=$CG_MAIN MEM_FILE=memory.current
else CG_MEM=/sys/fs/cgroup/memory/podctl MEM_FILE=memory.usage_in_bytes; fi
for uid in "${uids[@]}"; do
  P="$PODCTL_STATE/pods/$uid"
  mem=0
  { read -r mem <"$CG_MEM/$uid/$MEM_FILE"; } 2>/dev/null || true
  [[ -n $mem && $mem != *[!0-9]* ]] && report usage "$uid" "$mem"
  if supervisor_pid "$uid" >/dev/null; then state=alive
  elif [ -e "$P/finished" ]; then state=finished
  else state=dead; fi
  # Each container's state.json is one line; together they are the pod's status.
  status='{"containers":['
  sep=""
  for f in "$P"/containers/*/state.json; do
    [ -f "$f" ] || continue
    line=""
    read -r line <"$f" || true
    [ -n "$line" ] || continue
    status="$status$sep$line"
    sep=","
  done
  # Ephemeral containers (`podctl debug`) have their own list, as in Kubernetes.
  status="$status],\"ephemeral\":["
  sep=""
  for f in "$P"/ephemeral/*/state.json; do
    line=""
    { read -r line <"$f"; } 2>/dev/null || true
    [ -n "$line" ] || continue
    status="$status$sep$line"
    sep=","
  done
  # The emptyDir sizeLimit watcher's eviction marker (one space-free line of JSON).
  ev=""
  [ ! -f "$P/evicted" ] || { read -r ev <"$P/evicted"; } 2>/dev/null || true
  status="$status]"
  [ -z "$ev" ] || status="$status,\"evicted\":$ev"
  status="$status}"
  # pod.json is one line without a newline at the end; read stops at EOF (status 1).
  meta='{}'
  if [ -f "$P/pod.json" ]; then
    IFS= read -r -d '' meta <"$P/pod.json" || true
    meta=${meta//$'\n'/}
  fi
  report pod "$uid" "$state" "$status" "$meta"
done
report end
