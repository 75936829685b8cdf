#!/usr/bin/env python3
"""reqid_attach.py - `reqid attach`, `reqid detach` and `reqid status`
(scripts/reqid parses the options and calls this).

attach and detach act on each PID and every process descended from it, each
through build/reqid-inject, which loads libreqid.so into the process on a
thread of its own and calls reqid_attach(settings), reqid_reconfigure
(settings) or reqid_detach in it (shim/attach.c). status reads the shim's reqid_attach_status from the
process's memory (/proc/PID/mem: the same permission as attaching) and
stops nothing.

Never writes to a process except through reqid-inject; prints one line per
process that failed. Exit status: 0 all done, 1 some process refused or
failed (nothing changed in it), 2 usage.

    reqid_attach.py attach LIB INJECT SETTINGS PID...
    reqid_attach.py reconfigure LIB INJECT SETTINGS PID...
    reqid_attach.py detach LIB INJECT PID...
    reqid_attach.py status LIB PID
"""
import os
import struct
import subprocess
import sys
import time

# reqid_attach's and reqid_detach's answers (shim/attach.c, enum attach_result).
RESULTS = {
    1: "already attached (detach first, or use --reconfigure)",
    2: "already running under `reqid run`: the shim is in it from the start",
    3: "its libc lacks functions the shim needs",
    4: "the shim could not map memory for its list of patched calls",
    5: "the settings are too long",
    6: "not attached",
    7: "after 1 s a response still owed part of its X-Request-ID header, or a log "
       "still had bytes queued behind a full pipe; try again",
    8: "another attach or detach of it was still under way after 3 s; try again",
}
INVALID = 64
ALREADY, NOT_ATTACHED = 1, 6
# config_parse's warning bits (shim/config.h), for an ATTACH_INVALID answer.
WARNINGS = ["REQID_FORMAT", "REQID_FIELD", "REQID_HEADERS", "REQID_LOG_FDS", "REQID_OUTSIDE",
            "REQID_DISABLE", "REQID_LOG_PATHS", "REQID_RESPONSE_HEADER", "REQID_FIELDS",
            "REQID_PROPAGATE", "REQID_EVENT_STACKS", "REQID_EVENT_BRACKETS", "REQID_AUDIT_DIR",
            "REQID_JOIN_OPEN", "REQID_PROXY_PROTOCOL"]


def children(pid):
    """PIDs whose parent is pid."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                found += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return found


def tree(pid):
    """pid and its descendants, parents before children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        if p not in out:
            out.append(p)
            todo += children(p)
    return out


