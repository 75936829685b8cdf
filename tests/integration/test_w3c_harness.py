#!/usr/bin/env python3
"""test_w3c_harness.py - the W3C's own Trace Context conformance harness
(the test/ folder of github.com/w3c/trace-context) against an uninstrumented
service under the shim, at SPEC_LEVEL=2 STRICT_LEVEL=2: all 41 tests must
pass.

The harness is the W3C's code and is not part of this tree: it is taken at
run time from a local git mirror of that repository (W3C_TRACE_CONTEXT_GIT,
default /work/.mirror/w3c+trace-context/repo) with `git archive HEAD test`
into a temporary directory. Without the mirror the test prints "skipped: W3C
harness not mirrored at PATH" and passes. The harness needs aiohttp (Debian:
python3-aiohttp, installed by `make deps`); it runs on Debian's interpreter,
where that package is.

The service is tests/integration/w3c_test_service.py (python3 http.server,
no tracing code) started with `scripts/reqid run` on 127.0.0.1 (a port of
its own choosing, written to a file); the harness listens on a free port
picked by binding port 0. Both are stopped at the end. The harness's output
and the service's log are kept in build/integration/w3c-harness.log and
build/integration/w3c-service.log.

Prints one line per test that did not pass, then "N/41 passed"; exits
non-zero unless the harness ran exactly 41 tests and all passed. Must never
edit the harness's files or relax its settings to make a run pass.

    python3 tests/integration/test_w3c_harness.py
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"
SERVICE = ROOT / "tests" / "integration" / "w3c_test_service.py"
LOG_DIR = ROOT / "build" / "integration"
MIRROR = Path(os.environ.get("W3C_TRACE_CONTEXT_GIT") or "/work/.mirror/w3c+trace-context/repo")

EXPECTED_TESTS = 41
HARNESS_SECONDS = 600  # the whole harness run; each of its calls has its own 5 s timeout
START_SECONDS = 10     # for the service to write its port

TEST_LINE_RE = re.compile(r"^(test_\w+) \(([\w.]+)\)")
RESULT_RE = re.compile(r" \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$")
RAN_RE = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)


class Failure(Exception):
    pass


def debian_python():
    """Debian's interpreter when there is one (a pyenv shim is a script, and
    python3-aiohttp is installed for Debian's python3)."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(*args):
    return subprocess.run(["git", "--git-dir=%s" % MIRROR, *args], capture_output=True,
                          check=False)


def mirror_commit():
    """The mirror's HEAD commit, or None when there is no harness there."""
    if not MIRROR.is_dir() or git("cat-file", "-e", "HEAD:test/test.py").returncode != 0:
        return None
    return git("rev-parse", "HEAD").stdout.decode().strip()


def extract_harness(into):
    archive = subprocess.Popen(["git", "--git-dir=%s" % MIRROR, "archive", "HEAD", "test"],
                               stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout)
    archive.stdout.close()
    if archive.wait() != 0 or tar.returncode != 0:
        raise Failure("could not extract test/ from %s" % MIRROR)
    return into / "test"


def start_service(tmp, log):
    port_file = tmp / "service.port"
    service = subprocess.Popen(
        [str(REQID), "run", "--fields", "request_id,trace_id,span_id", "--",
         debian_python(), str(SERVICE), "--port-file", str(port_file)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_SECONDS
    while not port_file.exists():
        if service.poll() is not None:
            raise Failure("the service exited with status %d at start" % service.returncode)
        if time.monotonic() > deadline:
            stop(service)
            raise Failure("the service wrote no port in %d s" % START_SECONDS)
        time.sleep(0.05)
    return service, int(port_file.read_text())


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_harness(harness_dir, service_port):
    env = dict(os.environ, SPEC_LEVEL="2", STRICT_LEVEL="2", HARNESS_HOST="127.0.0.1",
               HARNESS_PORT=str(free_port()))
    env.pop("HARNESS_DEBUG", None)
    env.pop("LD_PRELOAD", None)
    try:
        p = subprocess.run([debian_python(), "test.py", "http://127.0.0.1:%d/test" % service_port],
                           cwd=harness_dir, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=HARNESS_SECONDS)
    except subprocess.TimeoutExpired:
        raise Failure("the harness took longer than %d s" % HARNESS_SECONDS)
    return p.returncode, p.stdout + p.stderr


def results(output):
    """{test name: result} from unittest's verbose output, where a test's
    docstring may put its result on the line after its name."""
    found, name = {}, None
    for line in output.splitlines():
        m = TEST_LINE_RE.match(line)
        if m:
            name = m.group(2).split(".", 1)[-1]
        r = RESULT_RE.search(line)
        if r and name:
            found[name] = r.group(1)
            name = None
    return found


def main():
    commit = mirror_commit()
    if commit is None:
        print("skipped: W3C harness not mirrored at %s" % MIRROR)
        return 0
    python = debian_python()
    if subprocess.run([python, "-c", "import aiohttp"], capture_output=True).returncode != 0:
        print("FAIL: the W3C harness needs aiohttp for %s (Debian: python3-aiohttp; make deps "
              "installs it)" % python)
        return 1
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reqid-w3c-") as tmp_name:
        tmp = Path(tmp_name)
        harness_dir = extract_harness(tmp)
        with open(LOG_DIR / "w3c-service.log", "wb") as log:
            service, port = start_service(tmp, log)
            try:
                status, output = run_harness(harness_dir, port)
            finally:
                stop(service)
    (LOG_DIR / "w3c-harness.log").write_text(output)

    found = results(output)
    ran = RAN_RE.search(output)
    passed = sum(1 for r in found.values() if r == "ok")
    for name, result in sorted(found.items()):
        if result != "ok":
            print("  %s: %s" % (name, result))
    print("w3c trace-context harness %s, SPEC_LEVEL=2 STRICT_LEVEL=2: %d/%d passed "
          "(log: %s)" % (commit[:12], passed, EXPECTED_TESTS, LOG_DIR / "w3c-harness.log"))
    if not ran or int(ran.group(1)) != EXPECTED_TESTS or len(found) != EXPECTED_TESTS:
        print("FAIL: the harness ran %s tests (%d results read), want %d"
              % (ran.group(1) if ran else "no", len(found), EXPECTED_TESTS))
        print(output[-3000:])
        return 1
    if passed != EXPECTED_TESTS or status != 0:
        print("FAIL: %d of %d tests did not pass (harness exit status %d)"
              % (EXPECTED_TESTS - passed, EXPECTED_TESTS, status))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
