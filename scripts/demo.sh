#!/usr/bin/env bash
# The Lanyard demo: a broker, the controller and three agents on this machine,
# in a temporary directory, with a 60 s certificate lifetime. It shows the
# renewals as they happen, revokes one device, shows the broker refusing it,
# rotates the issuing CA with the agents running, prints a summary and cleans up. Run it with `make demo`.
#   DEMO_SECONDS  how long to watch renewals before revoking (default 100)
#   DEMO_TTL      certificate lifetime of the demo class (default 60s)
#   KEEP=1        keep the temporary directory for a look afterwards
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(cd "$root" && swift build --show-bin-path)"
watch_seconds="${DEMO_SECONDS:-100}"
ttl="${DEMO_TTL:-60s}"
devices=(press-01 kiln-02 conveyor-03)
revoked="${devices[1]}"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }


work="$(mktemp -d /tmp/lanyard-demo.XXXXXX)"
LANYARD_BIN="$bin"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
fleet_check_bin demo
cleanup() {
  fleet_cleanup
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

step "1. Controller PKI: root CA, issuing CA, broker, controller and command-signer certificates (P-256)"
fleet_init "$work" "$ttl"

step "2. Mosquitto: mTLS listener on $FLEET_OP_PORT (CRL, ACL by certificate CN), bootstrap listener on $FLEET_BOOT_PORT"
fleet_start_broker
echo "broker running (pid $FLEET_BROKER_PID, log $work/broker/mosquitto.log)"

step "3. Controller: connects with its own client certificate, answers enrollment and renewal"
fleet_start_controller
"$bin/lanyardctl" status

step "4. Register three devices with explicit owners; approval prints a one-time enrollment token"
"$bin/lanyardctl" device add unowned-99 --class default --owner ops=ot-operations >/dev/null
echo "\$ lanyardctl device approve unowned-99   # a device without all five owners cannot be approved:"
"$bin/lanyardctl" device approve unowned-99 2>&1 | sed 's/^/  /' || true
for d in "${devices[@]}"; do fleet_add_device "$d"; done

step "4b. Governance over the HTTPS admin API: operators with roles, bearer tokens stored hashed"
"$bin/lanyard-controller" operator add --config "$work/controller/controller.conf" --name root --role admin >"$work/root.token" 2>/dev/null
api=(--server "https://127.0.0.1:$FLEET_API_PORT" --cacert "$work/controller/pki/bundle.pem")
ctl_as() { local who="$1"; shift; "$bin/lanyardctl" "${api[@]}" --token-file "$work/$who.token" "$@"; }
for op in ot-operations:ops plant-manager:business pki-team:identity auditor:auditor; do
  ctl_as root operator add "${op%%:*}" --role "${op##*:}" >"$work/${op%%:*}.token" 2>/dev/null
done
ctl_as root operator list
echo "\$ lanyardctl (as ot-operations) class set default --ttl 2h     # policy belongs to identity:"
ctl_as ot-operations class set default --ttl 2h 2>&1 | sed 's/^/  /' || true
echo "\$ lanyardctl (as ot-operations) exception request --device ${devices[0]} --control key_reuse ..."
ctl_as ot-operations exception request --device "${devices[0]}" --control key_reuse --justification "PLC firmware cannot make keys" \
  --compensating "OT VLAN, IDS" --expires 30d
echo "\$ lanyardctl (as plant-manager, the business owner) exception approve 1"
ctl_as plant-manager exception approve 1 --reason "accepted until the PLC is replaced"

step "5. Three agents: each generates its key on the device, enrolls, connects with mTLS, renews at ~2/3 of the TTL"
for d in "${devices[@]}"; do fleet_start_agent "$d"; done
echo "watching for ${watch_seconds}s (certificates live $ttl) ..."
logs=()
for d in "${devices[@]}"; do
  logs+=("$work/agents/$d.log")
  ( tail -n +1 -F "$work/agents/$d.log" 2>/dev/null | grep --line-buffered -E 'enrolled|certificate renewed|refused|error' \
      | sed -u -E "s/^([0-9:.]+) [a-z]+ agent: /\\1 [$d] /" ) &
done
sleep "$watch_seconds"
pkill -f "tail -n \+1 -F $work" 2>/dev/null || true
echo
"$bin/lanyardctl" device list

step "6. Revoke $revoked (key compromise): register, CRL, broker reload, signed revoke command"
mkdir -p "$work/stolen"
# Keep a copy of its credential, as an attacker who stole it would.
cp -L "$work/agents/$revoked/state/current/chain.pem" "$work/stolen/chain.pem"
cp -L "$work/agents/$revoked/state/current/key.pem" "$work/stolen/key.pem"
"$bin/lanyardctl" revoke "$revoked" --reason keyCompromise
sleep 2
grep -E 'command accepted|revoked' "$work/agents/$revoked.log" | sed -E 's/^([0-9:.]+) [a-z]+ agent: /\1 /'
echo "\$ lanyard-agent status   (on $revoked)"
(cd "$work/agents/$revoked" && "$bin/lanyard-agent" status --config agent.conf) | sed 's/^/  /' || true

step "7. The broker now refuses the stolen credential; openssl agrees with the CRL"
if out=$(mosquitto_pub -h 127.0.0.1 -p "$FLEET_OP_PORT" --cafile "$work/controller/pki/bundle.pem" \
    --cert "$work/stolen/chain.pem" --key "$work/stolen/key.pem" -i "$revoked" -V mqttv5 \
    -t "lanyard/v1/dev/$revoked/state" -m '{"v":1,"state":"active"}' 2>&1); then
  bold "UNEXPECTED: the broker accepted a revoked certificate"; echo "$out"; exit 1
else
  echo "mosquitto_pub with the revoked certificate: ${out:-connection refused}"
fi
openssl verify -crl_check -CAfile "$work/controller/pki/bundle.pem" -CRLfile "$work/controller/crl.pem" \
  "$work/stolen/chain.pem" 2>&1 | grep -E 'revoked|OK' | head -2 || true

step "8. Rotate the issuing CA with the fleet running: trust it everywhere, re-issue every device, retire the old CA"
echo "\$ lanyard-controller ca rotate --config controller.conf --reason \"yearly issuing CA rotation\""
"$bin/lanyard-controller" ca rotate --config "$work/controller/controller.conf" --reason "yearly issuing CA rotation" \
  --bundle-timeout 30s --device-timeout 30s | sed 's/^/  /'
for d in "${devices[@]}"; do
  [ "$d" = "$revoked" ] && continue
  printf '  %-12s %s\n' "$d" "$(openssl x509 -noout -issuer -in "$work/agents/$d/state/current/chain.pem" 2>/dev/null | sed 's/^issuer=//')"
done
rotated=$("$bin/lanyardctl" --json ca status | python3 -c 'import json,sys; r=json.load(sys.stdin).get("rotation") or {}; print(r.get("phase","?"))')

step "Summary"
"$bin/lanyardctl" device list
echo
echo "\$ lanyardctl (as auditor) findings; report --format md"
ctl_as auditor findings || true
ctl_as auditor report --format md | sed -n '3,16p'
ctl_as auditor audit verify
renewals=$(cat "${logs[@]}" | grep -c 'certificate renewed' || true)
issued=$("$bin/lanyardctl" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["issued"])')
echo
bold "devices: ${#devices[@]} enrolled, $renewals renewals, $issued certificates issued, 1 revoked and refused by the broker, issuing CA rotation $rotated"
