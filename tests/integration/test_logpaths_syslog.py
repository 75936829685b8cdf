#!/usr/bin/env python3
"""test_logpaths_syslog.py - reqid on log files opened by path
(REQID_LOG_PATHS) and on syslog messages, with the bundled thread_per_conn
server logging through its LEGACY_LOG backends (tests/servers/legacy_http.h):

  file            LEGACY_LOG=file:$T/app.log, REQID_LOG_PATHS=$T/*.log: the
                  oracle runs on app.log; stderr must hold no request line
  file, rotated   in the middle of the load app.log is renamed to app.log.1
                  and the server gets SIGHUP (it reopens app.log onto the
                  same fd with open+dup2+close); the oracle runs on app.log.1
                  + app.log: no line lost or duplicated
  file, copytruncate  in the middle app.log is copied to app.log.1 and
                  truncated to 0; lines written between the copy and the
                  truncate are lost by copytruncate itself and counted out;
                  every line present must be whole and carry the right id
  syslog / devlog a private rsyslogd (imuxsock on $T/dev/log, mmjsonparse,
                  omfile with a JSON template) receives the server's syslog(3)
                  messages, or the RFC 3164 datagrams it sends to /dev/log
                  itself; the server runs in a private mount namespace whose
                  /dev holds that socket as /dev/log. The "done" line is
                  logged after the response is written: the shim holds it
                  like any line until the thread's next I/O on the
                  connection, so it keeps its id.

Precision must be 100% everywhere (a wrong id is worse than no id); recall
99% everywhere. The syslog runs are skipped, with a message,
when rsyslogd is missing or this user may not unshare a mount namespace and
bind-mount. Ends with "N passed, M failed"; exits non-zero on a failure.

    python3 tests/integration/test_logpaths_syslog.py [--seed N] [--keep]
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

SERVER = "thread_per_conn"
REQUESTS = 300
CONCURRENCY = 32
SYSLOG_WAIT = 20.0   # seconds rsyslog gets to write every message out
SYSLOG_MIN_RECALL = 0.99

# Runs the command given after it with /dev replaced by $T/dev (null, zero,
# urandom, random bound in, plus the rsyslog socket $T/dev/log).
NS_SCRIPT = ('T="$1"; shift; '
             'for f in null zero urandom random; do '
             'touch "$T/dev/$f" && mount --bind "/dev/$f" "$T/dev/$f" || exit 111; done; '
             'mount --bind "$T/dev" /dev || exit 111; exec "$@"')

RSYSLOG_CONF = r'''# written by test_logpaths_syslog.py: no system socket, no /etc config
$WorkDirectory {T}
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{T}/dev/log" CreatePath="on" RateLimit.Interval="0")
module(load="mmjsonparse")
template(name="reqid_json" type="list") {{
  constant(value="{{\"request_id\":\"")
  property(name="$!request_id" format="json")
  constant(value="\",\"msg\":\"")
  property(name="$!msg" format="json")
  constant(value="\",\"prog\":\"")
  property(name="programname" format="json")
  constant(value="\",\"raw\":\"")
  property(name="msg" format="json")
  constant(value="\"}}\n")
}}
action(type="mmjsonparse")
action(type="omfile" file="{T}/syslog.jsonl" template="reqid_json")
'''


def new_result(label, seed):
    return {"label": label, "server": SERVER, "seed": seed, "log": "", "ok": False,
            "problems": [], "notes": [], "examples": [], "counts": collections.Counter(),
            "precision": None, "recall": None, "skipped": None}


class MidwayLoad(harness.Load):
    """harness.Load that calls action() once, in the middle of the load: the
    connections holding the first ~60% of the requests run at once; when 40%
    of all requests are answered, the client thread that answered the last
    of them calls action() while the rest of that first group is still in
    flight; the later connections start only once action() has returned, so
    load goes on both before, during and after it."""

    def __init__(self, port, concurrency, plan, action):
        super().__init__(port, concurrency)
        total = sum(len(c) for c in plan)
        self.action = action
        self.at = max(1, total * 2 // 5)
        self.first, n = 0, 0
        while self.first < len(plan) and (n < total * 3 // 5
                                          or self.first < min(concurrency, len(plan))):
            n += len(plan[self.first])
            self.first += 1
        self.answered, self.fired = 0, False
        self.done = threading.Event()
        self.mid_lock = threading.Lock()
        self.action_error = None

    def run_conn(self, item):
        if item[0] >= self.first:
            self.done.wait(self.timeout)
        super().run_conn(item)
        with self.mid_lock:
            self.answered += len(item[1])
            fire = not self.fired and self.answered >= self.at
            if fire:
                self.fired = True
        if fire:
            try:
                self.action()
            except OSError as e:
                self.action_error = e
            finally:
                self.done.set()


def token_kinds(text, fmt):
    """token -> kinds of its lines in order (lines that do not parse are
    left to check_log)."""
    out = collections.defaultdict(list)
    for line in text.split("\n"):
        try:
            _, msg = fmt.split(line)
        except ValueError:
            continue
        m = harness.LINE_RE.match(msg)
        tm = harness.TOKEN_RE.search(msg) if m else None
        if tm:
            km = re.match(r"\s*(\w*)", msg[tm.end():])
            out[tm.group(1)].append(km.group(1))
    return out


def is_subsequence(got, want):
    it = iter(want)
    return all(k in it for k in got)


def score(res, text, reqs, min_recall, lost_ok=False):
    """check_log on text; with lost_ok, lines missing from a request are
    counted (lost_by_rotation) instead of failing, as long as the lines
    present are in order and not duplicated."""
    fmt = harness.LineFormat("json")
    chk = harness.check_log(text, SERVER, reqs, fmt)
    c = chk["counts"]
    res["counts"].update(c)
    res["examples"] += chk["examples"]
    problems = chk["problems"]
    if lost_ok:
        kinds = token_kinds(text, fmt)
        bad = [t for t in (r.token for r in reqs)
               if not is_subsequence(kinds.get(t, []), harness.KINDS_PLAIN)]
        for t in bad[:10]:
            res["problems"].append("token %s: lines %s are not in order / duplicated"
                                   % (t, kinds.get(t)))
        if bad:
            res["problems"].append("%d requests with duplicated or reordered lines" % len(bad))
        problems = [p for p in problems if not re.match(r"token \w+: lines ", p)]
        res["counts"]["lost_by_rotation"] = c["lost_lines"]
    res["problems"] += problems
    for key, what in (("malformed", "malformed lines"), ("lost_lines", "lost lines"),
                      ("extra_lines", "duplicated lines"), ("reordered", "reordered requests")):
        if c[key] and not (lost_ok and key == "lost_lines"):
            res["problems"].append("%d %s" % (c[key], what))
    if c["tagged"]:
        res["precision"] = c["correct"] / c["tagged"]
    if c["token_lines"]:
        res["recall"] = c["correct"] / c["token_lines"]
    if c["wrong"]:
        res["problems"].append("%d lines carry a wrong id (precision %s)"
                               % (c["wrong"], harness.pct(res["precision"])))
    rec = res["recall"] or 0.0
    if rec < min_recall or rec == 0:
        res["problems"].append("recall %s below %.0f%%" % (harness.pct(rec), 100 * min_recall))


def check_stderr(res, path):
    """In file mode the server logs nothing on stderr; whatever is there must
    be a well-formed line about no request."""
    text = path.read_text(errors="replace")
    lines = [x for x in text.split("\n") if x]
    res["counts"]["stderr_lines"] = len(lines)
    fmt = harness.LineFormat("json")
    for line in lines[:20]:
        try:
            rid, msg = fmt.split(line)
        except ValueError:
            rid, msg = None, line
        m = harness.LINE_RE.match(msg)
        if not m or m.group(1) == "ERROR" or harness.TOKEN_RE.search(msg) or rid is not None:
            res["problems"].append("unexpected line on stderr: %r" % line[:200])


def drive(srv, reqs_plan, load):
    load.run(reqs_plan)
    harness.send_quit(srv.port)
    return srv.wait(30.0)


def response_problems(res, reqs):
    bad = [r for r in reqs if r.error or r.response is None]
    for r in bad[:5]:
        res["problems"].append("request %s: %s" % (r.token, r.error or "no response"))
    if bad:
        res["problems"].append("%d/%d requests failed or got altered responses"
                               % (len(bad), len(reqs)))


# ---------------------------------------------------------------- file runs

def run_file(label, seed, tmp, rotation=None):
    """rotation: None, "rename" (rename + SIGHUP) or "copytruncate"."""
    res = new_result(label, seed)
    t0 = time.monotonic()
    rng = random.Random(seed)
    T = Path(tempfile.mkdtemp(prefix="file-", dir=tmp))
    app, old = T / "app.log", T / "app.log.1"
    res["log"] = str(app)
    env = {"LEGACY_LOG": "file:%s" % app, "REQID_LOG_PATHS": "%s/*.log" % T}
    plan = harness.make_plan(rng, REQUESTS, False)
    reqs = [r for conn in plan for r in conn]
    srv = None
    try:
        srv = harness.Server(SERVER, T / "server.stderr", env=env)

        def rotate():
            if rotation == "rename":
                os.rename(app, old)
                os.kill(srv.proc.pid, signal.SIGHUP)
            else:
                shutil.copyfile(app, old)
                os.truncate(app, 0)

        if rotation:
            load = MidwayLoad(srv.port, CONCURRENCY, plan, rotate)
        else:
            load = harness.Load(srv.port, CONCURRENCY)
        rc = drive(srv, plan, load)
        res["max_open"] = load.open_max
        if rc != 0:
            res["problems"].append("server exited with status %s" % rc)
        if rotation and not load.fired:
            res["problems"].append("the rotation never happened")
        if rotation and load.action_error:
            res["problems"].append("rotation failed: %s" % load.action_error)
    except (harness.Failure, OSError) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
        if srv:
            srv.kill()
    response_problems(res, reqs)
    try:
        parts = []
        if rotation:
            parts.append(old.read_bytes().decode("utf-8"))
        parts.append(app.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        res["problems"].append("cannot read the log: %s" % e)
        res["elapsed"] = time.monotonic() - t0
        return res
    if rotation:
        res["log"] = "%s + %s" % (old, app)
        for name, part in zip(("app.log.1", "app.log"), parts):
            n_tok = sum(1 for x in part.split("\n") if "token=" in x)
            res["counts"]["token_lines_" + name] = n_tok
            res["notes"].append("%s: %d request lines" % (name, n_tok))
            if n_tok == 0:
                res["problems"].append("%s holds no request line: the rotation did not "
                                       "split the log" % name)
        if rotation == "copytruncate" and parts[0] and not parts[0].endswith("\n"):
            # the copy read the file while an append was landing: that line's
            # bytes went on in app.log and were truncated away with it
            cut = parts[0].rfind("\n") + 1
            res["notes"].append("copy ended inside a line (copytruncate's own race): %r"
                                % parts[0][cut:][:120])
            parts[0] = parts[0][:cut]
    score(res, "".join(parts), reqs, 0.99, lost_ok=rotation == "copytruncate")
    if rotation == "copytruncate":
        lost = res["counts"]["lost_by_rotation"]
        res["notes"].append("%d lines written between the copy and the truncate were "
                            "lost (copytruncate itself)" % lost)
    check_stderr(res, T / "server.stderr")
    res["elapsed"] = time.monotonic() - t0
    res["ok"] = not res["problems"]
    return res


# ---------------------------------------------------------------- syslog runs

def syslog_unavailable(tmp):
    """Why the syslog runs cannot run here, or None."""
    if not shutil.which("rsyslogd"):
        return "rsyslogd not installed (apt-get install rsyslog; `make deps` does it)"
    if not shutil.which("unshare"):
        return "unshare(1) not found"
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=tmp))
    (probe / "f").touch()
    try:
        p = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind /dev/null "$1"', "sh",
                            str(probe / "f")], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot run unshare: %s" % e
    if p.returncode != 0:
        return ("this user may not unshare a mount namespace and bind-mount (%s)"
                % p.stdout.decode(errors="replace").strip()[:200])
    return None


class Rsyslog:
    def __init__(self, T):
        self.T = T
        self.out = T / "syslog.jsonl"
        (T / "dev").mkdir()
        conf = T / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(T=T))
        self.log = open(T / "rsyslogd.out", "wb")
        self.proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(conf), "-i", str(T / "rsyslogd.pid")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        sock = T / "dev" / "log"
        deadline = time.monotonic() + 10
        while not sock.exists():  # rsyslogd's readiness: its socket is bound
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise harness.Failure("rsyslogd did not create %s (exit %s): %s" % (
                    sock, self.proc.poll(), (T / "rsyslogd.out").read_text()[-500:]))
            time.sleep(0.02)

    def read(self):
        try:
            return self.out.read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def rsyslog_to_lines(res, text):
    """rsyslog's JSON records -> harness json lines (an empty request_id is
    no id). A message that did not reach rsyslog as "@cee:{...}" was not
    enriched: it counts as malformed."""
    out, not_cee, other = [], 0, 0
    for no, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            res["problems"].append("rsyslog line %d is not JSON (%s): %r" % (no, e, line[:200]))
            out.append(line)  # check_log counts it as malformed
            continue
        if rec.get("prog") != SERVER:
            other += 1
            continue
        if not rec.get("raw", "").lstrip().startswith("@cee:{"):
            not_cee += 1
            if not_cee <= 5:
                res["problems"].append("message not enriched with a CEE cookie: %r"
                                       % rec.get("raw", "")[:200])
        obj = {"msg": rec.get("msg", "")}
        if rec.get("request_id"):
            obj = {"request_id": rec["request_id"], "msg": obj["msg"]}
        out.append(json.dumps(obj))
    if not_cee:
        res["problems"].append("%d messages without the @cee: cookie" % not_cee)
    res["counts"]["other_programs"] = other
    return "".join(x + "\n" for x in out)


def run_syslog(label, seed, tmp, backend):
    res = new_result(label, seed)
    t0 = time.monotonic()
    rng = random.Random(seed)
    T = Path(tempfile.mkdtemp(prefix="sys-", dir=tmp))
    res["log"] = str(T / "syslog.jsonl")
    plan = harness.make_plan(rng, REQUESTS, False)
    reqs = [r for conn in plan for r in conn]
    rs = srv = None
    text = ""
    try:
        rs = Rsyslog(T)
        srv = harness.Server(SERVER, T / "server.stderr", env={"LEGACY_LOG": backend},
                             wrapper=["unshare", "-m", "sh", "-c", NS_SCRIPT, "sh", str(T)])
        load = harness.Load(srv.port, CONCURRENCY)
        rc = drive(srv, plan, load)
        res["max_open"] = load.open_max
        if rc != 0:
            res["problems"].append("server exited with status %s" % rc)
        # rsyslog writes asynchronously: wait for every request line and the
        # server's last line ("shutting down") to be in the file
        want, deadline = 3 * len(reqs), time.monotonic() + SYSLOG_WAIT
        while True:
            text = rs.read()
            if ((text.count("token=") >= want and "shutting down" in text)
                    or time.monotonic() > deadline):
                break
            time.sleep(0.05)
        res["counts"]["syslog_wait_ms"] = int(1000 * (time.monotonic() - (deadline - SYSLOG_WAIT)))
    except (harness.Failure, OSError) as e:
        res["problems"].append("%s: %s" % (type(e).__name__, e))
        if srv:
            srv.kill()
    finally:
        if rs:
            rs.stop()
    response_problems(res, reqs)
    if rs:
        text = rs.read()
    score(res, rsyslog_to_lines(res, text), reqs, SYSLOG_MIN_RECALL)
    if "shutting down" not in text:
        res["problems"].append("the server's last line never reached rsyslog")
    check_stderr(res, T / "server.stderr")
    res["elapsed"] = time.monotonic() - t0
    res["ok"] = not res["problems"]
    return res


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="seed for every run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="reqid-logpaths-")
    seeds = random.Random(a.seed)

    def seed():
        return a.seed if a.seed is not None else seeds.randrange(1 << 30)

    results, skipped = [], []
    head = "%-34s %8s %6s %6s %6s %9s %8s  %s" % (
        "run", "requests", "lines", "tagged", "wrong", "precision", "recall", "result")
    print(head)
    print("-" * len(head))

    def row(res):
        results.append(res)
        c = res["counts"]
        extra = ""
        if "lost_by_rotation" in c:
            extra = "  (lost to copytruncate: %d)" % c["lost_by_rotation"]
        print("%-34s %8d %6d %6d %6d %9s %8s  %s%s" % (
            res["label"], c["requests"], c["lines"], c["tagged"], c["wrong"],
            harness.pct(res["precision"]), harness.pct(res["recall"]),
            "PASS" if res["ok"] else "FAIL", extra), flush=True)

    try:
        row(run_file("file", seed(), tmp))
        row(run_file("file, rename + SIGHUP", seed(), tmp, "rename"))
        row(run_file("file, copytruncate", seed(), tmp, "copytruncate"))
        why = syslog_unavailable(tmp)
        for backend in ("syslog", "devlog"):
            label = "rsyslog, LEGACY_LOG=%s" % backend
            if why:
                skipped.append(label)
                print("%-34s SKIPPED: %s" % (label, why), flush=True)
            else:
                row(run_syslog(label, seed(), tmp, backend))
    finally:
        if a.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [r for r in results if not r["ok"]]
    for r in results:
        for n in r["notes"] if r["ok"] else []:
            print("note (%s): %s" % (r["label"], n))
    for r in failed:
        print()
        harness.report(r)
    print()
    print("total %.1f s%s" % (time.monotonic() - t0,
                              ", %d skipped" % len(skipped) if skipped else ""))
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
