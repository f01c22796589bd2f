#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks the example unit files against the built binaries: systemd-analyze verify (which exits 0
# even when it finds errors: any output on stderr fails), and the sandboxing of the long-running
# services: `systemd-analyze security --offline` must rate echod.service,
# ringd-supervise.service and xferrd.service (the xfer family's one unit) at an exposure of 4.0
# or less ("OK").
# Usage: verify.sh ECHOD RINGD_CONTROL RINGD_SUPERVISE [XFERRD XFERCTL]
# (exit 77: systemd-analyze is missing)
set -euo pipefail
command -v systemd-analyze >/dev/null || { echo "skipped: systemd-analyze not installed"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
echod=$(realpath "$1")
control=$(realpath "$2")
supervise=$(realpath "$3")
xferrd=$(realpath "${4:-/usr/local/bin/xferrd}")
xferctl=$(realpath "${5:-/usr/local/bin/xferctl}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in echod.service echod.socket echod-forking.service ringd-supervise.service \
    xferrd.service; do
    sed -e "s|/usr/local/bin/echod|$echod|g" -e "s|/usr/local/bin/ringd-control|$control|g" \
        -e "s|/usr/local/bin/ringd-supervise|$supervise|g" -e "s|/usr/local/bin/xferrd|$xferrd|g" \
        -e "s|/usr/local/bin/xferctl|$xferctl|g" "$here/$unit" >"$work/$unit"
done
cd "$work"
status=0
sets=("echod.socket echod.service" "echod-forking.service" "ringd-supervise.service")
[ -x "$xferrd" ] && sets+=("xferrd.service") # the xfer family is built only with OpenSSL
for set in "${sets[@]}"; do
    # shellcheck disable=SC2086
    if ! out=$(systemd-analyze verify $set 2>&1 >/dev/null) || [ -n "$out" ]; then
        echo "systemd-analyze verify $set:"
        echo "$out"
        status=1
    fi
done
for unit in echod.service ringd-supervise.service xferrd.service; do
    line=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | grep 'Overall exposure')
    level=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
    echo "$unit: exposure $level"
    if ! awk -v l="$level" 'BEGIN { exit !(l != "" && l <= 4.0) }'; then
        echo "$unit: exposure $level is above 4.0: $line"
        status=1
    fi
done
[ $status -eq 0 ] && echo "unit files verified"
exit $status
