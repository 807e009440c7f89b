#!/usr/bin/env python3
"""SSE load client for the benchmark (standard library only, asyncio).

hold: open N SSE streams (GET, `Accept: text/event-stream`), wait for the
first event on each, print one JSON line {"phase":"held",...}, keep them all
open for --hold seconds, then print {"phase":"end","still_open":...} and exit.

    python3 bench/sse_client.py hold --url http://127.0.0.1:P/sse --n 10000 \
        --token T --hold 10

ttfe: time to first SSE event, for --n sequential POSTs (a `tools/call`
answered as an SSE stream), each on a fresh connection. The clock starts
after the TCP connect, right before the request is written, and stops when the
first complete `data:` event has arrived. Prints one JSON line with every
sample and the median, in milliseconds.

    python3 bench/sse_client.py ttfe --url http://127.0.0.1:P/sse --n 50 --token T

Everything is bounded: each connection by --timeout, the whole run by
--max-seconds.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

CALL_BODY = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
    b'"params":{"name":"tool_007","arguments":{"message":"hello"}}}'
)


def request(url: str, token: str | None, post: bool) -> bytes:
    u = urlsplit(url)
    lines = [
        f"{'POST' if post else 'GET'} {u.path or '/'} HTTP/1.1",
        f"Host: {u.netloc}",
        "Accept: text/event-stream" if not post else "Accept: application/json, text/event-stream",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    body = b""
    if post:
        body = CALL_BODY
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_stream(host: str, port: int, req: bytes, timeout: float):
    """Connects, sends `req`, waits for 200 + the first event.

    Returns (reader, writer, seconds from write to first event)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        t0 = time.perf_counter()
        writer.write(req)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else b"???"
        if status != b"200":
            raise RuntimeError(f"status {status.decode(errors='replace')}")
        buf = b""
        while True:
            i = buf.find(b"data:")
            if i >= 0 and buf.find(b"\n\n", i) >= 0:
                break
            data = await asyncio.wait_for(reader.read(4096), timeout)
            if not data:
                raise RuntimeError("closed before first event")
            buf += data
        return reader, writer, time.perf_counter() - t0
    except BaseException:
        writer.close()
        raise


def error_name(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, RuntimeError):
        return str(e)
    return type(e).__name__ + (f" errno {e.errno}" if isinstance(e, OSError) and e.errno else "")


async def hold(args) -> int:
    u = urlsplit(args.url)
    req = request(args.url, args.token, post=False)
    sem = asyncio.Semaphore(args.concurrency)
    streams = []
    errors: Counter = Counter()
    closed = 0

    async def one():
        nonlocal closed
        async with sem:
            try:
                r, w, _ = await open_stream(u.hostname, u.port, req, args.timeout)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors[error_name(e)] += 1
                return
        streams.append(w)
        try:
            while await r.read(4096):
                pass
        except (ConnectionError, OSError):
            pass
        closed += 1

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(one()) for _ in range(args.n)]
    # Wait until every attempt has either succeeded or failed.
    while len(streams) + sum(errors.values()) < args.n:
        await asyncio.sleep(0.05)
    print(json.dumps({
        "phase": "held",
        "requested": args.n,
        "held": len(streams) - closed,
        "failed": sum(errors.values()),
        "errors": dict(errors),
        "open_seconds": round(time.perf_counter() - t0, 2),
    }), flush=True)
    await asyncio.sleep(args.hold)
    print(json.dumps({"phase": "end", "still_open": len(streams) - closed}), flush=True)
    for w in streams:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0 if not errors else 1


async def ttfe(args) -> int:
    u = urlsplit(args.url)
    req = request(args.url, args.token, post=True)
    samples, failed = [], Counter()
    for _ in range(args.n):
        try:
            _, w, dt = await open_stream(u.hostname, u.port, req, args.timeout)
            w.close()
            samples.append(dt * 1000)
        except Exception as e:  # noqa: BLE001
            failed[error_name(e)] += 1
    print(json.dumps({
        "samples_ms": [round(s, 4) for s in samples],
        "median_ms": round(statistics.median(samples), 4) if samples else None,
        "failed": sum(failed.values()),
        "errors": dict(failed),
    }), flush=True)
    return 0 if samples and not failed else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["hold", "ttfe"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--hold", type=float, default=5, help="hold: seconds to keep streams open")
    ap.add_argument("--concurrency", type=int, default=256, help="hold: connects in flight")
    ap.add_argument("--timeout", type=float, default=10, help="per connect / per read")
    ap.add_argument("--max-seconds", type=float, default=300, help="bound on the whole run")
    args = ap.parse_args()
    coro = hold(args) if args.mode == "hold" else ttfe(args)
    try:
        return asyncio.run(asyncio.wait_for(coro, args.max_seconds))
    except asyncio.TimeoutError:
        print(json.dumps({"phase": "timeout", "max_seconds": args.max_seconds}), flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
