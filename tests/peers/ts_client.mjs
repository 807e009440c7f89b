// Real MCP client (official TypeScript SDK) used by the Rust e2e tests.
//
// Usage: node ts_client.mjs <url> <bearer-token-or-empty> <command> [args...]
//   list-tools                      -> JSON array of tool names, sorted
//   call <tool> <json-args>         -> JSON of result.content
//   read <uri>                      -> JSON of result.contents
//   get-prompt <name> <json-args>   -> JSON of result.messages
//   list-resources | list-resource-templates | list-prompts
//                                   -> JSON array of URIs / URI templates / names, sorted
// Success: one JSON line on stdout, exit 0.
// Failure: one line `ERROR <message>` on stdout (HTTP status included as
// `HTTP <code>: ` when the SDK error carries one), exit 2. Usage errors exit 64.
// A tool result with isError=true is printed like a success, but prefixed
// `TOOL_ERROR ` and exits 3.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function usage() {
  process.stderr.write(
    "usage: node ts_client.mjs <url> <token|''> list-tools | list-resources | list-resource-templates | list-prompts | call <tool> <json> | read <uri> | get-prompt <name> <json>\n",
  );
  process.exit(64);
}

function oneLine(s) {
  return String(s).replace(/\s+/g, " ").trim();
}

function fail(err) {
  let msg = err && err.message ? err.message : String(err);
  // StreamableHTTPError.code is the HTTP status (or -1); McpError.code is a JSON-RPC code.
  const ctor = err && err.constructor ? err.constructor.name : "";
  if (ctor === "StreamableHTTPError" && typeof err.code === "number" && err.code > 0) {
    msg = `HTTP ${err.code}: ${msg}`;
  } else if (ctor === "UnauthorizedError") {
    msg = `HTTP 401: ${msg}`;
  }
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

const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "gateway-e2e-ts-client", version: "1.0.0" });

// The SDK reports some transport failures via onerror as well as rejecting the
// pending request; the rejection is what we act on, so keep stderr quiet.
transport.onerror = () => {};

async function run() {
  await client.connect(transport);
  switch (command) {
    case "list-tools": {
      const names = [];
      let cursor;
      do {
        const r = await client.listTools(cursor ? { cursor } : {});
        for (const t of r.tools) names.push(t.name);
        cursor = r.nextCursor;
      } while (cursor);
      names.sort();
      return { out: names };
    }
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
