#!/usr/bin/env bash
# Issue 5/6 scale figures (`make bench` runs this after scripts/bench.sh):
#   1. a rotation campaign over every simulated device, no practical rate limit
#      (lanyardctl campaign create --selector class=default --max-per-minute unlimited),
#      timed from `campaign start` to `completed`, with controller and broker CPU
#      and RSS during it;
#   2. a bulk revocation of BENCH_BULK_REVOKE of them with one
#      `lanyardctl --json revoke --selector tag=bench-revoke --reason keyCompromise`:
#      the call's own time to revoke, its wall time, and per device the time
#      from the call's start to the simulated device verifying the signed revoke
#      command and to the broker refusing its revoked certificate.
# The simulator (mode A: one MQTT+TLS connection per device) enrolls the fleet,
# tags the first BENCH_BULK_REVOKE devices `bench-revoke` at registration, and
# holds, following commands, until this script is done.
# Markdown on stdout, JSON in bench/results/campaign.json and bench/results/bulk-revocation.json.
# Exit 1 when a device did not rotate or the revocation call exited non-zero (figures still written).
# Sizes (environment):
#   BENCH_CAMPAIGN_DEVICES   simulated devices (default 1000)
#   BENCH_BULK_REVOKE        devices revoked in one call (default 1000, the issue-6 target size; 0: skip)
#   BENCH_CAMPAIGN_TIMEOUT   per-device campaign timeout (default 5m)
#   BENCH_ENROLL_CONCURRENCY enrollment requests in flight (default 32)
#   BENCH_THREADS            simulator threads per process (default 2)
#   BENCH_MULTIPLEX          0: mode A, one MQTT+TLS connection per device (default); N > 0: mode B,
#                            the devices share N connections on the benchmark-only listener (100,000 devices;
#                            no bulk revocation then: a shared connection shows no per-device refusal)
#   BENCH_OUT                name of the campaign JSON under bench/results (default campaign.json)
#   BENCH_PERF               1: perf record -g the controller during the campaign (bench/results/campaign-perf.txt)
#   BENCH_KEEP               1: keep the work directory (controller log, event log, raw JSON)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="$(cd "$root" && swift build -c release --show-bin-path)"
LANYARD_BIN="$release"
for b in lanyard-fleetsim lanyard-controller lanyardctl; do
  [ -x "$release/$b" ] || { echo "bench-campaign: $release/$b is missing; run make bench" >&2; exit 1; }
done
devices="${BENCH_CAMPAIGN_DEVICES:-1000}"
bulk="${BENCH_BULK_REVOKE:-1000}"
timeout="${BENCH_CAMPAIGN_TIMEOUT:-5m}"
mux="${BENCH_MULTIPLEX:-0}"
out_name="${BENCH_OUT:-campaign.json}"
[ "$mux" = 0 ] || [ "$bulk" = 0 ] || { echo "bench-campaign: BENCH_MULTIPLEX needs BENCH_BULK_REVOKE=0" >&2; exit 64; }
[ "$bulk" -le "$devices" ] || { echo "bench-campaign: BENCH_BULK_REVOKE ($bulk) > BENCH_CAMPAIGN_DEVICES ($devices)" >&2; exit 64; }
mkdir -p "$root/bench/results"
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
ctl="$release/lanyardctl"

