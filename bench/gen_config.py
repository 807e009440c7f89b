#!/usr/bin/env python3
"""Writes the benchmark's nginx/{upstream,proxy}.conf and gateway/gateway.yaml into a work directory.

    python3 bench/gen_config.py --dir D --upstream-port U --proxy-port P \
        --sse-port S --nofile N

The fixtures, shared by every configuration:
- two nginx processes: the upstream (a static JSON-RPC responder:
  `POST /mcp` -> a fixed tools/call result, `POST /list` -> a tools/list
  result of 60 tools), and a plain reverse proxy to it with upstream
  keepalive (no auth), which also proxies `/sse` to bench/sse_upstream.py
  (unbuffered, for the idle-stream memory comparison). Separate processes, as
  the gateway and its upstream are (until 2026-12-04 they were two server
  blocks of one nginx, so one worker could hold both ends of a proxied
  request);
- a gateway config with one issuer (jwks_file), and three routes that carry
  the same 50-rule tool policy: /mcp and /list (to the nginx upstream) and
  /sse (to bench/sse_upstream.py).

Policy (50 rules: 45 exact names, 5 globs) and tool list (60 tools) are built
so that a token with `mcp:tools bench:read` may call tool_007 and sees 40 of
the 60 tools after filtering. The expected count is written to expected.json.
"""

import argparse
import json
import os

ISSUER = "https://issuer.bench.invalid"
AUDIENCE = "https://mcp.bench.invalid"
TOKEN_SCOPES = ["mcp:tools", "bench:read"]


def tool_rules() -> dict:
    """45 exact names + 5 globs = 50 rules."""
    rules = {}
    for i in range(45):
        rules[f"tool_{i:03d}"] = [[], ["bench:read"], ["bench:admin"]][i % 3]
    for k in range(5):
        rules[f"family_{k}_*"] = ["bench:read"]
    return rules


def tool_list() -> list:
    """60 tools: tool_000..tool_049 (045-049 match no rule) and family_{0..4}_{a,b}."""
    names = [f"tool_{i:03d}" for i in range(50)]
    names += [f"family_{k}_{x}" for k in range(5) for x in "ab"]
    return [
        {
            "name": n,
            "description": f"Benchmark tool {n}: does nothing, quickly.",
            "inputSchema": {
                "type": "object",
                "properties": {"message": {"type": "string", "description": "any text"}},
                "required": ["message"],
            },
        }
        for n in names
    ]


def visible(name: str, rules: dict, granted: set) -> bool:
    """What the gateway should keep: the rule that matches (exact, else glob) is satisfied."""
    need = rules.get(name)
    if need is None:
        for pat, scopes in rules.items():
            if pat.endswith("*") and name.startswith(pat[:-1]):
                need = scopes
                break
    return need is not None and set(need) <= granted


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def nginx_conf(d: str, up: int, proxy: int, sse: int, nofile: int) -> dict:
    call = compact({
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "hello from the benchmark upstream"}],
                   "isError": False},
    })
    listing = compact({"jsonrpc": "2.0", "id": 1, "result": {"tools": tool_list()}})
    assert "'" not in call and "\\" not in call and "$" not in call
    # nginx caps one config parameter at 4 KiB, so the ~12 KiB list is a file.
    with open(f"{d}/nginx/list.json", "w") as f:
        f.write(listing)
    upstream = f"""    # The upstream: a static JSON-RPC responder, shared by every configuration.
    server {{
        listen 127.0.0.1:{up} reuseport backlog=4096;
        access_log off;
        default_type application/json;
        location = /mcp {{ return 200 '{call}'; }}
        # The static module only serves GET, so a POST gets 405, which
        # error_page turns into an internal GET of the file, answered 200.
        location = /list {{ error_page 405 =200 /list.json; return 405; }}
        location = /list.json {{ internal; root {d}/nginx; }}
        # An OTLP/HTTP sink for bench/tracing.sh: accepts spans, keeps nothing.
        location = /v1/traces {{ return 200; }}
    }}"""
    proxy = f"""    # Configuration "nginx": a plain reverse proxy, keepalive to the upstream.
    upstream bench_upstream {{
        server 127.0.0.1:{up};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{proxy} reuseport backlog=4096;
        # One log line per request, as the gateway writes one event per request.
        access_log {d}/nginx/access.log;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        # The idle SSE streams of run.sh, as the gateway's route /sse: HTTP/1.1
        # without "Connection: close" so the chunked stream passes through, no
        # response buffering so each event goes out as it arrives, and a read
        # timeout above any hold (the default 60 s would cut an idle stream).
        # No upstream keepalive: each open stream holds its own connection. The
        # access log stays on (one line per stream, written when it closes).
        # The token is not forwarded, as the gateway does not forward it: the
        # upstream request is the same size both ways (forwarding it cost
        # nginx about 4 kB more per stream).
        location = /sse {{
            proxy_pass http://127.0.0.1:{sse}/sse;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
    }}"""
    return {"upstream": process(d, "upstream", nofile, upstream),
            "proxy": process(d, "proxy", nofile, proxy)}


