#!/usr/bin/env python3
"""front_service.py - the front host's service in tests/integration/test_multihost.py:
a plain threading HTTP server, written the way an ordinary service is, with
no tracing or request-id code at all. GET /work/<k> logs a line, calls the
back service for item k with urllib, logs the answer, and responds 200.
Everything it logs goes to stderr (print and http.server's access log).

    python3 front_service.py --port 8080 --back http://10.77.0.2:8080/cgi-bin/work/
"""

import argparse
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    back = None

    def do_GET(self):
        parts = self.path.split("/")
        if len(parts) != 3 or parts[1] != "work" or not parts[2].isdigit():
            self.send_error(404)
            return
        k = parts[2]
        print("front k=%s start" % k, file=sys.stderr, flush=True)
        try:
            with urllib.request.urlopen(self.back + k, timeout=10) as resp:
                answer = resp.read().decode("utf-8", "replace").strip()
        except OSError as e:
            print("front k=%s back failed: %s" % (k, e), file=sys.stderr, flush=True)
            self.send_error(502)
            return
        print("front k=%s back said: %s" % (k, answer), file=sys.stderr, flush=True)
        body = ("front k=%s: %s\n" % (k, answer)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # a burst of clients does not overflow the backlog


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--back", required=True, help="URL prefix; the item number is appended")
    a = ap.parse_args()
    Handler.back = a.back
    Server(("", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
