#!/usr/bin/env python3
"""w3c_test_service.py - the service the W3C Trace Context conformance
harness drives in tests/integration/test_w3c_harness.py: a plain threading
HTTP server with no tracing code at all, so whatever trace context its
outbound calls carry was put there by the shim it runs under. It must never
read, write or forward a traceparent or tracestate itself.

On a POST it reads the body, a JSON list of {"url": ..., "arguments": ...},
and for each element, in order, POSTs the element's "arguments" as JSON to
its "url"; then it answers 200 with the list of the statuses it got (null
for a call that failed). Its access log goes to stderr. After binding it
writes its port to --port-file.

    python3 w3c_test_service.py --port-file FILE
"""

import argparse
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALL_TIMEOUT = 10  # seconds a call to the harness may take


def call(url, arguments):
    """POSTs arguments as JSON to url; returns the status, or None."""
    body = json.dumps(arguments).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as response:
            response.read()
            return response.status
    except OSError as e:
        print("call to %s failed: %s" % (url, e), flush=True)
        return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            actions = json.loads(self.rfile.read(length) or b"[]")
        except ValueError:
            self.send_error(400, "body is not JSON")
            return
        if not isinstance(actions, list):
            actions = [actions] if actions else []
        statuses = [call(a["url"], a.get("arguments") or []) for a in actions]
        body = json.dumps(statuses).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
