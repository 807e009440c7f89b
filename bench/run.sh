#!/usr/bin/env bash
# End-to-end benchmark of mcp-auth-gateway against direct access and nginx.
#
#   bash bench/run.sh            # full: 10 s per load run, 3 repetitions, 10k SSE streams
#   bash bench/run.sh --smoke    # CI: 2 s per run, 1 repetition, 200 streams; exits 1 on any failure
#
# Full mode writes bench/results.json and bench/results.md; smoke mode writes
# bench/results.smoke.json and bench/results.smoke.md (so it never overwrites
# the real numbers). Installs nginx and wrk with apt-get when missing and builds
# the release binary (cargo decides whether it is stale). Every server it starts
# runs from a temporary directory, on free loopback ports, and is stopped by PID
# on exit. See bench/README.md for what each number means.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench

MODE=full
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke ;;
  -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: bash bench/run.sh [--smoke]" >&2; exit 2 ;;
esac

# Knobs (environment overrides for experiments; the defaults are the documented modes).
if [[ $MODE == smoke ]]; then
  DURATION=${BENCH_DURATION:-2} REPS=${BENCH_REPS:-1} SSE_N=${BENCH_SSE_N:-200}
  TTFE_N=${BENCH_TTFE_N:-10} HOLD=${BENCH_HOLD:-2} WARMUP=${BENCH_WARMUP:-0}
  OUT=$BENCH/results.smoke
else
  DURATION=${BENCH_DURATION:-10} REPS=${BENCH_REPS:-3} SSE_N=${BENCH_SSE_N:-10000}
  TTFE_N=${BENCH_TTFE_N:-50} HOLD=${BENCH_HOLD:-5} WARMUP=${BENCH_WARMUP:-1}
  OUT=$BENCH/results
fi
# Smoke mode builds the `smoke` profile (no LTO): it checks the script, not the numbers.
if [[ $MODE == smoke ]]; then PROFILE=smoke; else PROFILE=release; fi
BIN=$ROOT/target/$PROFILE/mcp-auth-gateway
START_TS=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
failures=()
fail() { log "FAIL: $*"; failures+=("$*"); }

