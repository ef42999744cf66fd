#!/usr/bin/env bash
# Controller start-up and memory with a large register (issue 6: <= 150 MB RSS
# and start-up < 2 s with 100,000 devices registered). Builds the register in
# the controller's own database (lanyard-bench --register N --register-db:
# N devices imported as one CSV, each active with a certificate row), starts a
# broker and the release controller, and measures:
#   start-up: from exec to `lanyardctl status` answering with the broker connected,
#             and to the "controller running" log line;
#   RSS (VmRSS, VmHWM) after start-up, and after one `lanyardctl device list`
#             (the whole register through the admin API) and one status call.
# Sizes: BENCH_REGISTER (100000). JSON: bench/results/startup.json.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="$(cd "$root" && swift build -c release --show-bin-path)"
LANYARD_BIN="$release"
for b in lanyard-bench lanyard-controller lanyardctl; do
  [ -x "$release/$b" ] || { echo "bench-startup: $release/$b is missing; build it with -c release" >&2; exit 1; }
done
count="${BENCH_REGISTER:-100000}"
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
work="$(mktemp -d /tmp/lanyard-startup.XXXXXX)"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
trap 'fleet_cleanup; rm -rf "$work"' EXIT INT TERM
fleet_init "$work" 24h >/dev/null
echo "==> register of $count devices in the controller's database"
"$release/lanyard-bench" --register "$count" --register-db "$work/controller/lanyard.db" | grep -v '^importing'
db_mb=$(du -m "$work/controller/lanyard.db" | cut -f1)
fleet_start_broker

rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
t0=$(now)
"$release/lanyard-controller" run --config "$work/controller/controller.conf" >"$work/controller.log" 2>&1 &
pid=$!
fleet_pids+=("$pid")
ready=""
for _ in $(seq 600); do
  if "$release/lanyardctl" --json status 2>/dev/null | grep -q '"brokerConnected" : true'; then ready=$(now); break; fi
  sleep 0.02
done
[ -n "$ready" ] || { echo "the controller did not come up; see $work/controller.log" >&2; exit 1; }
startup=$(python3 -c "print(f'{$ready - $t0:.2f}')")
# The log line's own time stamp is not parsed: the status answer is the honest "ready".
cpu_start=$(awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$pid/stat")
rss_start=$(rss "$pid" VmRSS)
t1=$(now)
listed=$("$release/lanyardctl" --json device list | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d) if isinstance(d, list) else len(d.get("devices", [])))')
list_s=$(python3 -c "print(f'{$(now) - $t1:.2f}')")
"$release/lanyardctl" --json status >/dev/null
rss_after=$(rss "$pid" VmRSS)
hwm=$(rss "$pid" VmHWM)

echo
echo "| controller with $count devices registered ($machine) | value |"
echo "|---|---|"
echo "| register file | $db_mb MB |"
echo "| start-up: exec → \`lanyardctl status\` answers, broker connected | $startup s (CPU $cpu_start s) |"
echo "| RSS after start-up | $((rss_start / 1024)) MiB |"
echo "| \`lanyardctl device list\` ($listed devices) | $list_s s |"
echo "| RSS after the list / peak (VmHWM) | $((rss_after / 1024)) / $((hwm / 1024)) MiB |"
mkdir -p "$root/bench/results"
python3 - "$root/bench/results/startup.json" <<PY
import json, sys
json.dump({"machine": "$machine", "command": "BENCH_REGISTER=$count scripts/bench-startup.sh", "devices": $count,
           "register_mb": $db_mb, "startup_seconds": $startup, "startup_cpu_seconds": $cpu_start,
           "rss_after_startup_kib": $rss_start, "device_list_seconds": $list_s, "devices_listed": $listed,
           "rss_after_list_kib": $rss_after, "vmhwm_kib": $hwm}, open(sys.argv[1], "w"), indent=2, sort_keys=True)
PY
