#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# examples/xfer/measure.sh [BUILD_DIR] [SPOOL_PARENT] — throughput of the receiving children:
# one 1 GiB file, and 10,000 files of 1 KiB on one connection, each over TCP and TLS (socat as
# the client, on loopback). Every OK means fsync of the file and of spool/in.
set -euo pipefail
build=${1:-build}
parent=${2:-/tmp}
bin="$(cd "$build" && pwd)/examples/xfer"
work=$(mktemp -d "$parent/xfer-measure.XXXXXX")
ctl() { "$bin/xferctl" -c "$work/xfer.toml" "$@"; }
trap 'ctl stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out cert.pem \
    -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
tcp=$(free_port); tls=$(free_port)
cat > xfer.toml <<TOML
spool = "$work/spool"
run_dir = "$work/run"
log_dir = "$work/log"
max_file_size = 2147483648
[tcpip]
listen = ["127.0.0.1:$tcp"]
[tcpip_tls]
listen = ["127.0.0.1:$tls"]
cert = "$work/cert.pem"
key = "$work/key.pem"
TOML
ctl start >/dev/null 2>&1

head -c $((1 << 30)) /dev/urandom > big.bin
python3 - <<'PY'
import os
with open("small.req", "wb") as out:
    for i in range(10000):
        out.write(b"PUT small-%05d 1024\n" % i + os.urandom(1024))
PY
cat big.bin small.req > /dev/null # into the page cache: measure the daemon, not the source disk

measure() { # label target request-producer files bytes
    local label=$1 target=$2 producer=$3 files=$4 bytes=$5
    local t0 t1 oks
    t0=$(date +%s.%N)
    oks=$(eval "$producer" | socat -b 262144 -t 120 -T 300 - "$target" | grep -c '^OK ' || true)
    t1=$(date +%s.%N)
    python3 -c "import sys; t=$t1-$t0; print(f'{sys.argv[1]:<26} {t:7.2f} s  {$bytes/t/1048576:8.1f} MiB/s  {$files/t:8.0f} files/s  ({sys.argv[2]} OK)')" "$label" "$oks"
    rm -f "$work"/spool/in/*
}
echo "loopback, fsync per file, spool on $(df --output=fstype "$work" | tail -1) ($parent); $(nproc) cores"
measure "1 GiB over TCP"       "TCP:127.0.0.1:$tcp" "{ printf 'PUT big.bin 1073741824\n'; cat big.bin; }" 1 $((1 << 30))
measure "1 GiB over TLS"       "OPENSSL:127.0.0.1:$tls,cafile=$work/cert.pem,commonname=localhost" \
                               "{ printf 'PUT big.bin 1073741824\n'; cat big.bin; }" 1 $((1 << 30))
measure "10,000 x 1 KiB, TCP"  "TCP:127.0.0.1:$tcp" "cat small.req" 10000 $((10000 * 1024))
measure "10,000 x 1 KiB, TLS"  "OPENSSL:127.0.0.1:$tls,cafile=$work/cert.pem,commonname=localhost" \
                               "cat small.req" 10000 $((10000 * 1024))
