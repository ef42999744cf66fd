#!/usr/bin/env bash
# BENCHMARK ONLY. Appends the multiplexing listener of lanyard-fleetsim's
# mode B to a broker config rendered by deploy/mosquitto/render.sh, with its
# own ACL (acl-bench, copied next to it). The shipped template and ACLs are
# not touched; never use the result outside a loopback benchmark.
#   add-bench-listener.sh RENDERED_DIR PKI_DIR PORT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 3 && "$3" =~ ^[0-9]+$ ]] || { echo "usage: add-bench-listener.sh RENDERED_DIR PKI_DIR PORT" >&2; exit 2; }
out="$(cd "$1" && pwd)" pki="$(cd "$2" && pwd)" port="$3"
[[ -f "$out/mosquitto.conf" ]] || { echo "add-bench-listener.sh: no $out/mosquitto.conf" >&2; exit 1; }
install -m 0644 "$here/acl-bench" "$out/acl-bench"
cat >>"$out/mosquitto.conf" <<CONF

# ---------------------------------------------------------------------------
# BENCHMARK ONLY (bench/broker/add-bench-listener.sh): lanyard-fleetsim mode B.
# Server-auth TLS, anonymous, loopback; acl-bench lets a client act for every device.
listener $port 127.0.0.1
protocol mqtt
cafile $pki/bundle.pem
certfile $pki/broker.pem
keyfile $pki/broker.key
require_certificate false
tls_version tlsv1.2
allow_anonymous true
max_qos 1
acl_file $out/acl-bench
CONF
