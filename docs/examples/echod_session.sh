#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The capstone's ringd-control session (docs/05-a-complete-daemon.md), run as the doc_echod_session
# test against the built echod and ringd-control: the chapter shows the region below, so the
# commands it shows are the ones that work. As root, echod serves as `nobody` (skipped, exit 77,
# without root or that user). Paths live in a scratch directory ($run, $etc) instead of /run and
# /etc; everything else is as an operator types it.
# Usage: echod_session.sh ECHOD RINGD_CONTROL
set -euo pipefail
if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
    echo "echod_session: skipped (needs root and the user nobody)"
    exit 77
fi
bin=$(mktemp -d)
ln -s "$(realpath "$1")" "$bin/echod"
ln -s "$(realpath "$2")" "$bin/ringd-control"
PATH=$bin:$PATH
work=$(mktemp -d)
chmod 755 "$work" # nobody re-reads the configuration on reload
run=$work/run etc=$work
printf 'prefix=\n' >"$etc/echod.conf"
chmod 644 "$etc/echod.conf"
cleanup() {
    ringd-control --pid-file "$run/echod.pid" --stop --timeout 5 >/dev/null 2>&1 || true
    rm -rf "$work" "$bin"
}
trap cleanup EXIT

# [ringd-control]
install -d -o nobody -m 0755 $run   # echod's own directory: its PID file, its upgrade offer
ringd-control --pid-file $run/echod.pid --start -- \
    echod --listen 127.0.0.1:0 --pid-file $run/echod.pid --config $etc/echod.conf --user nobody
ringd-control --pid-file $run/echod.pid --check   # prints the PID; exit 0 (101: not running)
echo 'prefix=> ' >$etc/echod.conf
ringd-control --pid-file $run/echod.pid --reload  # returns once echod has re-read the file
ringd-control --pid-file $run/echod.pid --stop    # SIGTERM; returns once echod has exited
# [/ringd-control]

# After the stop nothing runs, and the PID file is gone (echod, as nobody, removed it from its
# own directory).
status=0
ringd-control --pid-file "$run/echod.pid" --check >/dev/null 2>&1 || status=$?
if [ "$status" -ne 101 ] || [ -e "$run/echod.pid" ]; then
    echo "echod_session: after --stop, --check exited $status (want 101) or the PID file is left"
    exit 1
fi
echo "echod_session: start, check, reload, stop as the chapter shows them"
