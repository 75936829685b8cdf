#!/usr/bin/env python3
"""test_audit_report.py - unit tests for scripts/reqid_audit.py, the side of
`reqid audit` that runs after the command: unescaping the shim's record
text (the inverse of shim/audit_record.c's escaping, every byte), finding
the program's own id, classifying lines against request lifetimes (each
kind, and the order that picks one per line), the call site past a
logging funnel, the symboliser against a binary built here with known
lines (a function inlined into another, and one that is not), and the
JSON and JUnit writers (the XML parsed back, with characters XML 1.0
forbids in an example).

    python3 tests/unit/test_audit_report.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import reqid_audit as audit  # noqa: E402


def escape(data):
    """What shim/audit_record.c's audit_field_text writes for these bytes."""
    out = []
    for c in data:
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7f:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def line(proc, ts, rid="", ctx=0, text="", verdict=None, frames=()):
    ln = audit.Line()
    ln.proc, ln.ts, ln.tid, ln.held = proc, ts, 1, 0
    ln.verdict = verdict or ("tagged" if rid else "outside")
    ln.serial, ln.rid, ln.ctx, ln.text = (1 if rid else 0), rid, ctx, text
    ln.frames, ln.site, ln.released = list(frames), None, True
    proc.threads.add(ln.tid)
    return ln


class Records(unittest.TestCase):
    def test_unescape_every_character(self):
        text = "".join(chr(c) for c in range(256))
        self.assertEqual(audit.unescape(escape(text)), text)

    def test_read_records(self):
        with tempfile.TemporaryDirectory() as d:
            # A line before its image's mappings (another thread wrote
            # them later), then an exec'ed program under the same pid.
            Path(d, "audit.7").write_text(
                "L\t7\t55\t1\t9\t0\ttagged\t1\tid-1\t1\t1010\tearly\n"
                "I\t7\t55\t2\n"
                "M\t7\t55\t2\t1000\t2000\t0\t/nonexistent/prog\n"
                "S\t7\t55\t3\t1\tid-1\n"
                "L\t7\t55\t4\t9\t0\ttagged\t1\tid-1\t1\t1010,1020\tline \\t one\n"
                "L\t7\t55\t5\t9\t3\theld\t0\t\t1\t1030\theld line\n"
                "D\t7\t55\t6\t3\t1\tid-1\n"
                "R\t7\t55\t6\t1\n"
                "E\t7\t55\t7\t1\n"
                "L\t7\t55\t8\t9\t0\ttagged\t1\tid-1\t1\t10\n"  # cut short: skipped
                "I\t7\t66\t9\n"
                "S\t7\t66\t10\t1\tnew-1\n"
                "L\t7\t66\t11\t7\t3\theld\t0\t\t1\t\tnew held\n")
            procs, lines = audit.read_records(d)
        self.assertEqual(procs[(7, "55")].requests, {1: ["id-1", 3, 6, 7]})
        self.assertEqual(procs[(7, "66")].requests, {1: ["new-1", 10, None, None]})
        self.assertEqual([(ln.rid, ln.text) for ln in lines],
                         [("id-1", "early"), ("id-1", "line \t one"), ("id-1", "held line"),
                          ("", "new held")])
        # "held line" was released (its D record); "new held" never was:
        # its process ended while it was held
        self.assertEqual([ln.released for ln in lines], [True, True, True, False])
        # the early line's address resolves against the mappings read later
        # (a file that cannot be read gives no base: no frames, not a guess)
        self.assertEqual(lines[0].proc.maps, [(0x1000, 0x2000, 0, "/nonexistent/prog")])


