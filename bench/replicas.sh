#!/usr/bin/env bash
# Load test across three gateway replicas behind nginx (round robin), sharing
# one Redis, in front of the benchmark's static nginx upstream.
#
#   bash bench/replicas.sh             # 10 s per run, 3 repetitions
#   bash bench/replicas.sh --smoke     # 2 s per run, 1 repetition (checks the script)
#
# Three configurations, each run with wrk -c64 through the load balancer:
#   none    no rate limit
#   local   per_principal (and a per-tool limit) per replica
#   shared  the same limits shared through Redis (shared_state)
# Limits are set far above what the run can reach, so every request is
# admitted and the difference is the cost of the check. Writes
# bench/replicas.json and bench/replicas.md (smoke: bench/replicas.smoke.*).
# Installs nginx, wrk and redis-server with apt-get when missing; every
# process it starts is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
BIN=$ROOT/target/release/mcp-auth-gateway

MODE=full DURATION=10 REPS=3 OUT=$BENCH/replicas
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke DURATION=2 REPS=1 OUT=$BENCH/replicas.smoke ;;
  -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "usage: bash bench/replicas.sh [--smoke]" >&2; exit 2 ;;
esac
CONNECTIONS=${BENCH_CONNECTIONS:-64}

log() { printf '[replicas %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

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

need_apt=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  log "installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building the release binary"
cargo build --release --quiet

WORK=$(mktemp -d /tmp/mcp-gw-replicas.XXXXXX)
chmod 755 "$WORK"
free_ports() {
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r UP_PORT PROXY_PORT SSE_PORT REDIS_PORT LB_PORT <<<"$(free_ports 5)"

# The upstream and the gateway's route config come from the main benchmark's
# generator (its "proxy" nginx is not used here).
python3 "$BENCH/gen_config.py" --dir "$WORK" --upstream-port "$UP_PORT" --proxy-port "$PROXY_PORT" \
  --sse-port "$SSE_PORT" --nofile 16384
expect() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/expected.json" "$1"; }
TOKEN=$("$BIN" token --key "$WORK/key.pem" --jwks-out "$WORK/gateway/jwks.json" --issuer "$(expect issuer)" \
  --aud "$(expect audience)" --scope "$(expect scopes)" --sub bench --ttl 3h)
export BENCH_TOKEN=$TOKEN

"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/upstream.conf" &
pids+=("$!")
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
pids+=("$!")

# One gateway config per configuration: the generated routes plus limits.
variant_config() { # name -> path of its gateway.yaml (beside jwks.json)
  local name=$1 file=$WORK/gateway/$1.yaml
  cp "$WORK/gateway/gateway.yaml" "$file"
  case $name in
    none) ;;
    local | shared)
      cat >>"$file" <<EOF
rate_limits:
  per_principal: 10000000/s burst 10000000
  tools: {tool_007: 10000000/s burst 10000000}
EOF
      [[ $name == shared ]] && printf 'shared_state:\n  redis: redis://127.0.0.1:%s\n' "$REDIS_PORT" >>"$file"
      ;;
  esac
  "$BIN" check --config "$file" >/dev/null
  echo "$file"
}

