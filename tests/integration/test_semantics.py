#!/usr/bin/env python3
"""test_semantics.py - exact-bytes tests of what libreqid.so does to log
lines and what the application sees, driving tests/integration/log_semantics.c
(a legacy-style program, one scenario per run; also built with
_FORTIFY_SOURCE=2) with and without the shim, and
tests/integration/early_ctor.c (a preloaded library whose constructor uses
hooked calls before libreqid's constructor runs). Also checks scripts/reqid.

Each scenario asserts exact output bytes, exact return values and errno; the
program records its observations in a results file, never on fds 1/2.
Prints "N passed, M failed" last and exits non-zero on any failure.

This driver must never edit the shim, never relax an expectation to make a
run pass, and never sleep to synchronise (pipes are the handshakes).
Python 3 standard library only.

    python3 tests/integration/test_semantics.py [-v] [unittest test names]
"""

import collections
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "integration"
OUT = ROOT / "build" / "integration"
LIB = (ROOT / "build" / "libreqid.so").resolve()
REQID = ROOT / "scripts" / "reqid"
PROG = OUT / "log_semantics"
PROG_FORTIFY = OUT / "log_semantics_fortify"
EARLY = OUT / "libearly_ctor.so"
TIMEOUT = 30

ID = b"sem-1"
PRE = b'{"request_id":"sem-1",'

# Must match escape_line in log_semantics.c byte for byte.
ESCAPE_LINE = (
    b'q"uote b\\ack \x01\x1f\x1b[0m del\x7f tab\t cr\r nul\x00 end'
    b" ff\xff fe\xfe lone\x80 bad2\xc3( trunc3\xe2\x82 surr\xed\xa0\x80"
    b" big\xf4\x90\x80\x80 over\xc0\xaf ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 tail\n")


# ------------------------------------------------------------------ building

def build():
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(ROOT), "build/libreqid.so"], check=True,
                   timeout=120)
    subprocess.run(["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
                    "-o", str(PROG), str(SRC / "log_semantics.c")], check=True, timeout=60)
    subprocess.run(["cc", "-O2", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2", "-g", "-Wall",
                    "-Wextra", "-Werror", "-pthread", "-o", str(PROG_FORTIFY),
                    str(SRC / "log_semantics.c")], check=True, timeout=60)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
                    "-pthread", "-o", str(EARLY), str(SRC / "early_ctor.c")], check=True,
                   timeout=60)


# ------------------------------------------------------------------- running

class Run:
    """One run of log_semantics: rc, stdout bytes, stderr bytes, results."""

    def __init__(self, rc, out, err, results_text):
        self.rc, self.out, self.err = rc, out, err
        self.results_text = results_text
        self.results = {}
        for tok in results_text.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                self.results[k] = v

    def __repr__(self):
        return "Run(rc=%r, out=%r..., err=%r, results=%r)" % (
            self.rc, self.out[:300], self.err[:300], self.results_text)


def command(mode, argv):
    """mode: 'bare' (no shim), 'shim' (scripts/reqid run), 'preload'
    (LD_PRELOAD set by hand), 'disable'."""
    if mode == "bare":
        return argv, harness.clean_env()
    if mode == "shim":
        return [str(REQID), "run", "--"] + argv, harness.clean_env()
    if mode == "preload":
        return argv, harness.clean_env(LD_PRELOAD=str(LIB))
    if mode == "disable":
        return [str(REQID), "run", "--"] + argv, harness.clean_env(REQID_DISABLE="1")
    raise ValueError(mode)


def close_fd2():
    os.close(2)


def run(scenario, mode, *args, env_extra=None, pipe=False, prog=PROG, stderr="file"):
    """Runs one scenario; stdout goes to a regular file unless pipe is set.
    stderr: "file" (its own), "stdout" (the same open file as stdout, not
    with pipe) or "closed" (the program starts with fd 2 closed)."""
    with tempfile.TemporaryDirectory(prefix="reqid-sem-") as d:
        res = Path(d) / "results"
        argv, env = command(mode, [str(prog), scenario, str(res)] + list(args))
        if env_extra:
            env.update(env_extra)
        pre = close_fd2 if stderr == "closed" else None
        if pipe:
            p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, timeout=TIMEOUT)
            out, err = p.stdout, p.stderr
        else:
            outp, errp = Path(d) / "out", Path(d) / "err"
            with open(outp, "wb") as fo, open(errp, "wb") as fe:
                p = subprocess.run(argv, env=env, stdout=fo,
                                   stderr=subprocess.STDOUT if stderr == "stdout" else fe,
                                   stdin=subprocess.DEVNULL, timeout=TIMEOUT, preexec_fn=pre)
            out, err = outp.read_bytes(), errp.read_bytes()
        text = res.read_text() if res.exists() else ""
        return Run(p.returncode, out, err, text)


def jline(msg, rid=ID):
    """The exact JSON line the shim writes for a plain-text line."""
    body = json.dumps(msg, ensure_ascii=False).encode()
    if rid is None:
        return b'{"msg":' + body + b"}"
    return b'{"request_id":"' + rid + b'","msg":' + body + b"}"


def parse_json_line(line):
    """Strict: valid UTF-8, valid JSON, one object. Returns the dict."""
    obj = json.loads(line.decode("utf-8", "strict"))
    if not isinstance(obj, dict):
        raise ValueError("not an object: %r" % line[:200])
    return obj


