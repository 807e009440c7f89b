// Reads one JSON string per line on stdin (a URI) and prints, per line, the
// WHATWG serialization Node's own URL parser gives it: {"href": "..."} or
// {"error": true}. The reference for tests/e2e/uri_whatwg.rs: the TS SDK
// reads params.uri with exactly this `new URL()`.
import readline from "node:readline";

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
for await (const line of rl) {
  const uri = JSON.parse(line);
  try {
    out.push(JSON.stringify({ href: new URL(uri).href }));
  } catch {
    out.push(JSON.stringify({ error: true }));
  }
}
process.stdout.write(out.join("\n") + "\n");
