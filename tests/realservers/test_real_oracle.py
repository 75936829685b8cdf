#!/usr/bin/env python3
"""test_real_oracle.py - the realservers oracle (oracle.check_run) on
hand-made logs, run first by run_real.py so a broken judge cannot pass for a
working shim. Starts no process.

    python3 tests/realservers/test_real_oracle.py
"""

import json
import re
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402

TOK = re.compile(r"TEST\d{5}")
G1, G2, G3 = "a" * 32, "b" * 32, "c" * 32


class R:
    def __init__(self, token, expected, status=200, hdr=None):
        self.token, self.expected, self.status = token, expected, status
        self.status_got, self.hdr_ids = status, hdr


def j(rid, msg):
    return json.dumps({"request_id": rid, "msg": msg} if rid is not None else {"msg": msg})


def run(lines, reqs, count=1):
    data = "".join(ln + "\n" for ln in lines).encode()
    return oracle.check_run({"a.log": data}, [("a.log", "a.log", None)], reqs, TOK,
                            (lambda label, r: count) if count is not None else None)


def access(tok):
    return '127.0.0.1 - - [x] "GET /req/%s HTTP/1.1" 200 7' % tok


class Oracle(unittest.TestCase):
    def test_clean_cid_and_generated(self):
        reqs = [R("TEST00001", "cid-TEST00001", hdr=["cid-TEST00001"]),
                R("TEST00002", oracle.GENERATED, hdr=[G1]),
                R("TEST00003", oracle.GENERATED)]
        res = run([j("cid-TEST00001", access("TEST00001")), j(G1, access("TEST00002")),
                   j(None, access("TEST00003")), j(None, "server started")], reqs)
        row = res["rows"]["a.log"]
        self.assertEqual(res["problems"], [])
        self.assertEqual((row["lines"], row["matched"], row["tagged"], row["correct"],
                          row["wrong"]), (4, 3, 2, 2, 0))
        self.assertEqual(row["precision"], 1.0)
        self.assertAlmostEqual(row["recall"], 2 / 3)
        self.assertEqual((res["header"]["ok"], res["header"]["missing"]), (2, 1))

    def test_wrong_inbound_id(self):
        reqs = [R("TEST00001", "cid-TEST00001"), R("TEST00002", "cid-TEST00002")]
        res = run([j("cid-TEST00002", access("TEST00001")),
                   j("cid-TEST00002", access("TEST00002"))], reqs)
        self.assertEqual(res["rows"]["a.log"]["wrong"], 1)
        self.assertTrue(any("wrong id" in p for p in res["problems"]))

    def test_shared_generated_id(self):
        reqs = [R("TEST00001", oracle.GENERATED), R("TEST00002", oracle.GENERATED)]
        res = run([j(G1, access("TEST00001")), j(G1, access("TEST00002"))], reqs)
        self.assertEqual(res["rows"]["a.log"]["wrong"], 2)

    def test_generated_id_of_another_response(self):
        reqs = [R("TEST00001", oracle.GENERATED, hdr=[G2]),
                R("TEST00002", oracle.GENERATED, hdr=[G1])]
        res = run([j(G1, access("TEST00001")), j(None, access("TEST00002"))], reqs)
        self.assertEqual(res["rows"]["a.log"]["wrong"], 1)
        # G1 is T2's (its response says so): T1's line carrying it is wrong
        self.assertEqual((res["header"]["wrong"], res["header"]["ok"]), (0, 2))

    def test_inconsistent_generated(self):
        reqs = [R("TEST00001", oracle.GENERATED)]
        res = run([j(G1, access("TEST00001")), j(G1, access("TEST00001") + " again"),
                   j(G3, access("TEST00001") + " more")], reqs, count=3)
        row = res["rows"]["a.log"]
        self.assertEqual((row["correct"], row["wrong"]), (2, 1))

    def test_header_decides_a_shared_id(self):
        # one write carried three requests' lines with the id of the third
        reqs = [R("TEST00001", oracle.GENERATED, hdr=[G1]),
                R("TEST00002", oracle.GENERATED, hdr=[G2]),
                R("TEST00003", oracle.GENERATED, hdr=[G3])]
        res = run([j(G3, access("TEST00001")), j(G3, access("TEST00002")),
                   j(G3, access("TEST00003"))], reqs)
        row = res["rows"]["a.log"]
        self.assertEqual((row["correct"], row["wrong"]), (1, 2))
        self.assertEqual((res["header"]["ok"], res["header"]["wrong"]), (3, 0))

    def test_header_and_lines_disagree(self):
        reqs = [R("TEST00001", oracle.GENERATED, hdr=[G2])]
        res = run([j(G1, access("TEST00001"))], reqs)
        self.assertEqual(res["rows"]["a.log"]["wrong"], 0)
        self.assertEqual(res["header"]["wrong"], 1)
        self.assertTrue(any("one of them is wrong" in p for p in res["problems"]))

    def test_not_hex_generated(self):
        reqs = [R("TEST00001", oracle.GENERATED)]
        res = run([j("cid-TEST00001", access("TEST00001"))], reqs)
        self.assertEqual(res["rows"]["a.log"]["wrong"], 1)

    def test_malformed_merged_unknown(self):
        reqs = [R("TEST00001", "cid-TEST00001"), R("TEST00002", "cid-TEST00002")]
        res = run(['{"msg": "x"', j(None, access("TEST00001") + access("TEST00002")),
                   j(None, access("TEST00009"))], reqs, count=None)
        row = res["rows"]["a.log"]
        self.assertEqual((row["malformed"], row["merged"], row["unknown_token"]), (1, 1, 1))
        self.assertEqual(len(res["problems"]), 3 + 3)  # three lines, three counts

    def test_extra_member_is_malformed(self):
        reqs = [R("TEST00001", "cid-TEST00001")]
        res = run([json.dumps({"request_id": "cid-TEST00001", "msg": access("TEST00001"),
                               "x": 1})], reqs, count=None)
        self.assertEqual(res["rows"]["a.log"]["malformed"], 1)

    def test_lost_and_duplicated(self):
        reqs = [R("TEST00001", "cid-TEST00001"), R("TEST00002", "cid-TEST00002")]
        res = run([j(None, access("TEST00002")), j(None, access("TEST00002"))], reqs)
        row = res["rows"]["a.log"]
        self.assertEqual((row["lost"], row["extra"]), (1, 1))
        self.assertTrue(res["problems"])

    def test_partial_last_line(self):
        reqs = [R("TEST00001", "cid-TEST00001")]
        res = oracle.check_run({"a.log": j(None, access("TEST00001")).encode()},
                               [("a.log", "a.log", None)], reqs, TOK)
        self.assertTrue(any("newline" in p for p in res["problems"]))

    def test_unmatched_tagged_reported_not_failed(self):
        reqs = [R("TEST00001", "cid-TEST00001")]
        res = run([j("cid-TEST00001", access("TEST00001")),
                   j("cid-TEST00001", "client closed keepalive connection"),
                   j(G2, "something else")], reqs)
        row = res["rows"]["a.log"]
        self.assertEqual(res["problems"], [])
        self.assertEqual((row["untok_tagged"], row["untok_unknown_id"]), (2, 1))

    def test_sources_share_a_file(self):
        reqs = [R("TEST00001", "cid-TEST00001")]
        data = "".join(ln + "\n" for ln in [j(None, "url:/x/TEST00001"),
                                            j(None, "cgi token=TEST00001")]).encode()
        res = oracle.check_run({"s.log": data},
                               [("httpd", "s.log", lambda m: not m.startswith("cgi ")),
                                ("cgi", "s.log", lambda m: m.startswith("cgi "))],
                               reqs, TOK, lambda label, r: 1)
        self.assertEqual(res["problems"], [])
        self.assertEqual((res["rows"]["httpd"]["matched"], res["rows"]["cgi"]["matched"]), (1, 1))

    def test_wrong_header(self):
        reqs = [R("TEST00001", "cid-TEST00001", hdr=["cid-TEST00002"]),
                R("TEST00002", "cid-TEST00002", hdr=["cid-TEST00002", "cid-TEST00002"])]
        res = run([], reqs, count=None)
        self.assertEqual((res["header"]["wrong"], res["header"]["ok"]), (2, 0))


if __name__ == "__main__":
    unittest.main()
