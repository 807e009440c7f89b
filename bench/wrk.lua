-- wrk script: a fixed JSON-RPC POST with the MCP headers, and a one-line JSON
-- summary (prefixed WRKJSON) that bench/report.py reads.
--
-- Environment: BENCH_TOKEN (bearer token; omitted when empty),
-- BENCH_METHOD (tools/call | tools/list; default tools/call).

local token = os.getenv("BENCH_TOKEN") or ""
local method = os.getenv("BENCH_METHOD") or "tools/call"

wrk.method = "POST"
if method == "tools/list" then
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
else
  wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
    .. '"params":{"name":"tool_007","arguments":{"message":"hello from wrk"}}}'
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"rps":%.2f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.2f,"max_us":%d,'
      .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
