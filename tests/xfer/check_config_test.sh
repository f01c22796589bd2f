#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# xferrd --check-config: reports every fault of a configuration with its place (the file's own
# errors with key or line, a bad listening address, a certificate or a partner's CA file that
# cannot be loaded), exits 78 for a bad one and 0 for a good one, and starts nothing (no spool,
# no PID file, no socket).
# Usage: check_config_test.sh XFERRD
set -uo pipefail
xferrd=${1:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then echo "ok: $1"; else
        echo "FAIL: $1: got '$2', expected '$3'"
        failures=$((failures + 1))
    fi
}
cat >"$tmp/bad.toml" <<END
spool = "$tmp/spool"
run_dir = "$tmp/run"
[tcpip]
listen = ["127.0.0.1:99999"]
[tcpip_tls]
listen = ["127.0.0.1:0"]
cert = "$tmp/missing-cert.pem"
key = "$tmp/missing-key.pem"
[[partner]]
name = "bank"
address = "127.0.0.1:6619"
tls = true
ca = "$tmp/missing-ca.pem"
END
"$xferrd" -c "$tmp/bad.toml" --check-config 2>"$tmp/err"
check "a bad configuration: exit 78" $? 78
grep -q "bad.toml: tcpip.listen: address '127.0.0.1:99999': port" "$tmp/err"
check "the bad address is named, with the key" $? 0
grep -qxF "xferrd: $tmp/bad.toml: tcpip_tls: certificate $tmp/missing-cert.pem: No such file or directory" "$tmp/err"
check "and the certificate that cannot be loaded, in the same run, with errno's text" $? 0
grep -qxF "xferrd: $tmp/bad.toml: partner bank: CA file $tmp/missing-ca.pem: No such file or directory" "$tmp/err"
check "and a TLS partner's CA file that cannot be loaded, with the partner's name" $? 0

echo "not a certificate" >"$tmp/garbage.pem"
printf 'spool = "%s/spool"\nrun_dir = "%s/run"\n[tcpip_tls]\nlisten = ["127.0.0.1:0"]\ncert = "%s/garbage.pem"\nkey = "%s/garbage.pem"\n' \
    "$tmp" "$tmp" "$tmp" "$tmp" >"$tmp/garbage.toml"
"$xferrd" -c "$tmp/garbage.toml" --check-config 2>"$tmp/err"
check "a certificate file that is not PEM: exit 78" $? 78
grep -qF "xferrd: $tmp/garbage.toml: tcpip_tls: certificate $tmp/garbage.pem is not a PEM certificate: " "$tmp/err"
check "... naming the file and what is wrong with it" $? 0

printf 'spool = "%s/spool"\nidle_timeout_s = 0.0004\n' "$tmp" >"$tmp/short.toml"
"$xferrd" -c "$tmp/short.toml" --check-config 2>"$tmp/err"
check "a sub-millisecond duration: exit 78" $? 78
grep -q "idle_timeout_s" "$tmp/err"
check "... naming the key" $? 0

printf 'spool = "%s/spool"\nrun_dir = "%s/run"\n[tcpip]\nlisten = ["127.0.0.1:0"]\n' "$tmp" "$tmp" \
    >"$tmp/ok.toml"
out=$("$xferrd" -c "$tmp/ok.toml" --check-config 2>&1)
check "a good configuration: exit 0" $? 0
check "... says so" "$out" "xferrd: $tmp/ok.toml: configuration OK"
check "nothing was started or created" "$(ls "$tmp" | tr '\n' ' ')" "bad.toml err garbage.pem garbage.toml ok.toml short.toml "
echo "$failures failures"
[ "$failures" -eq 0 ]
