#!/usr/bin/env python3
"""reqid_show.py - `reqid show ID FILE...`: every log line of one request,
from several log files, merged in time order and printed one per line for a
terminal:

    HH:MM:SS.ffffff  SOURCE  TEXT

A line belongs to the request when the enrichment the shim put in it (json,
prefix or logfmt, maybe wrapped by a log collector) has the id field
(request_id, or --field NAME) or trace_id equal to ID, exactly.

It only reads its inputs: it must never write to, move or lock a log file,
never print a line whose id is not exactly ID (a wrong line is worse than a
missing one), and never pass control characters from a log to the terminal.
Python 3 standard library only.

    scripts/reqid show [--field NAME] [--color=WHEN] ID [FILE...]
"""

import argparse
import functools
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone

NO_TIME = float("-inf")          # lines before the first timed line of a file
TIME_WIDTH = len("HH:MM:SS.ffffff")
LAZY_LINES = 1000                # most lines kept whose time was not needed yet
FIELD_RE = re.compile(r"[A-Za-z0-9_.@-]{1,63}")  # what reqid run accepts
OTHER_FIELDS = ("trace_id", "span_id")           # the other enrichment fields
TIME_MEMBERS = ("time", "timestamp", "ts", "@timestamp")
COLOURS = ("36", "33", "35", "32", "34", "91", "96", "93")  # by file position, cycled

# ------------------------------------------------------------------ time

MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
MON = "(?:" + "|".join(MONTHS) + ")"
TIME_FORMATS = {
    # ISO 8601 / RFC 3339: 2026-11-21T10:00:01.123456+00:00, 2026-11-21 10:00:01,123
    "iso": r"(?<!\d)(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?"
           r"(Z|[+-]\d\d(?::?\d\d)?)?",
    # common log format [21/Nov/2026:10:00:01 +0000], python http.server [21/Nov/2026 10:00:01]
    "clf": r"\[(\d\d)/(" + MON + r")/(\d{4})[: ](\d\d):(\d\d):(\d\d)(?: ([+-]\d{4}))?\]",
    # nginx error log: 2026/11/21 10:00:01
    "nginx": r"(?<!\d)(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)",
    # RFC 3164 syslog: Nov 21 10:00:01 (no year)
    "syslog": r"(?<![A-Za-z])(" + MON + r") {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)",
}
TIME_RES = {name: re.compile(rx) for name, rx in TIME_FORMATS.items()}
ANY_TIME = re.compile("|".join("(?P<%s>%s)" % kv for kv in TIME_FORMATS.items()))
TIME_HINT = re.compile(r'"(?:time|timestamp|ts|@timestamp)"\s*:')


def to_micros(year, month, day, hour, minute, second, fraction="", offset=None):
    """Microseconds since the epoch; offset None means local time."""
    tz = None if offset is None else timezone(timedelta(seconds=offset))
    try:
        when = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=tz)
        seconds = int(when.timestamp())
    except (ValueError, OverflowError, OSError):
        return None
    return seconds * 1_000_000 + int((fraction + "000000")[:6])


def offset_seconds(text):
    """'Z', '+02', '+0200', '+02:00' -> seconds east of UTC; None -> None."""
    if text is None:
        return None
    if text == "Z":
        return 0
    digits = text[1:].replace(":", "")
    seconds = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
    return -seconds if text[0] == "-" else seconds


def syslog_year(month, day):
    """RFC 3164 has no year: the current one, or the last one for a date that
    would otherwise be more than a day in the future (December's logs read
    in January)."""
    now = datetime.now()
    try:
        if datetime(now.year, month, day) > now + timedelta(days=1):
            return now.year - 1
    except ValueError:  # 29 Feb in a common year
        pass
    return now.year


def parse_time_match(name, m):
    """Microseconds from a fullmatch of TIME_RES[name]."""
    g = m.groups()
    if name == "iso":
        return to_micros(*map(int, g[:6]), g[6] or "", offset_seconds(g[7]))
    if name == "clf":
        return to_micros(int(g[2]), MONTHS[g[1]], int(g[0]), *map(int, g[3:6]),
                         offset=offset_seconds(g[6]))
    if name == "nginx":
        return to_micros(*map(int, g))
    month, day = MONTHS[g[0]], int(g[1])
    return to_micros(syslog_year(month, day), month, day, *map(int, g[2:]))


def text_time(text):
    """Microseconds of the first timestamp in text, or None."""
    m = ANY_TIME.search(text)
    if m is None:
        return None
    return parse_time_match(m.lastgroup, TIME_RES[m.lastgroup].fullmatch(m.group()))


def epoch_micros(value):
    """Epoch seconds -> microseconds. Values too large to be seconds are
    taken as milliseconds (pino), microseconds or nanoseconds."""
    for limit, per_second in ((1e11, 1_000_000), (1e14, 1_000), (1e17, 1)):
        if abs(value) < limit:
            micros = round(value * per_second)
            break
    else:
        micros = round(value / 1000)
    return micros if 0 <= micros < 253402300800 * 1_000_000 else None  # years 1970-9999


