#!/usr/bin/env python3
"""reqid audit: run a command under the shim in audit mode, then report the
log lines whose request id leaked, by call site.

    reqid_audit.py --lib LIB [--app-id REGEX | --app-field NAME]
                   [--sentinel TEXT]... [--outside TEXT] [--json FILE]
                   [--junit FILE] [--fail-on KINDS] -- CMD [ARGS...]

(scripts/reqid audit calls it after taking the run options.) Every process
CMD starts appends records to a file of its own in a temporary directory
(shim/audit_log.h); once CMD exits they are read back here, and the return
addresses of each line's write are turned into function, file and line with
addr2line (the module's symbols, or its debug file found by build-id or
.gnu_debuglink), else module+offset. Nothing here runs inside CMD.

Kinds of findings, each line counted once (the first that applies):
  mismatch  the app's own id names another request still in flight
  stale     the app's own id names a request that already ended
  sentinel  a line inside a request carries a --sentinel text or --outside
  outside   a line the shim saw outside every request carries the app id
            of a request in flight (the thread's context was not carried)
  untagged  written by a thread inside a request (or by a single-threaded
            process while a request was in flight) and left without an id

Exit status: 1 when findings of the --fail-on kinds exist or CMD exited
non-zero, 0 when neither, 2 on usage errors or when CMD could not start.
"""
import argparse
import bisect
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from xml.sax.saxutils import escape as xml_escape, quoteattr

KINDS = ("mismatch", "stale", "sentinel", "outside", "untagged")
# Modules whose frames are not the program's call site.
NOT_CALL_SITE = re.compile(r"/(libc\.so|libreqid\.so|libunwind\.so|ld-linux[^/]*\.so|"
                           r"libpthread\.so|liblzma\.so)[^/]*$")
EXAMPLES = 3


