#!/usr/bin/env python3
"""test_realistic.py - the realistic-traffic judges (realistic.judge_nginx,
realistic.judge_by_client_port) on hand-made logs, run first by run_real.py (with
test_real_oracle.py) so a broken judge cannot pass for a working shim.
Starts no process.

    python3 tests/realservers/test_realistic.py
"""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realistic  # noqa: E402

PID = 4242
PORT0, PORT1 = 40001, 40002
UA = "curl/7.88.1"


def req(rid, conn, pos, last, path="/index.html", status=200, port=None):
    r = realistic.Req(rid, path, status, close=False)
    r.conn, r.pos, r.last = conn, pos, last
    r.port = port if port is not None else (PORT0 if conn == 0 else PORT1)
    r.status, r.hdr_ids = status, [rid]
    return r


def j(rid, msg):
    return json.dumps({"request_id": rid, "msg": msg} if rid is not None else {"msg": msg})


def data(lines):
    return "".join(ln + "\n" for ln in lines).encode()


def nginx_conn(r):
    return 10 + r.conn  # nginx's connection serial of client connection r.conn


def nginx_access(r):
    return ('%d %d %d 127.0.0.1 - - [02/Dec/2026:03:35:53 +0000] "GET %s HTTP/1.1" %d 411 '
            '"-" "%s"' % (PID, nginx_conn(r), r.pos + 1, r.path, r.status, UA))


def nginx_truth(r):
    return "%d %d %d %s %d %d" % (PID, nginx_conn(r), r.pos + 1, r.rid, r.status, r.port)


def nginx_404(r):
    return ('2026/12/02 03:35:53 [error] %d#%d: *%d open() "/tmp/x/root%s" failed '
            '(2: No such file or directory), client: 127.0.0.1, server: , request: '
            '"GET %s HTTP/1.1", host: "127.0.0.1:8080"'
            % (PID, PID, nginx_conn(r), r.path, r.path))


def nginx_closed(conn):
    return ("2026/12/02 03:35:53 [info] %d#%d: *%d client 127.0.0.1 closed keepalive "
            "connection" % (PID, PID, conn))


NOTICE = "2026/12/02 03:35:53 [notice] %d#%d: gracefully shutting down" % (PID, PID)


def lighttpd_access(r):
    return ('%d %d 127.0.0.1 127.0.0.1:8080 - [02/Dec/2026:03:36:00 +0000] "GET %s HTTP/1.1" '
            '%d 411 "-" "%s"' % (r.port, r.pos, r.path, r.status, UA))


def three():
    return [req("id-a", 0, 0, False), req("id-b", 0, 1, True), req("id-c", 1, 0, True)]


def nginx(reqs, access, error=(), truth=None):
    truth = [nginx_truth(r) for r in reqs] if truth is None else truth
    return realistic.judge_nginx({"access.log": data(access), "error.log": data(error),
                                  "truth": data(truth)}, reqs)