def member_time(value):
    """Microseconds of a JSON "time"-like member's value, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return epoch_micros(value) if value == value else None  # NaN
    if isinstance(value, str):
        if re.fullmatch(r"\d+(?:\.\d+)?", value):
            return epoch_micros(float(value))
        return text_time(value)
    return None


def line_time(line):
    """A line's own time in microseconds, or None: a "time"-like member of
    the JSON object that ends the line, else the first timestamp in it."""
    if TIME_HINT.search(line):
        obj = next((o for _, o, end in json_objects(line) if not line[end:].strip()), {})
        for name in TIME_MEMBERS:
            micros = member_time(obj[name]) if name in obj else None
            if micros is not None:
                return micros
    return text_time(line)


def format_time(micros):
    if micros == NO_TIME:
        return " " * TIME_WIDTH
    local = datetime.fromtimestamp(micros // 1_000_000)
    return local.strftime("%H:%M:%S") + ".%06d" % (micros % 1_000_000)


# ------------------------------------------------------------ enrichment

class JsonObject(dict):
    """A parsed JSON object. A repeated name keeps its first value (the shim
    puts its fields in front of an object line's own members, which may
    have a request_id of their own); .pairs keeps every member in order."""

    def __init__(self, pairs):
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, value)
        self.pairs = pairs


DECODER = json.JSONDecoder(object_pairs_hook=JsonObject)


def json_objects(line, limit=None):
    """(start, object, end) for each '{' before limit from which a JSON
    object parses."""
    limit = len(line) if limit is None else limit
    start = line.find("{", 0, limit)
    while start != -1:
        try:
            obj, end = DECODER.raw_decode(line, start)
        except ValueError:
            obj = None
        if isinstance(obj, JsonObject):
            yield start, obj, end
        start = line.find("{", start + 1, limit)


@functools.lru_cache(maxsize=None)
def logfmt_re(field):
    """The shim's logfmt enrichment: a run of NAME=VALUE tokens, then a space."""
    name = "(?:%s)" % "|".join(re.escape(n) for n in (field,) + OTHER_FIELDS)
    return re.compile(r"(?<!\S)((?:%s=[A-Za-z0-9._:-]+ )*%s=[A-Za-z0-9._:-]+)(?: |$)"
                      % (name, name))


def compact(pairs):
    return "{%s}" % ",".join(
        json.dumps(name, ensure_ascii=False) + ":"
        + json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        for name, value in pairs)


def json_line_text(obj, names):
    """What a json line says: its "msg", then the members the program wrote
    itself (an object line) without the shim's fields, as compact JSON."""
    rest = list(obj.pairs)
    for name in names:  # the shim's own fields are the first of their names
        index = next((i for i, (n, _) in enumerate(rest) if n == name), None)
        if index is not None:
            del rest[index]
    msg = next((i for i, (n, v) in enumerate(rest) if n == "msg" and isinstance(v, str)), None)
    parts = []
    if msg is not None:
        parts.append(rest.pop(msg)[1])
    if rest:
        parts.append(compact(rest))
    return " ".join(parts)


def find_enrichment(line, field):
    """(head, fields, text) of the leftmost enrichment in line, or None.
    head is what a collector put before it, fields the enrichment's
    name -> value, text the program's own line."""
    names = (field,) + OTHER_FIELDS
    token_run = logfmt_re(field).search(line)
    limit = token_run.start() if token_run else len(line)
    for start, obj, end in json_objects(line, limit):
        fields = {n: obj[n] for n in names if n in obj}
        if not fields:
            continue
        rest = line[end:]
        if not rest.strip():    # json: {"request_id":"ID",...,"msg":"..."}
            return line[:start], fields, json_line_text(obj, names)
        if rest[0] == " " and len(fields) == len(obj):  # prefix: {"request_id":"ID"} line
            return line[:start], fields, rest[1:]
    if token_run:               # logfmt: request_id=ID line
        tokens = token_run.group(1).split(" ")
        return (line[:token_run.start()], dict(t.split("=", 1) for t in tokens),
                line[token_run.end():])
    return None


def collector_head(head):
    """A collector's text before the enrichment, without the timestamp (it is
    in the time column) and the CEE cookie: 'front app:'."""
    head = head.strip()
    if head.endswith("@cee:"):
        head = head[:-len("@cee:")].rstrip()
    m = ANY_TIME.match(head)
    return head[m.end():].lstrip() if m else head


def request_text(line, ident, field):
    """The text to show for a line of request ident, or None if the line is
    not one (its id field and trace_id both differ from ident)."""
    found = find_enrichment(line, field)
    if found is None:
        return None
    head, fields, text = found
    if ident not in (fields.get(field), fields.get("trace_id")):
        return None
    return " ".join(part for part in (collector_head(head), text) if part)


# ---------------------------------------------------------------- input

def read_lines(stream):
    """The lines of a binary stream as text (invalid UTF-8 kept as
    surrogates, so it is written back byte for byte), without line ends."""
    for raw in stream:
        line = raw.decode("utf-8", "surrogateescape")
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        yield line


