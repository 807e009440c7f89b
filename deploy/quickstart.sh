#!/usr/bin/env bash
# Quick start: builds the gateway, mints a dev signing key + token, starts the
# real MCP "everything" server on 127.0.0.1:3001, runs the gateway with
# gateway.example.yaml on 127.0.0.1:8080, and shows the OAuth challenge, the
# protected-resource metadata and an authorized tool call.
#
#   bash deploy/quickstart.sh          # demo, then keep running (Ctrl-C stops)
#   bash deploy/quickstart.sh --once   # demo, then stop
#   bash deploy/quickstart.sh --sign-in [--once]   # the sign-in flow: built-in authorization
#                                                  # server + a development identity provider
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${1:-}" == "--sign-in" ]]; then
  shift
  exec bash deploy/quickstart-sign-in.sh "$@"
fi
once=false
[[ "${1:-}" == "--once" ]] && once=true

GW=http://127.0.0.1:8080
RESOURCE=$GW/mcp
ISSUER=https://auth.example.com
STATE=.quickstart
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for port in 3001 8080; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use; stop what is listening there first" >&2
    exit 1
  fi
done

echo "==> building mcp-auth-gateway (release)"
cargo build --release --quiet
BIN=target/release/mcp-auth-gateway

echo "==> installing the MCP 'everything' server from npm (pinned)"
bash tests/peers/setup.sh

echo "==> minting a dev key, JWKS and token in $STATE/"
mkdir -p "$STATE"
TOKEN=$("$BIN" token --key "$STATE/dev-key.pem" --jwks-out "$STATE/jwks.json" \
  --issuer "$ISSUER" --aud "$RESOURCE" --sub alice --scope "mcp:tools" --ttl 1h)
echo "$TOKEN" > "$STATE/token"

echo "==> starting server-everything on 127.0.0.1:3001"
(cd tests/peers && PORT=3001 exec node node_modules/.bin/mcp-server-everything streamableHttp >/dev/null 2>"../../$STATE/upstream.log") &
pids+=($!)

echo "==> starting the gateway on $GW (logs: $STATE/gateway.log)"
"$BIN" --config gateway.example.yaml 2>"$STATE/gateway.log" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -sf "$GW/readyz" >/dev/null 2>&1 && (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null && break
  sleep 0.1
done

echo
echo "--- 1. No token: 401 with a challenge pointing at the metadata"
curl -s -o /dev/null -D - -X POST "$GW/mcp" | grep -iE '^(HTTP|www-authenticate)'
echo
echo "--- 2. Protected-resource metadata (RFC 9728)"
curl -s "$GW/.well-known/oauth-protected-resource/mcp"; echo
echo
echo "--- 3. With the token: initialize, then call the 'echo' tool"
H=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
SESSION=$(curl -s -D - -o /dev/null "${H[@]}" "$GW/mcp" \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"quickstart","version":"1"}}}' \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
echo "session: $SESSION"
curl -s "${H[@]}" -H "Mcp-Session-Id: $SESSION" -H 'MCP-Protocol-Version: 2025-06-18' "$GW/mcp" \
  -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' -o /dev/null -w 'notifications/initialized -> %{http_code}\n'
curl -s "${H[@]}" -H "Mcp-Session-Id: $SESSION" -H 'MCP-Protocol-Version: 2025-06-18' "$GW/mcp" \
  -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello through the gateway"}}}' | grep '^data:'
echo
echo "(The gateway stripped the Authorization header before forwarding: MCP forbids token passthrough.)"
echo
echo "Token (1h): $STATE/token   Gateway log: $STATE/gateway.log"
echo "Try:  curl -i -H \"Authorization: Bearer \$(cat $STATE/token)\" -H 'Content-Type: application/json' \\"
echo "        -H 'Accept: application/json, text/event-stream' $GW/mcp -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}'"
if $once; then exit 0; fi
echo "Running. Press Ctrl-C to stop."
wait
