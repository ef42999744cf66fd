#!/usr/bin/env bash
# Render the Lanyard Mosquitto configuration.
#
#   render.sh --pki DIR --crl FILE --operational-port N --bootstrap-port M \
#             --out OUTDIR [--bind ADDRESS] [--log-dest file|stderr] \
#             [--user NAME] [--bootstrap-max-connections N] [--crl-dir DIR]
#
# Writes OUTDIR/mosquitto.conf and copies the ACL files next to it.
# PKI layout (made by `lanyard-controller init`): DIR/bundle.pem (root and
# issuing CA certificates), DIR/broker.pem (broker leaf + issuing chain),
# DIR/broker.key. FILE is the PEM CRL of the issuing CA (must exist and must
# not be past its nextUpdate, or Mosquitto refuses every client). DIR (default:
# crl.d beside FILE, as the controller's `crl_dir` defaults) holds every live
# issuing CA's CRL as HASH.r0 (the broker's `capath`), for CA rotation.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pki="" crl="" crl_dir="" op_port="" boot_port="" out="" bind="" log_dest="file" user="mosquitto" boot_max=1000

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "render.sh: $1 needs a value" >&2; exit 2; }; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --pki) need "$@"; pki="$2"; shift 2 ;;
    --crl) need "$@"; crl="$2"; shift 2 ;;
    --crl-dir) need "$@"; crl_dir="$2"; shift 2 ;;
    --operational-port) need "$@"; op_port="$2"; shift 2 ;;
    --bootstrap-port) need "$@"; boot_port="$2"; shift 2 ;;
    --out) need "$@"; out="$2"; shift 2 ;;
    --bind) need "$@"; bind="$2"; shift 2 ;;
    --log-dest) need "$@"; log_dest="$2"; shift 2 ;;
    --user) need "$@"; user="$2"; shift 2 ;;
    --bootstrap-max-connections) need "$@"; boot_max="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "render.sh: unknown argument: $1" >&2; usage ;;
  esac
done

[[ -n "$pki" && -n "$crl" && -n "$op_port" && -n "$boot_port" && -n "$out" ]] || usage
for p in "$op_port" "$boot_port" "$boot_max"; do
  [[ "$p" =~ ^[0-9]+$ ]] || { echo "render.sh: not a number: $p" >&2; exit 2; }
done
[[ "$op_port" != "$boot_port" ]] || { echo "render.sh: the two ports must differ" >&2; exit 2; }
for f in "$pki/bundle.pem" "$pki/broker.pem" "$pki/broker.key" "$crl"; do
  [[ -r "$f" ]] || { echo "render.sh: cannot read $f" >&2; exit 1; }
done
case "$log_dest" in
  file|stderr) ;;
  *) echo "render.sh: --log-dest must be file or stderr" >&2; exit 2 ;;
esac
# Paths go into the config verbatim: refuse characters that would break it.
for v in "$pki" "$crl" "$crl_dir" "$out" "$bind" "$user"; do
  [[ "$v" != *[[:space:]@\|]* ]] || { echo "render.sh: unsupported character in: $v" >&2; exit 2; }
done

mkdir -p "$out"
out="$(cd "$out" && pwd)"
pki="$(cd "$pki" && pwd)"
crl="$(cd "$(dirname "$crl")" && pwd)/$(basename "$crl")"
[[ -n "$crl_dir" ]] || crl_dir="$(dirname "$crl")/crl.d"
mkdir -p "$crl_dir"
chmod 0755 "$crl_dir"
crl_dir="$(cd "$crl_dir" && pwd)"

if [[ "$log_dest" == file ]]; then log_dest_value="file $out/mosquitto.log"; else log_dest_value="stderr"; fi
bind_value=""
[[ -z "$bind" ]] || bind_value=" $bind"

# The dynamic-security plugin (Debian's mosquitto package ships it).
dynsec_plugin=""
for candidate in /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so /usr/local/lib/mosquitto_dynamic_security.so; do
  [[ -r "$candidate" ]] && { dynsec_plugin="$candidate"; break; }
done
[[ -n "$dynsec_plugin" ]] || { echo "render.sh: mosquitto_dynamic_security.so not found (install the mosquitto package)" >&2; exit 1; }
# Its state: no clients, groups or roles of its own (the ACL file grants
# access); the controller adds a disabled client per revoked device. Kept
# when it exists: it is the broker's record of who was cut off.
if [[ ! -e "$out/dynamic-security.json" ]]; then
  cat >"$out/dynamic-security.json.tmp" <<'JSON'
{"defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
 "clients": [], "groups": [], "roles": []}
JSON
  chmod 0600 "$out/dynamic-security.json.tmp"
  mv "$out/dynamic-security.json.tmp" "$out/dynamic-security.json"
  [[ "$(id -u)" -ne 0 ]] || chown "$user" "$out/dynamic-security.json" 2>/dev/null || true
fi

install -m 0644 "$here/acl-operational" "$out/acl-operational"
install -m 0644 "$here/acl-bootstrap" "$out/acl-bootstrap"

sed -e "s|@OUT@|$out|g" \
    -e "s|@PKI@|$pki|g" \
    -e "s|@CRL@|$crl|g" \
    -e "s|@CRL_DIR@|$crl_dir|g" \
    -e "s|@OPERATIONAL_PORT@|$op_port|g" \
    -e "s|@BOOTSTRAP_PORT@|$boot_port|g" \
    -e "s|@BIND@|$bind_value|g" \
    -e "s|@LOG_DEST@|$log_dest_value|g" \
    -e "s|@USER_LINE@|user $user|g" \
    -e "s|@BOOTSTRAP_MAX_CONNECTIONS@|$boot_max|g" \
    -e "s|@DYNSEC_PLUGIN@|$dynsec_plugin|g" \
    "$here/mosquitto.conf.template" > "$out/mosquitto.conf.tmp"
mv "$out/mosquitto.conf.tmp" "$out/mosquitto.conf"
echo "$out/mosquitto.conf"
