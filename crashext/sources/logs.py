"""Kernel log text, normalised once to (timestamp, text) lines, streaming.

Accepted forms, detected per line (files mix them after rotation and copy):

- ``dmesg`` / ``vmcore-dmesg.txt``: ``[ 1234.567890] text``, with an
  optional caller id ``[  T460]`` / ``[    C3]`` (CONFIG_PRINTK_CALLER, v5.1+)
  and an optional ``<6>`` level prefix (``dmesg -r``);
- ``dmesg -T``: ``[Mon Apr 20 15:08:07 2020] text``;
- syslog (``/var/log/messages``, ``kern.log``) with or without hostname and
  with RFC 3339 stamps, ``journalctl`` short and short-iso: ``MMM DD
  HH:MM:SS host kernel: [ 12.3] text``; lines of other programs are dropped;
- ``journalctl -o short-monotonic``: ``[ 1234.567890] host kernel: text``;
- rsyslog's control-character escaping: ``#012`` (newline) splits a line
  into several, ``#011`` is a tab;
- lines with no prefix at all (the body of Mem-Info in the RHEL7 idr-bug log, where
  printk continuation lines lost their stamp) keep the previous line's time
  and are marked ``cont``;
- lines quoted in a mail, a commit message or an issue comment: the quote
  marks (``> ``, ``> > ``) at the start of a line are removed, and so is the
  indentation before a prefix (`` [ 12.3] text``); the indentation of a line
  without a prefix is kept (it may be the kernel's own).

Compressed files (``.gz``, ``.xz``, ``.bz2``, by magic bytes) and ``-``
(stdin) are read the same way.  Everything is a generator: memory does not
grow with the size of the log.
"""

import bz2
import gzip
import lzma
import os
import re
import sys
from dataclasses import dataclass
from typing import IO, Iterable, Iterator, List, Optional, Tuple

from ..errors import InputError

__all__ = ["LogLine", "open_log", "read_lines", "normalize", "from_records",
           "log_lines", "raw_lines", "Normalizer", "printk_time", "CountingLines", "Gate", "gated", "gated_chunks",
           "text_chunks", "byte_chunks", "TRIGGER", "checked_lines", "checked_stream", "kernel_log",
           "load_log", "TRIGGER_LITERALS", "is_kernel_line", "no_kernel_lines", "user_text"]


@dataclass
class LogLine:
    """One kernel log line.

    ``ts``: seconds since boot where the line says it (else None);
    ``stamp``: the wall-clock stamp as written (syslog, ``dmesg -T``);
    ``lineno``: 1-based line number in the input; ``cont``: no prefix at all.
    """

    __slots__ = ("ts", "text", "lineno", "stamp", "cont")

    ts: Optional[float]
    text: str
    lineno: int
    stamp: Optional[str]
    cont: bool

    def when(self) -> str:
        if self.ts is not None:
            return f"{self.ts:.6f}"
        return self.stamp or "-"


_MAGIC = ((b"\x1f\x8b", gzip.open), (b"\xfd7zXZ\x00", lzma.open), (b"BZh", bz2.open))


def open_log(path: str) -> IO[bytes]:
    """A binary stream of ``path`` (decompressed), or stdin for ``-``.

    A missing or unreadable file is an :class:`InputError` (one line).
    """
    if path == "-":
        return sys.stdin.buffer
    try:
        f = open(path, "rb")
        head = f.peek(6)[:6] if hasattr(f, "peek") else b""
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, not a log file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            try:
                z = opener(path, "rb")
                z.peek(1) if hasattr(z, "peek") else z.read(0)
            except (OSError, EOFError, lzma.LZMAError, ValueError):
                f.seek(0)   # magic bytes but not a compressed stream: plain text
                return f
            f.close()
            return z
    return f


def read_lines(stream: IO[bytes], name: str = "input") -> Iterator[str]:
    """Decoded lines (UTF-8, bad bytes replaced), without line ends."""
    try:
        for raw in stream:
            yield raw.decode("utf-8", "replace").rstrip("\r\n")
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        # a truncated .gz/.xz: keep what was read, say where it stopped
        raise InputError(f"{name}: stopped reading: {exc}") from exc


_DMESG = re.compile(r"\[\s*(\d+\.\d+)\]\s?")
_DMESG_T = re.compile(r"\[((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d "
                      r"\d\d:\d\d:\d\d \d{4})\]\s?")
