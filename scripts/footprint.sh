#!/usr/bin/env bash
# Agent footprint, measured on this machine: binary size (release, static Swift
# runtime, stripped), idle VmRSS and RssAnon, wake-ups per minute while idle,
# and renewal latency on loopback. Runs a broker, a controller and one agent
# from the release build in a temporary directory. Prints a Markdown table and
# writes bench/results/footprint.json. Run with `make footprint`.
#   IDLE_SECONDS  how long to count wake-ups (default 60); the memory figures are
#                 read at its end, so 60 or more puts them after the first keepalive
#                 (the agent unmaps what start-up touched 3 s after connecting and the
#                 first keepalive pages some of libcrypto back in: docs/benchmarks.md §10.8.1)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="$(cd "$root" && swift build -c release --show-bin-path)"
idle="${IDLE_SECONDS:-60}"
dist="$root/.build/dist"
mkdir -p "$dist" "$root/bench/results"
strip -o "$dist/lanyard-agent" "$release/lanyard-agent"
LANYARD_BIN="$release"

work="$(mktemp -d /tmp/lanyard-footprint.XXXXXX)"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
trap 'fleet_cleanup; rm -rf "$work"' EXIT INT TERM

echo "==> fleet with a 1 h TTL (no renewal while idle is measured)"
fleet_init "$work" 1h >/dev/null
fleet_start_broker
fleet_start_controller
fleet_add_device gw-footprint >/dev/null
fleet_start_agent gw-footprint "$dist/lanyard-agent"
agent=$FLEET_AGENT_PID
for _ in $(seq 100); do grep -q 'connected to the broker' "$work/agents/gw-footprint.log" && break; sleep 0.1; done
grep -q 'connected to the broker' "$work/agents/gw-footprint.log" || { cat "$work/agents/gw-footprint.log"; exit 1; }

sleep 5
switches() { cat /proc/"$agent"/task/*/status | awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {s += $2} END {print s}'; }
threads=$(ls /proc/"$agent"/task | wc -l)
before=$(switches)
echo "==> counting wake-ups for ${idle}s (keepalive 60 s)"
per_thread() { for t in /proc/"$agent"/task/*; do echo "$(cat "$t/comm") $(awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {s += $2} END {print s}' "$t/status")"; done; }
per_before="$(per_thread)"
sleep "$idle"
after=$(switches)
per_after="$(per_thread)"
echo "==> wake-ups per minute by thread (name: count)"
paste -d' ' <(echo "$per_before") <(echo "$per_after") | awk -v idle="$idle" '{printf "    %s: %d\n", $1, ($4 - $2) * 60 / idle}'

wakeups=$(( (after - before) * 60 / idle ))
rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/"$agent"/status)
anon_kb=$(awk '/^RssAnon/ {print $2}' /proc/"$agent"/status)
file_kb=$(awk '/^RssFile/ {print $2}' /proc/"$agent"/status)
hwm_kb=$(awk '/^VmHWM/ {print $2}' /proc/"$agent"/status)
[ "$idle" -ge 60 ] || echo "==> note: IDLE_SECONDS=$idle < 60: the memory figures are from before the first keepalive" >&2
# Proportional: shared libraries (libcrypto, libc) counted once per process using them.
pss_kb=$(awk '/^Pss:/ {print $2}' /proc/"$agent"/smaps_rollup)
echo "==> resident set by mapping (kB, largest first)"
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6)} /^Rss:/ {rss[name] += $2} END {for (n in rss) if (rss[n] >= 100) printf "    %6d  %s\n", rss[n], n}' /proc/"$agent"/smaps | sort -rn | head -8
size_bytes=$(stat -c %s "$dist/lanyard-agent")

echo "==> renewal latency: scheduled renewals of one agent with a 15 s TTL for 50 s"
fleet_cleanup; fleet_pids=()
work2="$work/renewal"; mkdir -p "$work2"
fleet_init "$work2" 15s >/dev/null
fleet_start_broker
fleet_start_controller
fleet_add_device gw-latency >/dev/null
fleet_start_agent gw-latency "$dist/lanyard-agent"
sleep 50
latencies=$(python3 - "$work2/agents/gw-latency.log" <<'PY'
import re, sys
def t(s):
    h, m, rest = s.split(":"); return int(h) * 3600 + int(m) * 60 + float(rest)
req = None; out = []
for line in open(sys.argv[1]):
    ts = line.split(" ", 1)[0]
    if "renewal requested" in line: req = t(ts)
    elif "certificate renewed" in line and req is not None:
        out.append((t(ts) - req) * 1000); req = None
out.sort()
print(len(out), round(out[len(out) // 2], 1) if out else "nan", round(out[-1], 1) if out else "nan")
PY
)
read -r n p50 worst <<<"$latencies"

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
cat <<TABLE

| agent footprint ($machine) | value | target |
|---|---|---|
| binary (release, static stdlib, stripped) | $(( size_bytes / 1024 / 1024 )) MiB ($size_bytes bytes) | ≤ 20 MB |
| idle VmRSS (after ${idle} s + 5 s idle) | $(( rss_kb / 1024 )).$(( rss_kb % 1024 * 10 / 1024 )) MiB ($rss_kb kB) | ≤ 8 MB |
| idle RssAnon (heap, stacks, relocated data) | $anon_kb kB | flat |
| idle RssFile (pages of the binary and libraries mapped) | $file_kb kB | |
| peak VmRSS (VmHWM, start-up) | $hwm_kb kB | |
| idle Pss (shared libraries split between their users) | $pss_kb kB | |
| threads | $threads | |
| wake-ups per minute, idle (all threads) | $wakeups | keepalive + timer |
| renewal latency on loopback (request → installed), $n renewals | p50 $p50 ms, max $worst ms | |
TABLE
cat >"$root/bench/results/footprint.json" <<JSON
{"machine": "$machine", "binary_bytes": $size_bytes, "idle_vmrss_kb": $rss_kb, "idle_rssanon_kb": $anon_kb, "idle_rssfile_kb": $file_kb, "vmhwm_kb": $hwm_kb, "idle_pss_kb": $pss_kb, "idle_seconds": $idle, "threads": $threads,
 "idle_wakeups_per_minute": $wakeups, "renewals": $n, "renewal_latency_ms_p50": "$p50", "renewal_latency_ms_max": "$worst",
 "command": "make footprint", "date": "$(date -u +%FT%TZ)"}
JSON
