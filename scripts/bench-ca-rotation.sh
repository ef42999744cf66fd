#!/usr/bin/env bash
# CA rotation at scale (issue 5): `lanyard-controller ca rotate` over
# BENCH_CA_DEVICES simulated devices (lanyard-fleetsim, one MQTT+TLS
# connection each), no practical rate limit (--max-per-minute unlimited):
# time of each phase (trust bundle to every device, re-issue campaign,
# retirement), controller and broker CPU and peak RSS, and whether every
# device ended on the new CA. Markdown on stdout, JSON in
# bench/results/ca-rotation.json. Exit 1 when the rotation did not complete.
# Sizes (environment):
#   BENCH_CA_DEVICES          simulated devices (default 1000)
#   BENCH_ENROLL_CONCURRENCY  enrollment requests in flight (default 32)
#   BENCH_THREADS             simulator threads per process (default 2)
#   BENCH_KEEP                1: keep the work directory
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="$(cd "$root" && swift build -c release --show-bin-path)"
LANYARD_BIN="$release"
for b in lanyard-fleetsim lanyard-controller lanyardctl; do
  [ -x "$release/$b" ] || { echo "bench-ca-rotation: $release/$b is missing; run make release" >&2; exit 1; }
done
devices="${BENCH_CA_DEVICES:-1000}"
mkdir -p "$root/bench/results"
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
ctl="$release/lanyardctl"

echo "==> CA rotation over $devices simulated devices ($machine)"
work="$(mktemp -d /tmp/lanyard-bench-ca.XXXXXX)"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
sim_pid=""
cleanup() {
  fleet_stop_simulator "$sim_pid" "$work/stop"
  fleet_cleanup
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "(kept: $work)" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM
fleet_start_for_simulator "$work" "$devices"
cpid="$FLEET_CONTROLLER_PID"; bpid="$FLEET_BROKER_PID"

usage() { fleet_proc_usage "$1"; }
now() { date +%s.%N; }

"$release/lanyard-fleetsim" run --devices "$devices" --threads "${BENCH_THREADS:-2}" --enroll-concurrency "${BENCH_ENROLL_CONCURRENCY:-32}" \
  --rounds none --hold 7200 --bundle "$work/controller/pki/bundle.pem" --socket "$LANYARD_SOCKET" \
  --port "$FLEET_OP_PORT" --bootstrap-port "$FLEET_BOOT_PORT" --controller-pid "$cpid" --broker-pid "$bpid" \
  --ready-file "$work/ready" --stop-file "$work/stop" --json "$work/sim.json" >"$work/sim.out" 2>"$work/sim.log" &
sim_pid=$!
t_enroll=$(now)
fleet_wait_simulator bench-ca-rotation "$sim_pid" "$work/ready" "$work/sim.log"
echo "fleet online: $devices devices enrolled and connected in $(python3 -c "print(f'{$(now) - $t_enroll:.0f}')") s"

read -r c_cpu0 c_rss0 _ < <(usage "$cpid"); read -r b_cpu0 b_rss0 _ < <(usage "$bpid")
c_peak="$c_rss0"; b_peak="$b_rss0"
rotate_cmd=("$release/lanyard-controller" ca rotate --config "$work/controller/controller.conf" --reason bench --max-per-minute unlimited
            --bundle-timeout 10m --device-timeout 5m --no-wait --json)
t0=$(now)
"${rotate_cmd[@]}" >"$work/rotate.json"
: >"$work/phases"
last=""
deadline=$(( $(date +%s) + 3600 ))
while :; do
  "$ctl" --json ca status >"$work/status.json" || true
  phase="$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("rotation") or {}).get("phase",""))' "$work/status.json")"
  read -r c_cpu c_rss _ < <(usage "$cpid"); read -r b_cpu b_rss _ < <(usage "$bpid")
  [ "$c_rss" -gt "$c_peak" ] && c_peak="$c_rss"; [ "$b_rss" -gt "$b_peak" ] && b_peak="$b_rss"
  if [ "$phase" != "$last" ]; then echo "$(python3 -c "print(f'{$(now) - $t0:.1f}')") $phase" | tee -a "$work/phases"; last="$phase"; fi
  case "$phase" in completed|stalled) break ;; esac
  [ "$(date +%s)" -lt "$deadline" ] || { echo "bench-ca-rotation: still '$phase' after an hour" >&2; break; }
  sleep 0.5
done
t1=$(now)
read -r c_cpu1 _ < <(usage "$cpid"); read -r b_cpu1 _ < <(usage "$bpid")
"$ctl" --json device list >"$work/devices.json"

python3 - "$work" "$devices" "$machine" "$t0" "$t1" "$c_cpu0" "$c_cpu1" "$b_cpu0" "$b_cpu1" "$c_peak" "$b_peak" \
  "$root/bench/results/ca-rotation.json" "${rotate_cmd[*]}" <<'PY'
import json, sys
work, devices, machine, t0, t1, c0, c1, b0, b1, cpeak, bpeak, out, command = sys.argv[1:14]
devices = int(devices)
status = json.load(open(f"{work}/status.json"))
rotation = status.get("rotation") or {}
phases = [l.split(" ", 1) for l in open(f"{work}/phases").read().split("\n") if l.strip()]
marks = {p: float(t) for t, p in phases}
listing = json.load(open(f"{work}/devices.json"))["devices"]
new_name = next((g["commonName"] for g in status["generations"] if g["state"] == "active"), "")
on_new = sum(1 for d in listing if d.get("issuer") == new_name)
total = float(t1) - float(t0)
result = {
    "machine": machine, "command": command, "devices": devices, "phase": rotation.get("phase"),
    "seconds_total": round(total, 1),
    "seconds_to_reissuing": marks.get("reissuing"), "seconds_to_retiring": marks.get("retiring"), "seconds_to_completed": marks.get("completed"),
    "bundle_acknowledged_final": rotation.get("bundleAcknowledged"), "devices_on_new_ca": on_new,
    "controller_cpu_seconds": round(float(c1) - float(c0), 2), "controller_cpu_ms_per_device": round((float(c1) - float(c0)) * 1000 / max(devices, 1), 2),
    "broker_cpu_seconds": round(float(b1) - float(b0), 2),
    "controller_peak_rss_mib": round(int(cpeak) / 1024, 1), "broker_peak_rss_mib": round(int(bpeak) / 1024, 1),
    "generations": status["generations"],
}
json.dump(result, open(out, "w"), indent=2)
print()
print(f"| CA rotation, {devices} simulated devices | value |")
print("|---|---|")
for k in ["phase", "seconds_to_reissuing", "seconds_to_retiring", "seconds_to_completed", "devices_on_new_ca", "bundle_acknowledged_final",
          "controller_cpu_seconds", "controller_cpu_ms_per_device", "broker_cpu_seconds", "controller_peak_rss_mib", "broker_peak_rss_mib"]:
    print(f"| {k} | {result[k]} |")
print(f"\nmachine: {machine}; command: {command}")
sys.exit(0 if result["phase"] == "completed" and on_new == devices else 1)
PY
