#!/usr/bin/env bash
# Checks the example unit files with systemd-analyze verify, against the built binaries.
# systemd-analyze verify exits 0 even when it finds errors: any output on stderr fails.
# Usage: verify.sh ECHOD RINGD_CONTROL   (exit 77 = skipped: systemd-analyze is not installed)
set -euo pipefail
command -v systemd-analyze >/dev/null || { echo "skipped: systemd-analyze not installed"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
echod=$(realpath "$1")
control=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in echod.service echod.socket echod-forking.service; do
    sed -e "s|/usr/local/bin/echod|$echod|g" -e "s|/usr/local/bin/ringd-control|$control|g" \
        "$here/$unit" > "$work/$unit"
done
cd "$work"
status=0
for set in "echod.socket echod.service" "echod-forking.service"; do
    # shellcheck disable=SC2086
    if ! out=$(systemd-analyze verify $set 2>&1 >/dev/null) || [ -n "$out" ]; then
        echo "systemd-analyze verify $set:"
        echo "$out"
        status=1
    fi
done
[ $status -eq 0 ] && echo "unit files verified"
exit $status