class Nginx(unittest.TestCase):
    def test_clean(self):
        a, b, c = reqs = three()
        res = nginx(reqs, [j("id-a", nginx_access(a)), j(None, nginx_access(b)),
                           j("id-c", nginx_access(c))],
                    [j(None, NOTICE), j(None, nginx_closed(10)), j(None, nginx_closed(11))])
        self.assertEqual(res["problems"], [])
        row = res["rows"]["access.log"]
        self.assertEqual((row["lines"], row["joined"], row["right"], row["wrong"],
                          row["untagged"]), (3, 3, 2, 0, 1))
        self.assertEqual(row["precision"], 1.0)
        self.assertAlmostEqual(row["recall"], 2 / 3)
        other = res["rows"]["error.log other"]
        self.assertEqual((other["lines"], other["owned"], other["right"], other["untagged"]),
                         (3, 0, 0, 3))  # no line of a connection or the server's is a request's
        self.assertNotIn("error.log", res["rows"])  # no 404s, no request lines

    def test_wrong_id(self):
        a, b, c = reqs = three()
        res = nginx(reqs, [j("id-a", nginx_access(a)), j("id-a", nginx_access(b)),
                           j(None, nginx_access(c))])
        self.assertEqual(res["rows"]["access.log"]["wrong"], 1)
        self.assertTrue(any("wrong id" in p for p in res["problems"]))

    def test_unjoined_and_lost(self):
        a, b, c = reqs = three()
        stray = nginx_access(c).replace("%d 1 " % nginx_conn(c), "99 1 ", 1)
        res = nginx(reqs, [j(None, nginx_access(a)), j(None, stray)])
        row = res["rows"]["access.log"]
        self.assertEqual((row["joined"], row["unjoined"]), (1, 1))
        self.assertTrue(any("cannot be joined" in p for p in res["problems"]))
        self.assertTrue(any("lines lost or duplicated" in p for p in res["problems"]))

    def test_duplicate_line(self):
        a, b, c = reqs = three()
        res = nginx(reqs, [j(None, nginx_access(a)), j(None, nginx_access(a)),
                           j(None, nginx_access(b)), j(None, nginx_access(c))])
        self.assertEqual(res["rows"]["access.log"]["unjoined"], 1)
        self.assertTrue(res["problems"])

    def test_join_checked_against_the_request(self):
        a, b, c = reqs = three()
        other = nginx_access(b).replace("/index.html", "/other.html")
        res = nginx(reqs, [j(None, nginx_access(a)), j("id-b", other),
                           j(None, nginx_access(c))])
        self.assertEqual(res["rows"]["access.log"]["unjoined"], 1)

    def test_malformed(self):
        a, b, c = reqs = three()
        res = nginx(reqs, ['{"msg": "x"', j(None, nginx_access(a)), j(None, nginx_access(b)),
                           j(None, nginx_access(c))])
        self.assertEqual(res["rows"]["access.log"]["malformed"], 1)
        self.assertTrue(any("malformed" in p for p in res["problems"]))

    def test_bad_truth(self):
        a, b, c = reqs = three()
        truth = [nginx_truth(a), nginx_truth(b).replace(" 200 ", " 404 "), nginx_truth(c)]
        res = nginx(reqs, [j(None, nginx_access(r)) for r in reqs], truth=truth)
        self.assertTrue(any("status 404, the client got 200" in p for p in res["problems"]))
        self.assertEqual(res["rows"]["access.log"]["unjoined"], 1)

    def test_truth_port_checked(self):
        a, b, c = reqs = three()
        truth = [nginx_truth(a), nginx_truth(b), nginx_truth(c).replace(str(PORT1), "1")]
        res = nginx(reqs, [j(None, nginx_access(r)) for r in reqs], truth=truth)
        self.assertTrue(any("the client sent it from port" in p for p in res["problems"]))

    def test_error_lines_join_in_404_order(self):
        reqs = [req("id-a", 0, 0, False, "/missing", 404), req("id-b", 0, 1, False),
                req("id-c", 0, 2, True, "/missing", 404)]
        access = [j(None, nginx_access(r)) for r in reqs]
        ok = nginx(reqs, access, [j("id-a", nginx_404(reqs[0])), j(None, nginx_404(reqs[2]))])
        self.assertEqual(ok["problems"], [])
        row = ok["rows"]["error.log"]
        self.assertEqual((row["lines"], row["joined"], row["right"], row["untagged"]),
                         (2, 2, 1, 1))
        swapped = nginx(reqs, access, [j("id-c", nginx_404(reqs[0])),
                                       j("id-a", nginx_404(reqs[2]))])
        self.assertEqual(swapped["rows"]["error.log"]["wrong"], 2)
        lost = nginx(reqs, access, [j(None, nginx_404(reqs[0]))])
        self.assertTrue(any("1 request lines for 2 404s" in p for p in lost["problems"]))
        extra = nginx(reqs, access, [j(None, nginx_404(reqs[0]))] * 3)
        self.assertEqual(extra["rows"]["error.log"]["unjoined"], 1)

    def test_connection_and_server_lines(self):
        a, b, c = reqs = three()
        access = [j(None, nginx_access(r)) for r in reqs]
        res = nginx(reqs, access, [j("id-a", nginx_closed(10)),   # its last request's: over
                                   j("id-c", NOTICE),             # the server's own
                                   j("id-c", nginx_closed(77)),   # a connection of no request
                                   j(None, nginx_closed(11))])    # right: no id
        other = res["rows"]["error.log other"]
        self.assertEqual((other["wrong"], other["untagged"]), (3, 1))
        self.assertTrue(res["problems"])

    def test_response_header(self):
        a, b, c = reqs = three()
        b.hdr_ids = ["id-a"]
        c.hdr_ids = []
        res = nginx(reqs, [j(None, nginx_access(r)) for r in reqs])
        self.assertTrue(any("2 of 3 responses" in p for p in res["problems"]))


