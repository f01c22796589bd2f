#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ringd-supervise checks the file that a service's spawn will run, found through the service's
# own PATH (ctl register --env PATH=...), not a namesake in the supervisor's PATH: the permission
# rule (a script writable by others is refused) applies to what would execute.
# Environment: RINGD_SUPERVISE (path). Ends the supervisor it starts.
set -uo pipefail
sup=${RINGD_SUPERVISE:?}
# shellcheck source=check_lib.sh
. "$(dirname "$0")/check_lib.sh"
mkdir -p "$tmp/good" "$tmp/bad" "$tmp/logs"
printf '#!/bin/sh\nexec sleep 1000\n' >"$tmp/good/svc"
cp "$tmp/good/svc" "$tmp/bad/svc"
chmod 0755 "$tmp/good/svc"
chmod 0757 "$tmp/bad/svc" # writable by others: must never be run
chmod 0755 "$tmp/bad"
printf 'directories = []\n' >"$tmp/config.toml"
# The supervisor's own PATH finds the good file; the service's PATH finds the bad one.
PATH="$tmp/good:/usr/bin:/bin" "$sup" --foreground --config "$tmp/config.toml" --state "$tmp/table" \
    --log-dir "$tmp/logs" --control "$tmp/ctl" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -S "$tmp/ctl" ] && break; sleep 0.05; done
ctl() { "$sup" ctl --control "$tmp/ctl" "$@" 2>&1; }

out=$(ctl register other-path --env "PATH=$tmp/bad" -- svc)
status=$?
[ $status -ne 0 ] && [[ $out == *"refused $tmp/bad/svc: writable by others"* ]]
check "a service whose PATH finds a script writable by others is refused, naming that file" $? "$status: $out"

out=$(ctl register own-path -- svc)
status=$?
check "the same name through the supervisor's PATH (a safe file) is accepted" $status "$out"

out=$(ctl register nowhere --env "PATH=$tmp/logs" -- svc)
[[ $out == *"not found in PATH $tmp/logs"* ]]
check "a program that the service's PATH does not find is refused, naming that PATH" $? "$out"

ctl shutdown >/dev/null
wait "$pid"
pid=0
finish
