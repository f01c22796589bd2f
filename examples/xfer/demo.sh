#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# examples/xfer/demo.sh [BUILD_DIR] — the xfer receive-daemon family on loopback, in a temporary
# directory, on unprivileged ports: start it, send files through socat (TCP, TLS, UNIX) and
# through xfersqd, look at it the way an operator does (xferctl status, ps -ef, ss), crash a
# receiver and watch it come back, reload, write a debug bundle, and stop everything.
set -euo pipefail

build=${1:-build}
bin="$(cd "$build" && pwd)/examples/xfer"
for p in xferrd xferctl xfersqd xferdebugd; do
    [[ -x $bin/$p ]] || { echo "demo: $bin/$p is missing: build first (ninja -C $build)" >&2; exit 1; }
done
for tool in socat openssl; do
    command -v $tool >/dev/null || { echo "demo: $tool is needed" >&2; exit 1; }
done

work=$(mktemp -d /tmp/xfer-demo.XXXXXX)
ctl() { "$bin/xferctl" -c "$work/xfer.toml" "$@"; }
cleanup() {
    ctl stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# The family's lines of ps -ef: the master and its children (zombies waiting for init aside).
master=0
family_ps() { ps -f --pid "$master" --ppid "$master" | grep -v -e '^UID' -e defunct || true; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "a throwaway CA and server certificate (openssl CLI)"
(
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -days 1 -subj /CN=demo-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out server.csr \
        -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext \
        -out cert.pem 2>/dev/null
)
ls "$work"/*.pem

tcp_port=$(free_port)
tls_port=$(free_port)
cat > "$work/xfer.toml" <<TOML
spool = "$work/spool"
run_dir = "$work/run"
log_dir = "$work/log"
idle_timeout_s = 10

[tcpip]
listen = ["127.0.0.1:$tcp_port"]

[tcpip_tls]
listen = ["127.0.0.1:$tls_port"]
cert = "$work/cert.pem"
key = "$work/key.pem"

[unix]
path = "$work/run/xfer.sock"

[[partner]]          # xfersqd sends out/acme/* here: our own TLS receiver
name = "acme"
address = "127.0.0.1:$tls_port"
tls = true
ca = "$work/ca.pem"

[[partner]]          # and out/isdn/* over the UNIX transport
name = "isdn"
address = "$work/run/xfer.sock"
TOML
step "configuration ($work/xfer.toml)"
cat "$work/xfer.toml"

step "xferctl start (returns once the master is ready)"
ctl start
master=$(cat "$work/run/xferrd.pid")
sleep 0.5

step "xferctl status"
ctl status

step "ps -ef | grep xfer"
family_ps

step "ss -ltnpx: who listens where"
ss -ltnpx | grep -E "$tcp_port|$tls_port|$work" || true

step "PUT over plain TCP with socat, then the same file again (idempotent), then other content (409)"
printf 'PUT hello.txt 6\nhello\n' | socat -t 5 - TCP:127.0.0.1:$tcp_port
printf 'PUT hello.txt 6\nhello\nPUT hello.txt 6\nHELLO\nPING\n' | socat -t 5 - TCP:127.0.0.1:$tcp_port

step "PUT over TLS (socat with OpenSSL, checking the server certificate)"
head -c 1000000 /dev/urandom > "$work/random.bin"
{ printf 'PUT random.bin 1000000\n'; cat "$work/random.bin"; } |
    socat -t 5 - OPENSSL:127.0.0.1:$tls_port,cafile=$work/ca.pem,commonname=localhost
echo "local sha256: $(sha256sum < "$work/random.bin" | cut -d' ' -f1)"

step "bad input: a path in the name, a body that is too short"
printf 'PUT ../etc/passwd 3\nabc' | socat -t 5 - UNIX-CONNECT:$work/run/xfer.sock
printf 'PUT short 100\nabc' | socat -t 5 - UNIX-CONNECT:$work/run/xfer.sock

step "xfersqd: files dropped into out/acme (TLS) and out/isdn (UNIX) are sent and moved to sent/"
mkdir -p "$work/spool/out/acme" "$work/spool/out/isdn"
for i in 1 2 3; do
    echo "invoice $i" > "$work/spool/out/acme/.invoice-$i.txt"     # write under a dot name...
    mv "$work/spool/out/acme/.invoice-$i.txt" "$work/spool/out/acme/invoice-$i.txt"  # ...then rename
    echo "order $i" > "$work/spool/out/isdn/.order-$i.txt"
    mv "$work/spool/out/isdn/.order-$i.txt" "$work/spool/out/isdn/order-$i.txt"
done
for _ in $(seq 50); do
    [[ -z $(ls "$work/spool/out/acme" "$work/spool/out/isdn") ]] && break
    sleep 0.1
done
(cd "$work/spool" && find in sent -type f | sort)

step "kill -9 xferrd_tcpip: the master restarts it"
victim=$(pgrep -x xferrd_tcpip -P "$master")
kill -9 "$victim"
sleep 1
ctl status | grep -E 'PROCESS|xferrd_tcpip '

step "xferctl reload (SIGHUP): children re-read the file, transfers in progress go on"
sed -i 's/idle_timeout_s = 10/idle_timeout_s = 20/' "$work/xfer.toml"
ctl reload

step "xferctl debug-dump"
ctl debug-dump "$work/bundle"
ls "$work/bundle"
tail -n 5 "$work/bundle/records.log"

step "xferctl stop"
ctl stop
left=$(family_ps)
if [[ -n $left ]]; then
    echo "$left" >&2
    echo "demo: something is still running" >&2
    exit 1
fi
echo "all xfer processes are gone"
