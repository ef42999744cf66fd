#!/usr/bin/env bash
# Controller start-up and memory with a large register (issue 6: <= 150 MB RSS
# and start-up < 2 s with 100,000 devices registered). Builds the register in
# the controller's own database (lanyard-bench --register N --register-db:
# N devices imported as one CSV, each active with a certificate row), starts a
# broker and the release controller, and measures:
#   start-up: from exec to `lanyardctl status` answering with the broker connected,
#             and to the "controller running" log line;
#   RSS (VmRSS, VmHWM) after start-up;
#   then each whole-register read an operator makes, one at a time, with its
#             wall time, the controller's peak RSS during that call alone
#             (VmHWM reset through /proc/PID/clear_refs before each) and
#             lanyardctl's own peak (GNU time): `device list` (JSON and table,
#             the pages walked by lanyardctl), `findings`, `register export`
#             and `report`.
# Sizes: BENCH_REGISTER (100000). JSON: bench/results/startup.json.
# BENCH_BIN_DIR: executables of another build to measure instead (e.g. main's
# .build/release, for a before/after comparison).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="${BENCH_BIN_DIR:-$(cd "$root" && swift build -c release --show-bin-path)}"
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
hwm_start=$(rss "$pid" VmHWM)

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }  # controller CPU, clock ticks
# One whole-register read: wall time, controller peak during it, lanyardctl peak,
# controller CPU (less sensitive than wall time to the other work on a shared machine).
# Prints "seconds controller_hwm_kib client_max_kib controller_cpu_seconds"; the output goes to $work/out.
measure() {
  echo 5 >"/proc/$pid/clear_refs"  # resets VmHWM to the current RSS
  local t0 t1 c0 c1 client
  c0=$(cpu); t0=$(now)
  /usr/bin/time -f %M -o "$work/time" "$release/lanyardctl" "$@" >"$work/out" 2>"$work/err" || true
  t1=$(now); c1=$(cpu)
  client=$(tail -1 "$work/time")
  echo "$(python3 -c "print(f'{$t1 - $t0:.2f}')") $(rss "$pid" VmHWM) $client $(python3 -c "print(f'{($c1 - $c0) / $(getconf CLK_TCK):.2f}')")"
}
read -r list_s list_hwm list_client list_cpu < <(measure --json device list)
listed=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d) if isinstance(d, list) else len(d.get("devices", [])))' "$work/out")
read -r table_s table_hwm table_client table_cpu < <(measure device list)
table_rows=$(($(wc -l <"$work/out") - 1))
read -r findings_s findings_hwm findings_client findings_cpu < <(measure --json findings)
read -r export_s export_hwm export_client export_cpu < <(measure register export)
export_kib=$(($(wc -c <"$work/out") / 1024))
read -r report_s report_hwm report_client report_cpu < <(measure report --format json)
"$release/lanyardctl" --json status >/dev/null
rss_after=$(rss "$pid" VmRSS)
mib() { echo $(($1 / 1024)); }

echo
echo "| controller with $count devices registered ($machine) | value |"
echo "|---|---|"
echo "| register file | $db_mb MB |"
echo "| start-up: exec → \`lanyardctl status\` answers, broker connected | $startup s (CPU $cpu_start s) |"
echo "| RSS after start-up | $((rss_start / 1024)) MiB (peak $(mib "$hwm_start") MiB) |"
echo
echo "| whole-register read (one at a time) | wall | controller CPU | controller peak RSS during it | lanyardctl peak RSS | result |"
echo "|---|---|---|---|---|---|"
echo "| \`lanyardctl --json device list\` | $list_s s | $list_cpu s | $(mib "$list_hwm") MiB | $(mib "$list_client") MiB | $listed devices |"
echo "| \`lanyardctl device list\` (table) | $table_s s | $table_cpu s | $(mib "$table_hwm") MiB | $(mib "$table_client") MiB | $table_rows rows |"
echo "| \`lanyardctl --json findings\` | $findings_s s | $findings_cpu s | $(mib "$findings_hwm") MiB | $(mib "$findings_client") MiB | |"
echo "| \`lanyardctl register export\` | $export_s s | $export_cpu s | $(mib "$export_hwm") MiB | $(mib "$export_client") MiB | $export_kib KiB CSV |"
echo "| \`lanyardctl report --format json\` | $report_s s | $report_cpu s | $(mib "$report_hwm") MiB | $(mib "$report_client") MiB | |"
echo "| RSS after all of them | $(mib "$rss_after") MiB | | | | |"
hwm=$(python3 -c "print(max($list_hwm, $table_hwm, $findings_hwm, $export_hwm, $report_hwm, $hwm_start))")
mkdir -p "$root/bench/results"
python3 - "$root/bench/results/startup.json" <<PY
import json, sys
json.dump({"machine": "$machine", "command": "${BENCH_BIN_DIR:+BENCH_BIN_DIR=$BENCH_BIN_DIR }BENCH_REGISTER=$count scripts/bench-startup.sh", "devices": $count,
           "register_mb": $db_mb, "startup_seconds": $startup, "startup_cpu_seconds": $cpu_start,
           "rss_after_startup_kib": $rss_start, "device_list_seconds": $list_s, "devices_listed": $listed,
           "rss_after_list_kib": $rss_after, "vmhwm_kib": $hwm,
           "reads": {name: {"seconds": s, "controller_cpu_seconds": u, "controller_vmhwm_kib": c, "lanyardctl_max_rss_kib": k} for name, s, u, c, k in [
               ("device list --json", $list_s, $list_cpu, $list_hwm, $list_client), ("device list (table)", $table_s, $table_cpu, $table_hwm, $table_client),
               ("findings --json", $findings_s, $findings_cpu, $findings_hwm, $findings_client),
               ("register export", $export_s, $export_cpu, $export_hwm, $export_client),
               ("report --format json", $report_s, $report_cpu, $report_hwm, $report_client)]}}, open(sys.argv[1], "w"), indent=2, sort_keys=True)
PY