class Lighttpd(unittest.TestCase):
    def test_clean_and_batch(self):
        a, b, c = reqs = three()
        files = {"access.log": data([j("id-a", lighttpd_access(a)), j(None, lighttpd_access(b)),
                                     j("id-c", lighttpd_access(c))]),
                 "error.log": data([j(None, "2026-12-02 03:36:00: (server.c.1704) server "
                                              "started (lighttpd/1.4.69)")])}
        res = realistic.judge_by_client_port(files, reqs)
        self.assertEqual(res["problems"], [])
        row = res["rows"]["access.log"]
        self.assertEqual((row["joined"], row["right"], row["untagged"]), (3, 2, 1))
        # one buffered write of three lines, all with the last one's id
        files["access.log"] = data([j("id-c", lighttpd_access(r)) for r in reqs])
        res = realistic.judge_by_client_port(files, reqs)
        self.assertEqual((res["rows"]["access.log"]["right"], res["rows"]["access.log"]["wrong"]),
                         (1, 2))
        self.assertTrue(res["problems"])

    def test_unjoined_lost_server_line(self):
        a, b, c = reqs = three()
        stray = lighttpd_access(c).replace(str(PORT1), "5", 1)
        files = {"access.log": data([j(None, lighttpd_access(a)), j(None, stray)]),
                 "error.log": data([j("id-a", "server stopped")])}
        res = realistic.judge_by_client_port(files, reqs)
        self.assertEqual(res["rows"]["access.log"]["unjoined"], 1)
        self.assertEqual(res["rows"]["error.log other"]["wrong"], 1)
        self.assertTrue(any("2 lines for 3 answered" in p for p in res["problems"]))

    def test_port_used_twice(self):
        a, b, c = reqs = three()
        c.port = PORT0
        c.pos = 1  # same key as b
        files = {"access.log": data([j(None, lighttpd_access(r)) for r in reqs]),
                 "error.log": b""}
        res = realistic.judge_by_client_port(files, reqs)
        self.assertTrue(any("local port for two connections" in p for p in res["problems"]))


class Plan(unittest.TestCase):
    def test_plan_shapes(self):
        import random
        for kind in ("keepalive", "close", "mixed"):
            plan = realistic.make_plan(random.Random(kind), kind, 500)
            reqs = [r for c in plan for r in c]
            self.assertEqual(len(reqs), 500)
            self.assertEqual(len({r.rid for r in reqs}), 500)
            self.assertTrue(all(1 <= len(c) <= (1 if kind == "close" else 20) for c in plan))
            paths = {r.path for r in reqs}
            self.assertEqual(paths, {"/index.html", "/other.html", "/missing"}
                             if kind == "mixed" else {"/index.html"})
            self.assertTrue(all(c[-1].last and not any(r.last for r in c[:-1]) for c in plan))


if __name__ == "__main__":
    unittest.main()