class Classify(unittest.TestCase):
    def setUp(self):
        self.p = audit.Process(1)
        # request 1 (id-1) from 10 to 20, request 2 (id-2) from 15 to 30
        self.p.requests = {1: ["id-1", 10, 12, 20], 2: ["id-2", 15, 17, 30]}

    def kinds(self, lines, regex=r"rid=(\S+)", sentinels=()):
        import re
        audit.classify({1: self.p}, lines, re.compile(regex) if regex else None, None,
                       list(sentinels))
        return [ln.kind for ln in lines]

    def test_each_kind(self):
        self.p.threads.add(2)
        lines = [line(self.p, 12, "id-1", 1, "rid=id-1"),        # right
                 line(self.p, 17, "id-1", 1, "rid=id-2"),        # mismatch
                 line(self.p, 25, "id-2", 2, "rid=id-1"),        # stale
                 line(self.p, 16, "", 0, "rid=id-1"),            # outside
                 line(self.p, 26, "", 0, "rid=id-1"),            # stale, untagged
                 line(self.p, 18, "", 2, "x", "unproven"),       # untagged
                 line(self.p, 18, "", 2, "rid=id-2", "unproven"),  # its own: untagged
                 line(self.p, 25, "", 2, "rid=id-1", "unproven"),  # another's: stale
                 line(self.p, 40, "", 0, "x"),                   # none
                 line(self.p, 18, "id-2", 2, "NOTRACE")]         # sentinel
        self.assertEqual(self.kinds(lines, sentinels=["NOTRACE"]),
                         [None, "mismatch", "stale", "outside", "stale", "untagged", "untagged",
                          "stale", None, "sentinel"])

    def test_single_threaded_process(self):
        # One thread, a request in flight (before its response began), the
        # line outside it: untagged; after the response began (an idle
        # keep-alive connection), or with two threads: nothing.
        self.assertEqual(self.kinds([line(self.p, 16, "", 0, "x")]), ["untagged"])
        self.assertEqual(self.kinds([line(self.p, 13, "", 0, "x")]), [None])
        self.p.threads.add(2)
        self.assertEqual(self.kinds([line(self.p, 16, "", 0, "x")]), [None])

    def test_reasons(self):
        # untagged lines say why: a held line never released (its process
        # ended), one released without an id, one the shim passed raw
        killed = line(self.p, 16, "", 1, "x", "held")
        killed.released = False
        released = line(self.p, 16, "", 1, "x", "held")
        raw = line(self.p, 16, "", 1, "x", "raw")
        self.assertEqual(self.kinds([killed, released, raw]), ["untagged"] * 3)
        self.assertEqual(audit.reason_of(killed),
                         "held: process ended before the line's request was known")
        self.assertTrue(audit.reason_of(released).startswith("held until the thread's next"))
        self.assertTrue(audit.reason_of(raw).startswith("raw: the shim passed it through"))

    def test_app_field(self):
        self.assertEqual(audit.app_id_of('{"rid":"a-1","m":1}', None, "rid"), "a-1")
        self.assertEqual(audit.app_id_of("level=info rid=b.2 msg", None, "rid"), "b.2")
        self.assertIsNone(audit.app_id_of("no id here", None, "rid"))


