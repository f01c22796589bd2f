#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# examples/xfer/idle_rss.sh [BIN_DIR] [CONNECTIONS] [tcpip|tcpip_tls] — server memory per idle
# connection: starts the family, opens CONNECTIONS connections to the receiving child that send
# nothing (TLS ones finish the handshake first), and prints the child's RSS growth divided by
# CONNECTIONS. BIN_DIR holds xferctl, xferrd, xfersqd and xferdebugd (default build/examples/xfer).
set -euo pipefail
bin=$(cd "${1:-build/examples/xfer}" && pwd)
count=${2:-2000}
child=${3:-tcpip}
work=$(mktemp -d /tmp/xfer-idle.XXXXXX)
ctl() { "$bin/xferctl" -c "$work/xfer.toml" "$@"; }
trap 'kill $client 2>/dev/null || true; ctl stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
client=

cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem \
    -out cert.pem -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    2>/dev/null
cat > xfer.toml <<TOML
spool = "$work/spool"
run_dir = "$work/run"
log_dir = "$work/log"
idle_timeout_s = 600
[$child]
listen = ["127.0.0.1:0"]
TOML
# (Only above the default of 4096, so that builds from before the key can be measured too.)
if [ "$count" -gt 4000 ]; then sed -i "1a max_connections = $((count + 100))" xfer.toml; fi
if [ "$child" = tcpip_tls ]; then printf 'cert = "%s/cert.pem"\nkey = "%s/key.pem"\n' "$work" "$work" >> xfer.toml; fi
ctl start >/dev/null
listen="$work/run/xferrd_$child.listen"
for _ in $(seq 100); do [ -s "$listen" ] && [ "$(wc -l < "$listen")" -ge 2 ] && break; sleep 0.1; done
pid=$(head -1 "$listen")
address=$(sed -n 2p "$listen")
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
sleep 0.5
before=$(rss)
base_fds=$(fds)

# The client holds the connections open until killed.
python3 - "$address" "$count" "$child" > client.log 2>&1 <<'PY' &
import socket, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
count, tls = int(sys.argv[2]), sys.argv[3] == "tcpip_tls"
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
held = []
for _ in range(count):
    s = socket.create_connection((host, int(port)))
    held.append(ctx.wrap_socket(s) if tls else s)
print("connected", flush=True)
time.sleep(3600)
PY
client=$!
for _ in $(seq 600); do [ "$(fds)" -ge $((base_fds + count)) ] && break; sleep 0.1; done
sleep 1 # every connection's coroutine has reached its first wait
after=$(rss)
open=$(( $(fds) - base_fds ))
echo "xferrd_$child: $open idle connections: RSS $((before / 1024)) KiB -> $((after / 1024)) KiB," \
     "$(( (after - before) / count )) bytes per connection"