# --- processes we start, stopped by PID on exit ------------------------------
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -n ${WORK:-} && -d $WORK && -z ${BENCH_KEEP_WORK:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget_pid() { # after it has been waited for: never signal a reaped PID
  local q keep=()
  for q in "${pids[@]}"; do [[ $q == "$1" ]] || keep+=("$q"); done
  pids=("${keep[@]}")
}
stop_pid() { # stop one of our processes and forget it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# --- tools -------------------------------------------------------------------
need_apt=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if ((${#need_apt[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  log "installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  for pkg in "${need_apt[@]}"; do
    if [[ $pkg == nginx ]]; then
      # nginx-light is enough (core + proxy); newer Debian releases only ship nginx.
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null ||
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
    else
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
    fi
  done
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

log "building the $PROFILE binary (cargo build --profile $PROFILE --quiet)"
BUILD_T0=$(date +%s)
BINARY_FRESH=true
if ! cargo build --profile "$PROFILE" --quiet; then
  if [[ -x $BIN ]]; then
    fail "cargo build --profile $PROFILE failed; benchmarking the existing (possibly stale) binary"
    BINARY_FRESH=false
  else
    echo "cargo build --profile $PROFILE failed and there is no binary" >&2
    exit 1
  fi
fi
BUILD_S=$(($(date +%s) - BUILD_T0))
log "build step took ${BUILD_S}s"

# 10k streams through the gateway need 2 descriptors each (client side + upstream side).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

sys_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6; exit}' /proc/stat; } # busy total
# How busy the machine is before we start anything: other work here is noise in every number.
read -r bb0 bt0 <<<"$(sys_ticks)"
sleep 2
read -r bb1 bt1 <<<"$(sys_ticks)"
BACKGROUND_BUSY=$(((bb1 - bb0) * 100 / (bt1 - bt0 > 0 ? bt1 - bt0 : 1)))
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
if ((BACKGROUND_BUSY > 15)); then
  log "WARNING: the machine is already ${BACKGROUND_BUSY}% busy (load $LOADAVG) before the benchmark; expect noisy numbers"
fi

WORK=$(mktemp -d /tmp/mcp-gw-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as an unprivileged user and must read list.json
log "background busy ${BACKGROUND_BUSY}% (load $LOADAVG); mode=$MODE duration=${DURATION}s reps=$REPS sse_streams=$SSE_N ttfe_samples=$TTFE_N nofile=$NOFILE work=$WORK"

free_ports() { # N free loopback ports (bound together, then released)
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r UP_PORT PROXY_PORT <<<"$(free_ports 2)"

# --- SSE upstream (Python, port 0) ---------------------------------------------
python3 "$BENCH/sse_upstream.py" --port 0 --ready-file "$WORK/sse.port" --max-seconds 3600 \
  >"$WORK/sse_upstream.log" 2>&1 &
SSE_UP_PID=$!
pids+=("$SSE_UP_PID")
for _ in $(seq 100); do [[ -s $WORK/sse.port ]] && break; sleep 0.1; done
[[ -s $WORK/sse.port ]] || { echo "sse_upstream.py did not start" >&2; cat "$WORK/sse_upstream.log" >&2; exit 1; }
SSE_PORT=$(<"$WORK/sse.port")

# --- fixtures: nginx.conf, gateway.yaml, token -------------------------------
gen() { python3 "$BENCH/gen_config.py" --dir "$WORK" --upstream-port "$UP_PORT" --proxy-port "$PROXY_PORT" \
  --sse-port "$SSE_PORT" --nofile "$NOFILE" "$@"; }
gen
expect() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/expected.json" "$1"; }
TOKEN=$("$BIN" token --key "$WORK/key.pem" --jwks-out "$WORK/gateway/jwks.json" --issuer "$(expect issuer)" \
  --aud "$(expect audience)" --scope "$(expect scopes)" --sub bench --ttl 3h)
export BENCH_TOKEN=$TOKEN

# Builds without limits.max_streams_per_principal reject the key: drop it for them.
STREAM_CAP=true
if ! "$BIN" check --config "$WORK/gateway/gateway.yaml" >"$WORK/check.log" 2>&1; then
  STREAM_CAP=false
  gen --no-stream-cap
  "$BIN" check --config "$WORK/gateway/gateway.yaml" >"$WORK/check.log" 2>&1 ||
    { fail "gateway check rejects the generated config"; cat "$WORK/check.log" >&2; exit 1; }
fi

# --- nginx: upstream + plain reverse proxy -------------------------------------
# Two processes, as the gateway and its upstream are (see bench/gen_config.py).
NGINX_PIDS=()
for conf in upstream proxy; do
  "$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/$conf.conf"
  "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/$conf.conf" &
  NGINX_PIDS+=("$!")
  pids+=("$!")
done

# --- gateway -------------------------------------------------------------------
GW_PID="" GW_ADDR=""
start_gateway() {
  : >"$WORK/gateway.log"
  # BENCH_WORKERS sets --workers; unset, the gateway uses one per CPU.
  "$BIN" --config "$WORK/gateway/gateway.yaml" ${BENCH_WORKERS:+--workers "$BENCH_WORKERS"} 2>>"$WORK/gateway.log" &
  GW_PID=$!
  pids+=("$GW_PID")
  local line=""
  for _ in $(seq 100); do
    line=$(grep -o 'listening on http://[0-9.:]*' "$WORK/gateway.log" | head -1 || true)
    [[ -n $line ]] && break
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $line ]]; then
    fail "gateway did not start"
    tail -20 "$WORK/gateway.log" >&2
    return 1
  fi
  GW_ADDR=${line#listening on http://}
  for _ in $(seq 100); do
    curl -sf "http://$GW_ADDR/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "gateway never became ready (/readyz)"
  return 1
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# utime+stime of a process and (for nginx) its workers, in clock ticks.
ticks() {
  local p t=0 f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${f% *} + ${f#* }))
  done
  echo "$t"
}
nginx_pids() { # both masters and their workers
  local p
  for p in "${NGINX_PIDS[@]}"; do echo "$p"; pgrep -P "$p" || true; done
}
CLK_TCK=$(getconf CLK_TCK)

for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$UP_PORT/mcp" -X POST -d '{}' && break; sleep 0.1; done
start_gateway || exit 1
GW_RSS_IDLE_KB=$(rss_kb "$GW_PID")

# --- sanity checks: each configuration answers 200 with the expected body -------
check() { # name url method expect-substring
  local name=$1 url=$2 method=$3 want=$4 body code
  if [[ $method == tools/list ]]; then
    body='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
  else
    body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_007","arguments":{"message":"hello from wrk"}}}'
  fi
  code=$(curl -s -o "$WORK/check.out" -w '%{http_code}' -X POST "$url" -d "$body" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' --max-time 5 || true)
  if [[ $code != 200 ]] || ! grep -q "$want" "$WORK/check.out"; then
    fail "$name: sanity request to $url got HTTP $code: $(head -c 300 "$WORK/check.out" 2>/dev/null)"
    return 1
  fi
}
count_tools() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["result"]["tools"]))' "$1" 2>/dev/null || echo -1; }

# name | url | JSON-RPC method. The tools/list row through nginx is the baseline for the filter.
CONFIGS=(
  "direct|http://127.0.0.1:$UP_PORT/mcp|tools/call"
  "nginx|http://127.0.0.1:$PROXY_PORT/mcp|tools/call"
  "gateway|http://$GW_ADDR/mcp|tools/call"
  "nginx-list|http://127.0.0.1:$PROXY_PORT/list|tools/list"
  "gateway+filter|http://$GW_ADDR/list|tools/list"
)
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r name url method <<<"$c"
  if [[ $method == tools/list ]]; then check "$name" "$url" "$method" '"tools"' || continue
  else check "$name" "$url" "$method" '"result"' || continue; fi
done
# The gateway really enforces: no token -> 401; a tool the token may not call -> 403.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$GW_ADDR/mcp" -H 'Content-Type: application/json' \
  -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' || true)
[[ $code == 401 ]] || fail "gateway without a token answered $code, expected 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$GW_ADDR/mcp" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_002","arguments":{}}}' || true)
[[ $code == 403 ]] || fail "gateway answered $code for a tool needing bench:admin, expected 403"
curl -s -o "$WORK/list.out" -X POST "http://$GW_ADDR/list" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}' || true
LIST_SEEN=$(count_tools "$WORK/list.out")
[[ $LIST_SEEN == "$(expect list_visible)" ]] ||
  fail "gateway+filter returned $LIST_SEEN tools, expected $(expect list_visible) of $(expect list_tools)"

# --- load runs -------------------------------------------------------------------
RUNS=$WORK/runs.jsonl
: >"$RUNS"
child_cpu_delta() { # seconds of children CPU (user+sys) between times.0 and times.1
  awk 'function sec(x) { split(x, a, "m"); return a[1] * 60 + substr(a[2], 1, length(a[2]) - 1) }
       FNR == 2 { t = sec($1) + sec($2); if (NR == FNR) t0 = t; else t1 = t }
       END { printf "%.3f", t1 - t0 }' "$WORK/times.0" "$WORK/times.1"
}
wrk_run() { # name url method conns threads duration rep record(0/1)
  local name=$1 url=$2 method=$3 c=$4 t=$5 d=$6 rep=$7 record=$8
  local is_gw=false gw0=0 gw1=0 ng0 ng1 ngp sys0 sys1 t0 t1 wpid spid="" rc=0 json bad
  local out=$WORK/wrk.out rss_file=$WORK/rss.max
  [[ $name == gateway* ]] && is_gw=true
  echo 0 >"$rss_file"
  $is_gw && gw0=$(ticks "$GW_PID")
  mapfile -t ngp < <(nginx_pids)
  ng0=$(ticks "${ngp[@]}")
  sys0=$(sys_ticks)
  # `times` (a builtin, so no subshell) gives reaped children's CPU: that is wrk's share.
  times >"$WORK/times.0"
  t0=$(date +%s.%N)
  BENCH_METHOD=$method timeout $((d + 30)) wrk -t"$t" -c"$c" -d"${d}s" --timeout 5s --latency \
    -s "$BENCH/wrk.lua" "$url" >"$out" 2>&1 &
  wpid=$!
  if $is_gw; then # peak gateway RSS while wrk runs
    (m=0; while kill -0 "$wpid" 2>/dev/null; do r=$(rss_kb "$GW_PID"); ((r > m)) && m=$r; sleep 0.5; done
     echo "$m" >"$rss_file") &
    spid=$!
  fi
  wait "$wpid" || rc=$?
  [[ -z $spid ]] || wait "$spid" || true
  t1=$(date +%s.%N)
  times >"$WORK/times.1"
  $is_gw && gw1=$(ticks "$GW_PID")
  ng1=$(ticks "${ngp[@]}")
  sys1=$(sys_ticks)
  ((record)) || return 0
  json=$(grep '^WRKJSON ' "$out" | sed 's/^WRKJSON //' || true)
  if [[ $rc -ne 0 || -z $json ]]; then
    fail "$name c=$c rep=$rep: wrk failed (rc=$rc): $(tail -5 "$out" | tr '\n' ' ')"
    json=null
  else
    bad=$(python3 -c 'import json,sys
w=json.loads(sys.argv[1]); b={k:v for k,v in w.items() if k.startswith("err_") and v}
print(b if b or not w["requests"] else "")' "$json")
    [[ -z $bad ]] || fail "$name c=$c rep=$rep: wrk reported errors (err_status = non-2xx/3xx): $bad"
  fi
  printf '{"config":"%s","method":"%s","conns":%d,"threads":%d,"rep":%d,"wrk":%s,"t0":%s,"t1":%s,"clk_tck":%d,"gateway_ticks":[%d,%d],"nginx_ticks":[%d,%d],"sys_ticks":[%s,%s],"gateway_rss_peak_kb":%d,"wrk_cpu_s":%s}\n' \
    "$name" "$method" "$c" "$t" "$rep" "$json" "$t0" "$t1" "$CLK_TCK" "$gw0" "$gw1" "$ng0" "$ng1" \
    "$(tr ' ' , <<<"$sys0")" "$(tr ' ' , <<<"$sys1")" "$(<"$rss_file")" "$(child_cpu_delta)" >>"$RUNS"
  log "$(python3 -c 'import json,sys
w=json.loads(sys.argv[1])
print("%-15s c=%-3s rep=%s " % tuple(sys.argv[2:5]) + ("n/a" if not w else "p50=%dus p99=%dus %.0f req/s" % (w["p50_us"], w["p99_us"], w["rps"])))' "$json" "$name" "$c" "$rep")"
}

if ((WARMUP > 0)); then
  log "warm-up (${WARMUP}s per configuration, not recorded)"
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name url method <<<"$c"
    wrk_run "$name" "$url" "$method" 64 2 "$WARMUP" 0 0
  done
fi
# Repetitions are interleaved (rep 1 of every configuration, then rep 2, ...)
# so slow drift on a shared machine hits every configuration alike.
for rep in $(seq "$REPS"); do
  for ct in "1 1" "64 2"; do
    read -r conns threads <<<"$ct"
    for c in "${CONFIGS[@]}"; do
      IFS='|' read -r name url method <<<"$c"
      wrk_run "$name" "$url" "$method" "$conns" "$threads" "$DURATION" "$rep" 1
    done
  done
done
GW_RSS_AFTER_LOAD_KB=$(rss_kb "$GW_PID")

# --- SSE: time to first event, then N idle streams, on a fresh gateway --------------
stop_pid "$GW_PID"
start_gateway || exit 1
SSE_GW_RSS_IDLE_KB=$(rss_kb "$GW_PID")
TTFE=$WORK/ttfe.jsonl
: >"$TTFE"
for rep in $(seq "$REPS"); do
  for target in direct gateway; do
    if [[ $target == direct ]]; then url=http://127.0.0.1:$SSE_PORT/sse; else url=http://$GW_ADDR/sse; fi
    if out=$(timeout 120 python3 "$BENCH/sse_client.py" ttfe --url "$url" --token "$TOKEN" --n "$TTFE_N" --timeout 5); then :; else
      fail "ttfe $target rep=$rep: $(echo "$out" | head -c 300)"
    fi
    [[ -n $out ]] && echo "{\"target\":\"$target\",\"rep\":$rep,\"result\":$out}" >>"$TTFE"
  done
done
log "ttfe: $(python3 -c 'import json,statistics,sys
r={}
for l in open(sys.argv[1]):
    j=json.loads(l); r.setdefault(j["target"],[]).extend(j["result"]["samples_ms"])
print(" ".join("%s median=%.3fms" % (k, statistics.median(v)) for k,v in r.items() if v))' "$TTFE")"

# Each held stream costs the gateway (and later an nginx worker) two descriptors;
# stay under the limit and say so.
SSE_ATTEMPT=$SSE_N
max_streams=$(((NOFILE - 200) / 2))
if ((SSE_ATTEMPT > max_streams)); then
  log "ulimit -n is $NOFILE: opening $max_streams streams instead of $SSE_N (2 descriptors each in the gateway)"
  SSE_ATTEMPT=$max_streams
fi
# Opens $SSE_ATTEMPT idle streams at $1 with sse_client.py hold (output in $2.out
# and $2.err); once every attempt has ended, waits 1 s for the proxy to settle
# and runs $3 to read its memory and descriptors, then waits for the client's
# end report. Sets HOLD_HELD and HOLD_END (empty when the client did not report).
sse_hold() {
  local url=$1 out=$2 measure=$3 hpid
  python3 "$BENCH/sse_client.py" hold --url "$url" --token "$TOKEN" --n "$SSE_ATTEMPT" \
    --hold "$HOLD" --timeout 20 --max-seconds 600 >"$out.out" 2>"$out.err" &
  hpid=$!
  pids+=("$hpid")
  for _ in $(seq 6000); do # up to 600 s
    grep -q '"phase": "held"' "$out.out" 2>/dev/null && break
    kill -0 "$hpid" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q '"phase": "held"' "$out.out"; then
    sleep 1 # let the proxy settle with every stream open
    "$measure"
  fi
  wait "$hpid" || true
  forget_pid "$hpid"
  HOLD_HELD=$(grep '"phase": "held"' "$out.out" || true)
  HOLD_END=$(grep '"phase": "end"' "$out.out" || true)
}
check_hold() { # what was held ("" or " through nginx"), the client's output prefix
  if [[ -z $HOLD_HELD || -z $HOLD_END ]]; then
    fail "SSE hold client$1 did not report: $(tail -c 300 "$2.out" "$2.err" | tr '\n' ' ')"
  elif ! python3 -c 'import json,sys
h,e,n=json.loads(sys.argv[1]),json.loads(sys.argv[2]),int(sys.argv[3])
sys.exit(0 if h["held"]==n and e["still_open"]==n else 1)' "$HOLD_HELD" "$HOLD_END" "$SSE_ATTEMPT"; then
    fail "not every SSE stream was held$1: $HOLD_HELD $HOLD_END"
  fi
}

measure_gateway() {
  SSE_RSS_KB=$(rss_kb "$GW_PID")
  SSE_FDS=$(ls "/proc/$GW_PID/fd" | wc -l)
  SSE_UP_FDS=$(ls "/proc/$SSE_UP_PID/fd" | wc -l)
}
log "opening $SSE_ATTEMPT idle SSE streams through the gateway"
SSE_RSS_KB=0 SSE_FDS=0 SSE_UP_FDS=0
sse_hold "http://$GW_ADDR/sse" "$WORK/hold" measure_gateway
SSE_GW_HELD=$HOLD_HELD SSE_GW_END=$HOLD_END
log "sse hold: ${HOLD_HELD:-no report} ${HOLD_END:-} gateway_rss=${SSE_RSS_KB}kB gateway_fds=$SSE_FDS"
check_hold "" "$WORK/hold"
stop_pid "$GW_PID"

# --- the same idle streams through the nginx proxy (location = /sse) -------------
# Restarted first, as the gateway was: its workers then carry no heap from the
# load runs. Its figure is the master and every worker (VmRSS summed).
stop_pid "${NGINX_PIDS[1]}"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/proxy.conf" &
NGINX_PIDS[1]=$!
pids+=("$!")
proxy_tree() { echo "${NGINX_PIDS[1]}"; pgrep -P "${NGINX_PIDS[1]}" || true; }
nginx_rss_kb() { # VmRSS of the proxy nginx's master and workers, summed
  local p t=0
  for p in $(proxy_tree); do t=$((t + $(rss_kb "$p"))); done
  echo "$t"
}
measure_nginx() {
  local p n
  SSE_NGINX_RSS_KB=$(nginx_rss_kb)
  SSE_NGINX_FDS=0 SSE_NGINX_SPLIT=""
  for p in $(proxy_tree); do
    n=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
    SSE_NGINX_FDS=$((SSE_NGINX_FDS + n))
    SSE_NGINX_SPLIT+="${SSE_NGINX_SPLIT:+,}$n"
  done
}
SSE_NGINX_RSS_BEFORE_KB=0 SSE_NGINX_RSS_KB=0 SSE_NGINX_FDS=0 SSE_NGINX_SPLIT="" SSE_NGINX_WORKERS=0
SSE_NGINX_HELD="" SSE_NGINX_END=""
nginx_up=false
for _ in $(seq 50); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "http://127.0.0.1:$PROXY_PORT/mcp" || true) == 200 ]] &&
    { nginx_up=true; break; }
  sleep 0.1
done
if $nginx_up; then
  sleep 1 # every worker started
  SSE_NGINX_WORKERS=$(($(proxy_tree | wc -l) - 1))
  SSE_NGINX_RSS_BEFORE_KB=$(nginx_rss_kb)
  log "opening $SSE_ATTEMPT idle SSE streams through nginx ($SSE_NGINX_WORKERS workers)"
  sse_hold "http://127.0.0.1:$PROXY_PORT/sse" "$WORK/hold_nginx" measure_nginx
  SSE_NGINX_HELD=$HOLD_HELD SSE_NGINX_END=$HOLD_END
  log "sse hold through nginx: ${HOLD_HELD:-no report} ${HOLD_END:-} nginx_rss=${SSE_NGINX_RSS_BEFORE_KB}->${SSE_NGINX_RSS_KB}kB nginx_fds=$SSE_NGINX_FDS (master,workers: $SSE_NGINX_SPLIT)"
  check_hold " through nginx" "$WORK/hold_nginx"
else
  fail "the nginx proxy did not come back after its restart for the SSE streams"
fi

# --- report ------------------------------------------------------------------
END_TS=$(date +%s)
# One key=value per line; bench/report.py types and assembles them.
{
  echo "mode=$MODE"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "elapsed_s=$((END_TS - START_TS))"
  echo "build_s=$BUILD_S"
  echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "nproc=$(nproc)"
  echo "mem_total_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
  echo "kernel=$(uname -r)"
  echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*: //')"
  echo "wrk=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "python=$(python3 -c 'import platform; print(platform.python_version())')"
  echo "git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
  echo "binary_fresh=$BINARY_FRESH"
  echo "duration_s=$DURATION"
  echo "reps=$REPS"
  echo "warmup_s=$WARMUP"
  echo "nofile=$NOFILE"
  echo "background_busy_pct=$BACKGROUND_BUSY"
  echo "loadavg_before=$LOADAVG"
  echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "stream_cap_raised=$STREAM_CAP"
  echo "gateway_workers=$(grep -o 'workers=[0-9]*' "$WORK/gateway.log" | head -1 | cut -d= -f2)"
  echo "policy_rules=$(expect rules)"
  echo "list_tools=$(expect list_tools)"
  echo "list_visible_expected=$(expect list_visible)"
  echo "list_visible_seen=$LIST_SEEN"
  echo "gateway_rss_idle_kb=$GW_RSS_IDLE_KB"
  echo "gateway_rss_after_load_kb=$GW_RSS_AFTER_LOAD_KB"
  echo "sse_requested=$SSE_N"
  echo "sse_attempted=$SSE_ATTEMPT"
  echo "sse_hold_s=$HOLD"
  echo "sse_held_json=${SSE_GW_HELD:-null}"
  echo "sse_end_json=${SSE_GW_END:-null}"
  echo "sse_gateway_rss_before_kb=$SSE_GW_RSS_IDLE_KB"
  echo "sse_gateway_rss_held_kb=$SSE_RSS_KB"
  echo "sse_gateway_fds_held=$SSE_FDS"
  echo "sse_upstream_fds_held=$SSE_UP_FDS"
  echo "sse_nginx_workers=$SSE_NGINX_WORKERS"
  echo "sse_nginx_held_json=${SSE_NGINX_HELD:-null}"
  echo "sse_nginx_end_json=${SSE_NGINX_END:-null}"
  echo "sse_nginx_rss_before_kb=$SSE_NGINX_RSS_BEFORE_KB"
  echo "sse_nginx_rss_held_kb=$SSE_NGINX_RSS_KB"
  echo "sse_nginx_fds_held=$SSE_NGINX_FDS"
  echo "ttfe_samples=$TTFE_N"
} >"$WORK/meta.env"
printf '%s\n' "${failures[@]}" >"$WORK/failures.txt"
python3 "$BENCH/report.py" --work "$WORK" --json "$OUT.json" --md "$OUT.md"
log "wrote ${OUT#"$ROOT"/}.json and ${OUT#"$ROOT"/}.md in $((END_TS - START_TS)) s"
cat "$OUT.md"
if ((${#failures[@]})); then
  log "${#failures[@]} failure(s):"
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
