#!/usr/bin/env python3
"""test_oracle.py - checks the integration oracle (harness.check_log) on
hand-made logs, so a bug in the judge cannot pass for a working shim.

Standard library unittest only; starts no process. It must never weaken an
assertion to match the harness: the expected counts here are the spec.

    python3 tests/integration/test_oracle.py
"""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

PFX = "2026-01-01T00:00:00.000Z INFO  [thread_pool] pid=1 tid=2 "
G1, G2 = "a" * 32, "b" * 32


def req(token, expected, kind="x"):
    r = h.Req()
    r.token, r.expected, r.kind, r.delayed = token, expected, kind, False
    return r


def jline(rid, text, field="request_id"):
    obj = {field: rid, "msg": PFX + text} if rid is not None else {"msg": PFX + text}
    return json.dumps(obj)


def three(token, ids, field="request_id"):
    return [jline(i, "token=%s %s x" % (token, k), field)
            for i, k in zip(ids, h.KINDS_PLAIN)]


def check(lines, reqs, fmt=None, outside=None):
    text = "".join(l + "\n" for l in lines)
    return h.check_log(text, "thread_pool", reqs, fmt or h.LineFormat(), outside=outside)


class Oracle(unittest.TestCase):
    def test_clean(self):
        reqs = [req("T1", "cid-T1"), req("T2", h.GENERATED), req("T3", h.GENERATED)]
        lines = (three("T1", ["cid-T1"] * 3) + three("T2", [G1] * 3)
                 + three("T3", [G2, None, G2]) + [jline(None, "worker 3 picked up")])
        r = check(lines, reqs)
        c = r["counts"]
        self.assertEqual(r["problems"], [])
        self.assertEqual((c["lines"], c["token_lines"], c["tagged"], c["correct"], c["wrong"]),
                         (10, 9, 8, 8, 0))

    def test_shared_generated_id_is_wrong_for_both(self):
        reqs = [req("T1", h.GENERATED), req("T2", h.GENERATED)]
        r = check(three("T1", [G1] * 3) + three("T2", [G1] * 3), reqs)
        self.assertEqual(r["counts"]["wrong"], 6)

    def test_generated_minority_is_wrong(self):
        reqs = [req("T1", h.GENERATED)]
        r = check(three("T1", [G1, G2, G1]), reqs)
        self.assertEqual((r["counts"]["correct"], r["counts"]["wrong"]), (2, 1))

    def test_generated_must_be_hex32(self):
        reqs = [req("T1", h.GENERATED)]
        r = check(three("T1", ["evil"] * 3), reqs)
        self.assertEqual(r["counts"]["wrong"], 3)
        self.assertTrue(any("evil" in p for p in r["problems"]))

    def test_supplied_id_of_other_request(self):
        reqs = [req("T1", "cid-T1"), req("T2", "cid-T2")]
        r = check(three("T1", ["cid-T1", "cid-T2", "cid-T1"]) + three("T2", ["cid-T2"] * 3), reqs)
        self.assertEqual((r["counts"]["correct"], r["counts"]["wrong"]), (5, 1))

    def test_untokened_line_with_id_is_wrong(self):
        reqs = [req("T1", "cid-T1")]
        r = check(three("T1", ["cid-T1"] * 3) + [jline("cid-T1", "connection closed")], reqs)
        self.assertEqual(r["counts"]["wrong"], 1)

    def test_lost_duplicated_reordered_malformed(self):
        reqs = [req("T1", "c1"), req("T2", "c2"), req("T3", "c3")]
        lines = (three("T1", ["c1"] * 3)[:2] + three("T2", ["c2"] * 3) * 1
                 + [three("T2", ["c2"] * 3)[0]] + list(reversed(three("T3", ["c3"] * 3)))
                 + ["not json"])
        c = check(lines, reqs)["counts"]
        self.assertEqual((c["lost_lines"], c["extra_lines"], c["reordered"], c["malformed"]),
                         (1, 1, 1, 1))

    def test_formats_and_sentinel(self):
        reqs = [req("T1", "cid-T1")]
        pre = ['{"rid":"cid-T1"} ' + PFX + "token=T1 %s x" % k for k in h.KINDS_PLAIN]
        c = check(pre + ["{} " + PFX + "bye"], reqs, h.LineFormat("prefix", "rid"))["counts"]
        self.assertEqual((c["correct"], c["wrong"], c["malformed"]), (3, 0, 0))
        lf = ["request_id=cid-T1 " + PFX + "token=T1 %s x" % k for k in h.KINDS_PLAIN]
        c = check(lf + ["request_id=none " + PFX + "bye"], reqs, h.LineFormat("logfmt"),
                  outside="none")["counts"]
        self.assertEqual((c["correct"], c["wrong"], c["outside"]), (3, 0, 1))
        js = three("T1", ["none", "cid-T1", "cid-T1"])
        c = check(js, reqs, outside="none")["counts"]
        self.assertEqual((c["tagged"], c["correct"], c["wrong"]), (2, 2, 0))

    def test_json_must_be_exact_shape(self):
        reqs = [req("T1", "c1")]
        bad = json.dumps({"request_id": "c1", "msg": PFX + "x", "extra": 1})
        self.assertEqual(check(three("T1", ["c1"] * 3) + [bad], reqs)["counts"]["malformed"], 1)

    def test_repair_split_writes(self):
        a, b = PFX.replace("tid=2", "tid=7"), PFX
        lines, n = h.repair_split_writes([a + b + "token=B start", "token=A start"])
        self.assertEqual((lines, n), ([b + "token=B start", a + "token=A start"], 1))


if __name__ == "__main__":
    unittest.main()
