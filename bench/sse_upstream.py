#!/usr/bin/env python3
"""A minimal SSE upstream for the benchmark (standard library only).

Every request (POST or GET, any path) gets `200 text/event-stream`, chunked,
and one event right away: for a POST carrying a JSON-RPC `id`, the event is a
`tools/call` result for that id; otherwise a `notifications/message`. Then the
stream stays open, sending nothing more, until the client goes away or the
process is stopped. That models an MCP Streamable HTTP answer (POST) and an
idle standalone notification stream (GET).

    python3 bench/sse_upstream.py --port 0 [--ready-file F]

Prints `listening on 127.0.0.1:<port>` once bound (and writes the port to
--ready-file). Stops by itself after --max-seconds (default 3600), so a
forgotten instance cannot outlive the run.
"""

import argparse
import asyncio
import json
import re
import signal

open_streams = 0


def event_for(body: bytes) -> bytes:
    rid = None
    if body:
        try:
            msg = json.loads(body)
            if isinstance(msg, dict):
                rid = msg.get("id")
        except ValueError:
            pass
    if rid is not None:
        payload = {
            "jsonrpc": "2.0",
            "id": rid,
            "result": {"content": [{"type": "text", "text": "ok"}], "isError": False},
        }
    else:
        payload = {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "stream open"},
        }
    return b"event: message\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global open_streams
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        body = await reader.readexactly(int(m.group(1))) if m else b""
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n"
            b"\r\n" + chunk(event_for(body))
        )
        await writer.drain()
        open_streams += 1
        try:
            # Hold the stream until the peer closes (read returns b"" on EOF).
            while await reader.read(4096):
                pass
        finally:
            open_streams -= 1
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args()

    server = await asyncio.start_server(handle, args.host, args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {args.host}:{port}", flush=True)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(f"{port}\n")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