class Base(unittest.TestCase):
    maxDiff = 2000

    def both(self, scenario, *args, **kw):
        """Runs bare and shimmed; both must exit 0 with equal results."""
        bare = run(scenario, "bare", *args, **kw)
        shim = run(scenario, "shim", *args, **kw)
        return self.same(bare, shim)

    def both_with_file(self, scenario):
        """As both, for a scenario whose argument is a file it writes (one
        per run); returns the runs and the files' bytes."""
        runs, files = [], []
        with tempfile.TemporaryDirectory(prefix="reqid-sem-") as d:
            for mode in ("bare", "shim"):
                path = Path(d) / ("file-" + mode)
                runs.append(run(scenario, mode, str(path)))
                files.append(path.read_bytes() if path.exists() else None)
        bare, shim = self.same(*runs)
        return bare, shim, files[0], files[1]

    def same(self, bare, shim):
        self.assertEqual(bare.rc, 0, bare)
        self.assertEqual(shim.rc, 0, shim)
        self.assertNotIn("fatal", bare.results, bare)
        self.assertEqual(bare.results_text, shim.results_text,
                         "the application must see the same return values and errno")
        self.assertEqual(shim.err, b"", "no shim noise on stderr")
        return bare, shim


# ------------------------------------------------------------------ scenarios

class T01MultiLine(Base):
    # Each line of one write is enriched on its own. A write of several
    # lines gets no id, from a thread certain of its request too: it may be
    # a buffer of earlier requests' lines flushed now (an interpreter's
    # print() to a file: test_buffered_flush.py).
    def test_multiline_write(self):
        bare, shim = self.both("multiline")
        self.assertEqual(bare.results_text.strip(), "ret=6 errno=1234")
        self.assertEqual(bare.out, b"a\nb\nc\n")
        self.assertEqual(shim.out, b"".join(jline(m, None) + b"\n" for m in "abc"))


class T01ExecWritev(Base):
    def test_exec_request_writev(self):
        r = run("exec_writev", "shim", env_extra={"REQID_REQUEST_ID": "sem-x"})
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.results_text.strip(), "ret=4,4,2 errno=1234")
        self.assertEqual(r.out, b"".join([jline("a", None), b"\n", jline("b", None), b"\n",
                                          jline("c", b"sem-x"), b"\n", jline("d", b"sem-x"),
                                          b"\n", jline("e", b"sem-x"), b"\n"]))


class T02Pieces(Base):
    def test_line_in_pieces(self):
        bare, shim = self.both("pieces")
        self.assertEqual(bare.results_text.strip(), "ret=3,4,6 errno=1234")
        self.assertEqual(bare.out, b"partial line\n")
        self.assertEqual(shim.out, b'{"request_id":"sem-1","msg":"partial line"}\n')


class T03Writev(Base):
    # Lines across a writev's buffers are lines as in one buffer; two or
    # more in one call are a batch (no id, as in T01), the line the call
    # leaves unfinished gets its id when a write of its own ends it.
    def test_writev_split_lines(self):
        bare, shim = self.both("writev")
        self.assertEqual(bare.results_text.strip(), "ret=6,1 errno=1234")
        self.assertEqual(bare.out, b"x\nyz\nw\n")
        self.assertEqual(shim.out, jline("x", None) + b"\n" + jline("yz", None) + b"\n" +
                         jline("w") + b"\n")


class T04BigLine(Base):
    def test_one_mib_line(self):
        bare, shim = self.both("bigline")
        n = 1024 * 1024
        self.assertEqual(bare.results_text.strip(), "ret=%d errno=1234" % (n + 1))
        raw = bare.out
        self.assertEqual(len(raw), n + 1)
        self.assertTrue(raw.endswith(b"\n") and raw.count(b"\n") == 1)
        self.assertTrue(all(0x20 <= c <= 0x7e for c in raw[:-1]))
        out = shim.out
        self.assertEqual(out.count(b"\n"), 1, "one output line")
        self.assertTrue(out.endswith(b"\n"))
        self.assertTrue(out.startswith(PRE + b'"msg":"'), out[:80])
        obj = parse_json_line(out[:-1])
        self.assertEqual(list(obj), ["request_id", "msg"])
        self.assertEqual(obj["request_id"], "sem-1")
        self.assertTrue(obj["msg"].encode() == raw[:-1], "msg differs from the input line")


class T05Escape(Base):
    def test_lossless_escaping(self):
        bare, shim = self.both("escape")
        self.assertEqual(bare.results_text.strip(),
                         "ret=%d errno=1234" % len(ESCAPE_LINE))
        self.assertEqual(bare.out, ESCAPE_LINE, "test program and driver disagree")
        out = shim.out
        self.assertEqual(out.count(b"\n"), 1, out)
        self.assertTrue(out.startswith(PRE + b'"msg":"'), out)
        obj = parse_json_line(out[:-1])
        self.assertEqual(list(obj), ["request_id", "msg"])
        self.assertEqual(obj["request_id"], "sem-1")
        self.assertEqual(obj["msg"].encode("utf-8", "surrogateescape"), ESCAPE_LINE[:-1])


class T06JsonObject(Base):
    def test_object_line_gets_id_first(self):
        bare, shim = self.both("jsonobj")
        self.assertEqual(bare.results_text.strip(), "ret=23 errno=1234")
        self.assertEqual(bare.out, b'{"level":"info","n":1}\n')
        self.assertEqual(shim.out, b'{"request_id":"sem-1","level":"info","n":1}\n')


class T07Threads(Base):
    def test_concurrent_pieces_never_interleave(self):
        bare, shim = self.both("threads", pipe=True)
        self.assertEqual(bare.results_text.strip(), "bad=0")
        expected = {}
        for t in range(8):
            for j in range(2000):
                expected["t%d-%04d payload %d.%d end" % (t, j, t, j)] = (t, j)
        lines = shim.out.split(b"\n")
        self.assertEqual(lines[-1], b"", "output ends with a newline")
        lines = lines[:-1]
        seen = collections.Counter()
        last = [-1] * 8
        bad = []
        for line in lines:
            if not line.startswith(PRE + b'"msg":"') or not line.endswith(b'"}'):
                bad.append(line)
                continue
            obj = parse_json_line(line)
            msg = obj["msg"]
            if list(obj) != ["request_id", "msg"] or msg not in expected:
                bad.append(line)
                continue
            seen[msg] += 1
            t, j = expected[msg]
            if j <= last[t]:
                bad.append(b"out of order: " + line)
            last[t] = j
        self.assertEqual(bad[:5], [], "%d bad lines" % len(bad))
        self.assertEqual(len(lines), 16000)
        self.assertEqual(set(seen), set(expected))
        self.assertEqual(max(seen.values()), 1, "duplicated lines")


