"""A minimal OTLP/HTTP trace receiver for tests/otlp.rs, written against
the OpenTelemetry protocol package (opentelemetry-proto), not toolfan.

Usage: receiver.py PORT OUT_FILE

Listens on 127.0.0.1:PORT, decodes each POST /v1/traces (protobuf
ExportTraceServiceRequest), appends one JSON line per span to OUT_FILE
(trace_id, span_id, parent_span_id as hex, name, service, attributes),
then answers 200 with an empty ExportTraceServiceResponse.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

LOCK = threading.Lock()


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(any_value, kind)
    if kind == "array_value":
        return [value(x) for x in v.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.values}
    if kind == "bytes_value":
        return v.hex()
    return v


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def spans(request):
    for resource_spans in request.resource_spans:
        service = attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "service": service,
                    "attributes": attributes(span.attributes),
                }


class Handler(BaseHTTPRequestHandler):
    out = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # a malformed body: refuse it, keep serving
            self.send_error(400, str(e))
            return
        lines = [json.dumps(s) + "\n" for s in spans(request)]
        with LOCK, open(self.out, "a") as f:
            f.writelines(lines)
            f.flush()
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    Handler.out = out
    open(out, "a").close()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