def latest_time(lines, default):
    """The time of the last of lines that has one, else default."""
    for line in reversed(lines):
        own = line_time(line)
        if own is not None:
            return own
    return default


def scan(lines, ident, field):
    """(time, line number, text) of each line of request ident. A line with
    no time of its own takes the time of the line before it. Finding a time
    costs more than finding an id, so the other lines' times are looked at
    only when needed: backwards from a line of the request that has none,
    and from every LAZY_LINES-th line (so at most that many are kept)."""
    last = NO_TIME   # the time of the lines before `recent`
    recent = []      # lines since then, times not looked at yet
    for number, line in enumerate(lines, 1):
        # the shim writes ids without escapes: a line without ident is not one
        text = request_text(line, ident, field) if ident in line else None
        if text is None:
            recent.append(line)
            if len(recent) == LAZY_LINES:
                last = latest_time(recent, last)
                recent.clear()
            continue
        last = latest_time(recent + [line], last)
        recent.clear()
        yield last, number, text


def scan_path(path, ident, field):
    """Like scan() for a file name or '-' (stdin); raises OSError."""
    if path == "-":
        return list(scan(read_lines(sys.stdin.buffer), ident, field))
    with open(path, "rb") as f:
        return list(scan(read_lines(f), ident, field))


def source_names(paths):
    """Basenames; where two differ only in their directories, as many
    trailing components as it takes to tell them apart."""
    parts = [["stdin"] if p == "-" else os.path.normpath(p).split(os.sep) for p in paths]
    depth = [1] * len(paths)
    while True:
        names = [os.sep.join(p[-d:]) for p, d in zip(parts, depth)]
        grew = False
        for i, name in enumerate(names):
            if names.count(name) > 1 and depth[i] < len(parts[i]):
                depth[i] += 1
                grew = True
        if not grew:
            return names


# --------------------------------------------------------------- output

CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udc7f\udd00-\udfff]")


def visible(text):
    """Control characters (and lone surrogates that are not escaped bytes)
    written as escapes: one log line stays one terminal line, and a log
    cannot drive the terminal."""
    def escape(m):
        c = m.group()
        return {"\n": "\\n", "\r": "\\r"}.get(c) or (
            "\\x%02x" % ord(c) if ord(c) < 0x100 else "\\u%04x" % ord(c))
    return CONTROL_RE.sub(escape, text)


def use_colour(when):
    if when == "auto":
        return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return when == "always"


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def output_lines(entries, names, colour):
    """entries: (time, file index, line number, text), in order."""
    width = max((len(names[index]) for _, index, _, _ in entries), default=0)
    for when, index, _, text in entries:
        source = names[index]
        pad = " " * (width - len(source))
        if colour:
            source = "\x1b[%sm%s\x1b[0m" % (COLOURS[index % len(COLOURS)], source)
        yield "%s  %s%s  %s\n" % (format_time(when), source, pad, visible(text))


def write(text):
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))


# ----------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="reqid show",
        description="Print every log line of one request from several log files, "
                    "merged in time order.",
        epilog="Exit status: 0 lines found, 1 none, 2 a file could not be read "
               "or a usage error.")
    ap.add_argument("--field", metavar="NAME", default=None,
                    help="name of the id field (default: REQID_FIELD, or request_id)")
    ap.add_argument("--color", "--colour", dest="color", metavar="WHEN", default="auto",
                    choices=("always", "never", "auto"),
                    help="colour the file names: always, never or auto (default: "
                         "on a terminal, unless NO_COLOR is set)")
    ap.add_argument("id", metavar="ID", help="the request_id or trace_id to show")
    ap.add_argument("files", metavar="FILE", nargs="*", default=["-"],
                    help="log files; '-' or none: standard input")
    a = ap.parse_args(argv)
    if a.field is None:
        env = os.environ.get("REQID_FIELD", "")
        a.field = env if FIELD_RE.fullmatch(env) else "request_id"
    elif not FIELD_RE.fullmatch(a.field):
        ap.error("--field must be 1-63 chars of [A-Za-z0-9_.@-]")
    if not a.id:
        ap.error("ID must not be empty")
    return a


def main(argv):
    a = parse_args(argv)
    names = [visible(name) for name in source_names(a.files)]
    entries, failed = [], False
    for index, path in enumerate(a.files):
        try:
            found = scan_path(path, a.id, a.field)
        except OSError as e:
            print("reqid show: %s: %s" % (path, e.strerror or e), file=sys.stderr)
            failed = True
            continue
        entries.extend((when, index, number, text) for when, number, text in found)
    entries.sort(key=lambda e: e[:3])  # time, then file order, then line number

    if sys.stdout.isatty():
        files = len({e[1] for e in entries})
        write("request %s: %s from %s\n" % (visible(a.id), plural(len(entries), "line"),
                                            plural(files, "file")))
    for text in output_lines(entries, names, use_colour(a.color)):
        write(text)
    sys.stdout.flush()
    return 2 if failed else (0 if entries else 1)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `reqid show ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