echo "==> campaign over $devices simulated devices, bulk revocation of $bulk ($machine)"
work="$(mktemp -d /tmp/lanyard-bench-campaign.XXXXXX)"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
sim_pid=""
perf_pid=""
cleanup() {
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
  fleet_stop_simulator "$sim_pid" "$work/stop"
  fleet_cleanup
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "(kept: $work)" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM
fleet_start_for_simulator "$work" "$devices" "$mux"
cpid="$FLEET_CONTROLLER_PID"; bpid="$FLEET_BROKER_PID"

usage() { fleet_proc_usage "$1"; }
now() { date +%s.%N; }

sim_command=(lanyard-fleetsim run --devices "$devices" --threads "${BENCH_THREADS:-2}" --enroll-concurrency "${BENCH_ENROLL_CONCURRENCY:-32}"
             --rounds none --hold 7200 --tag bench-revoke --tagged "$bulk")
[ "$mux" = 0 ] || sim_command+=(--multiplex "$mux" --mux-port "$FLEET_MUX_PORT")
"$release/lanyard-fleetsim" "${sim_command[@]:1}" --bundle "$work/controller/pki/bundle.pem" --socket "$work/controller/admin.sock" \
  --port "$FLEET_OP_PORT" --bootstrap-port "$FLEET_BOOT_PORT" --controller-pid "$cpid" --broker-pid "$bpid" \
  --ready-file "$work/ready" --stop-file "$work/stop" --event-log "$work/events" --json "$work/sim.json" >"$work/sim.out" 2>"$work/sim.log" &
sim_pid=$!
t_enroll=$(now)
fleet_wait_simulator bench-campaign "$sim_pid" "$work/ready" "$work/sim.log"
echo "fleet online: $devices devices enrolled and connected in $(python3 -c "print(f'{$(now) - $t_enroll:.0f}')") s"

# 1. The campaign.
campaign_cmd=("$ctl" --json campaign create --selector class=default --reason bench --max-per-minute unlimited --timeout "$timeout")
"${campaign_cmd[@]}" >"$work/campaign-create.json"
cid="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/campaign-create.json")"
if [ "${BENCH_PERF:-0}" = 1 ]; then
  perf record -F 499 -g -p "$cpid" -o "$work/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
fi
read -r c_cpu0 c_rss0 _ < <(usage "$cpid"); read -r b_cpu0 b_rss0 _ < <(usage "$bpid")
c_peak="$c_rss0"; b_peak="$b_rss0"
t0=$(now)
"$ctl" --json campaign start "$cid" >/dev/null &
start_pid=$!
# While `campaign start` runs: is the admin API answering other calls? (lanyardctl status, slowest answer)
probe_max=0
while kill -0 "$start_pid" 2>/dev/null; do
  p0=$(now); "$ctl" --json status >/dev/null; p1=$(now)
  probe_max="$(python3 -c "print(max($probe_max, $p1 - $p0))")"
  sleep 0.2
done
wait "$start_pid"
t_started=$(now)
state=running
deadline=$(( $(date +%s) + 3600 ))
: >"$work/progress"
while :; do
  "$ctl" --json campaign list >"$work/list.json"
  state="$(python3 - "$work/list.json" "$cid" <<'PY'
import json, sys
c = next(c for c in json.load(open(sys.argv[1]))["campaigns"] if c["id"] == sys.argv[2])
print(c["state"], " ".join(f"{k}={v}" for k, v in sorted(c["counts"].items())))
PY
)"
  t=$(now)
  read -r c_cpu c_rss _ < <(usage "$cpid"); read -r b_cpu b_rss _ < <(usage "$bpid")
  [ "$c_rss" -gt "$c_peak" ] && c_peak="$c_rss"; [ "$b_rss" -gt "$b_peak" ] && b_peak="$b_rss"
  echo "$(python3 -c "print(f'{$t - $t0:.1f}')") $state" >>"$work/progress"
  case "$state" in completed*|aborted*|cancelled*) break ;; esac
  [ "$(date +%s)" -lt "$deadline" ] || { echo "bench-campaign: campaign $cid still '$state' after an hour" >&2; break; }
  sleep 0.5
done
t1=$(now)
read -r c_cpu1 c_rss1 c_hwm1 < <(usage "$cpid"); read -r b_cpu1 b_rss1 _ < <(usage "$bpid")
if [ -n "$perf_pid" ]; then
  kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=""
  { echo "# perf record -F 499 -g -p <controller> during the campaign ($devices devices); flat, self time"
    perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -15
    perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep '%' | head -50
    echo "# inclusive (children), our code and SQLite/fsync"
    perf report -i "$work/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep '%' | grep -i 'Controller\|Shared\|sqlite3_step\|fdatasync\|Campaign\|Command' | head -40
  } >"$root/bench/results/campaign-perf.txt" || true
