# Shared by bench/replicas.sh and bench/tracing.sh (sourced, not run): the
# process list stopped on exit, tool installs, free ports, the fixtures of
# bench/gen_config.py (the static nginx upstream, the gateway's routes and a
# token), starting a gateway, and one wrk run as JSON.
# Expects: ROOT, BENCH, BIN, LOG_TAG.

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }

pids=()
cleanup() {
  local p
  # SIGTERM: nginx's master then stops its workers (SIGKILL would orphan them).
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_tools() { # apt packages for the commands given as cmd:package
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${pair%%:*} ]] || need+=("${pair#*:}")
  done
  ((${#need[@]})) || return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  log "installing ${need[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

free_ports() { # N free loopback ports
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# Generates the fixtures into $WORK and starts the static nginx upstream;
# sets NGINX, UP_PORT, TOKEN (exported as BENCH_TOKEN for wrk.lua).
fixtures() {
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  local proxy_port sse_port
  read -r UP_PORT proxy_port sse_port <<<"$(free_ports 3)"
  python3 "$BENCH/gen_config.py" --dir "$WORK" --upstream-port "$UP_PORT" --proxy-port "$proxy_port" \
    --sse-port "$sse_port" --nofile 16384
  local expect='import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])'
  TOKEN=$("$BIN" token --key "$WORK/key.pem" --jwks-out "$WORK/gateway/jwks.json" \
    --issuer "$(python3 -c "$expect" "$WORK/expected.json" issuer)" \
    --aud "$(python3 -c "$expect" "$WORK/expected.json" audience)" \
    --scope "$(python3 -c "$expect" "$WORK/expected.json" scopes)" --sub bench --ttl 3h)
  export BENCH_TOKEN=$TOKEN
  "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/upstream.conf" &
  pids+=("$!")
}

# Starts a gateway with config $1 (extra args after), logging to $2; sets
# GW_PID and GW_ADDR.
start_gateway() {
  local config=$1 logfile=$2 line=""
  shift 2
  "$BIN" --config "$config" "$@" 2>"$logfile" &
  GW_PID=$!
  pids+=("$GW_PID")
  for _ in $(seq 100); do
    line=$(grep -o 'listening on http://[0-9.:]*' "$logfile" | head -1 || true)
    [[ -n $line ]] && break
    sleep 0.1
  done
  [[ -n $line ]] || { log "the gateway did not start"; tail "$logfile" >&2; exit 1; }
  GW_ADDR=${line#listening on http://}
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Checks that $1 answers the benchmark's tools/call with 200.
warm() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$1" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_007","arguments":{}}}')
  [[ $code == 200 ]] || { log "$1: warm-up request got $code"; exit 1; }
}

# One wrk run (url, connections, seconds): prints its WRKJSON summary;
# exits on any error or non-2xx answer.
wrk_json() {
  local out json bad
  out=$(wrk -t"$(($2 > 1 ? 2 : 1))" -c"$2" -d"$3s" --timeout 5s --latency -s "$BENCH/wrk.lua" "$1" 2>&1)
  json=$(grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //')
  [[ -n $json ]] || { log "wrk printed no summary: $out"; exit 1; }
  bad=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(sum(d[k] for k in d if k.startswith("err_")))' "$json")
  [[ $bad == 0 ]] || { log "wrk reported $bad errors (non-2xx or socket): $json"; exit 1; }
  echo "$json"
}
