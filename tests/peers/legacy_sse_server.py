"""Python MCP test peer speaking the legacy HTTP+SSE transport (2024-11-05):
`GET /sse` opens the stream, whose first event (`event: endpoint`) names
`/messages/?session_id=…`; POSTs there are answered 202 and their answers
arrive on the stream. The gateway must refuse to carry it (README, "Security
model": the session id in the query is bound to nobody).

Usage:  .venv/bin/python legacy_sse_server.py PORT   (prints READY when listening)
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn

try:  # mcp >= 2
    from mcp.server.mcpserver import MCPServer as FastMCP
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP  # type: ignore[no-redef]

mcp = FastMCP(name="gateway-test-legacy-sse")


@mcp.tool()
def echo(message: str) -> str:
    """Echo the message back."""
    return f"echo: {message}"


@mcp.tool()
def admin_reset() -> str:
    """Privileged."""
    return "system reset"


async def _serve(port: int) -> None:
    app = mcp.sse_app(host="127.0.0.1")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: legacy_sse_server.py PORT", file=sys.stderr)
        sys.exit(64)
    asyncio.run(_serve(int(sys.argv[1])))
