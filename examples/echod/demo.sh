#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The echod demo: ringd-control starts the daemon (it detaches once it listens), socat talks to
# it, ringd-control reloads it (a broken config is refused, with the reason), finds a daemon
# killed with kill -9, restarts it without manual clean-up, and stops it.
# Usage: examples/echod/demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
# ./run demo builds echod only: build ringd-control here too when it is missing.
[ -x "$build/tools/ringd-control/ringd-control" ] || ninja -C "$build" tools/ringd-control/ringd-control >&2
echod="$(realpath "$build/examples/echod/echod")"
control="$(realpath "$build/tools/ringd-control/ringd-control")"
work=$(mktemp -d)
ctl() { "$control" --pid-file "$work/echod.pid" "$@"; }
cleanup() {
    ctl --stop --timeout 2 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
status() { local s=0; "$@" || s=$?; echo "(exit $s)"; }

printf 'prefix=\n' > "$work/echod.conf"
echo "W=$work"
say "start: ringd-control returns once echod listens (exit 0), printing its PID"
start_echod() {
    ctl --start -- "$echod" --listen 127.0.0.1:0 --listen "$work/echod.sock" \
        --pid-file "$work/echod.pid" --config "$work/echod.conf" > "$work/out"
}
printf '$ ringd-control --pid-file $W/echod.pid --start -- echod --listen 127.0.0.1:0 --listen $W/echod.sock --pid-file $W/echod.pid --config $W/echod.conf\n'
start_echod
sed "s|$work|\$W|g" "$work/out"
addr=$(sed -n 's/^echod: listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/out")
port=${addr##*:}

say "a second start: already running (exit 100)"
status ctl --start -- "$echod" --listen 127.0.0.1:0 --pid-file "$work/echod.pid" 2>&1 | sed "s|$work|\$W|g"
say "check: the PID (exit 0); ps -ef and ps -o comm show the process title"
pid=$(ctl --check)
echo "$pid"
ps -o pid,ppid,comm,args -p "$pid" | sed "s|$work|\$W|g"

say "echo over TCP with socat (127.0.0.1:$port)"
printf 'hello\nworld\n' | socat -t 1 - "TCP:127.0.0.1:$port"
say "echo over the UNIX socket"
printf 'over unix\n' | socat -t 1 - "UNIX-CONNECT:$work/echod.sock"

say "reload: prefix='echo> '; ringd-control waits for echod's acknowledgement"
printf 'prefix=echo> \n' > "$work/echod.conf"
status ctl --reload
printf 'hello again\n' | socat -t 1 - "TCP:127.0.0.1:$port"

say "a broken config is refused on reload: exit 102 with the reason; the running settings stay"
printf 'colour=blue\n' > "$work/echod.conf"
status ctl --reload 2>&1 | sed "s|$work|\$W|g"
printf 'still prefixed\n' | socat -t 1 - "TCP:127.0.0.1:$port"
printf 'prefix=\n' > "$work/echod.conf"

say "kill -9: the lock died with the daemon; check finds a stale PID file (exit 103)"
kill -9 "$pid"
while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid")" != Z ]; do sleep 0.01; done
status ctl --check 2>&1 | sed "s|$work|\$W|g"
say "start again, no manual clean-up"
start_echod
tail -1 "$work/out"

say "graceful stop: SIGTERM through a pidfd, then wait until the lock is released (exit 0)"
status ctl --stop --json
status ctl --check 2>&1 | sed "s|$work|\$W|g"
