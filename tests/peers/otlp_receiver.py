"""OTLP/HTTP trace receiver for tests: decodes the real protobuf payloads.

Usage:  .venv/bin/python otlp_receiver.py PORT
POST /v1/traces: an ExportTraceServiceRequest (protobuf, optionally gzip),
  answered with an empty ExportTraceServiceResponse.
GET /headers: the request headers of every export, lowercased names.
GET /spans: every span received so far, as a JSON list of
  {"service", "name", "kind" (SERVER|CLIENT|INTERNAL|...), "trace_id",
   "span_id", "parent_span_id" ("" for a root), "status" (UNSET|OK|ERROR),
   "attributes": {key: value}, "links": [{"trace_id", "span_id"}]}.
Prints READY once listening.
"""

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

SPANS = []
HEADERS = []
LOCK = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces" or "protobuf" not in (self.headers.get("Content-Type") or ""):
            self.send_error(415 if self.path == "/v1/traces" else 404)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for rs in request.resource_spans:
            resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append({
                        "service": resource.get("service.name"),
                        "name": s.name,
                        "kind": Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "status": Status.StatusCode.Name(s.status.code).removeprefix("STATUS_CODE_"),
                        "attributes": {kv.key: value(kv.value) for kv in s.attributes},
                        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()}
                                  for l in s.links],
                    })
        with LOCK:
            SPANS.extend(spans)
            HEADERS.append({k.lower(): v for k, v in self.headers.items()})
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        with LOCK:
            out = json.dumps(HEADERS if self.path == "/headers" else SPANS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("READY", flush=True)
server.serve_forever()
