"""Real MCP client (official Python SDK, `mcp` package) used by the Rust e2e tests.

Usage: .venv/bin/python py_client.py <url> <bearer-token-or-empty> <command> [args...]
  list-tools                      -> JSON array of tool names, sorted
  call <tool> <json-args>         -> JSON of result.content
  read <uri>                      -> JSON of result.contents
  get-prompt <name> <json-args>   -> JSON of result.messages
  list-resources | list-resource-templates | list-prompts
                                  -> JSON array of URIs / URI templates / names, sorted
Success: one JSON line on stdout, exit 0.
Failure: one line `ERROR <message>` on stdout, exit 2 (`ERROR HTTP <code>: ...` when
an HTTP response >= 400 was seen; the SDK itself hides the status). Usage errors exit 64.
A tool result with isError=true is printed prefixed `TOOL_ERROR ` and exits 3.

Env: MCP_CLIENT_MODE = auto (default: probe `server/discover`, fall back to the
initialize handshake) | legacy (initialize only) | a modern version like 2026-07-28.
TLS: the CA files named by SSL_CERT_FILE and NODE_EXTRA_CA_CERTS (both, if set)
are trusted in addition to the system store.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from typing import Any

import httpx2

from mcp.client.streamable_http import streamable_http_client

try:
    from mcp.client import Client  # mcp >= 2
except ImportError:  # pragma: no cover
    Client = None  # type: ignore[assignment,misc]


def _usage() -> None:
    print(
        "usage: py_client.py <url> <token|''> list-tools | list-resources | list-resource-templates"
        " | list-prompts | call <tool> <json> | read <uri> | get-prompt <name> <json>",
        file=sys.stderr,
    )
    sys.exit(64)


def _json_arg(s: str | None) -> dict[str, Any]:
    if not s:
        return {}
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        print(f"invalid JSON argument: {e}", file=sys.stderr)
        sys.exit(64)


def _dump(objs: Any) -> Any:
    if isinstance(objs, list):
        return [_dump(o) for o in objs]
    if hasattr(objs, "model_dump"):
        return objs.model_dump(by_alias=True, mode="json", exclude_none=True)
    return objs


def _verify() -> ssl.SSLContext | bool:
    cafiles = [os.environ.get(v) for v in ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")]
    cafiles = [f for f in cafiles if f and os.path.isfile(f)]
    if not cafiles:
        return True
    ctx = ssl.create_default_context()  # system store
    for f in cafiles:
        ctx.load_verify_locations(cafile=f)  # plus each extra CA bundle
    return ctx


def _flatten(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _run(url: str, token: str, command: str, args: list[str], http_status: list[int]) -> tuple[Any, bool]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def on_response(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            http_status.append(response.status_code)

    http_client = httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(30.0, read=300.0),
        verify=_verify(),
        event_hooks={"response": [on_response]},
    )
    mode = os.environ.get("MCP_CLIENT_MODE", "auto")
    async with http_client:
        transport = streamable_http_client(url, http_client=http_client)
        async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[misc]
            if command == "list-tools":
                names: list[str] = []
                cursor = None
                while True:
                    r = await client.list_tools(cursor=cursor)
                    names.extend(t.name for t in r.tools)
                    cursor = r.next_cursor
                    if not cursor:
                        break
                return sorted(names), False
            if command == "list-resources":
                r = await client.list_resources()
                return sorted(str(x.uri) for x in r.resources), False
            if command == "list-resource-templates":
                r = await client.list_resource_templates()
                return sorted(x.uri_template for x in r.resource_templates), False
            if command == "list-prompts":
                r = await client.list_prompts()
                return sorted(x.name for x in r.prompts), False
            if command == "call":
                if not args:
                    _usage()
                r = await client.call_tool(args[0], _json_arg(args[1] if len(args) > 1 else None))
                return _dump(r.content), bool(r.is_error)
            if command == "read":
                if not args:
                    _usage()
                r = await client.read_resource(args[0])
                return _dump(r.contents), False
            if command == "get-prompt":
                if not args:
                    _usage()
                r = await client.get_prompt(args[0], _json_arg(args[1] if len(args) > 1 else None))
                return _dump(r.messages), False
            _usage()
    raise AssertionError("unreachable")


def main() -> None:
    if len(sys.argv) < 4:
        _usage()
    url, token, command, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    http_status: list[int] = []
    try:
        out, tool_error = asyncio.run(_run(url, token, command, args, http_status))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report anything as one ERROR line
        exc = _flatten(e)
        msg = str(exc) or type(exc).__name__
        if http_status:
            msg = f"HTTP {http_status[-1]}: {msg}"
        print("ERROR " + " ".join(msg.split()), flush=True)
        sys.exit(2)
    print(("TOOL_ERROR " if tool_error else "") + json.dumps(out, ensure_ascii=False, separators=(",", ":")), flush=True)
    sys.exit(3 if tool_error else 0)


if __name__ == "__main__":
    main()
