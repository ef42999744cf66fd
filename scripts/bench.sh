#!/usr/bin/env bash
# `make bench`: issuance end to end with the fleet simulator next to the
# single-core crypto bound of the same run, controller CPU per certificate,
# and single-device revocation times. Markdown on stdout, JSON under
# bench/results/ (issuance.json from lanyard-bench, fleet-issuance.json from
# lanyard-fleetsim). The agent footprint (make footprint) runs before this.
# Sizes (environment):
#   BENCH_BOUND_COUNT        certificates for the crypto bound (default 2000)
#   BENCH_DEVICES            simulated devices, one MQTT+TLS connection each (default 500)
#   BENCH_ENROLL_CONCURRENCY enrollment requests in flight (default 32)
#   BENCH_ROUNDS             renewal rounds, requests in flight per round (default 1,8,64)
#   BENCH_REVOKE             devices revoked one by one, timed to broker refusal (default 5)
#   BENCH_THREADS            simulator threads (default 2)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="$(cd "$root" && swift build -c release --show-bin-path)"
LANYARD_BIN="$release"
for b in lanyard-bench lanyard-fleetsim lanyard-controller lanyardctl; do
  [ -x "$release/$b" ] || { echo "bench: $release/$b is missing; run make bench" >&2; exit 1; }
done
devices="${BENCH_DEVICES:-500}"
rounds="${BENCH_ROUNDS:-1,8,64}"
mkdir -p "$root/bench/results"
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"

echo "==> crypto bound and in-process enroll path (lanyard-bench, $machine)"
"$release/lanyard-bench" --count "${BENCH_BOUND_COUNT:-2000}" --json "$root/bench/results/issuance.json" | grep -v '^preparing\|^registering'

echo
echo "==> fleet: broker, controller (release) and $devices simulated devices ($machine)"
work="$(mktemp -d /tmp/lanyard-bench.XXXXXX)"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
trap 'fleet_cleanup; rm -rf "$work"' EXIT INT TERM
# One descriptor per simulated connection, in the simulator and in the broker.
ulimit -n "$(ulimit -Hn)"
FLEET_BOOTSTRAP_MAX_CONNECTIONS=$(( devices + 100 ))
fleet_init "$work" 24h >/dev/null
fleet_start_broker
fleet_start_controller
command=(lanyard-fleetsim run --devices "$devices" --threads "${BENCH_THREADS:-2}" --enroll-concurrency "${BENCH_ENROLL_CONCURRENCY:-32}"
         --rounds "$rounds" --revoke "${BENCH_REVOKE:-5}")
set +e
"$release/lanyard-fleetsim" "${command[@]:1}" --bundle "$work/controller/pki/bundle.pem" --socket "$work/controller/admin.sock" \
  --port "$FLEET_OP_PORT" --bootstrap-port "$FLEET_BOOT_PORT" --controller-pid "$FLEET_CONTROLLER_PID" --broker-pid "$FLEET_BROKER_PID" \
  --json "$work/fleet.json" --quiet
status=$?
set -e
python3 - "$work/fleet.json" "$root/bench/results/issuance.json" "$root/bench/results/fleet-issuance.json" "$machine" "${command[*]}" <<'PY'
import json, sys
fleet = json.load(open(sys.argv[1]))
bound = json.load(open(sys.argv[2]))
fleet["machine"] = sys.argv[4]
fleet["command"] = sys.argv[5]
b = bound["crypto_bound_per_second"]
fleet["crypto_bound_per_second"] = b
fleet["crypto_bound_cpu_ms"] = bound["crypto_bound_cpu_ms"]
print()
print(f"| issuance end to end ({sys.argv[4]}) | conc. | certs | certs/s | ratio to 1-core crypto bound ({b:.0f}/s) | p50 ms | p99 ms | controller CPU ms/cert |")
print("|---|---|---|---|---|---|---|---|")
for p in fleet["phases"]:
    p["ratio_to_bound"] = p["perSecond"] / b
    f = lambda v, fmt="%.1f": (fmt % v) if v is not None else "-"
    print(f"| {p['name']}{'' if p['complete'] else ' (incomplete)'} | {p['concurrency']} | {p['certificates']} | {p['perSecond']:.0f} | {p['ratio_to_bound']:.2f} | "
          f"{f(p.get('p50Ms'))} | {f(p.get('p99Ms'))} | {f(p.get('controllerCPUMsPerCertificate'), '%.3f')} |")
print(f"| crypto bound: CSR verify + sign, 1 core | - | {bound['count']} | {b:.0f} | 1.00 | - | - | {bound['crypto_bound_cpu_ms']:.3f} (CPU of the signing itself) |")
rev = [r for r in fleet.get("revocations", []) if r.get("brokerRefusedSeconds") is not None]
if fleet.get("revocations"):
    ms = sorted(r["brokerRefusedSeconds"] * 1000 for r in rev)
    cmd = sorted(r["commandVerifiedSeconds"] * 1000 for r in rev if r.get("commandVerifiedSeconds") is not None)
    pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
    print()
    print(f"| revocation, one device at a time ({sys.argv[4]}) | n | p50 ms | max ms |")
    print("|---|---|---|---|")
    print(f"| `device.revoke` → signed command verified by the device | {len(cmd)} | {pick(cmd, .5):.0f} | {max(cmd) if cmd else float('nan'):.0f} |")
    print(f"| `device.revoke` → broker refuses the revoked certificate | {len(ms)} | {pick(ms, .5):.0f} | {max(ms) if ms else float('nan'):.0f} |")
reg = fleet.get("register", {})
print()
print(f"Register check: {reg.get('certificatesReceived')} certificates verified by devices, "
      f"{(reg.get('issuedAfter') or 0) - (reg.get('issuedBefore') or 0)} issued by the controller; errors: {fleet.get('errors') or 'none'}.")
json.dump(fleet, open(sys.argv[3], "w"), indent=2, sort_keys=True)
PY
echo "(JSON: bench/results/issuance.json, bench/results/fleet-issuance.json)"
exit "$status"