fi
"$ctl" --json campaign status "$cid" >"$work/campaign-status.json"
tail -3 "$work/progress"

# 2. The bulk revocation.
revoke_cmd=("$ctl" --json revoke --selector tag=bench-revoke --reason keyCompromise)
if [ "$bulk" -gt 0 ]; then
  read -r rc_cpu0 _ < <(usage "$cpid")
  : >"$work/revoke-mark"
  r0=$(now)
  set +e
  "${revoke_cmd[@]}" >"$work/revoke.json" 2>"$work/revoke.err"
  revoke_status=$?
  set -e
  r1=$(now)
  read -r rc_cpu1 _ < <(usage "$cpid")
  # Wait (at most 60 s) for every revoked device to see the broker refuse its certificate.
  for _ in $(seq 600); do
    [ "$(grep -c '^refused ' "$work/events" || true)" -ge "$bulk" ] && break
    sleep 0.1
  done
else
  r0=0; r1=0; revoke_status=0; rc_cpu0=0; rc_cpu1=0
fi

touch "$work/stop"
wait "$sim_pid" || true
sim_pid=""

python3 - "$work" "$root/bench/results" "$machine" "$devices" "$bulk" "$cid" "$t0" "$t1" \
  "$c_cpu0 $c_cpu1 $c_peak $c_hwm1 $b_cpu0 $b_cpu1 $b_peak" "$r0 $r1 $revoke_status $rc_cpu0 $rc_cpu1 $t_started $probe_max" \
  "${sim_command[*]}" "${campaign_cmd[*]#"$release/"}" "${revoke_cmd[*]#"$release/"}" "$out_name" <<'PY'
import json, os, sys, datetime
work, out, machine = sys.argv[1], sys.argv[2], sys.argv[3]
out_name = sys.argv[14]
devices, bulk, cid = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
t0, t1 = float(sys.argv[7]), float(sys.argv[8])
c_cpu0, c_cpu1, c_peak, c_hwm, b_cpu0, b_cpu1, b_peak = map(float, sys.argv[9].split())
r0, r1, revoke_status, rc_cpu0, rc_cpu1, t_started, probe_max = map(float, sys.argv[10].split())
sim_cmd, campaign_cmd, revoke_cmd = sys.argv[11], "lanyardctl " + sys.argv[12].split("lanyardctl ", 1)[-1], "lanyardctl " + sys.argv[13].split("lanyardctl ", 1)[-1]
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

def pct(xs, p):
    if not xs: return None
    xs = sorted(xs)
    import math
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]

events = {}
for line in open(os.path.join(work, "events")):
    kind, dev, t = line.split()
    events.setdefault(kind, {}).setdefault(dev, []).append(float(t))
sim = {}
try: sim = json.load(open(os.path.join(work, "sim.json")))
except Exception as e: sim = {"error": str(e)}

