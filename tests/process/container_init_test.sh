#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ringd-supervise --container -- CMD, as a container's PID 1 (each case in a fresh PID namespace:
# unshare -pf --mount-proc, as `docker run` would start it), against tini and dumb-init as the
# reference wherever they agree:
#   exit codes 0..255 pass through (all 256 for ours, a sample for the references);
#   `sh -c 'exit 7'` → 7; SIGTERM to a command that does not catch it → 143; SIGUSR1/SIGUSR2
#   forwarded; an orphan of a double fork is reaped (no zombie left while the command runs);
#   --kill-group reaches a grandchild; stdout and stderr pass through; a command that cannot be
#   run → 127 (not found) or 126 (not executable).
# Then ours alone: as PID 1 with services (no detaching, their lines prefixed on our stdout), and
# services beside a command (--config C -- CMD): prefixed lines, stop order, the command's code.
# Environment: RINGD_SUPERVISE (path). Exit 77 without unshare/root; tini and dumb-init are
# compared when installed.
set -uo pipefail
sup=${RINGD_SUPERVISE:?}
if [ "$(id -u)" -ne 0 ] || ! unshare -pf --mount-proc true 2>/dev/null; then
    echo "needs root and unshare -p (PID namespaces)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then echo "ok: $1 ($2)"; else
        echo "FAIL: $1: got '$2', expected '$3'"
        failures=$((failures + 1))
    fi
}
# The inits under test: ours always, the references where installed.
inits=("ours")
command -v tini >/dev/null && inits+=("tini")
command -v dumb-init >/dev/null && inits+=("dumb-init")
# as_pid1 INIT [GROUP] -- CMD...: INIT as PID 1 of a fresh namespace running CMD; its exit code.
as_pid1() {
    local init=$1 group=$2
    shift 3
    local -a launcher
    case $init in
    ours) launcher=("$sup" --container ${group:+--kill-group} --) ;;
    tini) launcher=(tini ${group:+-g} --) ;;
    dumb-init) launcher=(dumb-init ${group:+} --) ;; # dumb-init always signals the group
    esac
    timeout -s KILL 20 unshare -pf --mount-proc "${launcher[@]}" "$@"
}

# Every exit code 0..255 passes through ours (each in its own namespace); the references are
# compared on a sample.
passed=0
for code in $(seq 0 255); do
    as_pid1 ours "" -- sh -c "exit $code"
    got=$?
    if [ "$got" = "$code" ]; then passed=$((passed + 1)); else
        check "ours: exit $code passes through" "$got" "$code"
    fi
done
check "ours: every exit code 0..255 passes through" "$passed" 256

