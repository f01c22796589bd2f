#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ocf:ringd:daemon driven by a real one-node Pacemaker cluster (corosync on loopback), with the
# real echod and ringd-control:
#   1. crm_resource --force-check / --force-start / --force-check / --force-stop / --force-check
#      answer 7, 0, 0, 0, 7 (the agent run by Pacemaker's own executor library);
#   2. the cluster itself starts the resource when it becomes managed (stonith disabled: one
#      node, no fencing device) and stops it at target-role=Stopped.
# The test starts corosync (its own config: node1 on 127.0.0.1, cluster ringd-test) and
# pacemakerd by hand (no systemd here), and stops both at the end. It is skipped (exit 77, with
# a WARN line saying why) without root, without the packages (pacemaker, corosync), when a
# cluster already runs on this machine (it is not ours to touch), or when the cluster does not
# elect a DC within 120 s. Pacemaker keeps its CIB in /var/lib/pacemaker/cib: the resource and
# the stonith-enabled property are removed again at the end.
# Environment: AGENT_DIR (tools/ocf), ECHOD, RINGD_CONTROL (paths).
set -uo pipefail
agent_dir=${AGENT_DIR:?} echod=${ECHOD:?} control=${RINGD_CONTROL:?}
skip() {
    echo "WARN: pacemaker test skipped: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (corosync, pacemakerd)"
for tool in corosync pacemakerd crm_resource crm_mon cibadmin crm_attribute; do
    command -v "$tool" >/dev/null || skip "$tool not installed (apt-get install pacemaker corosync)"
done
if pgrep -x corosync >/dev/null || pgrep -x pacemakerd >/dev/null; then
    skip "a corosync or pacemakerd already runs on this machine; not touching it"
fi

tmp=$(mktemp -d)
chmod 755 "$tmp" # the agent runs as root, but Pacemaker's tools read as hacluster
provider="ringdtest$$"
resource="ringd-test-echod"
ocf_dir="/usr/lib/ocf/resource.d/$provider"
corosync_pid= pacemakerd_pid= cib_touched=
# stop_pid PID: SIGTERM, then up to 60 s for it to end (pacemakerd stops its daemons first).
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
}
cleanup() {
    if [ -n "$cib_touched" ]; then
        crm_resource --force-stop -r "$resource" >/dev/null 2>&1
        cibadmin --delete -o resources --xml-text "<primitive id=\"$resource\"/>" >/dev/null 2>&1
        crm_attribute -t crm_config -n stonith-enabled -D >/dev/null 2>&1
    fi
    [ -f "$tmp/e.pid" ] && "$control" --pid-file "$tmp/e.pid" --stop --timeout 5 >/dev/null 2>&1
    [ -n "$pacemakerd_pid" ] && stop_pid "$pacemakerd_pid"
    [ -n "$corosync_pid" ] && stop_pid "$corosync_pid"
    rm -rf "$ocf_dir" "$tmp"
}
trap cleanup EXIT
failures=0
expect() { # expect WANT WHAT -- CMD...: CMD's exit code must be WANT
    local want=$1 what=$2 rc
    shift 3
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        echo "ok: $what ($rc)"
    else
        echo "FAIL: $what: exit $rc, expected $want"
        sed 's/^/    /' "$tmp/out"
        failures=$((failures + 1))
    fi
}

# The agent where Pacemaker looks for provider $provider (its shared part beside it).
mkdir -p "$ocf_dir"
ln -s "$agent_dir/daemon" "$ocf_dir/daemon"
ln -s "$agent_dir/ringd-ocf.sh" "$ocf_dir/ringd-ocf.sh"

cat >"$tmp/corosync.conf" <<EOF
totem {
    version: 2
    cluster_name: ringd-test
    crypto_cipher: none
    crypto_hash: none
}
logging {
    to_stderr: yes
    to_logfile: no
    to_syslog: no
}
quorum {
    provider: corosync_votequorum
}
nodelist {
    node {
        name: node1
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
}
EOF
corosync -f -c "$tmp/corosync.conf" >"$tmp/corosync.log" 2>&1 &
corosync_pid=$!
for _ in $(seq 300); do
    grep -q "ready to provide service" "$tmp/corosync.log" && break
    kill -0 "$corosync_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q "ready to provide service" "$tmp/corosync.log" ||
    skip "corosync did not come up: $(tail -n 3 "$tmp/corosync.log" | tr '\n' ' ')"
pacemakerd >"$tmp/pacemakerd.log" 2>&1 &
pacemakerd_pid=$!
# (crm_mon's output is taken whole: under pipefail, grep -q ending early would fail the pipe.)
dc=
for _ in $(seq 1200); do
    dc=$(crm_mon -1 2>/dev/null | grep "Current DC: node1")
    [ -n "$dc" ] && break
    kill -0 "$pacemakerd_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$dc" ] || skip "pacemaker elected no DC within 120 s (see /var/log/pacemaker/pacemaker.log)"
echo "cluster up: $dc"

# The resource, unmanaged at first: the cluster only probes it, and the forced actions below
# are the only ones that act.
cib_touched=1
expect 0 "the resource is defined" -- cibadmin --create -o resources --xml-text "
<primitive id=\"$resource\" class=\"ocf\" provider=\"$provider\" type=\"daemon\">
  <instance_attributes id=\"$resource-params\">
    <nvpair id=\"$resource-pid\" name=\"pid_file\" value=\"$tmp/e.pid\"/>
    <nvpair id=\"$resource-control\" name=\"control\" value=\"$control\"/>
    <nvpair id=\"$resource-command\" name=\"command\"
            value=\"$echod --listen 127.0.0.1:0 --pid-file $tmp/e.pid\"/>
  </instance_attributes>
  <meta_attributes id=\"$resource-meta\">
    <nvpair id=\"$resource-managed\" name=\"is-managed\" value=\"false\"/>
  </meta_attributes>
</primitive>"
# The cluster probes a new resource once: let that finish first, or a probe that sees the
# forced start below counts as a failure ("expected not running") and the cluster recovers it.
expect 0 "the cluster settles after its probe of the new resource" -- \
    timeout 120 crm_resource --wait
expect 7 "crm_resource --force-check before start: not running" -- \
    crm_resource --force-check -r "$resource"
expect 0 "crm_resource --force-start" -- crm_resource --force-start -r "$resource"
expect 0 "crm_resource --force-check: running" -- crm_resource --force-check -r "$resource"
expect 0 "... and ringd-control agrees" -- "$control" --pid-file "$tmp/e.pid" --check
expect 0 "crm_resource --force-stop" -- crm_resource --force-stop -r "$resource"
expect 7 "crm_resource --force-check after stop: not running" -- \
    crm_resource --force-check -r "$resource"

# The cluster drives it: managed → started on node1; target-role=Stopped → stopped.
crm_attribute -t crm_config -n stonith-enabled -v false >/dev/null
crm_resource -r "$resource" --meta -p is-managed -v true >/dev/null
expect 0 "the cluster settles once the resource is managed" -- timeout 120 crm_resource --wait
expect 0 "crm_mon shows it started on node1" -- \
    sh -c "crm_mon -1 | grep -q '$resource.*Started node1'"
expect 0 "... and the agent finds it running" -- crm_resource --force-check -r "$resource"
crm_resource -r "$resource" --meta -p target-role -v Stopped >/dev/null
expect 0 "the cluster settles at target-role=Stopped" -- timeout 120 crm_resource --wait
expect 7 "... and the agent finds it stopped" -- crm_resource --force-check -r "$resource"

echo "$failures failures"
[ "$failures" -eq 0 ]
