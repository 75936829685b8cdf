#!/usr/bin/env python3
"""start_scripts.py - the shell scripts that start services, under
`scripts/reqid run`: what they write into files with a redirection must be
their own bytes, and what they point at a log must be wrapped.

A shell's builtins (echo, printf) write from the shell itself, which the
shim is in: `echo $$ > app.pid` opens the file and dup2()s it onto stdout
before the builtin writes. Until 2026-12-08 the shim took every regular
file put on stdout for a log (as a daemon pointing stdout at its log file
does), so the pid file read `{"msg":"4242"}`, and a state file a script
wrote and read back came back JSON (found by h165). Now a regular file on
stdout is a log only when opened for appending; `exec >>app.log 2>&1` still
makes the script's own lines log lines.

Each case runs a script with sh (dash) and with bash, and checks the
files' exact bytes. Exit status 0 when all pass. About half a second.

    python3 tests/realservers/start_scripts.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQID = ROOT / "scripts" / "reqid"

# (name, script, {file: expected bytes}); $D is the scratch directory, and
# expected bytes may hold {pid} for the script's own pid (the script says it
# on stderr: "pid=N")
CASES = [
    ("pid file", 'echo $$ > "$D/app.pid"; echo "pid=$$" >&2',
     {"app.pid": b"{pid}\n"}),
    ("state file written and read back",
     'printf "%s\\n" 41 > "$D/state"; n=$(cat "$D/state"); echo $((n + 1)) > "$D/state"',
     {"state": b"42\n"}),
    ("a builtin's lines into a new file", 'for i in 1 2 3; do echo "row $i"; done > "$D/rows"',
     {"rows": b"row 1\nrow 2\nrow 3\n"}),
    ("heredoc through cat", 'cat > "$D/conf" <<EOF\nkey=value\nEOF',
     {"conf": b"key=value\n"}),
    ("the script's own log, appended", 'exec >>"$D/app.log" 2>&1; echo started; echo oops >&2',
     {"app.log": b'{"msg":"started"}\n{"msg":"oops"}\n'}),
]


def run_case(shell, script, expected):
    d = Path(tempfile.mkdtemp(prefix="reqid-start-scripts-"))
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("REQID_") or k == "REQID_LIB") and k != "LD_PRELOAD"}
    env["D"] = str(d)
    try:
        r = subprocess.run([str(REQID), "run", "--", shell, "-c", script], env=env,
                           capture_output=True, timeout=30)
        problems = []
        if r.returncode:
            problems.append("exit %d: %r" % (r.returncode, r.stderr[-300:]))
        m = re.search(rb"pid=(\d+)", r.stderr)
        pid = m.group(1) if m else b"?"
        for name, want in expected.items():
            want = want.replace(b"{pid}", pid)
            got = (d / name).read_bytes() if (d / name).exists() else None
            if got != want:
                problems.append("%s holds %r, expected %r" % (name, got, want))
        return problems
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    shells = [s for s in ("/bin/sh", "/bin/bash") if os.access(s, os.X_OK)]
    failed = 0
    for name, script, expected in CASES:
        for shell in shells:
            problems = run_case(shell, script, expected)
            print("%-40s %-9s %s" % (name, shell, "ok" if not problems else "FAIL"))
            for p in problems:
                print("    " + p)
            failed += bool(problems)
    print("%d passed, %d failed" % (len(CASES) * len(shells) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
