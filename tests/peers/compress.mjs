// Compresses bodies for tests/e2e/differential.rs (the test crate has no
// compression library): reads a JSON array of base64 strings on stdin and
// prints a JSON array of {"gzip","deflate","br"} base64 strings, with Node's
// zlib: gzip (RFC 1952), deflate as HTTP means it (zlib, RFC 1950), brotli.
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const inputs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const b64 = (buf) => Buffer.from(buf).toString("base64");
const out = inputs.map((s) => {
  const raw = Buffer.from(s, "base64");
  return { gzip: b64(gzipSync(raw)), deflate: b64(deflateSync(raw)), br: b64(brotliCompressSync(raw)) };
});
process.stdout.write(JSON.stringify(out));
