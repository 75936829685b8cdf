"""paired_traffic.py - keep-alive connections that each send a fixed
sequence of requests, with the truth taken from the client's own record:
every log line the server writes starts with the client's port and the
request's place on its connection, which the client maps to the
X-Request-ID it sent; and the nginx and lighttpd whose access logs start
so. Used by test_forged_headers.py and test_rewritten_lines.py.

A row fails on one wrong id, a line that is not JSON or not joined, or a
line count other than the requests sent; recall is printed, and judged only
against a floor the row gives.
"""

import json
import socket
import threading

import servers


class PairedNginx(servers.Nginx):
    """nginx whose access.log lines are the client's port, the request's
    place on its connection and the format named fmt of the test's."""

    def __init__(self, tmp, port, fmt):
        super().__init__(tmp, port)
        self.fmt = fmt

    def with_access_log(self, text, name, fmt, options=""):
        """The configuration text with its access log in format fmt
        (called name), with options after it."""
        t = self.tmp
        return text.replace(
            "    access_log %s/access.log combined;" % t,
            "    log_format %s '$remote_port $connection_requests %s';\n"
            "    access_log %s/access.log %s%s;" % (name, fmt, t, name, options))

    def place(self, field):
        return int(field) - 1  # $connection_requests counts from 1

    def sources(self):
        return [("access.log", "access.log", None)]


class PairedLighttpd(servers.RealServer):
    """lighttpd whose access log format (starting with %{remote}p %k) is
    the format named fmt of the test's."""
    name = "lighttpd"
    binary, apt = "lighttpd", "lighttpd"

    def __init__(self, tmp, port, fmt):
        super().__init__(tmp, port)
        self.fmt = fmt

    def write_lighttpd(self, purpose, fmt, *extra):
        """The configuration: the extra lines, then access log format fmt."""
        servers.write_lighttpd_config(
            self.tmp / "lighttpd.conf", purpose, self.root, self.port, self.tmp, *extra,
            'accesslog.format = "%s"' % fmt, "server.max-keep-alive-requests = 10000")

    def argv(self):
        return ["lighttpd", "-D", "-f", str(self.tmp / "lighttpd.conf")]

    def place(self, field):
        return int(field)  # %k: requests before this one on its connection

    def sources(self):
        return [("access.log", "access.log", None)]


def read_response(f):
    length = 0
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed mid-response")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        if line == b"\r\n":
            break
    f.read(length)


def client(port, conn, requests, truth, errors):
    """One keep-alive connection sending requests(conn): (request id, head
    without X-Request-ID and Host, body) each. Records (its port, place) ->
    request id."""
    try:
        s = socket.create_connection(("127.0.0.1", port))
        local_port = s.getsockname()[1]
        f = s.makefile("rb")
        for place, (rid, head, body) in enumerate(requests(conn)):
            s.sendall(("%sHost: 127.0.0.1\r\nX-Request-ID: %s\r\n\r\n%s"
                       % (head, rid, body)).encode())
            read_response(f)
            truth[(local_port, place)] = rid
        s.close()
    except OSError as e:
        errors.append("connection %d: %r" % (conn, e))


def run_row(label, srv, requests, connections, min_recall=None):
    """Runs srv (prepared) under the shim, connections clients at once, and
    judges its access.log. Returns whether the row passed."""
    problems = []
    running = servers.Running(srv)
    truth, errors = {}, []
    try:
        threads = [threading.Thread(target=client, args=(srv.port, c, requests, truth, errors))
                   for c in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # lighttpd exits 1 if the stop finds a connection it has not yet
        # seen closed (servers.Running.wait_connections_closed)
        if not running.wait_connections_closed():
            problems.append("connections still open 10 s after the clients closed theirs")
    finally:
        problems += running.stop()
    problems += errors
    right = wrong = untagged = 0
    lines = (srv.tmp / "access.log").read_text(errors="replace").splitlines()
    for text in lines:
        try:
            obj = json.loads(text)
            port, place = obj["msg"].split(" ", 2)[:2]
            want = truth[(int(port), srv.place(place))]
        except (ValueError, KeyError, TypeError) as e:
            problems.append("line not JSON or not joined (%r): %r" % (e, text[:200]))
            continue
        got = obj.get("request_id")
        if got is None:
            untagged += 1
        elif got == want:
            right += 1
        else:
            wrong += 1
            if wrong <= 3:
                problems.append("wrong id %s on the line of %s: %r" % (got, want, text[:200]))
    if wrong > 3:
        problems.append("%d wrong ids in all" % wrong)
    if len(lines) != len(truth):
        problems.append("%d lines for %d requests" % (len(lines), len(truth)))
    recall = right / len(lines) if lines else 0.0
    if min_recall is not None and recall < min_recall:
        problems.append("recall %.1f%% under %.0f%%" % (100 * recall, 100 * min_recall))
    tagged = right + wrong
    print("%-44s lines %5d  right %5d  wrong %3d  untagged %5d  precision %s  recall %.1f%%"
          % (label, len(lines), right, wrong, untagged,
             "%.1f%%" % (100.0 * right / tagged) if tagged else "-", 100.0 * recall))
    for p in problems:
        print("  FAIL: " + p)
    return not problems
