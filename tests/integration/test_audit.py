#!/usr/bin/env python3
"""test_audit.py - `reqid audit` on the bundled servers, each started by
audit_drive.py under the audit and sent the same keep-alive requests.

  - leaky (tests/servers/leaky.c): exactly its planted leaks, at the
    functions and lines of its LEAK markers: 3 stale lines at
    log_handled (a request without X-Request-ID logs the previous one's),
    6 stale and 1 outside at pool_worker (the pool's worker logs the id of
    the first job it ran); exit 1; the JSON says so; the JUnit XML parses
    back with those three failing testcases and the clean call sites
    passing. --fail-on without those kinds exits 0; a --sentinel found in
    a request's line is one finding of its own.
  - leaky_loop (tests/servers/leaky_loop.c, one thread, poll): exactly its
    planted leak, 7 untagged lines at finish_parked's LEAK marker, by the
    single-threaded rule (a line outside any request, written while one
    was in flight); its other 12 lines, 7 of them with ids, are clean.
  - thread_per_conn, thread_pool, fork_per_conn (lines written by forked
    children): no findings, exit 0, every line of every request tagged.
  - a command that exits 3 fails the audit and is named; a command that
    cannot start, and bad options, exit 2.
  - audit_procs.c: a child made by a raw clone or by vfork (no fork
    handlers) has its records under its own pid, with its own mappings (its
    lines resolve to their function), and the parent's stay in one image;
    such a child that closed every descriptor and put a file of its own at
    the audit file's number gets no record written into that file; a line the shim passed through unenriched (no memory)
    is recorded as such, once per line, and is untagged inside a request
    with the reason "raw"; a line held when its process was killed is
    untagged, "held: process ended before the line's request was known".
  - audit_real.py: nginx started as root with `user nobody nogroup;` (its
    master logs nothing): every access log line its workers write is
    audited, with its id (skipped when not root or without nginx); busybox
    httpd, a forked child per connection execing a CGI shell script that
    logs to stderr: its children's and the CGI scripts' lines are all
    audited, with their ids, and there are no findings (skipped without
    busybox).
  - make install into a temporary root (and make uninstall): the installed
    reqid needs no REQID_LIB, says its version and audits.
Prints "N passed, M failed" last and exits non-zero on a failure.

    python3 tests/integration/test_audit.py
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

HERE = Path(__file__).resolve().parent
DRIVE = str(HERE / "audit_drive.py")
PROCS = harness.LOG_DIR / "audit_procs"
sys.path.insert(0, str(harness.ROOT / "scripts"))
import reqid_audit  # noqa: E402
APP_ID = ["--app-id", r"rid=([A-Za-z0-9._:-]+)"]
REQUESTS = 7  # audit_drive.py's sequence


def marker_line(marker, source="tests/servers/leaky.c", kind="LEAK"):
    for n, line in enumerate((harness.ROOT / source).read_text().splitlines(), 1):
        if "/* %s %s */" % (kind, marker) in line:
            return n
    raise harness.Failure("no %s %s marker in %s" % (kind, marker, source))


def procs_line(marker):
    return marker_line(marker, "tests/integration/audit_procs.c", "AUDIT")


def build_procs():
    harness.LOG_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-o", str(PROCS),
                    str(HERE / "audit_procs.c")], check=True, timeout=60)


def audit(*args, json_out=None, junit_out=None):
    cmd = [str(harness.REQID), "audit"] + list(args[:-1])
    if json_out:
        cmd += ["--json", json_out]
    if junit_out:
        cmd += ["--junit", junit_out]
    cmd += ["--"] + list(args[-1])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def summary(findings):
    return sorted((f["kind"], f["function"], Path(f["file"]).name, f["line"], f["count"])
                  for f in findings)


def check_leaky(fail):
    handled, pool = marker_line("stale"), marker_line("pool")
    want = sorted([("stale", "log_handled", "leaky.c", handled, 3),
                   ("stale", "pool_worker", "leaky.c", pool, 6),
                   ("outside", "pool_worker", "leaky.c", pool, 1)])
    with tempfile.TemporaryDirectory(prefix="reqid-audit-test-") as tmp:
        js, xml = str(Path(tmp) / "a.json"), str(Path(tmp) / "a.xml")
        rc, out, err = audit(*APP_ID, ["python3", DRIVE, "leaky"], json_out=js, junit_out=xml)
        report = json.loads(Path(js).read_text())
        suite = ET.parse(xml).getroot()
    if rc != 1:
        fail("leaky: exit %d, expected 1: %s %s" % (rc, out, err))
    got = summary(report["findings"])
    if got != want:
        fail("leaky: findings %s, expected %s" % (got, want))
    # a1..a5, b1, b2 handled (tagged) and audited (the pool: untagged)
    if report["tagged"] != REQUESTS or report["command_exit"] != 0:
        fail("leaky: %d lines tagged, command exit %d" % (report["tagged"],
                                                            report["command_exit"]))
    if "log_handled" not in out or "leaky.c:%d" % handled not in out or "FAIL" not in out:
        fail("leaky: report %r" % out)
    cases = suite.findall("testcase")
    failing = sorted((c.get("name"), c.get("line"), c.find("failure").get("type"))
                     for c in cases if c.find("failure") is not None)
    want_cases = sorted([("log_handled:%d stale" % handled, str(handled), "stale"),
                         ("pool_worker:%d stale" % pool, str(pool), "stale"),
                         ("pool_worker:%d outside" % pool, str(pool), "outside")])
    passing = [c for c in cases if c.find("failure") is None]
    if suite.tag != "testsuite" or suite.get("failures") != "3" or failing != want_cases or \
            not passing or int(suite.get("tests")) != len(cases):
        fail("leaky: JUnit %s, failing %s" % (suite.attrib, failing))
    # Kinds left out of --fail-on still print, but pass.
    rc, out, _ = audit(*APP_ID, "--fail-on", "untagged,mismatch",
                       ["python3", DRIVE, "leaky"])
    if rc != 0 or "PASS" not in out or "pool_worker" not in out:
        fail("leaky --fail-on untagged,mismatch: exit %d %r" % (rc, out))
    # a3's own line carries the sentinel text (a4's and a5's are stale first).
    with tempfile.TemporaryDirectory(prefix="reqid-audit-test-") as tmp:
        js = str(Path(tmp) / "s.json")
        rc, out, _ = audit(*APP_ID, "--sentinel", "rid=id-a3", ["python3", DRIVE, "leaky"],
                           json_out=js)
        got = summary(json.loads(Path(js).read_text())["findings"])
    if ("sentinel", "log_handled", "leaky.c", handled, 1) not in got or rc != 1:
        fail("leaky --sentinel: exit %d, findings %s" % (rc, got))
    print("%-16s exit 1; %s" % ("leaky", "; ".join("%s %s:%d x%d" % (k, fn, line, n)
                                                     for k, fn, _, line, n in want)))


SINGLE_THREADED = "single-threaded process, a request in flight"


def check_leaky_loop(fail):
    line = marker_line("loop", "tests/servers/leaky_loop.c")
    rc, report, out = audit_json(APP_ID, ["python3", DRIVE, "leaky_loop"])
    got = [(f["kind"], f["function"], Path(f["file"]).name, f["line"], f["count"], f["reason"])
           for f in report["findings"]]
    want = [("untagged", "finish_parked", "leaky_loop.c", line, REQUESTS, SINGLE_THREADED)]
    if rc != 1 or got != want or report["lines"] != 19 or report["tagged"] != REQUESTS:
        fail("leaky_loop: exit %d, %d lines, %d tagged, findings %s, expected %s" % (
            rc, report["lines"], report["tagged"], got, want))
    print("%-16s exit 1; untagged finish_parked:%d x%d (%s); 19 lines, %d with an id" % (
        "leaky_loop", line, REQUESTS, SINGLE_THREADED, REQUESTS))


def check_clean(name, fail):
    with tempfile.TemporaryDirectory(prefix="reqid-audit-test-") as tmp:
        js = str(Path(tmp) / "a.json")
        rc, out, err = audit(*APP_ID, ["python3", DRIVE, name], json_out=js)
        report = json.loads(Path(js).read_text())
    if rc != 0 or report["findings"] or "PASS" not in out:
        fail("%s: exit %d, findings %s: %s" % (name, rc, summary(report["findings"]), out))
    if report["tagged"] != 3 * REQUESTS:
        fail("%s: %d lines tagged, expected %d" % (name, report["tagged"], 3 * REQUESTS))
    print("%-16s exit 0, no findings; %d lines, %d with an id" % (name, report["lines"],
                                                                report["tagged"]))


def check_exits(fail):
    rc, out, _ = audit(["python3", DRIVE, "thread_pool", "3"])
    if rc != 1 or "the command exited with 3" not in out:
        fail("command exiting 3: exit %d %r" % (rc, out))
    rc, _, err = audit(["/nonexistent/program"])
    if rc != 2 or "cannot start" not in err:
        fail("missing command: exit %d %r" % (rc, err))
    rc, _, err = audit("--fail-on", "leaks", ["true"])
    if rc != 2:
        fail("--fail-on leaks: exit %d %r" % (rc, err))
    p = subprocess.run([str(harness.REQID), "audit", "--app-id", "x"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    if p.returncode != 2:
        fail("no command: exit %d %r" % (p.returncode, p.stderr))
    p = subprocess.run([str(harness.REQID), "run", "--json", "x", "--", "true"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    if p.returncode != 2 or "option of audit" not in p.stderr:
        fail("run --json: exit %d %r" % (p.returncode, p.stderr))
    print("%-16s a command exiting 3 fails the audit; no command, a missing one, bad "
          "options: exit 2" % "exits")


def audit_json(args, cmd):
    """reqid audit with --json: (exit status, the JSON report, stdout)."""
    with tempfile.TemporaryDirectory(prefix="reqid-audit-test-") as tmp:
        js = str(Path(tmp) / "a.json")
        rc, out, err = audit(*args, cmd, json_out=js)
        if not Path(js).exists():
            raise harness.Failure("no JSON report: exit %d %s %s" % (rc, out, err))
        return rc, json.loads(Path(js).read_text()), out


def check_children(scenario, fail):
    """A child no fork handler ran in (a raw clone's, a vfork's) has its
    records under its own pid, with its own mappings; the parent's records
    stay in one image (a vfork child shares the parent's memory)."""
    with tempfile.TemporaryDirectory(prefix="reqid-audit-test-") as tmp:
        env = dict(__import__("os").environ, LD_PRELOAD=str(harness.LIBREQID),
                   REQID_AUDIT_DIR=tmp)
        p = subprocess.run([str(PROCS), scenario], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=60)
        procs, lines = reqid_audit.read_records(tmp)
    if p.returncode != 0:
        fail("%s: exit %d %r" % (scenario, p.returncode, p.stderr))
    child = ["child one", "child two"] if scenario == "clone" else ["child one"]
    texts = sorted(ln.text.split(" ", 1)[0] + " " + ln.text.rsplit(" ", 1)[1] for ln in lines)
    if texts != sorted(child + ["parent after", "parent before"]):
        fail("%s: lines %s" % (scenario, texts))
    # each line is recorded under the pid it names, in one image per process
    wrong = [(ln.proc.pid, ln.text) for ln in lines
             if "pid=%d " % ln.proc.pid not in ln.text]
    images = {ln.text.split(" ", 1)[0]: set() for ln in lines}
    for ln in lines:
        images[ln.text.split(" ", 1)[0]].add(id(ln.proc))
    if wrong or any(len(v) != 1 for v in images.values()) or \
            images["child"] == images["parent"]:
        fail("%s: records under another pid %s, or the parent's in several images" % (
            scenario, wrong))
    names = reqid_audit.symbolize({f for ln in lines for f in ln.frames})
    sites = sorted((ln.text.split(" ", 1)[0], names[ln.frames[0]][0], names[ln.frames[0]][2])
                   for ln in lines if ln.frames)
    want = sorted((t.split(" ")[0], "log_pid", procs_line("clone"))
                  for t in child + ["parent after", "parent before"])
    if sites != want:
        fail("%s: call sites %s, expected %s" % (scenario, sites, want))
    rc, report, out = audit_json([], [str(PROCS), scenario])
    if rc != 0 or report["lines"] != len(want) or report["findings"]:
        fail("%s under reqid audit: exit %d, %d lines, %s" % (scenario, rc, report["lines"],
                                                               out))
    print("%-16s %d lines, the child's %d under its own pid, the parent's in one image, "
          "all at log_pid:%d" % (scenario, len(want), len(child), procs_line("clone")))


def check_clone_fds(fail):
    """A raw clone child that closed every descriptor (close's hook keeps no
    books in it) and put a file of its own where the audit file was: no
    record goes into that file."""
    with tempfile.TemporaryDirectory(prefix="reqid-audit-test-") as tmp:
        data = Path(tmp) / "data"
        data.write_bytes(b"")
        records = Path(tmp) / "records"
        records.mkdir()
        env = dict(__import__("os").environ, LD_PRELOAD=str(harness.LIBREQID),
                   REQID_AUDIT_DIR=str(records))
        p = subprocess.run([str(PROCS), "clone_fds", str(data)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        written = data.read_bytes()
        _, lines = reqid_audit.read_records(str(records))
    texts = sorted(ln.text.split(" ", 1)[0] for ln in lines)
    if p.returncode != 0 or written or texts != ["parent", "parent"] or \
            b"child pid=" not in p.stderr:
        fail("clone_fds: exit %d, %d bytes in the data file (%r), lines %s" % (
            p.returncode, len(written), written[:80], texts))
    print("%-16s the child's data file on 900..1023 stays empty; the parent's 2 lines "
          "recorded" % "clone_fds")


RAW_REASON = ("raw: the shim passed it through unenriched (no memory or line slot for it, "
              "or its stream blocked)")
HELD_REASON = "held: process ended before the line's request was known"


def check_raw(fail):
    """No memory inside a request: the long line and the line in pieces go
    out as they came, each recorded once, untagged with the reason raw."""
    rc, report, out = audit_json([], [str(PROCS), "no_memory"])
    got = sorted((f["kind"], f["function"], f["line"], f["count"], f["reason"])
                 for f in report["findings"])
    want = sorted([("untagged", "sc_no_memory", procs_line("big"), 1, RAW_REASON),
                   ("untagged", "sc_no_memory", procs_line("pieces"), 1, RAW_REASON)])
    if rc != 1 or got != want or report["lines"] != 4 or report["tagged"] != 2:
        fail("no_memory: exit %d, %d lines, %d tagged, findings %s, expected %s" % (
            rc, report["lines"], report["tagged"], got, want))
    print("%-16s 4 lines, 2 tagged; untagged (raw) x1 at %d and x1 at %d" % (
        "raw", procs_line("big"), procs_line("pieces")))


def check_held_killed(fail):
    """A line held when its process was killed: untagged, and said so."""
    rc, report, out = audit_json([], [str(PROCS), "held_killed"])
    got = [(f["kind"], f["function"], f["line"], f["count"], f["reason"])
           for f in report["findings"]]
    want = [("untagged", "sc_held_killed", procs_line("held"), 1, HELD_REASON)]
    if rc != 1 or got != want or report["lines"] != 2 or report["tagged"] != 1 or \
            report["command_exit"] != -9 or HELD_REASON not in out:
        fail("held_killed: exit %d, %d lines, %d tagged, command exit %s, findings %s" % (
            rc, report["lines"], report["tagged"], report["command_exit"], got))
    print("%-16s 2 lines, 1 tagged; untagged x1 at sc_held_killed:%d (%s)" % (
        "held_killed", procs_line("held"), HELD_REASON))


REAL_REQUESTS = 5


def audit_real(name):
    """audit_real.py NAME under reqid audit: (exit, JSON report, the log
    files' text by name)."""
    with tempfile.TemporaryDirectory(prefix="reqid-audit-real-") as tmp:
        rc, report, out = audit_json(["--log-path", tmp + "/*.log"],
                                     ["python3", str(HERE / "audit_real.py"), name, tmp,
                                      str(REAL_REQUESTS)])
        logs = {f.name: f.read_text(errors="replace") for f in Path(tmp).glob("*.log")}
    return rc, report, out, logs


def check_nginx_nobody(fail):
    """Workers that dropped root write their records through the audit file
    the master opened at start-up."""
    if __import__("os").geteuid() != 0 or not shutil.which("nginx", path="/usr/sbin:/usr/bin"):
        print("%-16s skipped: needs root and nginx" % "nginx-nobody")
        return
    rc, report, out, logs = audit_real("nginx-nobody")
    access = logs.get("access.log", "").splitlines()
    tagged = [ln for ln in access if ln.startswith('{"request_id":"id-t')]
    if rc != 0 or report["lines"] != REAL_REQUESTS or report["tagged"] != REAL_REQUESTS or \
            report["findings"] or len(tagged) != REAL_REQUESTS:
        fail("nginx-nobody: exit %d, %d lines, %d tagged, findings %s, access.log %s: %s" % (
            rc, report["lines"], report["tagged"], report["findings"], access, out))
    print("%-16s workers as nobody: %d access log lines audited, %d with an id, no findings"
          % ("nginx-nobody", report["lines"], report["tagged"]))


def check_busybox(fail):
    """busybox httpd's per-connection children and the CGI scripts they
    exec are audited; a clean run has no findings."""
    if not shutil.which("busybox"):
        print("%-16s skipped: needs busybox" % "busybox")
        return
    rc, report, out, logs = audit_real("busybox")
    lines = logs.get("stderr.log", "").splitlines()
    cgi = [ln for ln in lines if '"msg":"cgi pid=' in ln and '"request_id":"id-t' in ln]
    if rc != 0 or report["lines"] != 2 * REAL_REQUESTS or \
            report["tagged"] != 2 * REAL_REQUESTS or report["findings"] or \
            len(lines) != 2 * REAL_REQUESTS or len(cgi) != REAL_REQUESTS:
        fail("busybox: exit %d, %d lines, %d tagged, findings %s, stderr.log %s: %s" % (
            rc, report["lines"], report["tagged"], report["findings"], lines, out))
    print("%-16s %d lines audited (%d of the CGI scripts), %d with an id, no findings" % (
        "busybox", report["lines"], len(cgi), report["tagged"]))


def check_install(fail):
    """make install into a temporary root: the installed reqid finds its
    library and helpers without REQID_LIB, says its version, audits; make
    uninstall takes every file away again."""
    with tempfile.TemporaryDirectory(prefix="reqid-install-") as root:
        make = ["make", "-s", "-C", str(harness.ROOT), "DESTDIR=" + root, "PREFIX=/usr"]
        p = subprocess.run(make + ["install"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=300)
        reqid = Path(root) / "usr/bin/reqid"
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("REQID_")}
        files = sorted(str(f.relative_to(root)) for f in Path(root).rglob("*") if f.is_file())
        want = ["usr/bin/reqid", "usr/lib/reqid/libreqid.so", "usr/lib/reqid/reqid-inject",
                "usr/lib/reqid/reqid_attach.py", "usr/lib/reqid/reqid_audit.py",
                "usr/lib/reqid/reqid_show.py", "usr/share/man/man1/reqid.1"]
        if p.returncode != 0 or files != want:
            fail("make install: exit %d %s, files %s" % (p.returncode, p.stdout, files))
            return
        v = subprocess.run([str(reqid), "--version"], stdout=subprocess.PIPE, text=True, env=env)
        if v.returncode != 0 or not re.match(r"^reqid \d+\.\d+\.\d+\n$", v.stdout):
            fail("reqid --version: %d %r" % (v.returncode, v.stdout))
        a = subprocess.run([str(reqid), "audit"] + APP_ID + ["--", "python3", DRIVE, "leaky"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env=env, timeout=120)
        if a.returncode != 1 or "log_handled" not in a.stdout:
            fail("installed reqid audit: exit %d %r" % (a.returncode, a.stdout))
        subprocess.run(make + ["uninstall"], check=True, timeout=60)
        left = [str(f) for f in Path(root).rglob("*") if f.is_file()]
        if left:
            fail("make uninstall left %s" % left)
    print("%-16s make install: %d files, reqid --version, an installed audit; make uninstall"
          % ("install", len(want)))


def main():
    build_procs()
    groups = [("leaky", check_leaky), ("leaky_loop", check_leaky_loop)]
    groups += [(n, lambda f, n=n: check_clean(n, f))
               for n in ("thread_per_conn", "thread_pool", "fork_per_conn")]
    groups.append(("exits", check_exits))
    groups += [(n, lambda f, n=n: check_children(n, f)) for n in ("clone", "vfork")]
    groups += [("clone_fds", check_clone_fds), ("raw", check_raw), ("held_killed", check_held_killed),
               ("nginx-nobody", check_nginx_nobody), ("busybox", check_busybox)]
    groups.append(("install", check_install))
    return harness.run_groups([(name, lambda failures, check=check: check(failures.append))
                               for name, check in groups],
                              (harness.Failure, OSError, ValueError, ET.ParseError))


if __name__ == "__main__":
    sys.exit(main())