def process(d: str, name: str, nofile: int, servers: str) -> str:
    """One nginx process (its own master and workers) serving `servers`."""
    t = f"{d}/nginx/tmp/{name}"
    return f"""# Generated by bench/gen_config.py; runs as its own process (daemon off).
daemon off;
worker_processes auto;
worker_rlimit_nofile {nofile};
pid {d}/nginx/{name}.pid;
error_log {d}/nginx/error.log warn;
# A proxied SSE stream is two connections (client and upstream) in one worker:
# 16384 connections (and worker_rlimit_nofile: run.sh passes its ulimit -n)
# per worker cover 10k streams split over 2+ workers (reuseport), not 1 worker.
events {{ worker_connections 16384; }}
http {{
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    keepalive_timeout 75s;
    # The default (1000) would make wrk reconnect every 1000 requests; the
    # gateway has no such cap, so lift it.
    keepalive_requests 10000000;
    server_tokens off;

{servers}
}}
"""


def gateway_yaml(up: int, sse: int, stream_cap: bool) -> str:
    rules = tool_rules()
    policy = ["    policy:", "      tools:"]
    policy += [f'        "{k}": [{", ".join(v)}]' for k, v in rules.items()]
    policy = "\n".join(policy)
    routes = []
    for path, target in (("/mcp", f"{up}/mcp"), ("/list", f"{up}/list"), ("/sse", f"{sse}/sse")):
        routes.append(f"""  - path: {path}
    upstream: http://127.0.0.1:{target}
    resource: {AUDIENCE}{path}
    audiences: [{AUDIENCE}]
    required_scopes: [mcp:tools]
{policy}""")
    routes_text = "\n".join(routes)
    return f"""# Generated by bench/gen_config.py.
listen: 127.0.0.1:0
issuers:
  - issuer: {ISSUER}
    jwks_file: jwks.json
    algorithms: [ES256]
routes:
{routes_text}
limits:
  # 10k SSE streams need 10k client connections (plus 10k upstream ones).
  max_connections: 30000
  # Stopping the gateway between phases should not wait the default 25 s drain.
  shutdown_grace: 1s
""" + ("""  # Every stream and request of the benchmark uses one token (one principal):
  # lift the per-principal cap (default 64) above the 10k streams and c=64.
  max_streams_per_principal: 30000
""" if stream_cap else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--sse-port", type=int, required=True)
    ap.add_argument("--nofile", type=int, default=16384)
    ap.add_argument("--no-stream-cap", action="store_true",
                    help="omit limits.max_streams_per_principal (for builds that lack the key)")
    a = ap.parse_args()
    for name in ("upstream", "proxy"):
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(a.dir, "nginx/tmp", name, sub), exist_ok=True)
    for name, conf in nginx_conf(a.dir, a.upstream_port, a.proxy_port, a.sse_port, a.nofile).items():
        with open(os.path.join(a.dir, f"nginx/{name}.conf"), "w") as f:
            f.write(conf)
    # The gateway watches its config's directory for hot reload, so the config
    # and JWKS get a directory of their own: a log written next to them would
    # wake the watcher on every line.
    os.makedirs(os.path.join(a.dir, "gateway"), exist_ok=True)
    with open(os.path.join(a.dir, "gateway", "gateway.yaml"), "w") as f:
        f.write(gateway_yaml(a.upstream_port, a.sse_port, not a.no_stream_cap))
    rules, granted = tool_rules(), set(TOKEN_SCOPES)
    with open(os.path.join(a.dir, "expected.json"), "w") as f:
        json.dump({
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "scopes": " ".join(TOKEN_SCOPES),
            "rules": len(rules),
            "list_tools": len(tool_list()),
            "list_visible": sum(visible(t["name"], rules, granted) for t in tool_list()),
        }, f)


if __name__ == "__main__":
    main()
