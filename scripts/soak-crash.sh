#!/usr/bin/env bash
# Crash-safety soak (outside CI): against one local fleet, kill -9 agents at a
# random step of a renewal, restart them without the crash point, and check
# that each comes back with a matching key and certificate that verifies to
# the bundle and is valid now, connects, and renews again.
#   ./scripts/soak-crash.sh [TRIALS]     (default 200)
#   SOAK_DEVICES  agents crashing in parallel (default 4)
#   SOAK_TTL      certificate lifetime (default 20s; a trial lasts about 2/3 of it:
#                 shorter ones leave too little slack between a restart and expiry)
#   KEEP=1        keep the temporary directory
# Prints trials, failures and recoveries per crash point; exits 1 on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${LANYARD_BIN:-$(cd "$root" && swift build --show-bin-path)}"
trials="${1:-200}"
devices="${SOAK_DEVICES:-4}"
ttl="${SOAK_TTL:-20s}"
points=(after-keygen after-publish after-reply mid-write after-swap)

work="$(mktemp -d /tmp/lanyard-soak.XXXXXX)"
LANYARD_BIN="$bin"
# shellcheck source=lib/local-fleet.sh
source "$root/scripts/lib/local-fleet.sh"
fleet_check_bin soak
workers=()
cleanup() {
  for w in "${workers[@]}"; do kill "$w" 2>/dev/null || true; done
  # Agents are children of the workers: stop them by their recorded pids.
  for f in "$work"/agents/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  fleet_cleanup
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

# status ID FIELD: one field of `lanyard-agent status --json`.
status() {
  (cd "$work/agents/$1" && "$bin/lanyard-agent" status --json --config agent.conf 2>/dev/null || true) |
    python3 -c "import json,sys; d=json.load(sys.stdin); v=d.get('$2'); print('' if v is None else str(v).lower())" 2>/dev/null || true
}

# pair_ok ID: the current key matches the leaf, the chain verifies to the bundle, and the leaf is valid now.
pair_ok() {
  local dir="$work/agents/$1" gen
  gen="$dir/state/$(readlink "$dir/state/current" 2>/dev/null)" || return 1
  [ -f "$gen/key.pem" ] && [ -f "$gen/chain.pem" ] || return 1
  [ "$(openssl pkey -in "$gen/key.pem" -pubout 2>/dev/null)" = "$(openssl x509 -in "$gen/chain.pem" -noout -pubkey 2>/dev/null)" ] || return 1
  openssl verify -CAfile "$dir/bundle.pem" -untrusted "$gen/chain.pem" "$gen/chain.pem" >/dev/null 2>&1 || return 1
  openssl x509 -in "$gen/chain.pem" -noout -checkend 0 >/dev/null 2>&1
}

start_agent() { # ID [POINT]: in the background, pid in $work/agents/ID.pid
  local id="$1" point="${2:-}"
  if [ -n "$point" ]; then
    (cd "$work/agents/$id" && LANYARD_TEST_CRASH_AT="$point" exec "$bin/lanyard-agent" run --config agent.conf) >>"$work/agents/$id.log" 2>&1 &
  else
    (cd "$work/agents/$id" && exec "$bin/lanyard-agent" run --config agent.conf) >>"$work/agents/$id.log" 2>&1 &
  fi
  echo $! >"$work/agents/$id.pid"
}

# worker ID COUNT: COUNT trials on one device; one result line per trial.
worker() {
  local id="$1" count="$2" results="$work/results-$1" i point pid rc before ok
  for ((i = 0; i < count; i++)); do
    point="${points[RANDOM % ${#points[@]}]}"
    start_agent "$id" "$point"; pid="$(cat "$work/agents/$id.pid")"
    # The crash comes at the next renewal: at most a lifetime away.
    rc=timeout
    for _ in $(seq 300); do
      if ! kill -0 "$pid" 2>/dev/null; then rc=0; { wait "$pid"; } 2>/dev/null || rc=$?; break; fi
      sleep 0.1
    done
    if [ "$rc" != 137 ]; then
      kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
      echo "$point failure no-crash(status=$rc)" >>"$results"; continue
    fi
    before="$(status "$id" renewals)"
    start_agent "$id"; pid="$(cat "$work/agents/$id.pid")"
    ok=0
    for _ in $(seq 300); do
      if [ "$(status "$id" connected)" = true ] && [ "$(status "$id" renewals)" -gt "${before:-0}" ] 2>/dev/null && pair_ok "$id"; then ok=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$ok" = 1 ]; then echo "$point recovered" >>"$results"; else echo "$point failure no-recovery" >>"$results"; fi
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
}

echo "soak: $trials trials, $devices devices, ttl $ttl, in $work"
fleet_init "$work" "$ttl" >/dev/null
fleet_start_broker
fleet_start_controller
started=$(date +%s)
for ((d = 1; d <= devices; d++)); do
  id="soak-$d"
  fleet_add_device "$id" >/dev/null
  printf '\n[renewal]\nrequest_timeout = 3s\n' >>"$work/agents/$id/agent.conf"
  start_agent "$id"
done
for ((d = 1; d <= devices; d++)); do
  for _ in $(seq 200); do [ "$(status "soak-$d" connected)" = true ] && break; sleep 0.1; done
  kill "$(cat "$work/agents/soak-$d.pid")"; wait "$(cat "$work/agents/soak-$d.pid")" 2>/dev/null || true
done
for ((d = 1; d <= devices; d++)); do
  share=$((trials / devices + (d <= trials % devices ? 1 : 0)))
  # stderr off: bash reports every agent it reaps after SIGKILL as "Killed".
  worker "soak-$d" "$share" 2>/dev/null &
  workers+=($!)
done
for w in "${workers[@]}"; do wait "$w" || true; done
workers=()

cat "$work"/results-* >"$work/results" 2>/dev/null || true
total=$(wc -l <"$work/results")
failures=$(grep -c failure "$work/results" || true)
recoveries=$(grep -c recovered "$work/results" || true)
echo "trials $total  failures $failures  recoveries $recoveries  ($(( $(date +%s) - started )) s)"
for p in "${points[@]}"; do
  printf '  %-14s trials %3d  recovered %3d\n' "$p" "$(grep -c "^$p " "$work/results" || true)" "$(grep -c "^$p recovered" "$work/results" || true)"
done
grep failure "$work/results" | sort | uniq -c | sed 's/^/  /' || true
[ "$failures" -eq 0 ] || { KEEP=1; exit 1; }
