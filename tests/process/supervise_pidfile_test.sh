#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ringd-supervise --pid-file F: ringd-control drives it as any ringd daemon, so its systemd unit
# reloads with `ringd-control --pid-file F --reload`, which returns once the configuration is
# re-read (0), or with the reason when the new one is refused (102, running set kept).
# Environment: RINGD_SUPERVISE, RINGD_CONTROL (paths). Ends the supervisor it starts.
set -uo pipefail
sup=${RINGD_SUPERVISE:?}
control=${RINGD_CONTROL:?}
# shellcheck source=check_lib.sh
. "$(dirname "$0")/check_lib.sh"
mkdir -p "$tmp/logs"
printf 'directories = []\n' >"$tmp/config.toml"
"$sup" --foreground --config "$tmp/config.toml" --state "$tmp/table" --log-dir "$tmp/logs" \
    --control "$tmp/ctl" --pid-file "$tmp/pid" >"$tmp/out" 2>&1 &
pid=$!
# --check answers for the moment it asks: first give the supervisor (on a busy machine) time to
# write its PID file.
for _ in $(seq 300); do
    [ "$(head -1 "$tmp/pid" 2>/dev/null)" = "$pid" ] && break
    sleep 0.1
done
out=$(timeout -s KILL 30 "$control" --pid-file "$tmp/pid" --check --timeout 10 2>&1)
status=$?
[ $status -eq 0 ] && [ "$(head -1 "$tmp/pid")" = "$pid" ]
check "--check names the supervisor from its PID file" $? "$status: $out"

out=$(timeout -s KILL 30 "$control" --pid-file "$tmp/pid" --reload 2>&1)
status=$?
[ $status -eq 0 ] && grep -q "reload: done" "$tmp/out"
check "--reload returns 0 once the reload is done (its log says so by then)" $? "$status: $out"

printf 'directories = [\n' >"$tmp/config.toml"
out=$(timeout -s KILL 30 "$control" --pid-file "$tmp/pid" --reload 2>&1)
status=$?
[ $status -eq 102 ] && [[ $out == *"kept its running configuration"*"line 1"* ]]
check "a refused configuration: --reload exits 102 with the reason" $? "$status: $out"

out=$(timeout -s KILL 60 "$control" --pid-file "$tmp/pid" --stop 2>&1)
status=$?
wait "$pid"
[ $status -eq 0 ]
check "--stop ends it" $? "$status: $out"
pid=0
finish
