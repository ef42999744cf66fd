# Shared by scripts/demo.sh, scripts/footprint.sh and the benchmark scripts: a broker, a controller
# and agents on this machine under one temporary directory. Source it, set
# LANYARD_BIN (the directory with the built executables) and call the
# functions in order. Everything started is stopped by fleet_cleanup.

fleet_pids=()

# fleet_check_bin WHO: the three executables exist in $LANYARD_BIN.
fleet_check_bin() {
  for b in lanyard-controller lanyard-agent lanyardctl; do
    [ -x "$LANYARD_BIN/$b" ] || { echo "$1: $LANYARD_BIN/$b is missing; build first (make build)" >&2; exit 1; }
  done
}
fleet_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# fleet_init DIR TTL: controller PKI and config, broker config on free ports
# (FLEET_BOOTSTRAP_MAX_CONNECTIONS raises the bootstrap listener's limit for benchmarks).
fleet_init() {
  FLEET_DIR="$1"
  local ttl="$2" root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  FLEET_OP_PORT="$(fleet_free_port)"; FLEET_BOOT_PORT="$(fleet_free_port)"; FLEET_API_PORT="$(fleet_free_port)"
  while [ "$FLEET_BOOT_PORT" = "$FLEET_OP_PORT" ]; do FLEET_BOOT_PORT="$(fleet_free_port)"; done
  while [ "$FLEET_API_PORT" = "$FLEET_OP_PORT" ] || [ "$FLEET_API_PORT" = "$FLEET_BOOT_PORT" ]; do FLEET_API_PORT="$(fleet_free_port)"; done
  # The HTTPS admin API listens on FLEET_API_PORT; lanyardctl without --server keeps using the local socket.
  "$LANYARD_BIN/lanyard-controller" init --dir "$FLEET_DIR/controller" --trust-domain demo.lanyard.local \
    --broker-port "$FLEET_OP_PORT" --class-ttl "$ttl" --api-port "$FLEET_API_PORT" | sed "s|$FLEET_DIR/||"
  sed -i "s|^# pid_file = .*|pid_file = $FLEET_DIR/broker/mosquitto.pid|" "$FLEET_DIR/controller/controller.conf"
  "$root/deploy/mosquitto/render.sh" --pki "$FLEET_DIR/controller/pki" --crl "$FLEET_DIR/controller/crl.pem" \
    --operational-port "$FLEET_OP_PORT" --bootstrap-port "$FLEET_BOOT_PORT" --out "$FLEET_DIR/broker" --bind 127.0.0.1 \
    --user "$(id -un)" --bootstrap-max-connections "${FLEET_BOOTSTRAP_MAX_CONNECTIONS:-1000}" >/dev/null
  export LANYARD_SOCKET="$FLEET_DIR/controller/admin.sock"
}

fleet_start_broker() {
  mosquitto -c "$FLEET_DIR/broker/mosquitto.conf" >"$FLEET_DIR/broker/console.log" 2>&1 &
  FLEET_BROKER_PID=$!
  fleet_pids+=("$FLEET_BROKER_PID")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$FLEET_OP_PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$FLEET_BOOT_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the broker did not start; see $FLEET_DIR/broker/" >&2
  return 1
}

fleet_start_controller() {
  "$LANYARD_BIN/lanyard-controller" run --config "$FLEET_DIR/controller/controller.conf" >"$FLEET_DIR/controller.log" 2>&1 &
  FLEET_CONTROLLER_PID=$!
  fleet_pids+=("$FLEET_CONTROLLER_PID")
  for _ in $(seq 100); do
    "$LANYARD_BIN/lanyardctl" --json status 2>/dev/null | grep -q '"brokerConnected" : true' && return 0
    sleep 0.1
  done
  echo "the controller did not come up; see $FLEET_DIR/controller.log" >&2
  return 1
}

