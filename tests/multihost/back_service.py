#!/usr/bin/env python3
"""back_service.py - the back host's service in the second scenario of
tests/integration/test_multihost.py: a plain threading HTTP server with no
tracing or request-id code. GET /work/<k> logs a line to stderr and answers
"back k=<k> ok"; http.server's access log goes to stderr as well. With
--cert and --key it serves HTTPS.

    python3 back_service.py --port 8080 [--cert C --key K]
"""

import argparse
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.split("/")
        if len(parts) != 3 or parts[1] != "work" or not parts[2].isdigit():
            self.send_error(404)
            return
        k = parts[2]
        print("back k=%s handling" % k, file=sys.stderr, flush=True)
        body = ("back k=%s ok\n" % k).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    server = Server(("", a.port), Handler)
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
