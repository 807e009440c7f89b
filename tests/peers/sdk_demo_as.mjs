// The TypeScript SDK's own demo authorization server (opaque tokens + introspection),
// exactly as shipped in @modelcontextprotocol/sdk/dist/esm/examples/server/
// demoInMemoryOAuthProvider.js (`setupAuthServer`), started on 127.0.0.1 only.
//
// Usage: node sdk_demo_as.mjs <port> <mcp-resource-url>
//   Prints `READY <issuer>` on stdout once listening; the issuer is
//   `http://127.0.0.1:<port>/` (WITH trailing slash: the SDK uses URL.href).
// Env: SDK_DEMO_STRICT_RESOURCE=0 turns off strictResource (default on: the token
//   authorization request must carry `resource` = the resource URL, else the token
//   endpoint answers HTTP 500 server_error).
//
// setupAuthServer() calls express's app.listen(port) without a host (all
// interfaces); we wrap http.Server.prototype.listen so it binds 127.0.0.1 only
// and so we learn when it is actually listening. Everything else is the SDK's code.
import * as http from "node:http";

import { setupAuthServer } from "@modelcontextprotocol/sdk/examples/server/demoInMemoryOAuthProvider.js";

const [portArg, resourceArg] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !resourceArg || !URL.canParse(resourceArg)) {
  process.stderr.write("usage: node sdk_demo_as.mjs <port> <mcp-resource-url>\n");
  process.exit(64);
}

const origListen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  // express: app.listen(port, callback) -> server.listen(port, callback)
  if (args.length >= 1 && (typeof args[0] === "number" || typeof args[0] === "string") && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  }
  this.once("listening", () => process.stdout.write(`READY ${metadata.issuer}\n`));
  this.once("error", (e) => {
    process.stderr.write(`listen error: ${e.message}\n`);
    process.exit(1);
  });
  return origListen.apply(this, args);
};

// The demo logs "OAuth Authorization Server listening on port N" with console.log:
// move that to stderr so stdout has only READY.
console.log = (...a) => process.stderr.write(`${a.join(" ")}\n`);

const strictResource = process.env.SDK_DEMO_STRICT_RESOURCE !== "0";
const metadata = setupAuthServer({
  authServerUrl: new URL(`http://127.0.0.1:${port}`),
  mcpServerUrl: new URL(resourceArg),
  strictResource,
});

for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
