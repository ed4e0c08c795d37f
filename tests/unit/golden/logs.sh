set -euo pipefail
export LC_ALL=C
POD_UID=0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f
NAME=app
FILE=log
TAIL=+1
FOLLOW=no
f="/var/lib/podctl/pods/$POD_UID/containers/$NAME/$FILE"
if [ ! -f "$f" ]; then
  if [ "$FILE" = log.previous ]; then
    echo "error: previous terminated container \"$NAME\" not found" >&2
  else
    echo "error: container \"$NAME\" has no log yet" >&2
  fi
  exit 1
fi
# Log lines are in the CRI format "<time> <stream> <tag> <text>": print the text.
strip() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    # shellcheck disable=SC2254
    case "$line" in
      [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*' 'std???' '[FP]' '*) line=${line#* }; line=${line#* }; line=${line#* } ;;
    esac
    printf '%s\n' "$line"
  done
}
if [ "$FOLLOW" = yes ]; then
  tail -n "$TAIL" -F "$f" 2>/dev/null | strip
  exit 0
fi
tail -n "$TAIL" "$f" | strip