def unescape(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "x" and i + 3 < len(text):
                try:
                    out.append(chr(int(text[i + 2:i + 4], 16)))
                    i += 4
                    continue
                except ValueError:
                    pass
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class Process:
    """One process image: a pid and the token of its program (records of an
    exec'ed program, a fork child, or a pid that came back are apart)."""
    def __init__(self, pid):
        self.pid = pid
        self.maps = []        # [(start, end, offset, path)], sorted; from M
        self.requests = {}    # serial -> [id, start, answered, end]
        self.decided = {}     # held number -> (serial, id)
        self.threads = set()


class Line:
    __slots__ = ("proc", "ts", "tid", "held", "verdict", "serial", "rid", "ctx", "raw",
                 "frames", "site", "text", "app_id", "kind", "released")


def read_records(directory):
    """Process images by (pid, token), and the lines, from every audit
    file. Return addresses are resolved once every mapping is read (a
    thread may write a line before its image's mappings)."""
    procs, lines = {}, []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read().decode("utf-8", "replace")
        for rec in data.split("\n"):
            fields = rec.split("\t")
            if len(fields) < 4 or not fields[1].isdigit() or not fields[2].isdigit():
                continue
            kind, pid, ts = fields[0], int(fields[1]), int(fields[3])
            p = procs.setdefault((pid, fields[2]), Process(pid))
            f = fields[4:]
            try:
                if kind == "M":
                    m = (int(f[0], 16), int(f[1], 16), int(f[2], 16), unescape(f[3]))
                    if m not in p.maps:
                        p.maps.append(m)
                        p.maps.sort()
                elif kind == "S":
                    p.requests[int(f[0])] = [unescape(f[1]), ts, None, None]
                elif kind in ("R", "E"):
                    r, at = p.requests.get(int(f[0])), 2 if kind == "R" else 3
                    if r and r[at] is None:
                        r[at] = ts
                elif kind == "D":
                    p.decided[int(f[0])] = (int(f[1]), unescape(f[2]))
                elif kind == "L":
                    ln = Line()
                    ln.proc, ln.ts, ln.tid, ln.held = p, ts, int(f[0]), int(f[1])
                    ln.verdict, ln.serial, ln.rid = f[2], int(f[3]), unescape(f[4])
                    ln.ctx = int(f[5])
                    ln.raw = [int(a, 16) for a in f[6].split(",") if a]
                    ln.text = unescape(f[7])  # a record cut before it: IndexError
                    p.threads.add(ln.tid)
                    lines.append(ln)
            except (IndexError, ValueError):
                continue  # a record cut short: skipped
    for ln in lines:
        ln.frames = app_frames(ln.proc, ln.raw)
        # a held line without its D record never went out: its process
        # ended (killed) while it was held
        ln.released = ln.verdict != "held" or ln.held in ln.proc.decided
        if ln.verdict == "held":
            ln.serial, ln.rid = ln.proc.decided.get(ln.held, (0, ""))
    return procs, lines


def app_frames(proc, frames, depth=8):
    """The program's frames of a line's write, innermost first: (path,
    address of the call in the module), past libc, the shim and the
    unwinder; it stops at an address in no known mapping (its call site is
    unknown, not its caller's)."""
    starts = [m[0] for m in proc.maps]
    out = []
    for addr in frames:
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0 or addr >= proc.maps[i][1]:
            break
        start, _, offset, path = proc.maps[i]
        if NOT_CALL_SITE.search(path):
            continue
        base = load_base(path, start, offset)
        if base is None:
            break
        out.append((path, addr - base - 1))  # the call, not the instruction after it
        if len(out) == depth:
            break
    return out


def load_base(path, start, offset):
    """Where a mapping of path at start (file offset offset) puts the
    file's address 0, from the PT_LOAD segment holding that offset (its
    address and offset may differ by more than a page: lld); 0 for a
    non-PIE executable; None if the file cannot tell."""
    if elf_type(path) == 2:  # ET_EXEC: addresses are the file's own
        return 0
    for vaddr, seg_offset, filesz in elf_loads(path):
        page = seg_offset & ~0xfff
        if page <= offset < seg_offset + max(filesz, 1):
            return start - (offset - page) - (vaddr & ~0xfff)
    return None


_elf_loads = {}


def elf_loads(path):
    """(p_vaddr, p_offset, p_filesz) of each PT_LOAD of a 64-bit ELF file."""
    if path not in _elf_loads:
        loads = []
        try:
            with open(path, "rb") as f:
                head = f.read(64)
                if head[:5] == b"\x7fELF\x02":
                    phoff, = struct.unpack_from("<Q", head, 32)
                    phentsize, phnum = struct.unpack_from("<HH", head, 54)
                    f.seek(phoff)
                    table = f.read(phentsize * phnum)
                    for i in range(phnum):
                        ptype, _, off, vaddr, _, filesz = struct.unpack_from(
                            "<IIQQQQ", table, i * phentsize)
                        if ptype == 1:
                            loads.append((vaddr, off, filesz))
        except (OSError, struct.error):
            loads = []
        _elf_loads[path] = loads
    return _elf_loads[path]


_elf_types = {}


def elf_type(path):
    if path not in _elf_types:
        try:
            with open(path, "rb") as f:
                head = f.read(18)
            _elf_types[path] = int.from_bytes(head[16:18], "little") if head[:4] == b"\x7fELF" else 0
        except OSError:
            _elf_types[path] = 0
    return _elf_types[path]


FUNNEL_CALLERS = 3


def choose_call_sites(lines, names):
    """Each line's call site: its innermost frame of the program, or, while
    that frame's function is a funnel (a logging helper that lines reach
    from FUNNEL_CALLERS or more places, through one call in it), the frame
    that called it. Functions are told apart by module and name."""
    callers, calls = {}, {}
    for ln in lines:
        for inner, outer in zip(ln.frames, ln.frames[1:]):
            fn = (inner[0], names[inner][3])
            callers.setdefault(fn, set()).add(outer)
            calls.setdefault(fn, set()).add(inner)

    def funnel(frame):
        fn = (frame[0], names[frame][3])
        return len(callers.get(fn, ())) >= FUNNEL_CALLERS and len(calls.get(fn, ())) == 1

    for ln in lines:
        i = 0
        while i + 1 < len(ln.frames) and funnel(ln.frames[i]):
            i += 1
        ln.site = ln.frames[i] if ln.frames else None


def symbolize(sites):
    """{(path, addr): (function, file, line, real function)}, with
    addr2line where it can: the function, file and line of the source that
    makes the call (the innermost of functions inlined there), and the
    function the compiler made of them (the outermost)."""
    out = {}
    by_module = {}
    for path, addr in sites:
        by_module.setdefault(path, []).append(addr)
    tool = shutil.which("addr2line")
    for path, addrs in by_module.items():
        addrs = sorted(set(addrs))
        chains = {}
        if tool and os.path.exists(path):
            try:
                p = subprocess.run([tool, "-a", "-f", "-i", "-C", "-e", path] +
                                   ["0x%x" % a for a in addrs], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, timeout=60)
                current = None
                rows = p.stdout.splitlines()
                i = 0
                while i < len(rows):
                    if rows[i].startswith("0x"):
                        current = int(rows[i], 16)
                        chains[current] = []
                        i += 1
                    elif current is not None and i + 1 < len(rows):
                        chains[current].append((rows[i], rows[i + 1]))
                        i += 2
                    else:
                        i += 1
            except (OSError, subprocess.TimeoutExpired, ValueError):
                chains = {}
        for a in addrs:
            chain = chains.get(a) or [("??", "??:0")]
            fn, loc = chain[0]
            file, _, line = loc.partition(":")
            line = line.split(" ")[0]
            if fn == "??" or file == "??":
                unknown = "%s+0x%x" % (os.path.basename(path), a)
                out[(path, a)] = (unknown, "", 0, unknown)
            else:
                out[(path, a)] = (fn, file, int(line) if line.isdigit() else 0, chain[-1][0])
    return out


def app_id_of(text, regex, field):
    if regex:
        m = regex.search(text)
        if m:
            return m.group(1) if m.groups() else m.group(0)
        return None
    if field:
        try:
            obj = json.loads(text)
            if isinstance(obj, dict) and isinstance(obj.get(field), str):
                return obj[field]
        except ValueError:
            pass
        m = re.search(r"(?:^|[\s,{])\"?%s\"?\s*[=:]\s*\"?([A-Za-z0-9._:-]{1,128})" %
                      re.escape(field), text)
        return m.group(1) if m else None
    return None


def classify(procs, lines, regex, field, sentinels):
    """Each line's kind (None for none), the first of KINDS that applies.
    A request is in flight from its start to its end (the next request on
    its connection, or the connection's close); for the single-threaded
    rule, from its start until its response began."""
    by_id = {}
    for p in procs.values():
        for rid, start, _, end in p.requests.values():
            by_id.setdefault(rid, []).append((start, end))
    for ln in lines:
        ln.app_id = app_id_of(ln.text, regex, field)
        ln.kind = None
        named = by_id.get(ln.app_id, []) if ln.app_id else []
        in_flight = any(s <= ln.ts and (e is None or e >= ln.ts) for s, e in named)
        ended = any(e is not None and e < ln.ts for _, e in named)
        own = ln.rid or (ln.proc.requests.get(ln.ctx, [""])[0] if ln.ctx else "")
        if ln.app_id and own and ln.app_id != own and (in_flight or ended):
            ln.kind = "mismatch" if in_flight else "stale"
        elif ln.app_id and not own and (in_flight or ended):
            ln.kind = "outside" if in_flight else "stale"
        if ln.kind is None and own and any(t in ln.text for t in sentinels):
            ln.kind = "sentinel"
        if ln.kind is None and not ln.rid:
            if ln.ctx != 0:
                ln.kind = "untagged"
            elif len(ln.proc.threads) == 1 and any(
                    start <= ln.ts and ln.ts < (answered or end or float("inf"))
                    for _, start, answered, end in ln.proc.requests.values()):
                ln.kind = "untagged"


def reason_of(ln):
    if ln.kind != "untagged":
        return ""
    if ln.verdict == "held" and not ln.released:
        return "held: process ended before the line's request was known"
    return {"unproven": "the thread was in a request; no rule proved the line its",
            "batch": "a write of several lines: only lines naming their request get ids",
            "held": "held until the thread's next event, which was not its request's: "
                    "released without an id",
            "raw": "raw: the shim passed it through unenriched (no memory or line slot "
                   "for it, or its stream blocked)",
            "outside": "single-threaded process, a request in flight"}.get(ln.verdict, ln.verdict)


def findings_of(lines, names):
    groups = {}
    for ln in lines:
        if ln.kind is None:
            continue
        where = names.get(ln.site, ("(unknown call site)", "", 0, ""))
        path = ln.site[0] if ln.site else ""
        key = (ln.kind, path, where[0], where[1], where[2])
        g = groups.setdefault(key, {"kind": ln.kind, "count": 0, "function": where[0],
                                    "file": where[1], "line": where[2], "module": path,
                                    "reason": reason_of(ln), "examples": []})
        g["count"] += 1
        if len(g["examples"]) < EXAMPLES:
            g["examples"].append(ln.text)
    return [groups[k] for k in sorted(groups, key=lambda k: (KINDS.index(k[0]),) + k[1:])]


def clean_sites(lines, names, findings):
    flagged = {(f["module"], f["function"], f["file"], f["line"]) for f in findings}
    sites = set()
    for ln in lines:
        where = names.get(ln.site)
        if where:
            key = (ln.site[0], where[0], where[1], where[2])
            if key not in flagged:
                sites.add(key)
    return sorted(sites)


# Characters XML 1.0 forbids even escaped: written as \xHH text instead.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text):
    return xml_escape(XML_FORBIDDEN.sub(lambda m: "\\x%02x" % ord(m.group(0)), text))


def xml_attr(text):
    return quoteattr(XML_FORBIDDEN.sub(lambda m: "\\x%02x" % ord(m.group(0)), text))


def junit(findings, clean, failing):
    """JUnit XML: a failing testcase per call site and kind of --fail-on, a
    passing one (its findings in system-out) for the other kinds, and one
    per clean call site."""
    cases = []
    for f in findings:
        if f["kind"] not in failing:
            cases.append('  <testcase classname=%s name=%s file=%s line="%d">\n'
                         '    <system-out>%s</system-out>\n  </testcase>\n' % (
                             xml_attr(f["module"]), xml_attr("%s:%d %s" % (
                                 f["function"], f["line"], f["kind"])),
                             xml_attr(f["file"]), f["line"],
                             xml_text("%d log lines %s (not a --fail-on kind)" % (
                                 f["count"], describe(f["kind"])))))
            continue
        name = "%s:%d %s" % (f["function"], f["line"], f["kind"])
        msg = "%d log line%s %s at %s" % (f["count"], "" if f["count"] == 1 else "s",
                                          describe(f["kind"]), f["function"])
        body = msg + "\n" + "\n".join("example: " + e for e in f["examples"])
        cases.append('  <testcase classname=%s name=%s file=%s line="%d">\n'
                     '    <failure message=%s type=%s>%s</failure>\n  </testcase>\n' % (
                         xml_attr(f["module"]), xml_attr(name), xml_attr(f["file"]),
                         f["line"], xml_attr(msg), xml_attr(f["kind"]), xml_text(body)))
    for module, function, file, line in clean:
        cases.append('  <testcase classname=%s name=%s file=%s line="%d"/>\n' % (
            xml_attr(module), xml_attr("%s:%d" % (function, line)), xml_attr(file), line))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<testsuite name="reqid audit" tests="%d" failures="%d">\n%s</testsuite>\n' % (
                len(cases), sum(1 for f in findings if f["kind"] in failing), "".join(cases)))


