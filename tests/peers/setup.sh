#!/usr/bin/env bash
# Installs the real test peers (Node, Python, Debian's chromium, redis-server and nginx) used by the
# Rust e2e tests.
# Idempotent and fast (< 1 s) when already installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# ---- Node: server-everything, TS SDK client, Node 22 binary -------------------
if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  echo "peers/setup.sh: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules  # npm ci may leave the dir mtime older than the lock
fi

# ---- Debian: chromium (consent page), redis-server and nginx (replicas) --------
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
if ((${#need[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  echo "peers/setup.sh: apt-get install ${need[*]}" >&2
  $SUDO apt-get update -qq
  for pkg in "${need[@]}"; do
    # nginx-light is enough; newer Debian releases only ship nginx.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null ||
      { [[ $pkg == nginx-light ]] && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null; }
  done
fi
# The tests run their own redis-server and nginx on free loopback ports.

# ---- Python: mcp SDK (FastMCP/MCPServer server + client) ----------------------
stamp=.venv/.requirements-installed
if [[ ! -x .venv/bin/python ]]; then
  echo "peers/setup.sh: creating .venv" >&2
  rm -rf .venv
  python3 -m venv .venv
fi
if [[ ! -f "$stamp" || requirements.txt -nt "$stamp" ]]; then
  echo "peers/setup.sh: pip install -r requirements.txt" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt
  touch "$stamp"
fi
