set -euo pipefail
export LC_ALL=C
DIR=/var/lib/podctl/pods/0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f/containers/app
FILE=log
TAIL=+1
FOLLOW=yes
f="$DIR/$FILE"
if [ ! -f "$f" ]; then
  if [ "$FILE" = log.previous ]; then exit 4; fi
  exit 5
fi
if [ "$FOLLOW" = yes ]; then
  size=$(stat -c %s "$f")
  head -c "$size" "$f" | tail -n "$TAIL"
  echo "@@podctl-backlog-end"
  exec tail -c "+$((size + 1))" -F "$f" 2>/dev/null
fi
exec tail -n "$TAIL" "$f"