def ended(pid):
    """Whether pid has exited (gone, or a zombie its parent has not reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def meaning(code):
    if code >= INVALID:
        bits = code - INVALID
        names = [n for i, n in enumerate(WARNINGS) if bits & (1 << i)]
        return "invalid settings: " + ", ".join(names or ["?"])
    return RESULTS.get(code, "the shim answered %d" % code)


# How long a process traced by another reqid-inject (a second `reqid
# attach` or `detach` at the same time) is retried, in 10 ms steps: that
# one lets it go within a second. "(?)": the tracer had exited by the time
# its name was read (that reqid-inject ended meanwhile).
INJECTOR_BUSY_S = 5
INJECTOR_TRACING = ("(reqid-inject); detach that tracer first", "(?); detach that tracer first")
# reqid-inject's words for a process that ran a new program during the
# walk, or is between its exec and its libc's start (a fork child of a
# server running a CGI): tried again for STARTING_S (the start takes
# milliseconds); a descendant still so then is a new program, skipped
# quietly (the next walk finds it if it still runs).
STARTING = ("is starting up", "ran a new program (exec)")
STARTING_S = 1


def inject(inject_bin, pid, lib, function, arg):
    """(status the function returned, None) or (None, reqid-inject's message)."""
    deadline = time.monotonic() + INJECTOR_BUSY_S
    starting_deadline = time.monotonic() + STARTING_S
    while True:
        # -p: the shim is told which pages of libc and the loader were
        # resident before the injection touched them (reqid_detach gives
        # back the others), and the target keeps a note of its stacks'
        # resident pages; -s: after reqid_detach, the stack pages below
        # each thread's frames that were not resident then go back.
        pages = ["-p"] if function != "reqid_detach" else ["-s"]
        p = subprocess.run([inject_bin] + pages + [str(pid), lib, function, arg],
                           stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        if p.returncode == 0:
            return int(p.stdout.split()[0]), None
        msg = p.stderr.strip().splitlines()
        text = msg[-1] if msg else "reqid-inject failed (exit %d)" % p.returncode
        if any(w in text for w in STARTING) and time.monotonic() < starting_deadline:
            time.sleep(0.01)
            continue
        if not text.endswith(INJECTOR_TRACING) or time.monotonic() > deadline:
            return None, text.removeprefix("reqid-inject: ")
        time.sleep(0.01)


# reqid-inject's words for a process that began to exit: a worker doing so
# while the tree is attached or detached is not a failure (a connection's
# child of a fork server may end while the injector waits for the call).
EXITING = ("it is exiting", "the target exited during attach", "the target exited before")

# How many times attach and detach read a process tree at most.
TREE_READINGS = 5

FUNCTIONS = {"attach": "reqid_attach", "reconfigure": "reqid_reconfigure",
             "detach": "reqid_detach"}


def act(command, lib, inject_bin, settings, pids):
    failed = False
    function = FUNCTIONS[command]
    for top in pids:
        if not os.path.isdir("/proc/%d" % top):
            print("reqid: %s %d: no such process" % (command, top), file=sys.stderr)
            failed = True
            continue
        # A worker its master forks before the master's turn (one it
        # respawns) is a copy of the master as it was: the tree is read
        # again until a reading finds no process not yet done. One forked
        # while the shim changes its parent waits for the change
        # (attach_before_fork, shim/attach.c).
        done = set()
        for _ in range(TREE_READINGS):
            todo = [pid for pid in tree(top) if pid not in done]
            if not todo:
                break
            for pid in todo:
                done.add(pid)
                status, error = inject(inject_bin, pid, lib, function, settings)
                # A worker forked after its master was attached has the
                # shim already; one that is not attached has nothing to
                # detach.
                if status == 0 or (pid != top and status in (ALREADY, NOT_ATTACHED)):
                    continue
                if pid != top and (ended(pid) or (error and any(w in error for w in EXITING))):
                    continue  # a worker that ended meanwhile (one per connection)
                if pid != top and error and any(w in error for w in STARTING):
                    continue  # a new program (a CGI) that is still starting
                print("reqid: %s %d: %s" % (command, pid, error or meaning(status)),
                      file=sys.stderr)
                failed = True
    return 1 if failed else 0


# -- status: read reqid_attach_status out of the process -----------------------

def symbol_offset(lib, name):
    """st_value of a defined dynamic symbol of the ELF file lib."""
    with open(lib, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3a)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    for sh in sections:
        if sh[1] != 11:  # SHT_DYNSYM
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 24):
            st_name, _, _, shndx, value, _ = struct.unpack_from("<IBBHQQ", data, off)
            start = strtab[4] + st_name
            if shndx != 0 and data[start:data.index(b"\0", start)] == name.encode():
                return value
    return None


def status(lib, pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
    except OSError as e:
        print("reqid: status %d: %s" % (pid, "no such process" if isinstance(
            e, FileNotFoundError) else e.strerror), file=sys.stderr)
        return 1
    base = None
    for line in maps:
        parts = line.split()
        if len(parts) >= 6 and os.path.basename(parts[5]) == "libreqid.so" and \
                int(parts[2], 16) == 0:
            # the file as mapped, even if replaced on disk since
            base, lib = int(parts[0].split("-")[0], 16), "/proc/%d/map_files/%s" % (pid, parts[0])
            break
    if base is None:
        print("%d: not attached (the shim is not loaded)" % pid)
        return 0
    try:
        offset = symbol_offset(lib, "reqid_attach_status")
    except (OSError, struct.error, ValueError) as e:
        print("reqid: status %d: cannot read its libreqid.so: %s" % (pid, e), file=sys.stderr)
        return 1
    if offset is None:
        print("reqid: status %d: its libreqid.so has no reqid_attach_status (an older "
              "version)" % pid, file=sys.stderr)
        return 1
    try:
        with open("/proc/%d/mem" % pid, "rb") as mem:
            mem.seek(base + offset)
            raw = mem.read(8 + 8192)
    except OSError as e:
        print("reqid: status %d: cannot read its memory: %s" % (pid, e.strerror),
              file=sys.stderr)
        return 1
    attached, patched = struct.unpack_from("<ii", raw)
    settings = raw[8:raw.index(b"\0", 8)].decode(errors="replace").split("\n")
    if attached:
        print("%d: attached, %d calls redirected; settings: %s" %
              (pid, patched, " ".join(s for s in settings if s) or "(defaults)"))
    else:
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                preloaded = b"libreqid" in f.read()
        except OSError:
            preloaded = False
        print("%d: %s" % (pid, "running under `reqid run` (preloaded)" if preloaded
                          else "not attached (the shim stays loaded, passing calls through)"))
    return 0


def main(argv):
    try:
        if argv[0] == "status":
            return status(argv[1], int(argv[2]))
        if argv[0] in ("attach", "reconfigure"):
            lib, inject_bin, settings, pids = argv[1], argv[2], argv[3], argv[4:]
        else:
            lib, inject_bin, settings, pids = argv[1], argv[2], "", argv[3:]
        pids = [int(p) for p in pids]
    except (IndexError, ValueError):
        print("reqid: %s needs process ids" % argv[0], file=sys.stderr)
        return 2
    if not pids:
        print("reqid: %s needs process ids" % argv[0], file=sys.stderr)
        return 2
    return act(argv[0], lib, inject_bin, settings, pids)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