_CALLER = re.compile(r"\[\s*[TC]\d+\]\s?")
_LEVEL = re.compile(r"<\d{1,3}>")
# syslog / journalctl: "Feb  9 08:09:39 host kernel: " or ISO stamp; host optional
_SYSLOG = re.compile(
    r"(?P<stamp>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"\s+(?:(?P<host>[^\s:]+)\s+)?(?P<prog>[^\s:\[]+)(?:\[\d+\])?:\s?")
_MONO = re.compile(r"\[\s*(\d+\.\d+)\]\s+(?:[^\s:]+\s+)?(?P<prog>[^\s:\[]+)(?:\[\d+\])?:\s?")
# mail quoting: "> " (or ">" alone) per level, at the start of the line
_QUOTE = re.compile(r"(?:>[ \t]?)+")


def _unquote(line: str) -> str:
    """``line`` without mail quote marks, and without the indentation
    before a printk, ``dmesg -T``, level or syslog prefix (what a pasted
    log gets in a comment or a commit message)."""
    if line[:1] == ">":
        line = line[_QUOTE.match(line).end():]
    rest = line.lstrip(" \t")
    if rest is line or not rest:
        return line
    c = rest[:1]
    if (c == "[" and (_DMESG.match(rest) or _DMESG_T.match(rest))) or \
            (c == "<" and _LEVEL.match(rest)) or \
            (c.isalnum() and not c.islower() and _SYSLOG.match(rest)):
        return rest
    return line


def _split_escapes(text: str) -> Iterator[str]:
    if "#0" not in text:
        yield text
        return
    text = text.replace("#011", "\t")
    for part in text.split("#012"):
        yield part


class Normalizer:
    """Normalise one raw line at a time (keeps the last stamp for continuations)."""

    __slots__ = ("last_ts", "last_stamp")

    def __init__(self) -> None:
        self.last_ts: Optional[float] = None
        self.last_stamp: Optional[str] = None

    def prime(self, block: str, end: int, lower: int, limit: int = 64) -> None:
        """Take the stamp of the last stamped line in ``block[lower:end]``, as if
        the lines there had been read (continuations inherit it)."""
        saved = (self.last_ts, self.last_stamp)
        self.last_ts = self.last_stamp = None
        e = end
        for _ in range(limit):
            if e <= lower:
                break
            b = block.rfind("\n", lower, e - 1)
            b = lower if b < 0 else b + 1
            line = block[b:e - 1] if block[e - 1:e] == "\n" else block[b:e]
            self.lines(line.rstrip("\r"), -1)
            if self.last_ts is not None or self.last_stamp is not None:
                return
            e = b
        self.last_ts, self.last_stamp = saved

    def lines(self, line: str, lineno: int) -> List[LogLine]:
        """The kernel lines in raw ``line`` ([] for another program's syslog line)."""
        c = line[:1]
        if c == ">" or c == " " or c == "\t":
            line = _unquote(line)
        if line.startswith("<"):
            m = _LEVEL.match(line)
            if m:
                line = line[m.end():]
        ts: Optional[float] = None
        stamp: Optional[str] = None
        cont = False
        if line.startswith("["):
            m = _DMESG.match(line)
            if m:
                ts = float(m.group(1))
                mm = _MONO.match(line) if "kernel:" in line else None
                if mm and mm.group("prog") == "kernel":
                    line = line[mm.end():]
                else:
                    line = line[m.end():]
            else:
                m = _DMESG_T.match(line)
                if m:
                    stamp = m.group(1)
                    line = line[m.end():]
                else:
                    cont = True
        elif line.startswith("kernel: "):
            line = line[8:]  # journalctl -o cat / copied "kernel: " lines without a stamp
        elif line[:1].isalnum() and not line[:1].islower():
            m = _SYSLOG.match(line)
            if m:
                if m.group("prog") != "kernel":
                    return []  # another program's message
                stamp = m.group("stamp")
                line = line[m.end():]
                if line.startswith("["):
                    m2 = _DMESG.match(line)
                    if m2:
                        ts = float(m2.group(1))
                        line = line[m2.end():]
            else:
                cont = True
        else:
            cont = True
        if not cont and line.startswith("["):
            m = _CALLER.match(line)
            if m:
                line = line[m.end():]
        if cont:
            ts, stamp = self.last_ts, self.last_stamp
        else:
            self.last_ts, self.last_stamp = ts, stamp
        if lineno < 0:
            return []  # priming only (see gated_chunks)
        if "#0" in line:
            return [LogLine(ts, part, lineno, stamp, cont or i > 0)
                    for i, part in enumerate(_split_escapes(line))]
        return [LogLine(ts, line, lineno, stamp, cont)]


def normalize(lines: Iterable[str]) -> Iterator[LogLine]:
    """Each raw line as :class:`LogLine` (kernel lines only for syslog input)."""
    n = Normalizer()
    for lineno, line in enumerate(lines, 1):
        yield from n.lines(line, lineno)


#: Raw-text triggers of every record kmsg.extract() starts; a line without one,
#: read while no record is open, cannot matter and is not normalised.  Plain
#: literals, so the byte scan (:func:`gated_bytes`) searches for the same set.
#: ("oom-killer: gfp_mask" is in every OOM header, 2.6.16's without a task
#: name too; "nable to handle kernel" starts the arm64 and ppc64 faults, " ilc:"
#: s390's program checks; "Manual OOM execution" marks a SysRq-f OOM kill)
TRIGGER_LITERALS = ("allocation failure", "vmalloc error", "oom-killer: gfp_mask",
                    "SLUB: Unable", "BUG", "Oops", "protection fault", "invalid opcode",
                    "WARNING", "Kernel panic", "Show Memory", "Mem-Info:", "Mem-info:",
                    "nable to handle kernel", " ilc:", "Manual OOM execution")
TRIGGER = re.compile("|".join(re.escape(x) for x in TRIGGER_LITERALS))


def printk_time(secs: float) -> str:
    """A time stamp as printk printed it: "%5lu.%06lu", microseconds truncated,
    not rounded (kernel/printk/printk.c print_time()), so what is shown has the
    log's own digits; the float is rounded to the nanosecond first."""
    ns = int(round(secs * 1e9))
    return f"{ns // 1000000000}.{ns // 1000 % 1000000:06d}"


class CountingLines:
    """Iterates ``it`` and counts what went by (``n``): log lines, raw or
    normalised."""

    def __init__(self, it: Iterable) -> None:
        self.it = it
        self.n = 0

    def __iter__(self):
        for x in self.it:
            self.n += 1
            yield x


class Gate:
    """Set by the consumer: True while a record is open (every line matters)."""

    __slots__ = ("open", "lines")

    def __init__(self) -> None:
        self.open = False
        self.lines = 0


def gated(lines: Iterable[str], gate: Gate) -> Iterator[LogLine]:
    """:func:`normalize`, skipping lines that cannot start or continue a record.

    While ``gate.open`` is False only lines matching :data:`TRIGGER` are
    normalised; the rest are counted in ``gate.lines``.  Same output as
    :func:`normalize` for every line a record can contain.
    """
    n = Normalizer()
    search = TRIGGER.search
    lineno = 0
    for lineno, line in enumerate(lines, 1):
        if not gate.open and not search(line):
            continue
        yield from n.lines(line, lineno)
    gate.lines = lineno


def from_records(records: Iterable[Tuple[Optional[float], str]]) -> Iterator[LogLine]:
    """The log of a dump (``Target.log_records()``) as :class:`LogLine`."""
    for n, (ts, text) in enumerate(records, 1):
        yield LogLine(ts, text, n, None, False)


def raw_lines(path: str) -> Iterator[str]:
    """Open, decompress and decode ``path`` (``-`` for stdin)."""
    yield from _lines_closing(open_log(path), path)


def log_lines(path: str) -> Iterator[LogLine]:
    """Open, decompress, decode and normalise ``path`` (``-`` for stdin)."""
    return normalize(raw_lines(path))


def byte_chunks(path: str, size: int = 1 << 20) -> Iterator[bytes]:
    """Raw (decompressed, not decoded) bytes of ``path`` in chunks of ``size``."""
    stream = open_log(path)
    try:
        while True:
            try:
                data = stream.read(size)
            except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                raise InputError(f"{path}: stopped reading: {exc}") from exc
            if not data:
                return
            yield data
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def text_chunks(path: str, size: int = 1 << 20) -> Iterator[str]:
    """Decoded text of ``path`` in chunks of about ``size`` bytes."""
    import codecs
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for data in byte_chunks(path, size):
        yield dec.decode(data)
    tail = dec.decode(b"", final=True)
    if tail:
        yield tail


def gated_chunks(chunks: Iterable[str], gate: Gate) -> Iterator[LogLine]:
    """As :func:`gated`, over text chunks: while no record is open, the text up
    to the next :data:`TRIGGER` is skipped in one search instead of line by line."""
    n = Normalizer()
    search = TRIGGER.search
    lineno = 0
    buf = ""
    chunks = iter(chunks)
    done = False
    while not done:
        try:
            buf += next(chunks)
            end = buf.rfind("\n")
            if end < 0:
                continue
            block, buf = buf[:end + 1], buf[end + 1:]
        except StopIteration:
            done = True
            if not buf:
                break
            block, buf = buf + "\n", ""
        pos = 0
        size = len(block)
        while pos < size:
            if not gate.open:
                m = search(block, pos)
                if m is None:
                    lineno += block.count("\n", pos)
                    n.prime(block, size, pos)
                    break
                start = block.rfind("\n", pos, m.start())
                start = pos if start < 0 else start + 1
                if start > pos:
                    lineno += block.count("\n", pos, start)
                    n.prime(block, start, pos)
                pos = start
            nl = block.find("\n", pos)
            lineno += 1
            line = block[pos:nl]
            if line.endswith("\r"):
                line = line[:-1]
            pos = nl + 1
            for ln in n.lines(line, lineno):
                yield ln
    gate.lines = lineno


def checked_lines(path: str, what: str = "kernel log", hint: str = "") -> Iterator[str]:
    """:func:`raw_lines` of a file that must be text: a missing, empty or
    binary file is an :class:`InputError` naming ``what`` was expected
    (checked on the first 4 KiB, before anything is yielded)."""
    return _lines_closing(checked_stream(path, what, hint), path)


def checked_stream(path: str, what: str = "kernel log", hint: str = "") -> IO[bytes]:
    """:func:`open_log` of a file that must be text (see :func:`checked_lines`)."""
    if path != "-" and not os.path.lexists(path):
        raise InputError(f"{path}: no such file")
    stream = open_log(path)
    try:
        head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        _close(stream)
        raise InputError(f"{path}: cannot read: {exc}") from exc
    problem = None
    if not head.strip() and hasattr(stream, "peek"):
        problem = f"empty file, not a {what}"
    elif b"\0" in head:
        problem = f"binary data, not a {what}{hint}"
    if problem:
        _close(stream)
        raise InputError(f"{path}: {problem}")
    return stream


def _close(stream: IO[bytes]) -> None:
    if stream is not sys.stdin.buffer:
        stream.close()


def _lines_closing(stream: IO[bytes], name: str) -> Iterator[str]:
    try:
        yield from read_lines(stream, name)
    finally:
        _close(stream)


def kernel_log(path: str) -> Iterator[LogLine]:
    """The kernel log in ``path`` as :class:`LogLine`, streaming.

    :class:`InputError` with one line if the file is missing, empty or
    binary (before the first line) or, at its end, if it had no kernel log
    line at all: none with a printk, ``dmesg -T`` or syslog prefix and none
    that starts a record (:data:`TRIGGER`; logs pasted without prefixes
    still count).
    """
    raw = checked_lines(path, "kernel log", KERNEL_LOG_HINT)
    return _kernel_lines(raw, path)


#: What :func:`kernel_log` adds when a file is binary.
KERNEL_LOG_HINT = " (a vmcore? use -c VMCORE -s VMLINUX)"


def is_kernel_line(ln: LogLine) -> bool:
    """Whether ``ln`` shows the input is a kernel log: a line with a printk,
    ``dmesg -T`` or syslog prefix, or one that starts a record."""
    return not ln.cont or bool(TRIGGER.search(ln.text))


# What user space prints when the kernel refuses a memory cgroup (runc,
# dockerd, kubelet: "mkdir /sys/fs/cgroup/memory/...: no space left on
# device") and /proc/cgroups' header: text triage reads with --text, not --log
# (Go's os.Mkdir error, coreutils' "mkdir: cannot create directory '...'",
# /proc/cgroups' header or its memory row)
_USER_TEXT = re.compile(r"mkdir:? (?:cannot create directory \W?)?/sys/fs/cgroup/\S*?\W?: "
                        r"(?:no space left on device|cannot allocate memory)"
                        r"|^#subsys_name\s+hierarchy\s+num_cgroups|^memory\s+\d+\s+\d+\s+[01]\s*$",
                        re.IGNORECASE)


def user_text(line: str) -> Optional[str]:
    """What of user-space text ``line`` shows (a cgroup mkdir error, the
    header or memory row of /proc/cgroups), or None."""
    m = _USER_TEXT.search(line) if len(line) < 4096 else None
    if m is None:
        return None
    if not m.group(0).lower().startswith("mkdir"):
        return "/proc/cgroups"
    return f"'{m.group(0)}'"


def no_kernel_lines(path: str, found: Optional[str] = None) -> InputError:
    """The error for a file without a kernel log line; ``found``: the
    user-space text it holds instead (:func:`user_text`)."""
    hint = (f"; it holds user-space text ({found}), which triage reads with --text FILE"
            if found else "")
    return InputError(f"{path}: no kernel log lines ('[seconds] text', 'dmesg -T' or "
                      f"syslog '... kernel: text') found{hint}")


def _kernel_lines(raw: Iterator[str], path: str) -> Iterator[LogLine]:
    seen = False
    found: Optional[str] = None
    for ln in normalize(raw):
        if not seen:
            if is_kernel_line(ln):
                seen = True
            elif found is None:
                found = user_text(ln.text)
        yield ln
    if not seen:
        raise no_kernel_lines(path, found)


def load_log(path: str) -> List[LogLine]:
    """:func:`kernel_log` as a list, for analyses that look at a log more than once."""
    return list(kernel_log(path))
