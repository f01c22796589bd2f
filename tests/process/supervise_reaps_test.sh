#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ringd-supervise reaps children it did not start, in every mode (here: plain --foreground, no
# --container, not PID 1): a shell forks a child and then exec's the supervisor, so the child
# is the supervisor's without being a service. Two cases:
#   - the child ends while the supervisor runs (SIGCHLD reaches its signalfd);
#   - the child ended before the supervisor was exec'd (no SIGCHLD is left for it: the
#     supervisor looks once when it starts).
# Either way the child's /proc entry must go (a zombie keeps it). Meanwhile a service's own exit
# status must still reach its status: the reaper never takes a service's process.
# Environment: RINGD_SUPERVISE (path).
set -uo pipefail
sup=${RINGD_SUPERVISE:?}
tmp=$(mktemp -d)
launcher=
cleanup() {
    [ -n "$launcher" ] && kill -KILL "$launcher" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then echo "ok: $1 ($2)"; else
        echo "FAIL: $1: got '$2', expected '$3'"
        failures=$((failures + 1))
    fi
}
# gone PID: "gone" once /proc/PID has gone (bounded at 10 s, which only a failure reaches), else
# its state letter (Z: a zombie nobody reaped).
gone() {
    for _ in $(seq 200); do [ -e "/proc/$1" ] || break; sleep 0.05; done
    if [ -e "/proc/$1" ]; then cut -d' ' -f3 "/proc/$1/stat"; else echo gone; fi
}
# A service that ends with 78 (not restarted: "do not restart" by default): its status must say so.
mkdir -p "$tmp/svc"
printf '#!/bin/sh\nexit 78\n' >"$tmp/svc/S10seventyeight" && chmod 755 "$tmp/svc/S10seventyeight"
printf 'directories = ["%s"]\n' "$tmp/svc" >"$tmp/sup.toml"

# start_supervisor PROGRAM...: PROGRAM forks the child (its pid to $tmp/child), then exec's
# the supervisor in the foreground with the arguments that follow it.
start_supervisor() {
    rm -rf "$tmp/table"* "$tmp/logs" "$tmp/ctl.sock" "$tmp/child"
    "$@" "$sup" --foreground --config "$tmp/sup.toml" --state "$tmp/table" --log-dir "$tmp/logs" \
        --control "$tmp/ctl.sock" --log-level info >"$tmp/out" 2>&1 &
    launcher=$! # the shell's pid, which exec makes the supervisor's
    for _ in $(seq 600); do
        "$sup" ctl --control "$tmp/ctl.sock" list >/dev/null 2>&1 && break
        sleep 0.05
    done
}
stop_supervisor() {
    "$sup" ctl --control "$tmp/ctl.sock" shutdown >/dev/null 2>&1
    wait "$launcher"
    check "$1: the supervisor stops with exit 0" $? 0
    launcher=
}

# 1. The child ends while the supervisor runs: it waits on a fifo that the test writes to.
mkfifo "$tmp/go"
start_supervisor sh -c 'read x < "$0/go" & echo $! > "$0/child"; exec "$@"' "$tmp"
child=$(cat "$tmp/child")
check "inherited child: its parent is the supervisor" \
    "$(ps -o ppid= -p "$child" | tr -d ' ')" "$launcher"
echo go >"$tmp/go"
check "inherited child that ends later: reaped" "$(gone "$child")" gone
for _ in $(seq 200); do
    grep -q 'exited with status 78' <("$sup" ctl --control "$tmp/ctl.sock" status S10seventyeight 2>&1) &&
        break
    sleep 0.05
done
"$sup" ctl --control "$tmp/ctl.sock" status S10seventyeight >"$tmp/status" 2>&1
grep -q 'exited with status 78' "$tmp/status"
check "a service's own exit status is kept (not taken by the reaper)" $? 0
stop_supervisor "inherited child that ends later"

# 2. The child is a zombie before the exec: no SIGCHLD will come. (Perl: a shell would reap
# its background job itself before the exec.)
start_supervisor perl -e '
    my $dir = shift; my $c = fork() // die "fork: $!"; exit 0 if $c == 0;
    open(my $f, ">", "$dir/child") or die; print $f "$c\n"; close $f;
    sub state { open(my $s, "<", "/proc/$_[0]/stat") or return ""; return (split / /, <$s>)[2] }
    select(undef, undef, undef, 0.01) until state($c) eq "Z";
    exec @ARGV or die "exec: $!"' "$tmp"
check "inherited child that ended before the exec: reaped" "$(gone "$(cat "$tmp/child")")" gone
stop_supervisor "inherited zombie"

if [ "$failures" -ne 0 ]; then
    echo "--- supervisor output:"
    cat "$tmp/out"
fi
echo "$failures failures"
[ "$failures" -eq 0 ]