class Drained(Base):
    def run_nonblock(self, mode, scenario="nonblock"):
        """stdout is a pipe nobody reads until the program reports (on a
        note pipe) that a write failed; then the driver drains it, says so
        on a control pipe, and reads to EOF."""
        with tempfile.TemporaryDirectory(prefix="reqid-sem-") as d:
            res = Path(d) / "results"
            out_r, out_w = os.pipe()
            ctl_r, ctl_w = os.pipe()
            note_r, note_w = os.pipe()
            argv, env = command(mode, [str(PROG), scenario, str(res), str(ctl_r), str(note_w)])
            with open(Path(d) / "err", "wb") as fe:
                p = subprocess.Popen(argv, env=env, stdout=out_w, stderr=fe,
                                     stdin=subprocess.DEVNULL, pass_fds=(ctl_r, note_w))
            for fd in (out_w, ctl_r, note_w):
                os.close(fd)
            data = bytearray()
            try:
                # the program fills the pipe, fails, and says so on the note pipe
                r, _, _ = select.select([note_r], [], [], TIMEOUT)
                self.assertTrue(r, "no EAGAIN reported")
                self.assertEqual(os.read(note_r, 1), b"E")
                os.set_blocking(out_r, False)
                while True:
                    try:
                        chunk = os.read(out_r, 1 << 16)
                    except BlockingIOError:
                        break
                    self.assertTrue(chunk, "EOF before the handshake")
                    data += chunk
                os.set_blocking(out_r, True)
                os.write(ctl_w, b"G")
                while True:
                    r, _, _ = select.select([out_r], [], [], TIMEOUT)
                    self.assertTrue(r, "program hangs")
                    chunk = os.read(out_r, 1 << 16)
                    if not chunk:
                        break
                    data += chunk
                rc = p.wait(timeout=TIMEOUT)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                for fd in (out_r, ctl_w, note_r):
                    os.close(fd)
            err = (Path(d) / "err").read_bytes()
            text = res.read_text() if res.exists() else ""
        return Run(rc, bytes(data), err, text)


class T08NonBlocking(Drained):
    def check(self, run_, enriched):
        self.assertEqual(run_.rc, 0, run_)
        r = run_.results
        self.assertEqual((r.get("fail_ret"), r.get("fail_errno")), ("-1", "EAGAIN"), run_)
        self.assertEqual((r.get("retry_ret"), r.get("retry_errno")), ("15", "1234"), run_)
        self.assertEqual(r.get("bad"), "0", run_)
        last = int(r["last"])
        self.assertEqual(last, int(r["failed_at"]) + 50)
        want = b"".join(
            (jline("nb line %06d" % i) if enriched else b"nb line %06d" % i) + b"\n"
            for i in range(last + 1))
        if run_.out != want:
            got = run_.out.split(b"\n")
            exp = want.split(b"\n")
            k = next((i for i, (a, b) in enumerate(zip(got, exp)) if a != b),
                     min(len(got), len(exp)))
            self.fail("line %d of %d/%d differs: got %r, expected %r" % (
                k, len(got) - 1, len(exp) - 1, got[k:k + 2], exp[k:k + 2]))
        self.assertEqual(run_.err, b"")

    def test_eagain_like_without_shim(self):
        bare = self.run_nonblock("bare")
        shim = self.run_nonblock("shim")
        self.check(bare, enriched=False)
        self.check(shim, enriched=True)


class T09PartialAtExit(Base):
    def check(self, how, where):
        bare, shim = self.both("partial", how, where)
        want = "ret=17 errno=1234"
        if how == "close":
            want += "\nclose=0 errno=1234"
        self.assertEqual(bare.results_text.strip(), want)
        self.assertEqual(bare.out, b"no newline at end")
        line = jline("no newline at end", ID if where == "req" else None)
        self.assertIn(shim.out, (line, line + b"\n"),
                      "partial line at %s (%s)" % (how, where))

    def test_exit_in_request(self):
        self.check("exit", "req")

    def test__exit_in_request(self):
        self.check("_exit", "req")

    def test_close_in_request(self):
        self.check("close", "req")

    def test_exit_outside(self):
        self.check("exit", "noreq")

    def test__exit_outside(self):
        self.check("_exit", "noreq")

    def test_close_outside(self):
        self.check("close", "noreq")


class T10Outside(Base):
    def test_no_request(self):
        bare, shim = self.both("outside")
        self.assertEqual(bare.results_text.strip(), "ret=11,23 errno=1234")
        self.assertEqual(bare.out, b'plain line\n{"level":"info","n":1}\n')
        self.assertEqual(shim.out, b'{"msg":"plain line"}\n{"level":"info","n":1}\n')


class T11Ebadf(Base):
    def test_closed_log_fd(self):
        bare, shim = self.both("ebadf")
        self.assertEqual(bare.results_text.strip(), "write=-1/EBADF writev=-1/EBADF")
        self.assertEqual(bare.out, b"")
        self.assertEqual(shim.out, b"")


