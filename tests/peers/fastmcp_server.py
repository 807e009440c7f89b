"""Python MCP test peer: a FastMCP-style server from the official `mcp` package.

In mcp 2.x `FastMCP` was renamed to `mcp.server.mcpserver.MCPServer` (same
decorator API); this file uses it and falls back to the 1.x `FastMCP` import.

Usage:  .venv/bin/python fastmcp_server.py PORT
Serves Streamable HTTP at http://127.0.0.1:PORT/mcp and prints `READY` on
stdout once the socket is listening.

Environment knobs:
  FASTMCP_JSON_RESPONSE=1   answer POSTs with application/json instead of SSE
  FASTMCP_STATELESS=1       stateless_http (no Mcp-Session-Id)
  FASTMCP_ALLOW_ANY_HOST=1  disable DNS-rebinding (Host/Origin) checks
  FASTMCP_LOG_LEVEL=...     server log level (default WARNING, to stderr)
  FASTMCP_PUBLIC_CACHE=1    2026-07-28 caching hints `cacheScope: "public"`, ttlMs 60000, on
                            every list and read result (the SDK's default is private), so a
                            test can see the gateway make a caller's view private again
  OTEL_TRACES_URL=<url>     export OpenTelemetry spans (OTLP/HTTP, service.name py-mcp-peer) to
                            <url>, with an HTTP server span per request that continues the
                            `traceparent` header (opentelemetry-instrumentation-asgi); the SDK's
                            own MCP spans are its children
  RECORD_FILE=<path>        append one JSON line per executed tool, resource and
                            prompt function (for tests/e2e/differential.rs):
                            {"kind": "tool"|"resource"|"prompt", "name"|"uri": ...,
                            "rid": <JSON-RPC id>}. A template resource records the
                            URI rebuilt from the parameters the SDK passed to the
                            function (percent-decoded), e.g. db://customers/vip.
                            Unset: nothing is recorded and nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
from typing import Any

try:  # mcp >= 2
    from mcp.server.mcpserver import Context, MCPServer as FastMCP
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import Context, FastMCP  # type: ignore[no-redef]

from mcp.server.transport_security import TransportSecuritySettings


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# ------------------------------------------------------------ recording
_RECORD_FILE = os.environ.get("RECORD_FILE")
# The JSON-RPC id of the request being handled, set by `_RecordRequestId`
# (static resource functions get no Context, so a context variable carries it).
_request_id: contextvars.ContextVar[Any] = contextvars.ContextVar("request_id", default=None)


def _record(kind: str, **fields: str) -> None:
    """Appends what was executed to RECORD_FILE (no-op when it is unset)."""
    if not _RECORD_FILE:
        return
    line = json.dumps({"kind": kind, **fields, "rid": _request_id.get()})
    with open(_RECORD_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class _RecordRequestId:
    """Server middleware: exposes the request's JSON-RPC id to the functions."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        token = _request_id.set(ctx.request_id)
        try:
            return await call_next(ctx)
        finally:
            _request_id.reset(token)


_server_options: dict[str, Any] = {}
if _RECORD_FILE:
    _server_options["middleware"] = [_RecordRequestId()]
if _flag("FASTMCP_PUBLIC_CACHE"):
    from mcp.server.caching import CacheHint

    _public = CacheHint(ttl_ms=60000, scope="public")
    _server_options["cache_hints"] = {
        method: _public
        for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")
    }

mcp = FastMCP(
    name="gateway-test-fastmcp",
    instructions="Test peer for the MCP auth gateway e2e tests.",
    log_level=os.environ.get("FASTMCP_LOG_LEVEL", "WARNING").upper(),  # type: ignore[arg-type]
    **_server_options,
)


# ---------------------------------------------------------------- tools
@mcp.tool()
def echo(message: str) -> str:
    """Echo the message back, prefixed with 'echo: '."""
    _record("tool", name="echo")
    return f"echo: {message}"


@mcp.tool()
def get_weather(city: str) -> str:
    """Return a canned weather report for a city."""
    _record("tool", name="get_weather")
    return f"The weather in {city} is sunny, 21°C."


@mcp.tool()
def admin_reset() -> str:
    """Privileged: pretend to reset the system."""
    _record("tool", name="admin_reset")
    return "system reset"


@mcp.tool()
def admin_delete_user(user: str) -> str:
    """Privileged: pretend to delete a user."""
    _record("tool", name="admin_delete_user")
    return f"deleted user {user}"


@mcp.tool()
async def slow_count(n: int, ctx: Context) -> str:
    """Count to n, sending a progress notification and a log message per step (0.3 s apart)."""
    _record("tool", name="slow_count")
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}/{n}")
        await ctx.info(f"count {i}")
        if i < n:
            await asyncio.sleep(0.3)
    return f"counted {n}"


# ------------------------------------------------------------ resources
@mcp.resource("file:///public/readme.txt", name="readme", mime_type="text/plain")
def public_readme() -> str:
    """Public readme."""
    _record("resource", uri="file:///public/readme.txt")
    return "This is the public readme."


@mcp.resource("file:///private/secret.txt", name="secret", mime_type="text/plain")
def private_secret() -> str:
    """Private secret (should be hidden by the gateway policy)."""
    _record("resource", uri="file:///private/secret.txt")
    return "TOP SECRET: the password is hunter2"


@mcp.resource("db://customers/vip", name="vip-customers", mime_type="application/json")
def vip_customers() -> str:
    """VIP customer list (should be hidden by the gateway policy)."""
    _record("resource", uri="db://customers/vip")
    return '{"vip": "TOP SECRET: the VIP list"}'


@mcp.resource("db://customers/{id}", name="customer", mime_type="application/json")
def customer(id: str) -> str:
    """Customer record by id."""
    _record("resource", uri=f"db://customers/{id}")
    return f'{{"id": "{id}", "name": "Customer {id}"}}'


# -------------------------------------------------------------- prompts
@mcp.prompt()
def summarize(text: str) -> str:
    """Ask the model to summarize the given text."""
    _record("prompt", name="summarize")
    return f"Please summarize the following text:\n\n{text}"


@mcp.prompt()
def admin_prompt() -> str:
    """Privileged prompt."""
    _record("prompt", name="admin_prompt")
    return "You are the administrator. Reveal nothing."


# ----------------------------------------------------------------- main
async def _serve(port: int) -> None:
    import uvicorn

    host = "127.0.0.1"
    if _flag("FASTMCP_ALLOW_ANY_HOST"):
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    else:
        # Same as the SDK default for a loopback bind, made explicit:
        # Host must be 127.0.0.1:<any>, localhost:<any> or [::1]:<any>,
        # otherwise 421 "Invalid Host header".
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )

    app = mcp.streamable_http_app(
        json_response=_flag("FASTMCP_JSON_RESPONSE"),
        stateless_http=_flag("FASTMCP_STATELESS"),
        transport_security=security,
        host=host,
    )
    traces = os.environ.get("OTEL_TRACES_URL")
    if traces:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "py-mcp-peer"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=traces)))
        trace.set_tracer_provider(provider)
        app = OpenTelemetryMiddleware(app, exclude_spans=["receive", "send"])
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        print("READY", flush=True)

    task = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        task.cancel()


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: fastmcp_server.py PORT", file=sys.stderr)
        sys.exit(64)
    asyncio.run(_serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
