#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The capstone's ringd-supervise session (docs/05-a-complete-daemon.md), run as the
# doc_echod_supervised test against the built echod and ringd-supervise: echod registered with
# readiness (sd_notify), `running` only once it has sent READY=1, restarted with the earlier
# instance's log kept, everything stopped by `ctl shutdown`. Paths live in a scratch directory
# ($run, $var, $log, $etc) instead of /run, /var/lib, /var/log and /etc.
# Usage: echod_supervised.sh ECHOD RINGD_SUPERVISE
set -euo pipefail
bin=$(mktemp -d)
ln -s "$(realpath "$1")" "$bin/echod"
ln -s "$(realpath "$2")" "$bin/ringd-supervise"
PATH=$bin:$PATH
work=$(mktemp -d)
run=$work/run var=$work/var log=$work/log etc=$work
mkdir -p "$run" "$var" "$log"
printf 'prefix=\n' >"$etc/echod.conf"
ctl() { ringd-supervise ctl --control "$run/ctl.sock" "$@"; }
cleanup() {
    [ -S "$run/ctl.sock" ] && ctl shutdown >/dev/null 2>&1 || true
    rm -rf "$work" "$bin"
}
trap cleanup EXIT

# state NAME: the service's state as `ctl status` shows it ("running for 2s" → running).
state() { ctl status "$1" | sed -n 's/^state: *\([a-z]*\).*/\1/p'; }
# wait_running NAME: until the supervisor says running (bounded: 100 looks, 0.1 s apart).
wait_running() {
    for _ in $(seq 100); do
        [ "$(state "$1")" = running ] && return 0
        sleep 0.1
    done
    echo "echod_supervised: $1 is $(state "$1"), not running"
    ctl status "$1"
    exit 1
}

# [supervise]
ringd-supervise --state $var/table --log-dir $log --control $run/ctl.sock  # returns once it listens
ringd-supervise ctl --control $run/ctl.sock register echod --restart on-failure --notify -- \
    $(command -v echod) --foreground --listen 127.0.0.1:0 --config $etc/echod.conf
ringd-supervise ctl --control $run/ctl.sock status echod  # starting until echod sends READY=1
# [/supervise]
wait_running echod
first=$(ctl status echod | sed -n 's/^pid: *\([0-9]*\).*/\1/p')
# [restart]
ringd-supervise ctl --control $run/ctl.sock restart echod  # a new instance; the old log stays
# [/restart]
wait_running echod
# [logs]
ls $log  # echod.<old pid> (kept: it has the old instance's output), echod.<new pid>
# [/logs]
if [ ! -f "$log/echod.$first" ] || [ "$(find "$log" -name 'echod.*' | wc -l)" -ne 2 ]; then
    echo "echod_supervised: after a restart, want echod.$first and the new log in $log:"
    ls -l "$log"
    exit 1
fi
grep -q '^echod: listening on 127.0.0.1:' "$log/echod.$first" || {
    echo "echod_supervised: the first instance's log lacks its 'listening on' line"
    exit 1
}
# [shutdown]
ringd-supervise ctl --control $run/ctl.sock shutdown  # stops echod, removes the table, exits
# [/shutdown]
echo "echod_supervised: registered with readiness, running at READY=1, restarted, log kept, shut down"