class T12Signal(Base):
    MAIN = b"".join(b"main-%06d end\n" % i for i in range(20000))

    def check(self, run_, enriched):
        self.assertEqual(run_.rc, 0, run_)
        r = run_.results
        self.assertEqual(r.get("bad"), "0", run_)
        hits = int(r["hits"])
        self.assertGreater(hits, 0)
        self.assertTrue(run_.out.endswith(b"\n"))
        texts, bad = [], []
        for line in run_.out[:-1].split(b"\n"):
            if line == b"SIGLINE":
                texts.append(line)  # a handler line that interrupted the shim
            elif not enriched:
                texts.append(line)
            elif line.startswith(PRE + b'"msg":"') or line.startswith(b'{"msg":"'):
                # The handler's lines, and a main line its bytes ended, get
                # no id (a line written in a signal handler is not the
                # request's); every other line the request's.
                obj = parse_json_line(line)
                msg = obj["msg"].encode("utf-8", "surrogateescape")
                if list(obj) != (["msg"] if msg.endswith(b"SIGLINE") else ["request_id", "msg"]):
                    bad.append(line)
                texts.append(msg)
            else:
                bad.append(line)
        self.assertEqual(bad[:5], [], "%d malformed lines" % len(bad))
        stream = b"".join(t + b"\n" for t in texts)
        # A handler line lands whole between lines or, when the signal came
        # between two pieces of a main line, inside it (the application's own
        # byte order, same without the shim). Taking every handler line out
        # must leave the main thread's lines exactly, none lost or repeated.
        self.assertEqual(stream.count(b"SIGLINE\n"), hits, "handler lines lost")
        rest = stream.replace(b"SIGLINE\n", b"")
        if rest != self.MAIN:
            k = next((i for i in range(min(len(rest), len(self.MAIN)))
                      if rest[i] != self.MAIN[i]), min(len(rest), len(self.MAIN)))
            self.fail("main lines differ at byte %d: got %r expected %r" % (
                k, rest[max(0, k - 40):k + 40], self.MAIN[max(0, k - 40):k + 40]))
        return sum(1 for t in texts if t == b"SIGLINE")

    def test_handler_writes_during_pieces(self):
        bare = run("signal", "bare")
        shim = run("signal", "shim")
        self.check(bare, enriched=False)
        self.check(shim, enriched=True)
        self.assertEqual(shim.err, b"")


class T13Disable(Base):
    def test_disabled_is_byte_identical(self):
        for scenario in ("multiline", "bigline"):
            bare = run(scenario, "bare")
            off = run(scenario, "disable")
            self.assertEqual(bare.rc, 0)
            self.assertEqual(off.rc, 0)
            self.assertEqual(bare.results_text, off.results_text)
            self.assertTrue(off.out == bare.out, "%s: output differs" % scenario)
            self.assertEqual(off.err, b"")


class T14Script(Base):
    def sh(self, argv, **env):
        return subprocess.run(argv, env=harness.clean_env(**env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=TIMEOUT)

    def test_bogus_option(self):
        p = self.sh([str(REQID), "run", "--bogus", "--", "true"])
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--bogus", p.stderr)
        self.assertEqual(p.stdout, b"")

    def test_missing_library(self):
        p = self.sh([str(REQID), "run", "--", "true"], REQID_LIB="/nonexistent")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"/nonexistent", p.stderr)

    def test_help(self):
        p = self.sh([str(REQID), "--help"])
        self.assertEqual(p.returncode, 0)
        for var in ("REQID_FORMAT", "REQID_FIELD", "REQID_LOG_FDS", "REQID_HEADERS",
                    "REQID_OUTSIDE", "REQID_DISABLE", "REQID_LIB"):
            self.assertIn(var.encode(), p.stdout, var)

    def test_logfmt_outside(self):
        p = self.sh([str(REQID), "run", "--format", "logfmt", "--", "sh", "-c", "echo hi"])
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout, b"hi\n")
        self.assertEqual(p.stderr, b"")

    def test_exit_status_passes_through(self):
        p = self.sh([str(REQID), "run", "--", "sh", "-c", "exit 7"])
        self.assertEqual(p.returncode, 7)

    def test_existing_preload_kept(self):
        # another library already preloaded: any harmless one, here libc itself
        m = re.search(rb"libc\.so\.6 => (\S+)", subprocess.run(
            ["ldd", str(PROG)], stdout=subprocess.PIPE, timeout=TIMEOUT).stdout)
        self.assertTrue(m, "libc not found by ldd")
        other = os.path.realpath(m.group(1).decode())
        p = self.sh([str(REQID), "run", "--", "sh", "-c", 'echo "$LD_PRELOAD"'],
                    LD_PRELOAD=other)
        self.assertEqual(p.returncode, 0, p)
        # the echo itself is a log line, so it comes out enriched
        self.assertEqual(p.stdout, jline("%s:%s" % (LIB, other), None) + b"\n")