# fleet_add_device ID: register with all five owners, approve, write the agent's config and token.
fleet_add_device() {
  local id="$1" dir="$FLEET_DIR/agents/$1"
  mkdir -p "$dir"
  "$LANYARD_BIN/lanyardctl" device add "$id" --class default --owner identity=pki-team --owner secarch=security-architecture \
    --owner ops=ot-operations --owner procurement=vendor-management --owner business=plant-manager
  "$LANYARD_BIN/lanyardctl" device approve "$id" --token-ttl 1h >"$dir/token" 2>/dev/null
  cp "$FLEET_DIR/controller/pki/bundle.pem" "$dir/bundle.pem"
  cat >"$dir/agent.conf" <<CONF
[agent]
device_id = $id
state_dir = state
trust_bundle = bundle.pem
token_file = token

[broker]
host = 127.0.0.1
port = $FLEET_OP_PORT
bootstrap_port = $FLEET_BOOT_PORT
CONF
}

# fleet_start_agent ID [BINARY]: runs the agent; its log is agents/ID.log, its pid in FLEET_AGENT_PID.
fleet_start_agent() {
  local id="$1" binary="${2:-$LANYARD_BIN/lanyard-agent}"
  (cd "$FLEET_DIR/agents/$id" && exec "$binary" run --config agent.conf) >"$FLEET_DIR/agents/$id.log" 2>&1 &
  FLEET_AGENT_PID=$!
  fleet_pids+=("$FLEET_AGENT_PID")
}

fleet_cleanup() {
  for pid in "${fleet_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f "tail -n \+1 -F $FLEET_DIR" 2>/dev/null || true
  wait 2>/dev/null || true
}

# fleet_proc_usage PID -> "cpu_seconds rss_kib hwm_kib" (user + system CPU, VmRSS, VmHWM).
fleet_proc_usage() {
  local tck; tck="$(getconf CLK_TCK)"
  awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f ", ($12 + $13) / t }' "/proc/$1/stat"
  awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {printf "%d %d\n", r, h}' "/proc/$1/status"
}

# fleet_wait_simulator WHO PID READY_FILE LOG: until lanyard-fleetsim writes READY_FILE
# (its whole fleet enrolled and connected); exit 1 with its log's tail if it stops first.
fleet_wait_simulator() {
  while [ ! -e "$3" ]; do
    if ! kill -0 "$2" 2>/dev/null; then echo "$1: the simulator stopped before the fleet was online:" >&2; tail -20 "$4" >&2; exit 1; fi
    sleep 1
  done
}

# fleet_start_for_simulator DIR DEVICES [MULTIPLEX]: PKI, broker and controller under DIR
# (24 h TTL) sized for DEVICES simulated devices (file descriptors, bootstrap
# connections); sets FLEET_CONTROLLER_PID and FLEET_BROKER_PID like the starters it calls.
# MULTIPLEX > 0 (lanyard-fleetsim mode B): the broker also gets the benchmark-only
# multiplexing listener (bench/broker/add-bench-listener.sh) on FLEET_MUX_PORT.
fleet_start_for_simulator() {
  ulimit -n "$(ulimit -Hn)"
  FLEET_BOOTSTRAP_MAX_CONNECTIONS=$(( $2 + 100 ))
  fleet_init "$1" 24h >/dev/null
  if [ "${3:-0}" -gt 0 ]; then
    local root; root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    FLEET_MUX_PORT="$(fleet_free_port)"
    "$root/bench/broker/add-bench-listener.sh" "$FLEET_DIR/broker" "$FLEET_DIR/controller/pki" "$FLEET_MUX_PORT"
  fi
  fleet_start_broker
  fleet_start_controller
}

# fleet_stop_simulator PID STOP_FILE: ask lanyard-fleetsim to finish (its stop file), then make sure.
fleet_stop_simulator() {
  [ -n "$1" ] || return 0
  touch "$2"; sleep 1; kill "$1" 2>/dev/null || true
}
