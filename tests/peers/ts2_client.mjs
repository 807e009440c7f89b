// Real MCP client on the TypeScript SDK v2 (`@modelcontextprotocol/client`)
// speaking protocol revision 2026-07-28 (stateless: `server/discover`, no
// `initialize`, no session; `MCP-Protocol-Version` and `Mcp-Method`/`Mcp-Name`
// headers on every request, `_meta` envelope in every body). The era is pinned
// with `versionNegotiation: { mode: { pin: "2026-07-28" } }`: connect() must get
// a `server/discover` answer offering 2026-07-28, or it fails (no fallback to
// `initialize`).
//
// Usage: node ts2_client.mjs <url> <bearer-token-or-empty> <command> [args...]
//   list-tools                      -> JSON array of tool names, sorted
//   call <tool> <json-args>         -> JSON of result.content
//   read <uri>                      -> JSON of result.contents
//   get-prompt <name> <json-args>   -> JSON of result.messages
//   list-resources | list-resource-templates | list-prompts
//                                   -> JSON array of URIs / URI templates / names, sorted
// Success: one JSON line on stdout, exit 0.
// Failure: one line `ERROR <message>` on stdout (`HTTP <code>: ` first when an
// HTTP error status was seen), exit 2. Usage errors exit 64.
// A tool result with isError=true is printed like a success, but prefixed
// `TOOL_ERROR ` and exits 3.
// `TS2_CLIENT_TRACE=1` logs each request's method, protocol-version header and
// response status to stderr.
import { Client, InsufficientScopeError, SdkHttpError, StreamableHTTPClientTransport, UnauthorizedError } from "@modelcontextprotocol/client";

const PROTOCOL = "2026-07-28";

function usage() {
  process.stderr.write(
    "usage: node ts2_client.mjs <url> <token|''> list-tools | list-resources | list-resource-templates | list-prompts | call <tool> <json> | read <uri> | get-prompt <name> <json>\n",
  );
  process.exit(64);
}

function oneLine(s) {
  return String(s).replace(/\s+/g, " ").trim();
}

// The last HTTP error status any request of this run got (the SDK does not
// carry the status on every error type it throws).
let lastHttpError = 0;

function fail(err) {
  let msg = err && err.message ? err.message : String(err);
  let status = 0;
  if (err instanceof SdkHttpError) status = err.status;
  else if (err instanceof UnauthorizedError) status = 401;
  else if (err instanceof InsufficientScopeError) status = 403;
  else status = lastHttpError;
  if (status > 0) msg = `HTTP ${status}: ${msg}`;
  process.stdout.write(`ERROR ${oneLine(msg)}\n`);
  process.exit(2);
}

function parseJsonArg(s) {
  if (s === undefined || s === "") return {};
  try {
    return JSON.parse(s);
  } catch (e) {
    process.stderr.write(`invalid JSON argument: ${e.message}\n`);
    process.exit(64);
  }
}

const [url, token, command, ...args] = process.argv.slice(2);
if (!url || token === undefined || !command) usage();

const trace = process.env.TS2_CLIENT_TRACE === "1";
async function observingFetch(input, init) {
  const res = await fetch(input, init);
  if (res.status >= 400) lastHttpError = res.status;
  if (trace) {
    const h = new Headers(init?.headers);
    let method = "";
    try {
      method = JSON.parse(init?.body ?? "{}").method ?? "";
    } catch {
      // not JSON
    }
    process.stderr.write(
      `ts2_client: ${init?.method ?? "GET"} ${method} mcp-protocol-version=${h.get("mcp-protocol-version")} mcp-method=${h.get("mcp-method")} auth=${h.has("authorization")} -> ${res.status}\n`,
    );
  }
  return res;
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  // Static bearer token, the SDK's documented simple AuthProvider: it becomes
  // `Authorization: Bearer <token>` on every request. Without onUnauthorized a
  // 401 is an UnauthorizedError; without an OAuth provider a 403
  // insufficient_scope is an InsufficientScopeError (no step-up).
  ...(token ? { authProvider: { token: async () => token } } : {}),
  fetch: observingFetch,
});
const client = new Client(
  { name: "gateway-e2e-ts2-client", version: "1.0.0" },
  { versionNegotiation: { mode: { pin: PROTOCOL } } },
);

// Failures also reach onerror; the rejection is what we act on.
transport.onerror = () => {};

async function run() {
  await client.connect(transport);
  const negotiated = client.getNegotiatedProtocolVersion?.();
  if (negotiated !== undefined && negotiated !== PROTOCOL) {
    throw new Error(`negotiated protocol ${negotiated}, wanted ${PROTOCOL}`);
  }
  switch (command) {
    case "list-tools":
      return { out: (await client.listTools()).tools.map((t) => t.name).sort() };
    case "list-resources":
      return { out: (await client.listResources()).resources.map((r) => r.uri).sort() };
    case "list-resource-templates":
      return { out: (await client.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate).sort() };
    case "list-prompts":
      return { out: (await client.listPrompts()).prompts.map((p) => p.name).sort() };
    case "call": {
      if (!args[0]) usage();
      const r = await client.callTool({ name: args[0], arguments: parseJsonArg(args[1]) });
      return { out: r.content, toolError: r.isError === true };
    }
    case "read": {
      if (!args[0]) usage();
      const r = await client.readResource({ uri: args[0] });
      return { out: r.contents };
    }
    case "get-prompt": {
      if (!args[0]) usage();
      const r = await client.getPrompt({ name: args[0], arguments: parseJsonArg(args[1]) });
      return { out: r.messages };
    }
    default:
      usage();
  }
}

let result;
try {
  result = await run();
} catch (err) {
  fail(err);
}
try {
  await client.close();
} catch {
  // ignore
}
process.stdout.write(`${result.toolError ? "TOOL_ERROR " : ""}${JSON.stringify(result.out)}\n`);
process.exit(result.toolError ? 3 : 0);