def describe(kind):
    return {"mismatch": "carry the app id of another request in flight",
            "stale": "carry the app id of a request that had ended",
            "sentinel": "inside a request carry a sentinel",
            "outside": "outside the shim's requests carry a request's app id",
            "untagged": "inside a request left without an id"}[kind]


def report(findings, lines, cmd_rc, failing):
    tagged = sum(1 for ln in lines if ln.rid)
    out = []
    if findings:
        out.append("%-9s %6s  %-28s %-28s %s" % ("KIND", "COUNT", "FUNCTION", "FILE:LINE",
                                                  "EXAMPLE"))
        for f in findings:
            where = "%s:%d" % (os.path.basename(f["file"]), f["line"]) if f["file"] else \
                os.path.basename(f["module"])
            ex = f["examples"][0] if f["examples"] else ""
            out.append("%-9s %6d  %-28s %-28s %s" % (f["kind"], f["count"], f["function"][:28],
                                                      where[:28], ex[:120]))
            if f["reason"]:
                out.append("%-9s %6s  (%s)" % ("", "", f["reason"]))
    n = sum(f["count"] for f in findings if f["kind"] in failing)
    verdict = "FAIL" if n or cmd_rc else "PASS"
    out.append("reqid audit: %s: %d log lines, %d with an id, %d findings at %d call sites%s" % (
        verdict, len(lines), tagged, sum(f["count"] for f in findings), len(findings),
        "; the command exited with %d" % cmd_rc if cmd_rc else ""))
    return "\n".join(out), 1 if verdict == "FAIL" else 0