class T15EarlyConstructor(Base):
    def test_hooks_before_constructor(self):
        with tempfile.TemporaryDirectory(prefix="reqid-sem-") as d:
            dbg = Path(d) / "ld"
            # LD_DEBUG=files shows the order of constructors ("calling init").
            # With no dependency between them, the LAST preloaded library's
            # constructor runs first, so libearly_ctor goes after libreqid.
            r = run("pieces", "bare", env_extra={
                "LD_PRELOAD": "%s:%s" % (LIB, EARLY),
                "LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(dbg)})
            inits = []
            for f in Path(d).glob("ld.*"):
                inits += re.findall(r"calling init: (\S+)", f.read_text())
        order = [x for x in inits if x in (str(LIB), str(EARLY))]
        self.assertEqual(order, [str(EARLY), str(LIB)],
                         "early_ctor's constructor must run before libreqid's")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.results_text.strip(), "ret=3,4,6 errno=1234")
        self.assertEqual(r.out, jline("partial line") + b"\n",
                         "the shim works after an early constructor")
        expected = ["early-ctor constructor line", "early-ctor pipe read ok",
                    "early-ctor thread line", "early-ctor thread joined"]
        lines = r.err.split(b"\n")
        self.assertEqual(lines[-1], b"", r.err)
        self.assertEqual(len(lines[:-1]), len(expected), r.err)
        for got, want in zip(lines[:-1], expected):
            self.assertIn(got, (want.encode(), jline(want, None)))


class T16Fork(Base):
    def test_partial_line_across_fork(self):
        bare, shim = self.both("fork")
        self.assertEqual(bare.results_text.strip(), "ret=3,4 child=0")
        self.assertEqual(bare.out, b"abcchild\ndef\n")
        self.assertEqual(shim.out, jline("child") + b"\n" + jline("abcdef") + b"\n")


# ---------------------------------------------------------------------- main

class T17StaleContext(Base):
    def test_thread_outliving_its_request(self):
        bare, shim = self.both("stale_helper")
        self.assertEqual(bare.results_text.strip(), "done")
        self.assertEqual(shim.out, jline("helper during request 1") + b"\n" +
                         jline("main serving request 2", b"sem-2") + b"\n" +
                         jline("helper after request 1 ended", None) + b"\n")

    def test_two_connections_without_a_wait(self):
        bare, shim = self.both("two_conns")
        self.assertEqual(bare.out, b"line for x\n")
        self.assertEqual(shim.out, jline("line for x", None) + b"\n")

    # A client's header, logged in quotes, copying an earlier request's
    # request line names nothing: no id while the thread is certain of its
    # own request (after a lock wait too), and a line quoting both lines
    # keeps the thread's, or once the connection closed, with its own
    # written bare, gets none. A write of two lines one of which names
    # another request is a batch (a buffer flushed): its line quoting the
    # thread's own request line gets no id either, for it comes at no
    # counted place (a buffered log's line rebuilt from another request's
    # path could quote it). So do a line quoting a request line that is not
    # the thread's request's, and two lines in one write that both quote
    # the thread's own (a buffer flushed). Such a write (the first is "two:
    # ... and ...") shows the descriptor to be a buffer's for good: its
    # later lines that quote a request line get ids only by naming, which
    # one URL never gives, even those a certain thread writes (Apache's
    # BufferedLogs flushes one line alone, the request before's, from the
    # thread of the next).
    def test_forged_request_line_in_a_quote(self):
        bare, shim = self.both("forged_quote")
        self.assertEqual(bare.results_text.strip(), "done")
        self.assertEqual(shim.out, b"\n".join([
            jline('serving "GET /victim HTTP/1.1"', b"sem-v"),
            jline('handling ua="GET /victim HTTP/1.1" path=/attacker', None),
            jline('ua="GET /victim HTTP/1.1" req="GET /attacker HTTP/1.1"', b"sem-a"),
            jline('req="GET /attacker HTTP/1.1"', b"sem-a"),
            jline('two: ua="GET /victim HTTP/1.1"', None),
            jline('and "GET /attacker HTTP/1.1"', None),
            jline('other "GET /elsewhere?x=1 HTTP/1.1"', None),
            jline('flushed "GET /attacker HTTP/1.1" 1', None),
            jline('flushed "GET /attacker HTTP/1.1" 2', None),
            jline('locked: ua="GET /victim HTTP/1.1"', None),
            jline('locked: "GET /attacker HTTP/1.1"', None),
            jline('ua="GET /victim HTTP/1.1" req=[GET /attacker HTTP/1.1] 200', None),
            jline('"GET /attacker HTTP/1.1" 200', None),
        ]) + b"\n")

    # A held line quoting another request's line, released with no request
    # at a boundary, gets no id; one quoting its own request's keeps it; so
    # for lines written after the boundary, before the next I/O.
    def test_forged_request_line_in_a_held_line(self):
        bare, shim = self.both("forged_held")
        self.assertEqual(bare.results_text.strip(), "done")
        self.assertEqual(shim.out, b"\n".join([
            jline('held ua="GET /victim HTTP/1.1"', None),
            jline('held "GET /attacker HTTP/1.1"', b"sem-a"),
            jline('after ua="GET /victim HTTP/1.1"', None),
            jline('after "GET /attacker HTTP/1.1"', b"sem-a"),
        ]) + b"\n")

    # A worker that answered one connection in full and gave it to epoll
    # takes up another in turn (Apache's event MPM); short of that it
    # serves both at once.
    def test_connections_in_turn(self):
        bare, shim = self.both("turns", "parked")
        self.assertEqual(bare.out, b"line for y\n")
        self.assertEqual(shim.out, jline("line for y", b"sem-y") + b"\n")

    def test_connections_at_once(self):
        for mode in ("unparked", "half", "pipelined", "zerowrite", "waited"):
            with self.subTest(mode=mode):
                bare, shim = self.both("turns", mode)
                self.assertEqual(bare.out, b"line for y\n")
                self.assertEqual(shim.out, jline("line for y", None) + b"\n")


# --------------------------------------------------- regressions from review

class T18FdReuse(Base):
    # Guards: a connection closed where no close() hook sees it (fclose of an
    # fdopen'ed socket) left its number flagged as a connection with A's
    # request; a data file opened on that number then made writes to it count
    # as I/O on A (B's lines got A's id), and B's read looked like a second
    # connection (an event loop: no ids at all).
    def test_connection_closed_by_fclose(self):
        bare, shim, bare_file, shim_file = self.both_with_file("fd_reuse")
        self.assertEqual(bare.results_text, "fclose=0 errno=1234\nreused=1\nchunks=6,6\n")
        self.assertEqual(bare.out, b"handling A\nhandling B\nB: stored chunk 1\nB done\nidle\n")
        self.assertEqual(shim.out, jline("handling A") + b"\n" +
                         jline("handling B", b"sem-2") + b"\n" +
                         jline("B: stored chunk 1", b"sem-2") + b"\n" +
                         jline("B done", b"sem-2") + b"\n" +
                         jline("idle", None) + b"\n")
        self.assertEqual(bare_file, b"chunk1chunk2")
        self.assertEqual(shim_file, b"chunk1chunk2", "a data file is no log")

    # Guards: fclose(stdout) left fd 1 flagged as a log, so a data file that
    # got number 1 next had its records rewritten as JSON.
    def test_stdout_closed_by_fclose(self):
        bare, shim, bare_file, shim_file = self.both_with_file("fclose_stdout")
        self.assertEqual(bare.results_text.strip(),
                         "fclose=0/1234 fd=1 ret=9,12 errno=1234 close=0")
        self.assertEqual(bare_file, b"record-1\n\x01\x02no-newline")
        self.assertEqual(shim_file, bare_file, "writes to the data file must pass untouched")
        self.assertEqual(bare.out, b"")
        self.assertEqual(shim.out, b"")


class T19Fortify(Base):
    # Guards: with _FORTIFY_SOURCE=2, read()/recv() into a fixed-size buffer
    # call __read_chk/__recv_chk; unhooked, the requests were never seen
    # (request 1: no id; request 2: lines held under request 1, wrong id).
    def test_fortified_reads_find_requests(self):
        syms = subprocess.run(["nm", "-D", str(PROG_FORTIFY)], stdout=subprocess.PIPE,
                              check=True, timeout=TIMEOUT).stdout
        for sym in (b"__read_chk", b"__recv_chk"):
            self.assertRegex(syms, rb"\bU " + sym + rb"\b", "%s not referenced" % sym)
        bare, shim = self.both("fortify", "512", prog=PROG_FORTIFY)
        self.assertEqual(bare.results_text.strip(), "done")
        self.assertEqual(bare.out, b"handling 1\n1 done\nhandling 2\n2 done\n")
        self.assertEqual(shim.out, jline("handling 1") + b"\n" + jline("1 done") + b"\n" +
                         jline("handling 2", b"sem-2") + b"\n" +
                         jline("2 done", b"sem-2") + b"\n")


class T20MsgTrunc(Base):
    # Guards: recv(fd, NULL, n, MSG_TRUNC) fed the parser from a NULL buffer
    # (SIGSEGV). The bytes are consumed unseen, so the shim marks the stream
    # lost: no id on any later line of that connection, the next keep-alive
    # request's included (lost is sticky, conn_table.h).
    def test_skipped_body(self):
        bare, shim = self.both("trunc")
        self.assertEqual(bare.results_text.strip(), "trunc=5 errno=1234")
        self.assertEqual(bare.out, b"got head\nbody skipped\nnext request\n")
        self.assertEqual(shim.out, jline("got head") + b"\n" +
                         jline("body skipped", None) + b"\n" +
                         jline("next request", None) + b"\n")


class T21Cgi(Base):
    # Guards: a CGI child's stdout is the client connection (dup2 of the
    # accepted socket onto 1, then exec); the child's shim took fd 1 for a
    # log and sent the client JSON instead of the response.
    def test_connection_as_stdout(self):
        bare, shim = self.both("cgi")
        self.assertEqual(bare.results["child"], "0")
        self.assertEqual(bytes.fromhex(bare.results["client"]), b"HTTP/1.0 200 OK\n\nhello\n")
        self.assertEqual(bare.out, b"")
        self.assertEqual(shim.out, b"")


class T22JobThread(Base):
    # Guards: a worker started during request A kept A's context while it
    # took B's job from a pipe (A's id on B's job), and B's handler, started
    # by the thread that served A, inherited A's connection as its "last"
    # one and was taken for an event loop (no id).
    def test_worker_and_later_handler(self):
        bare, shim = self.both("job_thread")
        self.assertEqual(bare.results_text.strip(), "done")
        self.assertEqual(bare.out, b"A: start\nworker: started\nB: start\n"
                         b"worker: processing job for sem-2\nB: job done\n")
        self.assertEqual(shim.out, jline("A: start") + b"\n" +
                         jline("worker: started") + b"\n" +
                         jline("B: start", b"sem-2") + b"\n" +
                         jline("worker: processing job for sem-2", None) + b"\n" +
                         jline("B: job done", b"sem-2") + b"\n")


class T23Death(Base):
    # Guards: a line held after the response (waiting for the thread's next
    # event) was lost when the process died by abort() or a fatal signal;
    # and the program saw the shim's handlers for the fatal signals from its
    # start, before it had any line pending (now they go in with the first).
    def check(self, how, sig):
        bare = run("die", "bare", how)
        shim = run("die", "shim", how)
        self.assertEqual(bare.rc, -sig, bare)
        self.assertEqual(shim.rc, -sig, shim)
        self.assertEqual(bare.results_text.strip(),
                         "dispositions: dfl dfl dfl dfl dfl dfl\ndying")
        self.assertEqual(shim.results_text, bare.results_text)
        self.assertEqual(bare.out, b"start\ndone status=200\n")
        self.assertEqual(shim.out, jline("start") + b"\n" + jline("done status=200", None) + b"\n")
        self.assertEqual(shim.err, b"")

    def test_abort(self):
        self.check("abort", signal.SIGABRT)

    def test_sigterm(self):
        self.check("term", signal.SIGTERM)


class T24ExecPartial(Base):
    # Guards: an unfinished line in the shim's buffer vanished at exec; it
    # must come out once (as at exit, without a newline of its own).
    def check(self, where):
        bare, shim = self.both("exec_partial", where)
        self.assertEqual(bare.results_text.strip(), "ret=7 errno=1234")
        self.assertEqual(bare.out, b"pending")
        self.assertEqual(shim.out, jline("pending", ID if where == "req" else None))

    def test_exec_in_request(self):
        self.check("req")

    def test_exec_outside(self):
        self.check("noreq")


class T25TwoLogFds(Base):
    # Guards: held lines went out fd by fd (1,3 then 2,4), not in the order
    # they were written.
    def test_held_lines_keep_their_order(self):
        bare, shim = self.both("two_log_fds", stderr="stdout")
        self.assertEqual(bare.results_text.strip(), "done")
        lines = ["1 access: GET /x 200", "2 warn: slow response", "3 access: bytes=38",
                 "4 info: done"]
        self.assertEqual(bare.out, b"".join(m.encode() + b"\n" for m in lines))
        self.assertEqual(shim.out, b"".join(jline(m) + b"\n" for m in lines))


class T25DupClose(Base):
    # Guards: a copy of a log descriptor closed at once wrote its lines
    # before the ones held on the original (helper-74, PHP's php://stderr),
    # and a line written in two pieces through two such copies came out as
    # two JSON objects on one physical line.
    def test_copies_closed_at_once_keep_order_and_lines(self):
        bare, shim = self.both("dup_close", stderr="stdout")
        self.assertEqual(bare.results_text.strip(), "done")
        self.assertEqual(bare.out, b"1 first, on fd 2\n2 on a copy\n3 begun, ended\n"
                                   b"4 last, on fd 2\n")
        self.assertEqual(shim.out, jline("1 first, on fd 2", None) + b"\n" +
                         jline("2 on a copy", None) + b"\n" + jline("3 begun, ", None) +
                         b"\n" + jline("ended", None) + b"\n" + jline("4 last, on fd 2") + b"\n")


class T26BigLineFullPipe(Drained):
    # Guards: a long line that filled a non-blocking pipe was torn (the shim
    # waited a second, then dropped the rest). Now the rest is queued: the
    # write returns the full count (README: bytes in the shim's buffers count
    # as written), later writes get EAGAIN until the reader has drained the
    # queue, and the reader gets the whole line once. Without the shim the
    # write is short, so only each run's own properties are compared.
    def test_long_line_queued(self):
        bare = self.run_nonblock("bare", "big_nonblock")
        shim = self.run_nonblock("shim", "big_nonblock")
        for r in (bare, shim):
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(r.err, b"")
            self.assertEqual((r.results.get("next_ret"), r.results.get("next_errno")),
                             ("-1", "EAGAIN"), r)
            self.assertEqual((r.results.get("retry_ret"), r.results.get("retry_errno")),
                             ("5", "1234"), r)
            self.assertEqual(r.results.get("big_errno"), "1234", r)
        short = int(bare.results["big_ret"])
        self.assertLess(short, 200001, "the bare write is short")
        self.assertEqual(bare.out, b"a" * short + b"next\n")
        self.assertEqual(shim.results["big_ret"], "200001", shim)
        self.assertTrue(shim.out == jline("a" * 200000) + b"\n" + jline("next") + b"\n",
                        "got %d bytes: %r...%r" % (len(shim.out), shim.out[:60], shim.out[-60:]))
        obj = parse_json_line(shim.out.split(b"\n")[0])
        self.assertEqual(obj, {"request_id": "sem-1", "msg": "a" * 200000})


class T27BadArguments(Base):
    # Guards: the log path dereferenced or rewrote invalid arguments (NULL
    # iov: SIGSEGV; more than IOV_MAX vectors: written; send on a file: the
    # bytes buffered as a line) instead of letting libc report the error.
    def test_errors_like_libc(self):
        bare, shim = self.both("bad_args")
        self.assertEqual(bare.results_text,
                         "writev_null=-1/EFAULT\nwritev_many=-1/EINVAL\n"
                         "sendmsg_null=-1/ENOTSOCK\nsend_line=-1/ENOTSOCK\n"
                         "send_partial=-1/ENOTSOCK\npwrite_neg=-1/EINVAL\n")
        self.assertEqual(bare.out + bare.err, b"")
        self.assertEqual(shim.out + shim.err, b"")


class T28ErrnoAtMain(Base):
    # Guards: the shim's start-up probe of log fd 2 (closed: 2>&-) left
    # EBADF in errno for main. LD_PRELOAD is set by hand: bash, running
    # scripts/reqid with fd 2 closed, opens the script on fd 2 and leaves it
    # there for the command it execs.
    def test_fd2_closed_at_start(self):
        bare = run("errno_start", "bare", stderr="closed")
        shim = run("errno_start", "preload", stderr="closed")
        self.assertEqual(bare.rc, 0, bare)
        self.assertEqual(shim.rc, 0, shim)
        # results_fd=2: fd 2 really was closed when main started
        self.assertEqual(bare.results_text.strip(), "errno_at_main=0 results_fd=2 write=2/0")
        self.assertEqual(shim.results_text, bare.results_text)
        self.assertEqual(bare.out, b"x\n")
        self.assertEqual(shim.out, jline("x", None) + b"\n")


class T30StartWithoutAllocating(Base):
    # Guards: every shimmed program called setenv(REQID_LOG_IDS) at start,
    # and so set up malloc (a getrandom, two brk, page faults) in programs
    # that never allocate; the ids also named a file twice when stdout and
    # stderr were one file. A shell under reqid execs the program: with the
    # same logs the environment already says it, and nothing is allocated.
    def start_env(self, tmp, prefix, same_file):
        res, out, err = (Path(tmp) / n for n in ("results", "out", "err"))
        script = prefix + 'exec "$0" start_env "$1"'
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.run([str(REQID), "run", "--", "/bin/sh", "-c", script, str(PROG),
                                str(res)], env=harness.clean_env(), stdout=fo,
                               stderr=subprocess.STDOUT if same_file else fe,
                               stdin=subprocess.DEVNULL, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0)
        ids = ["%x:%x" % (os.stat(f).st_dev, os.stat(f).st_ino) for f in (out, err)]
        return res.read_text().strip(), ids

    def test_same_logs_as_parent(self):
        with tempfile.TemporaryDirectory(prefix="reqid-sem-") as tmp:
            bare = run("start_env", "bare")
            self.assertEqual(bare.results_text.strip(), "arena=0 log_ids=- changed=yes environ_kept=yes")
            text, ids = self.start_env(tmp, "", same_file=True)
            self.assertEqual(text, "arena=0 log_ids=%s changed=yes environ_kept=yes" % ids[0])
        with tempfile.TemporaryDirectory(prefix="reqid-sem-") as tmp:
            text, ids = self.start_env(tmp, "", same_file=False)
            self.assertEqual(text, "arena=0 log_ids=%s,%s changed=yes environ_kept=yes"
                             % (ids[0], ids[1]))

    def test_fewer_logs_than_parent(self):
        # The program's logs are fd 1 alone: its list differs from the
        # shell's and is set, still without allocating (until 2026-12-05
        # setenv set it, and set up malloc), and in the array exec gave it
        # (until 2026-12-07 a mapping of its own took its place: a mmap and
        # a page fault more in every CGI script a shimmed server ran).
        with tempfile.TemporaryDirectory(prefix="reqid-sem-") as tmp:
            text, ids = self.start_env(tmp, "REQID_LOG_FDS=1 ", same_file=False)
            self.assertEqual(text, "arena=0 log_ids=%s changed=yes environ_kept=yes" % ids[0])


class T29DisableValues(Base):
    # Guards: only lowercase 1/true/yes disabled the shim; TRUE or on were
    # "invalid" and left it enabled, as did a value it could not read.
    def test_disable_spellings(self):
        bare = run("multiline", "bare")
        self.assertEqual(bare.rc, 0, bare)
        for value, err in (("TRUE", b""), ("on", b""),
                           ("maybe", b"reqid: ignoring invalid REQID_DISABLE\n")):
            off = run("multiline", "shim", env_extra={"REQID_DISABLE": value})
            self.assertEqual(off.rc, 0, off)
            self.assertEqual(off.results_text, bare.results_text, value)
            self.assertEqual(off.out, bare.out, "REQID_DISABLE=%s: output differs" % value)
            self.assertEqual(off.err, err, value)


# A server that reads its socket's error queue (send timestamps) after
# answering: that read's 0 is no end of file, and its request goes on.
ERRQUEUE_SERVER = r"""
import os, socket, sys, time
SO_TIMESTAMPING = 37
TX_SOFTWARE, SOFTWARE, OPT_TSONLY = 1 << 1, 1 << 4, 1 << 11
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
os.write(int(sys.argv[1]), b"%d\n" % ls.getsockname()[1])
c, _ = ls.accept()
c.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TX_SOFTWARE | SOFTWARE | OPT_TSONLY)
data = b""
while b"\r\n\r\n" not in data:
    data += c.recv(4096)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
got = None
for _ in range(500):
    try:
        got = len(c.recvmsg(64, 512, socket.MSG_ERRQUEUE)[0])
        break
    except BlockingIOError:
        time.sleep(0.01)
sys.stderr.write("error queue read gave %s\n" % got)
sys.stderr.flush()
c.close()
"""


class ErrorQueueTest(unittest.TestCase):
    def test_error_queue_read_is_no_end_of_file(self):
        r, w = os.pipe()
        p = subprocess.Popen([sys.executable, "-c", ERRQUEUE_SERVER, str(w)], pass_fds=(w,),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=harness.clean_env(LD_PRELOAD=str(LIB)))
        os.close(w)
        try:
            with os.fdopen(r, "rb") as f:
                port = int(f.readline())
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: errq-1\r\n\r\n")
                resp = b""
                while not resp.endswith(b"ok"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    resp += chunk
            _, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(b"X-Request-ID: errq-1\r\n", resp)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        line = parse_json_line(lines[0])
        self.assertEqual(line.get("msg"), "error queue read gave 0", err)
        self.assertEqual(line.get("request_id"), "errq-1", err)


# A server that answers in two writes, the second only after the client,
# having read the first, went away (its FIN): the server's read finds the
# end of file in the middle of the response, notes it, and sends the rest.
HALF_SERVER = r"""
import os, socket, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
os.write(int(sys.argv[1]), b"%d\n" % ls.getsockname()[1])
c, _ = ls.accept()
data = b""
while b"\r\n\r\n" not in data:
    data += c.recv(4096)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
got = c.recv(4096)
sys.stderr.write("client went away mid-response (read %d)\n" % len(got))
sys.stderr.flush()
try:
    c.sendall(b"ok")
except OSError:
    pass
c.close()
"""


class HalfCloseMidResponseTest(unittest.TestCase):
    def test_end_of_file_mid_response_keeps_the_request(self):
        r, w = os.pipe()
        p = subprocess.Popen([sys.executable, "-c", HALF_SERVER, str(w)], pass_fds=(w,),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=harness.clean_env(LD_PRELOAD=str(LIB)))
        os.close(w)
        try:
            with os.fdopen(r, "rb") as f:
                port = int(f.readline())
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: half-1\r\n\r\n")
                resp = b""
                while not resp.endswith(b"ok"):
                    resp += s.recv(4096)
                s.shutdown(socket.SHUT_WR)
            _, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(b"X-Request-ID: half-1\r\n", resp)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        line = parse_json_line(lines[0])
        self.assertEqual(line.get("msg"), "client went away mid-response (read 0)", err)
        self.assertEqual(line.get("request_id"), "half-1", err)


def main():
    if not shutil.which("cc"):
        print("no cc\n0 passed, 1 failed")
        return 1
    try:
        build()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print("build failed: %s\n0 passed, 1 failed" % e)
        return 1
    prog = unittest.TestProgram(module=__name__, exit=False,
                                argv=[sys.argv[0]] + sys.argv[1:],
                                testRunner=unittest.TextTestRunner(verbosity=2))
    res = prog.result
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
