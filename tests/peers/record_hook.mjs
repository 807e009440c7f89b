// Node preload (`node --import ./record_hook.mjs …`) that records what an
// unmodified SDK-based server really executes, for the differential test
// (tests/e2e/differential.rs). Used on npm `server-everything`, whose files
// stay untouched.
//
// It patches the copy of `@modelcontextprotocol/sdk` the server loads (the
// server's own nested copy if it has one, else the top-level one) before the
// server starts:
// * `McpServer` wraps each tool, resource, resource-template and prompt
//   callback as it is registered, so a line is written only when the SDK
//   actually runs one, with what the SDK handed it: the registered tool or
//   prompt name, the URL whose `href` the resource callback received.
// * `Protocol.setRequestHandler` wraps the `resources/subscribe` and
//   `resources/unsubscribe` handlers, which get the request after the SDK's
//   schema parsing.
//
// Lines go to the file in env RECORD_FILE (nothing happens without it):
// {"kind":"tool"|"resource"|"prompt"|"subscribe","name"|"uri":…,"rid":<JSON-RPC id>,"session":…}
import { appendFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const recordFile = process.env.RECORD_FILE;

function record(kind, fields, extra) {
  if (!recordFile) return;
  const line = { kind, ...fields, rid: extra?.requestId ?? null, session: extra?.sessionId ?? null };
  appendFileSync(recordFile, JSON.stringify(line) + "\n");
}

// The callback's `extra` (RequestHandlerExtra) is its last argument.
function extraOf(args) {
  const last = args[args.length - 1];
  return last && typeof last === "object" && "requestId" in last ? last : undefined;
}

const here = dirname(fileURLToPath(import.meta.url));
const nested = join(here, "node_modules/@modelcontextprotocol/server-everything/node_modules/@modelcontextprotocol/sdk");
const sdkRoot = existsSync(nested) ? nested : join(here, "node_modules/@modelcontextprotocol/sdk");
const sdk = (p) => pathToFileURL(join(sdkRoot, "dist/esm", p)).href;

const { McpServer } = await import(sdk("server/mcp.js"));
const { Protocol } = await import(sdk("shared/protocol.js"));

const proto = McpServer.prototype;
for (const [method, argIndex, describe] of [
  ["_createRegisteredTool", 8, (name) => ["tool", { name }]],
  ["_createRegisteredPrompt", 4, (name) => ["prompt", { name }]],
  ["_createRegisteredResource", 4, null],
  ["_createRegisteredResourceTemplate", 4, null],
]) {
  const original = proto[method];
  if (typeof original !== "function") {
    throw new Error(`record_hook: McpServer.${method} not found; the SDK changed, update the hook`);
  }
  proto[method] = function (...args) {
    const callback = args[argIndex];
    if (typeof callback === "function") {
      const name = args[0];
      args[argIndex] = function (...cbArgs) {
        const extra = extraOf(cbArgs);
        if (describe) {
          const [kind, fields] = describe(name);
          record(kind, fields, extra);
        } else {
          // Resource callbacks get the URL the SDK parsed first.
          record("resource", { uri: cbArgs[0]?.href ?? String(cbArgs[0]) }, extra);
        }
        return callback.apply(this, cbArgs);
      };
    }
    return original.apply(this, args);
  };
}

const setRequestHandler = Protocol.prototype.setRequestHandler;
Protocol.prototype.setRequestHandler = function (schema, handler) {
  const wrapped = async (request, extra) => {
    if (request?.method === "resources/subscribe" || request?.method === "resources/unsubscribe") {
      record(request.method === "resources/subscribe" ? "subscribe" : "unsubscribe", { uri: request.params?.uri }, extra);
    }
    return handler(request, extra);
  };
  return setRequestHandler.call(this, schema, wrapped);
};