def main(argv):
    ap = argparse.ArgumentParser(prog="reqid audit")
    ap.add_argument("--lib", required=True)
    ids = ap.add_mutually_exclusive_group()
    ids.add_argument("--app-id", metavar="REGEX")
    ids.add_argument("--app-field", metavar="NAME")
    ap.add_argument("--sentinel", action="append", default=[], metavar="TEXT")
    ap.add_argument("--outside", default=os.environ.get("REQID_OUTSIDE", ""))
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--junit", metavar="FILE")
    ap.add_argument("--fail-on", default=",".join(KINDS), metavar="KINDS")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    try:
        args = ap.parse_args(argv)
    except SystemExit:
        return 2
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    failing = set(k for k in args.fail_on.split(",") if k)
    if not cmd or not failing <= set(KINDS):
        print("reqid: audit needs a command after --, and --fail-on takes %s" % ",".join(KINDS),
              file=sys.stderr)
        return 2
    try:
        regex = re.compile(args.app_id) if args.app_id else None
    except re.error as e:
        print("reqid: --app-id: %s" % e, file=sys.stderr)
        return 2
    sentinels = list(args.sentinel) + ([args.outside] if args.outside else [])
    # A short path: the shim refuses a REQID_AUDIT_DIR over 200 bytes.
    directory = tempfile.mkdtemp(prefix="reqid-audit.", dir="/tmp")
    try:
        env = dict(os.environ, REQID_AUDIT_DIR=directory)
        env["LD_PRELOAD"] = args.lib + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
        try:
            rc = subprocess.call(cmd, env=env)
        except OSError as e:
            print("reqid: audit: cannot start %s: %s" % (cmd[0], e.strerror), file=sys.stderr)
            return 2
        procs, lines = read_records(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if not lines:
        print("reqid audit: FAIL: no log line was recorded (is CMD dynamically linked "
              "against glibc, and does it write to its log descriptors?)%s" % (
                  "; the command exited with %d" % rc if rc else ""))
        return 1
    classify(procs, lines, regex, args.app_field, sentinels)
    names = symbolize({f for ln in lines for f in ln.frames})
    choose_call_sites(lines, names)
    findings = findings_of(lines, names)
    text, status = report(findings, lines, rc, failing)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"lines": len(lines), "tagged": sum(1 for ln in lines if ln.rid),
                       "command_exit": rc, "findings": findings}, f, indent=2, sort_keys=True)
            f.write("\n")
    if args.junit:
        with open(args.junit, "w") as f:
            f.write(junit(findings, clean_sites(lines, names, findings), failing))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
