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

MODE=full DURATION=10 REPS=3 OUT=$BENCH/replicas
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke DURATION=2 REPS=1 OUT=$BENCH/replicas.smoke ;;
  -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "usage: bash bench/replicas.sh [--smoke]" >&2; exit 2 ;;
esac
CONNECTIONS=${BENCH_CONNECTIONS:-64}

LOG_TAG=replicas
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
need_tools nginx:nginx-light wrk:wrk redis-server:redis-server

if [[ $MODE == smoke ]]; then PROFILE=smoke; else PROFILE=release; fi
BIN=$ROOT/target/$PROFILE/mcp-auth-gateway
log "building the $PROFILE binary"
cargo build --profile "$PROFILE" --quiet

WORK=$(mktemp -d /tmp/mcp-gw-replicas.XXXXXX)
chmod 755 "$WORK"
fixtures
read -r REDIS_PORT LB_PORT <<<"$(free_ports 2)"
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
  local config=$1 i
  REPLICA_PIDS=() REPLICA_ADDRS=()
  for i in 1 2 3; do
    start_gateway "$config" "$WORK/replica$i.log" --workers 1
    REPLICA_PIDS+=("$GW_PID")
    REPLICA_ADDRS+=("$GW_ADDR")
  done
}
stop_replicas() {
  local p
  for p in "${REPLICA_PIDS[@]}"; do stop_pid "$p"; done
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
stop_lb() { stop_pid "$LB_PID"; }

results=()
for rep in $(seq "$REPS"); do
  for name in none local shared; do
    start_replicas "$(variant_config "$name")"
    start_lb
    # Warm up, and prove the route answers 200 through all three replicas.
    for _ in 1 2 3; do warm "http://127.0.0.1:$LB_PORT/mcp"; done
    json=$(wrk_json "http://127.0.0.1:$LB_PORT/mcp" "$CONNECTIONS" "$DURATION")
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