REPLICA_PIDS=() REPLICA_ADDRS=()
start_replicas() {
  local config=$1 i line
  REPLICA_PIDS=() REPLICA_ADDRS=()
  for i in 1 2 3; do
    "$BIN" --config "$config" --workers 1 2>"$WORK/replica$i.log" &
    REPLICA_PIDS+=("$!")
    pids+=("$!")
  done
  for i in 1 2 3; do
    line=""
    for _ in $(seq 100); do
      line=$(grep -o 'listening on http://[0-9.:]*' "$WORK/replica$i.log" | head -1 || true)
      [[ -n $line ]] && break
      sleep 0.1
    done
    [[ -n $line ]] || { log "replica $i did not start"; tail "$WORK/replica$i.log" >&2; exit 1; }
    REPLICA_ADDRS+=("${line#listening on http://}")
  done
}
stop_replicas() {
  local p
  for p in "${REPLICA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

LB_PID=""
start_lb() {
  local servers="" a
  for a in "${REPLICA_ADDRS[@]}"; do servers+="    server $a;"$'\n'; done
  mkdir -p "$WORK/lb"
  cat >"$WORK/lb/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/lb/nginx.pid;
error_log $WORK/lb/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/lb; proxy_temp_path $WORK/lb; fastcgi_temp_path $WORK/lb;
  uwsgi_temp_path $WORK/lb; scgi_temp_path $WORK/lb;
  keepalive_requests 10000000;
  upstream replicas {
$servers    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$LB_PORT;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  "$NGINX" -p "$WORK/lb" -e "$WORK/lb/error.log" -c "$WORK/lb/nginx.conf" &
  LB_PID=$!
  pids+=("$LB_PID")
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$LB_PORT/readyz" && return 0
    sleep 0.1
  done
  log "the load balancer did not start"
  exit 1
}
stop_lb() { kill "$LB_PID" 2>/dev/null || true; wait "$LB_PID" 2>/dev/null || true; }

results=()
for rep in $(seq "$REPS"); do
  for name in none local shared; do
    start_replicas "$(variant_config "$name")"
    start_lb
    # Warm up, and prove the route answers 200 through all three replicas.
    for _ in 1 2 3; do
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$LB_PORT/mcp" \
        -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -H 'accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_007","arguments":{}}}')
      [[ $code == 200 ]] || { log "$name: warm-up request got $code"; exit 1; }
    done
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency -s "$BENCH/wrk.lua" \
      "http://127.0.0.1:$LB_PORT/mcp" 2>&1)
    json=$(grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //')
    [[ -n $json ]] || { log "$name: wrk printed no summary: $out"; exit 1; }
    bad=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(sum(d[k] for k in d if k.startswith("err_")))' "$json")
    [[ $bad == 0 ]] || { log "$name: wrk reported $bad errors (non-2xx or socket): $json"; exit 1; }
    log "rep $rep $name: $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.0f req/s, p50 %d us" % (d["rps"], d["p50_us"]))' "$json")"
    results+=("{\"rep\":$rep,\"config\":\"$name\",\"wrk\":$json}")
    stop_lb
    stop_replicas
  done
done

python3 - "$OUT" "$MODE" "$DURATION" "$REPS" "$CONNECTIONS" "${results[@]}" <<'EOF'
import json, statistics, sys, datetime, os
out, mode, duration, reps, conns, *runs = sys.argv[1:]
runs = [json.loads(r) for r in runs]
def median(config, key):
    return statistics.median(r["wrk"][key] for r in runs if r["config"] == config)
rps = {c: median(c, "rps") for c in ("none", "local", "shared")}
p50 = {c: median(c, "p50_us") for c in ("none", "local", "shared")}
doc = {
    "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "mode": mode, "duration_s": int(duration), "repetitions": int(reps),
    "connections": int(conns), "replicas": 3, "workers_per_replica": 1,
    "cpus": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3],
    "rps": rps, "p50_us": p50,
    "shared_vs_local_rps_ratio": round(rps["shared"] / rps["local"], 3),
    "local_vs_none_rps_ratio": round(rps["local"] / rps["none"], 3),
    "runs": runs,
}
json.dump(doc, open(out + ".json", "w"), indent=1)
md = f"""# Three replicas behind nginx (`bench/replicas.sh`, {mode})

{doc['when']}; {doc['cpus']} CPUs shared by everything (wrk, nginx LB, 3 replicas x 1 worker,
Redis, the nginx upstream); wrk -c{conns}, {duration} s per run, median of {reps}.

| configuration | req/s | p50 µs |
|---|---:|---:|
| no rate limit | {rps['none']:.0f} | {p50['none']:.0f} |
| per-replica limits (`local`) | {rps['local']:.0f} | {p50['local']:.0f} |
| limits shared in Redis (`shared_state`) | {rps['shared']:.0f} | {p50['shared']:.0f} |

shared / local throughput: **{doc['shared_vs_local_rps_ratio']}**; local / none: {doc['local_vs_none_rps_ratio']}.
"""
open(out + ".md", "w").write(md)
print(md)
EOF