for init in "${inits[@]}"; do
    for code in 0 1 7 100 254 255; do
        as_pid1 "$init" "" -- sh -c "exit $code"
        check "$init: exit $code passes through" $? "$code"
    done

    # SIGTERM to PID 1 (from outside, as `docker stop` sends it) goes to the command, which does
    # not catch it: 128 + 15. The command carries a marker ($0) to be found by; its parent is the
    # namespace's PID 1.
    rm -f "$tmp/ready-$init"
    as_pid1 "$init" "" -- sh -c 'echo ready > "$1"; sleep 30 & wait' "marker-$init" \
        "$tmp/ready-$init" &
    launcher=$!
    for _ in $(seq 200); do [ -s "$tmp/ready-$init" ] && break; sleep 0.05; done
    command_pid=$(pgrep -n -f "^sh -c echo ready.* marker-$init")
    kill -TERM "$(ps -o ppid= -p "$command_pid" | tr -d ' ')"
    wait "$launcher"
    check "$init: SIGTERM to an uncaught command → 143" $? 143

    # SIGUSR1 and SIGUSR2 reach the command (which records them and exits). USR2 is sent once
    # USR1 has been recorded, so the order is the test's, not the scheduler's.
    rm -f "$tmp/usr-$init"
    as_pid1 "$init" "" -- sh -c '
        trap "echo USR1 >> \"\$1\"" USR1
        trap "echo USR2 >> \"\$1\"; exit 0" USR2
        kill -USR1 1
        until grep -q USR1 "$1" 2>/dev/null; do sleep 0.05; done
        kill -USR2 1
        while :; do sleep 0.05; done' sh "$tmp/usr-$init"
    check "$init: SIGUSR1 and SIGUSR2 forwarded" "$(tr '\n' ' ' <"$tmp/usr-$init" 2>/dev/null)" \
        "USR1 USR2 "

    # An orphan of a double fork is reaped by PID 1 while the command still runs: the orphan
    # (re-parented to PID 1) ends when told to; then its /proc entry must go (a zombie keeps
    # it) and no zombie may be left in the namespace. Bounded at 10 s, which only a failure
    # reaches.
    out=$(as_pid1 "$init" "" -- sh -c '
        mkfifo "$1/go"
        sh -c "sh -c '\''read x < \"\$1/go\"'\'' sh \"\$1\" & echo \$! > \"\$1/orphan\"" sh "$1"
        orphan=$(cat "$1/orphan")
        echo "parent $(ps -o ppid= -p "$orphan" | tr -d " ")"
        echo go > "$1/go"                       # the orphan reads it and ends
        for _ in $(seq 200); do [ -e "/proc/$orphan" ] || break; sleep 0.05; done
        [ -e "/proc/$orphan" ] && echo "still there: $(cut -d" " -f3 "/proc/$orphan/stat")" || echo reaped
        echo "zombies $(ps -e -o stat= | grep -c "^Z")"' sh "$(mktemp -d -p "$tmp")")
    check "$init: the double fork's orphan was re-parented to PID 1, reaped, no zombie left" \
        "$(echo $out)" "parent 1 reaped zombies 0"

    # Output passes through, both streams.
    out=$(as_pid1 "$init" "" -- sh -c 'echo to-stdout; echo to-stderr >&2' 2>"$tmp/err")
    check "$init: stdout passes through" "$out" "to-stdout"
    check "$init: stderr passes through" "$(cat "$tmp/err")" "to-stderr"
done

# --kill-group (tini -g; dumb-init by default): SIGTERM reaches a grandchild, not only the shell.
for init in "${inits[@]}"; do
    rm -f "$tmp/grand-$init"
    # The shell itself waits for its child on SIGTERM, so that PID 1 (which ends with it) does
    # not take the grandchild down before it has answered.
    # The grandchild says when its trap is set, so SIGTERM never comes before it.
    as_pid1 "$init" group -- sh -c '
        trap "wait \$g; exit 0" TERM
        sh -c "trap \"echo got-TERM > $1; exit 0\" TERM; echo armed > $1.armed
               while :; do sleep 0.05; done" &
        g=$!
        until [ -s "$1.armed" ]; do sleep 0.05; done
        kill -TERM 1; wait' sh "$tmp/grand-$init" >/dev/null 2>&1
    check "$init --kill-group: the grandchild got SIGTERM" "$(cat "$tmp/grand-$init" 2>/dev/null)" \
        "got-TERM"
done

# What only we define: a command that cannot run.
as_pid1 ours "" -- /nonexistent/command 2>"$tmp/err"
check "a missing command → 127" $? 127
grep -q "cannot run /nonexistent/command: No such file or directory" "$tmp/err"
check "... and says why" $? 0
printf 'not a program\n' >"$tmp/noexec" && chmod 644 "$tmp/noexec"
as_pid1 ours "" -- "$tmp/noexec" 2>/dev/null
check "a command that is not executable → 126" $? 126
"$sup" --container --foreground -- true 2>"$tmp/err"
check "other options with a command are refused" $? 1

# As PID 1 without --foreground the supervisor must not detach (its exit would end the
# namespace): its service starts and keeps running, and a shutdown through the control socket
# then ends it all with exit 0. Its service's output reaches the supervisor's stdout, prefixed
# (container mode), not a file in --log-dir.
mkdir -p "$tmp/svc" && printf '#!/bin/sh\necho "hello from the sleeper"\necho started > %s\nexec sleep 60\n' \
    "$tmp/started" >"$tmp/svc/S10sleeper" && chmod 755 "$tmp/svc/S10sleeper"
printf 'directories = ["%s"]\n' "$tmp/svc" >"$tmp/sup.toml"
timeout -s KILL 60 unshare -pf --mount-proc "$sup" --config "$tmp/sup.toml" --state "$tmp/table" \
    --log-dir "$tmp/logs" --control "$tmp/ctl.sock" >"$tmp/pid1.out" 2>&1 &
launcher=$!
for _ in $(seq 600); do [ -s "$tmp/started" ] && break; sleep 0.05; done
sleep 0.5
check "as PID 1 without --foreground: still running, its service started" \
    "$(kill -0 $launcher 2>/dev/null && cat "$tmp/started")" "started"
"$sup" ctl --control "$tmp/ctl.sock" shutdown >/dev/null 2>&1
wait "$launcher"
check "... until it is told to stop: exit 0" $? 0
check "... its service's line on our stdout, prefixed" \
    "$(grep -c -x 'S10sleeper | hello from the sleeper' "$tmp/pid1.out")" 1

# Services beside the command (--container --config C -- CMD): they start with it; each line of
# theirs reaches our stdout or stderr (the stream they wrote it to) as "<name> | <line>", a last
# line without its newline included; the command's own output is not prefixed. When the command
# ends, the services are stopped in order (reverse start order: S20web before S10db) and PID 1
# exits with the command's code. A SIGTERM to PID 1 goes to the command, not to the services.
mkdir -p "$tmp/beside"
cat >"$tmp/beside/S10db" <<EOF
#!/bin/sh
trap 'echo db >> $tmp/stopped; exit 0' TERM
echo "db up"
: > $tmp/db.up
while :; do sleep 0.05; done
EOF
cat >"$tmp/beside/S20web" <<EOF
#!/bin/sh
trap 'echo web >> $tmp/stopped; exit 0' TERM
echo "web on stdout"
echo "web on stderr" >&2
printf "web without newline"
: > $tmp/web.up
while :; do sleep 0.05; done
EOF
chmod 755 "$tmp/beside/S10db" "$tmp/beside/S20web"
printf 'directories = ["%s"]\n' "$tmp/beside" >"$tmp/beside.toml"
# wait_up: the command's first step, until both services have started.
wait_up='until [ -e "$0/db.up" ] && [ -e "$0/web.up" ]; do sleep 0.05; done'
rm -f "$tmp/stopped" "$tmp"/*.up
timeout -s KILL 60 unshare -pf --mount-proc "$sup" --container --config "$tmp/beside.toml" \
    --control "$tmp/beside.sock" -- sh -c "$wait_up"'; echo "the command"; exit 9' "$tmp" \
    >"$tmp/beside.out" 2>"$tmp/beside.err"
check "beside services: PID 1 exits with the command's code" $? 9
check "... the services' stdout lines, prefixed, and the command's own" \
    "$(grep -c -x -e 'S10db | db up' -e 'S20web | web on stdout' -e 'the command' \
        -e 'S20web | web without newline' "$tmp/beside.out")" 4
check "... a service's stderr line on stderr, prefixed" \
    "$(grep -c -x 'S20web | web on stderr' "$tmp/beside.err")" 1
check "... stopped in order once the command ended" "$(tr '\n' ' ' <"$tmp/stopped" 2>/dev/null)" \
    "web db "

rm -f "$tmp/stopped" "$tmp"/*.up "$tmp/term"
timeout -s KILL 60 unshare -pf --mount-proc "$sup" --container --config "$tmp/beside.toml" \
    --control "$tmp/beside.sock" -- sh -c 'trap "echo command >> \"\$0/stopped\"; exit 3" TERM
        '"$wait_up"'; echo ready > "$0/term"; while :; do sleep 0.05; done' "$tmp" \
    >/dev/null 2>&1 &
launcher=$!
for _ in $(seq 600); do [ -s "$tmp/term" ] && break; sleep 0.05; done
kill -TERM "$(pgrep -P "$(pgrep -P "$launcher" -x unshare)" -x ringd-supervise)"
wait "$launcher"
check "beside services: SIGTERM to PID 1 ends the command (exit 3), then the services in order" \
    "$? $(tr '\n' ' ' <"$tmp/stopped" 2>/dev/null)" "3 command web db "

echo "$failures failures"
[ "$failures" -eq 0 ]