class CallSites(unittest.TestCase):
    def test_funnel(self):
        p = audit.Process(1)
        names = {("m", 1): ("log", "l.c", 5, "log"), ("m", 2): ("a", "a.c", 7, "a"),
                 ("m", 3): ("b", "b.c", 9, "b"), ("m", 4): ("main", "m.c", 3, "main")}
        names[("m", 5)] = ("c", "c.c", 11, "c")
        names[("m", 6)] = ("log", "l.c", 6, "log")
        one = line(p, 1, frames=[("m", 1), ("m", 2), ("m", 4)])
        two = line(p, 2, frames=[("m", 1), ("m", 3), ("m", 4)])
        three = line(p, 3, frames=[("m", 1), ("m", 5), ("m", 4)])
        audit.choose_call_sites([one, two, three], names)
        self.assertEqual((one.site, two.site, three.site), (("m", 2), ("m", 3), ("m", 5)))
        # two callers, or a function with two calls of its own (a handler
        # that logs, called from several places): not a funnel
        audit.choose_call_sites([one, two], names)
        self.assertEqual((one.site, two.site), (("m", 1), ("m", 1)))
        four = line(p, 4, frames=[("m", 6), ("m", 2), ("m", 4)])
        audit.choose_call_sites([one, two, three, four], names)
        self.assertEqual([x.site for x in (one, two, three, four)],
                         [("m", 1), ("m", 1), ("m", 1), ("m", 6)])

    @unittest.skipUnless(shutil.which("addr2line") and shutil.which("cc"), "needs binutils, cc")
    def test_symbolize_known_lines(self):
        src = ("#include <unistd.h>\n"                                          # 1
               "static volatile int n;\n"                                        # 2
               "static inline void inner(void) { write(2, \"x\", 1); n++; }\n"  # 3
               "__attribute__((noinline)) void outer(void) { inner(); }\n"      # 4
               "__attribute__((noinline)) void plain(void) {\n"                 # 5
               "\twrite(2, \"y\", 1);\n"                                         # 6
               "\tn++;\n"
               "}\n"
               "int main(void) { outer(); plain(); return 0; }\n")
        with tempfile.TemporaryDirectory() as d:
            c, exe = os.path.join(d, "p.c"), os.path.join(d, "p")
            Path(c).write_text(src)
            subprocess.run(["cc", "-O2", "-g", "-o", exe, c], check=True)
            calls = []
            dis = subprocess.run(["objdump", "-d", exe], stdout=subprocess.PIPE, text=True).stdout
            fn = None
            for row in dis.splitlines():
                if row.endswith(">:"):
                    fn = row.split("<")[1][:-2]
                elif fn in ("outer", "plain") and "call" in row and "write" in row:
                    calls.append((fn, int(row.split(":")[0], 16)))
            names = audit.symbolize({(exe, a) for _, a in calls})
        got = sorted((fn, names[(exe, a)][0], Path(names[(exe, a)][1]).name,
                      names[(exe, a)][2], names[(exe, a)][3]) for fn, a in calls)
        self.assertEqual(got, [("outer", "inner", "p.c", 3, "outer"),
                               ("plain", "plain", "p.c", 6, "plain")])


class Writers(unittest.TestCase):
    FINDINGS = [{"kind": "stale", "count": 2, "function": "log_it", "file": "/s/a.c",
                 "line": 12, "module": "/bin/app", "reason": "",
                 "examples": ["rid=<x> & \"q\" \x01\x1b[0m end"]}]

    def test_junit_parses_back(self):
        xml = audit.junit(self.FINDINGS, [("/bin/app", "main", "/s/m.c", 3)], {"stale"})
        suite = ET.fromstring(xml)
        self.assertEqual((suite.tag, suite.get("tests"), suite.get("failures")),
                         ("testsuite", "2", "1"))
        failing, passing = suite.findall("testcase")
        self.assertEqual((failing.get("classname"), failing.get("name"), failing.get("file"),
                          failing.get("line")), ("/bin/app", "log_it:12 stale", "/s/a.c", "12"))
        failure = failing.find("failure")
        self.assertEqual(failure.get("type"), "stale")
        self.assertIn("rid=<x> & \"q\" \\x01\\x1b[0m end", failure.text)
        self.assertIn("2 log lines", failure.get("message"))
        self.assertIsNone(passing.find("failure"))
        self.assertEqual(passing.get("name"), "main:3")

    def test_junit_other_kinds_pass(self):
        suite = ET.fromstring(audit.junit(self.FINDINGS, [], {"untagged"}))
        case = suite.find("testcase")
        self.assertEqual((suite.get("failures"), case.find("failure")), ("0", None))
        self.assertIn("not a --fail-on kind", case.find("system-out").text)

    def test_report_verdicts(self):
        text, status = audit.report(self.FINDINGS, [], 0, {"stale"})
        self.assertEqual(status, 1)
        self.assertIn("FAIL", text)
        _, status = audit.report(self.FINDINGS, [], 0, {"untagged"})
        self.assertEqual(status, 0)
        text, status = audit.report([], [], 3, set(audit.KINDS))
        self.assertEqual(status, 1)
        self.assertIn("the command exited with 3", text)
        self.assertEqual(json.loads(json.dumps(self.FINDINGS, sort_keys=True)), self.FINDINGS)


if __name__ == "__main__":
    unittest.main(verbosity=1)
