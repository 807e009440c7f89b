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
"""

from __future__ import annotations

import asyncio
import os
import sys

try:  # mcp >= 2
    from mcp.server.mcpserver import Context, MCPServer as FastMCP
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import Context, FastMCP  # type: ignore[no-redef]

from mcp.server.transport_security import TransportSecuritySettings


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


mcp = FastMCP(
    name="gateway-test-fastmcp",
    instructions="Test peer for the MCP auth gateway e2e tests.",
    log_level=os.environ.get("FASTMCP_LOG_LEVEL", "WARNING").upper(),  # type: ignore[arg-type]
)


# ---------------------------------------------------------------- tools
@mcp.tool()
def echo(message: str) -> str:
    """Echo the message back, prefixed with 'echo: '."""
    return f"echo: {message}"


@mcp.tool()
def get_weather(city: str) -> str:
    """Return a canned weather report for a city."""
    return f"The weather in {city} is sunny, 21°C."


@mcp.tool()
def admin_reset() -> str:
    """Privileged: pretend to reset the system."""
    return "system reset"


@mcp.tool()
def admin_delete_user(user: str) -> str:
    """Privileged: pretend to delete a user."""
    return f"deleted user {user}"


@mcp.tool()
async def slow_count(n: int, ctx: Context) -> str:
    """Count to n, sending a progress notification and a log message per step (0.3 s apart)."""
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
    return "This is the public readme."


@mcp.resource("file:///private/secret.txt", name="secret", mime_type="text/plain")
def private_secret() -> str:
    """Private secret (should be hidden by the gateway policy)."""
    return "TOP SECRET: the password is hunter2"


@mcp.resource("db://customers/{id}", name="customer", mime_type="application/json")
def customer(id: str) -> str:
    """Customer record by id."""
    return f'{{"id": "{id}", "name": "Customer {id}"}}'


# -------------------------------------------------------------- prompts
@mcp.prompt()
def summarize(text: str) -> str:
    """Ask the model to summarize the given text."""
    return f"Please summarize the following text:\n\n{text}"


@mcp.prompt()
def admin_prompt() -> str:
    """Privileged prompt."""
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