status = json.load(open(os.path.join(work, "campaign-status.json")))
counts = status.get("counts", {})
wall = t1 - t0
rotated = [min(v) - t0 for v in events.get("rotated", {}).values() if min(v) >= t0]
command = [min(v) - t0 for v in events.get("command-rotate", {}).values() if min(v) >= t0]
campaign = {
    "machine": machine, "date": date, "devices": devices, "campaign": cid,
    "commands": {"simulator": sim_cmd, "campaign": campaign_cmd + " && lanyardctl campaign start " + cid},
    "state": status.get("state"), "endReason": status.get("endReason"),
    "counts": counts, "total": status.get("total"),
    "secondsStartToEnd": wall,
    "startCallSeconds": t_started - t0,
    "statusDuringStartMaxSeconds": probe_max,
    "firstPollAnsweredSeconds": float(open(os.path.join(work, "progress")).readline().split()[0]),
    "lastSucceededSeconds": next((float(l.split()[0]) for l in open(os.path.join(work, "progress"))
                                  if f"succeeded={counts.get('succeeded', 0)}" in l.split()), None),
    "controllerSecondsStartToEnd": (status.get("endedAt") or 0) - (status.get("startedAt") or 0) if status.get("endedAt") else None,
    "succeededPerSecond": counts.get("succeeded", 0) / wall if wall > 0 else None,
    "rotateCommandVerifiedSeconds": {"n": len(command), "p50": pct(command, 50), "p99": pct(command, 99), "max": max(command) if command else None},
    "stateReportedWithNewSerialSeconds": {"n": len(rotated), "p50": pct(rotated, 50), "p99": pct(rotated, 99), "max": max(rotated) if rotated else None},
    "controller": {"cpuSeconds": c_cpu1 - c_cpu0, "cpuMsPerDevice": (c_cpu1 - c_cpu0) * 1000 / max(1, counts.get("succeeded", 0)),
                   "peakRssKiB": int(c_peak), "vmHWMKiB": int(c_hwm)},
    "broker": {"cpuSeconds": b_cpu1 - b_cpu0, "peakRssKiB": int(b_peak)},
    "simulator": {k: sim.get(k) for k in ("counters", "errors", "errorSamples", "registration", "phases")},
    "progress": open(os.path.join(work, "progress")).read().splitlines()[-400:],
}
json.dump(campaign, open(os.path.join(out, out_name), "w"), indent=2, sort_keys=True)
f = lambda v, s=1: "-" if v is None else f"{v * s:,.1f}"
print()
print(f"| campaign, {devices} devices online ({machine}) | value |")
print("|---|---|")
print(f"| end state | {campaign['state']} ({campaign['endReason'] or '-'}) |")
print(f"| `campaign start` → `completed` (polled every 0.5 s) | {wall:.1f} s |")
print(f"| succeeded / failed / timed out / skipped | {counts.get('succeeded',0)} / {counts.get('failed',0)} / {counts.get('timed_out',0)} / {counts.get('skipped',0)} of {status.get('total')} |")
print(f"| last device marked succeeded (polled) | {f(campaign['lastSucceededSeconds'])} s |")
print(f"| throughput (succeeded ÷ start-to-end) | {campaign['succeededPerSecond'] or 0:.1f} devices/s |")
print(f"| `campaign start` call / slowest `lanyardctl status` meanwhile | {campaign['startCallSeconds']:.1f} s / {probe_max:.2f} s |")
r = campaign["rotateCommandVerifiedSeconds"]; s = campaign["stateReportedWithNewSerialSeconds"]
print(f"| start → device verified its rotate command, p50 / p99 / max | {f(r['p50'])} / {f(r['p99'])} / {f(r['max'])} s (n={r['n']}) |")
print(f"| start → device reported the new serial, p50 / p99 / max | {f(s['p50'])} / {f(s['p99'])} / {f(s['max'])} s (n={s['n']}) |")
print(f"| controller CPU during it | {c_cpu1 - c_cpu0:.1f} s ({campaign['controller']['cpuMsPerDevice']:.2f} ms per succeeded device) |")
print(f"| controller RSS peak (sampled) / VmHWM | {c_peak/1024:.1f} / {c_hwm/1024:.1f} MiB |")
print(f"| broker CPU / RSS peak | {b_cpu1 - b_cpu0:.1f} s / {b_peak/1024:.1f} MiB |")
print(f"| simulator errors | {sim.get('errors') or 'none'} |")

