#!/usr/bin/env bash
# The echod demo: start the daemon, talk to it with socat, reload it, stop it.
# Usage: examples/echod/demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
echod="$build/examples/echod/echod"
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

printf 'prefix=\n' > "$work/echod.conf"
say "start: echod --listen 127.0.0.1:0 --listen $work/echod.sock --config echod.conf"
"$echod" --listen 127.0.0.1:0 --listen "$work/echod.sock" --config "$work/echod.conf" \
    > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 100); do grep -q "$work/echod.sock" "$work/out" 2>/dev/null && break; sleep 0.05; done
cat "$work/out"
addr=$(sed -n 's/^echod: listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/out")
port=${addr##*:}

say "echo over TCP with socat (127.0.0.1:$port)"
printf 'hello\nworld\n' | socat -t 1 - "TCP:127.0.0.1:$port"
say "echo over the UNIX socket"
printf 'over unix\n' | socat -t 1 - "UNIX-CONNECT:$work/echod.sock"

say "reload: set prefix='echo> ' and send SIGHUP"
printf 'prefix=echo> \n' > "$work/echod.conf"
kill -HUP "$pid"
sleep 0.2
printf 'hello again\n' | socat -t 1 - "TCP:127.0.0.1:$port"

say "a broken config is refused on reload; the running settings stay"
printf 'colour=blue\n' > "$work/echod.conf"
kill -HUP "$pid"
sleep 0.2
printf 'still prefixed\n' | socat -t 1 - "TCP:127.0.0.1:$port"

say "graceful stop: SIGTERM"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
echo "echod exited with status $status; its log:"
sed 's/^/    /' "$work/err"
[ "$status" -eq 0 ]
