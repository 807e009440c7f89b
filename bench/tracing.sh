#!/usr/bin/env bash
# What OpenTelemetry tracing costs: one gateway in front of the benchmark's
# static nginx upstream, three configurations, each at c=1 (latency) and
# c=64 (throughput):
#   off        no telemetry.tracing block (the default)
#   on-ratio0  tracing on, sample_ratio 0: every span recorded, none exported
#   on-ratio1  tracing on, sample_ratio 1: every span exported (to an nginx
#              location that answers 200, so the collector costs nothing)
#
#   bash bench/tracing.sh            # 10 s per run, 3 repetitions
#   bash bench/tracing.sh --smoke    # 2 s per run, 1 repetition (checks the script)
#
# Writes bench/tracing.json and bench/tracing.md (smoke: bench/tracing.smoke.*).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench

MODE=full DURATION=10 REPS=3 OUT=$BENCH/tracing
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke DURATION=2 REPS=1 OUT=$BENCH/tracing.smoke ;;
  -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
  *) echo "usage: bash bench/tracing.sh [--smoke]" >&2; exit 2 ;;
esac

LOG_TAG=tracing
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
need_tools nginx:nginx-light wrk:wrk

if [[ $MODE == smoke ]]; then PROFILE=smoke; else PROFILE=release; fi
BIN=$ROOT/target/$PROFILE/mcp-auth-gateway
log "building the $PROFILE binary"
cargo build --profile "$PROFILE" --quiet

WORK=$(mktemp -d /tmp/mcp-gw-tracing.XXXXXX)
chmod 755 "$WORK"
fixtures

variant_config() { # name -> path of its gateway.yaml
  local name=$1 file=$WORK/gateway/$1.yaml
  cp "$WORK/gateway/gateway.yaml" "$file"
  case $name in
    off) ;;
    on-ratio0 | on-ratio1)
      printf 'telemetry:\n  tracing:\n    endpoint: http://127.0.0.1:%s/v1/traces\n    sample_ratio: %s\n' \
        "$UP_PORT" "${name#on-ratio}" >>"$file"
      ;;
  esac
  "$BIN" check --config "$file" >/dev/null
  echo "$file"
}

results=()
for rep in $(seq "$REPS"); do
  for name in off on-ratio0 on-ratio1; do
    start_gateway "$(variant_config "$name")" "$WORK/gateway-$name.log"
    warm "http://$GW_ADDR/mcp"
    for conns in 1 64; do
      json=$(wrk_json "http://$GW_ADDR/mcp" "$conns" "$DURATION")
      log "rep $rep $name c=$conns: $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.0f req/s, p50 %d us" % (d["rps"], d["p50_us"]))' "$json")"
      results+=("{\"rep\":$rep,\"config\":\"$name\",\"conns\":$conns,\"wrk\":$json}")
    done
    stop_pid "$GW_PID"
  done
done

python3 - "$OUT" "$MODE" "$DURATION" "$REPS" "${results[@]}" <<'PY'
import json, statistics, sys, datetime, os
out, mode, duration, reps, *runs = sys.argv[1:]
runs = [json.loads(r) for r in runs]
names = ("off", "on-ratio0", "on-ratio1")
def med(config, conns, key):
    return statistics.median(r["wrk"][key] for r in runs if r["config"] == config and r["conns"] == conns)
p50 = {n: med(n, 1, "p50_us") for n in names}
rps = {n: med(n, 64, "rps") for n in names}
doc = {
    "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "mode": mode, "duration_s": int(duration), "repetitions": int(reps), "cpus": os.cpu_count(),
    "loadavg": open("/proc/loadavg").read().split()[:3],
    "c1_p50_us": p50, "c64_rps": rps,
    "on_ratio0_vs_off_rps": round(rps["on-ratio0"] / rps["off"], 3),
    "on_ratio1_vs_off_rps": round(rps["on-ratio1"] / rps["off"], 3),
    "runs": runs,
}
json.dump(doc, open(out + ".json", "w"), indent=1)
md = f"""# Tracing cost (`bench/tracing.sh`, {mode})

{doc['when']}; {doc['cpus']} CPUs shared by wrk, the gateway and the nginx upstream (which is also the
OTLP sink); {duration} s per run, median of {reps}.

| configuration | c=1 p50 µs | c=64 req/s | vs off |
|---|---:|---:|---:|
| tracing off (default) | {p50['off']:.0f} | {rps['off']:.0f} | 1 |
| on, `sample_ratio: 0` (recorded, not exported) | {p50['on-ratio0']:.0f} | {rps['on-ratio0']:.0f} | {doc['on_ratio0_vs_off_rps']} |
| on, `sample_ratio: 1` (every span exported) | {p50['on-ratio1']:.0f} | {rps['on-ratio1']:.0f} | {doc['on_ratio1_vs_off_rps']} |
"""
open(out + ".md", "w").write(md)
print(md)
PY
