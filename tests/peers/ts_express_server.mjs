// A TypeScript SDK MCP server built the documented way, for the differential
// test (tests/e2e/differential.rs): `createMcpExpressApp()` (express.json()
// body parsing: every `charset=utf-*`, gzip/deflate/br), `McpServer`, and
// `StreamableHTTPServerTransport` with the SDK example's `InMemoryEventStore`
// (stateful sessions, resumable streams), as in the SDK's
// examples/server/simpleStreamableHttp.js.
//
// Usage: node ts_express_server.mjs <port>
//   Serves http://127.0.0.1:<port>/mcp and prints `READY` on stdout once listening.
// Env: RECORD_FILE=<path>: append one JSON line per executed operation, written
//   from inside the handler with what the SDK handed it (never the raw body):
//   {"kind":"tool","name":…}, {"kind":"resource","uri":<URL href received>},
//   {"kind":"prompt","name":…}, {"kind":"subscribe","uri":…}; each with
//   "rid" (the JSON-RPC id the SDK parsed) and "session".
//
// Tools `echo` (public), `admin_reset` (secret); resources
// `file:///public/readme.txt`, `file:///private/secret.txt`, template
// `file:///public/{name}`; prompts `summarize`, `admin_prompt`. Secret things
// answer with `SECRET-…` markers and describe themselves with
// `SECRET-LISTING`, so a leak is visible in any answer.
import { appendFileSync } from "node:fs";
import { randomUUID } from "node:crypto";

import { z } from "zod";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";
import { isInitializeRequest, SubscribeRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write("usage: node ts_express_server.mjs <port>\n");
  process.exit(64);
}
const recordFile = process.env.RECORD_FILE;

function record(kind, fields, extra) {
  if (!recordFile) return;
  const line = { kind, ...fields, rid: extra?.requestId ?? null, session: extra?.sessionId ?? null };
  appendFileSync(recordFile, JSON.stringify(line) + "\n");
}

function text(uri, body) {
  return { contents: [{ uri: uri.href, mimeType: "text/plain", text: body }] };
}

function getServer() {
  const server = new McpServer(
    { name: "gateway-test-ts-express", version: "1.0.0" },
    { capabilities: { logging: {}, resources: { subscribe: true } } },
  );
  server.registerTool(
    "echo",
    { description: "Echo the message back.", inputSchema: { message: z.string() } },
    async ({ message }, extra) => {
      record("tool", { name: "echo" }, extra);
      return { content: [{ type: "text", text: `echo: ${message}` }] };
    },
  );
  server.registerTool(
    "admin_reset",
    { description: "SECRET-LISTING: privileged reset." },
    async (extra) => {
      record("tool", { name: "admin_reset" }, extra);
      return { content: [{ type: "text", text: "SECRET-ADMIN-RESET-DONE" }] };
    },
  );
  server.registerResource(
    "readme",
    "file:///public/readme.txt",
    { mimeType: "text/plain", description: "Public readme." },
    async (uri, extra) => {
      record("resource", { uri: uri.href }, extra);
      return text(uri, "This is the public readme.");
    },
  );
  server.registerResource(
    "secret",
    "file:///private/secret.txt",
    { mimeType: "text/plain", description: "SECRET-LISTING: private file." },
    async (uri, extra) => {
      record("resource", { uri: uri.href }, extra);
      return text(uri, "SECRET-FILE-CONTENT: the password is hunter2");
    },
  );
  server.registerResource(
    "public-file",
    new ResourceTemplate("file:///public/{name}", { list: undefined }),
    { mimeType: "text/plain", description: "Any public file." },
    async (uri, variables, extra) => {
      record("resource", { uri: uri.href }, extra);
      return text(uri, `public file ${variables.name}`);
    },
  );
  server.registerPrompt(
    "summarize",
    { description: "Summarize a text.", argsSchema: { text: z.string() } },
    async ({ text: t }, extra) => {
      record("prompt", { name: "summarize" }, extra);
      return { messages: [{ role: "user", content: { type: "text", text: `Please summarize: ${t}` } }] };
    },
  );
  server.registerPrompt(
    "admin_prompt",
    { description: "SECRET-LISTING: privileged prompt." },
    async (extra) => {
      record("prompt", { name: "admin_prompt" }, extra);
      return { messages: [{ role: "user", content: { type: "text", text: "SECRET-ADMIN-PROMPT" } }] };
    },
  );
  // McpServer has no subscribe helper: the low-level handler, as the SDK documents.
  server.server.setRequestHandler(SubscribeRequestSchema, async (request, extra) => {
    record("subscribe", { uri: request.params.uri }, extra);
    return {};
  });
  return server;
}

const app = createMcpExpressApp();
const transports = new Map();

app.post("/mcp", async (req, res) => {
  const sessionId = req.headers["mcp-session-id"];
  try {
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport && !sessionId && isInitializeRequest(req.body)) {
      const eventStore = new InMemoryEventStore();
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore,
        onsessioninitialized: (sid) => transports.set(sid, transport),
      });
      transport.onclose = () => {
        if (transport.sessionId) transports.delete(transport.sessionId);
      };
      await getServer().connect(transport);
    } else if (!transport) {
      const status = sessionId ? 404 : 400;
      const message = sessionId ? "Session not found" : "Bad Request: No valid session ID provided";
      res.status(status).json({ jsonrpc: "2.0", error: { code: -32000, message }, id: null });
      return;
    }
    await transport.handleRequest(req, res, req.body);
  } catch (error) {
    process.stderr.write(`error handling MCP request: ${error}\n`);
    if (!res.headersSent) {
      res.status(500).json({ jsonrpc: "2.0", error: { code: -32603, message: "Internal server error" }, id: null });
    }
  }
});

async function sessionRequest(req, res) {
  const sessionId = req.headers["mcp-session-id"];
  const transport = sessionId ? transports.get(sessionId) : undefined;
  if (!transport) {
    res.status(sessionId ? 404 : 400).json({ jsonrpc: "2.0", error: { code: -32000, message: "Session not found" }, id: null });
    return;
  }
  await transport.handleRequest(req, res);
}
app.get("/mcp", sessionRequest);
app.delete("/mcp", sessionRequest);

app.listen(port, "127.0.0.1", (error) => {
  if (error) {
    process.stderr.write(`listen failed: ${error}\n`);
    process.exit(1);
  }
  process.stdout.write("READY\n");
});