if bulk > 0:
    try: rv = json.load(open(os.path.join(work, "revoke.json")))
    except Exception as e: rv = {"error": str(e), "stderr": open(os.path.join(work, "revoke.err")).read()[-2000:]}
    revoked = {x["id"] for x in rv.get("results", [])} if isinstance(rv.get("results"), list) else set()
    refused = [min(v) - r0 for d, v in events.get("refused", {}).items() if d in revoked]
    cmdv = [min(v) - r0 for d, v in events.get("command-revoke", {}).items() if d in revoked]
    res = rv.get("results") or []
    bulk_out = {
        "machine": machine, "date": date, "devicesOnline": devices, "selected": bulk, "command": revoke_cmd, "exitStatus": int(revoke_status),
        "matched": len(rv.get("matched") or []), "revoked": len(res), "skipped": len(rv.get("skipped") or []),
        "crlNumber": rv.get("crlNumber"), "brokerReloaded": rv.get("brokerReloaded"),
        "commandsSent": sum(1 for x in res if x.get("commandSent")), "sessionsCut": sum(1 for x in res if x.get("sessionCut")),
        "callWallSeconds": r1 - r0, "controllerCPUSeconds": rc_cpu1 - rc_cpu0,
        "timeToRevokeMs": {"p50": rv.get("timeToRevokeP50Ms"), "p99": rv.get("timeToRevokeP99Ms"), "max": rv.get("timeToRevokeMaxMs")},
        "callStartToCommandVerifiedMs": {"n": len(cmdv), "p50": pct(cmdv, 50) and pct(cmdv, 50) * 1000, "p99": pct(cmdv, 99) and pct(cmdv, 99) * 1000,
                                         "max": cmdv and max(cmdv) * 1000},
        "callStartToBrokerRefusalMs": {"n": len(refused), "p50": pct(refused, 50) and pct(refused, 50) * 1000,
                                       "p99": pct(refused, 99) and pct(refused, 99) * 1000, "max": refused and max(refused) * 1000},
        "refusalsMissing": len(revoked) - len(refused),
        "sessionCutErrors": __import__("collections").Counter(str(x.get("sessionCutError"))[:200] for x in res if not x.get("sessionCut")),
        "callStartToBrokerRefusalHistogramS": __import__("collections").Counter(int(x) for x in refused),
    }
    if "error" in rv: bulk_out["error"] = rv
    json.dump(bulk_out, open(os.path.join(out, "bulk-revocation.json"), "w"), indent=2, sort_keys=True)
    m = lambda d: " / ".join("-" if d.get(k) in (None, []) else f"{d[k]:,.0f}" for k in ("p50", "p99", "max"))
    print()
    print(f"| bulk revocation of {bulk} of {devices} online devices, one call ({machine}) | p50 / p99 / max ms | n |")
    print("|---|---|---|")
    print(f"| the call's own time to revoke (`timeToRevoke*Ms`) | {m(bulk_out['timeToRevokeMs'])} | {len(res)} |")
    print(f"| call start → device verified the signed revoke command | {m(bulk_out['callStartToCommandVerifiedMs'])} | {len(cmdv)} |")
    print(f"| call start → broker refused the revoked certificate (simulator) | {m(bulk_out['callStartToBrokerRefusalMs'])} | {len(refused)} |")
    print(f"| wall time of the call | {(r1 - r0) * 1000:,.0f} | |")
    print(f"\nexit {int(revoke_status)}; {len(res)} revoked, CRL #{rv.get('crlNumber')}, broker reloaded: {rv.get('brokerReloaded')}, "
          f"commands sent {bulk_out['commandsSent']}, sessions cut {bulk_out['sessionsCut']}, controller CPU {rc_cpu1 - rc_cpu0:.1f} s; "
          f"{bulk_out['refusalsMissing']} revoked device(s) without an observed refusal.")
PY
echo "(JSON: bench/results/$out_name$([ "$bulk" -gt 0 ] && echo ", bench/results/bulk-revocation.json"))"
# Exit 1 unless every device rotated (campaign completed, all succeeded) and the revocation call exited 0
# (it exits 2 when a broker reload, command or session cut failed).
python3 - "$root/bench/results/$out_name" <<'PY' && [ "$revoke_status" = 0 ]
import json, sys
c = json.load(open(sys.argv[1]))
sys.exit(0 if c.get("state") == "completed" and c["counts"].get("succeeded", 0) == c.get("total") else 1)
PY
