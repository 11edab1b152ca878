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
- lines with no prefix at all (the body of Mem-Info in the seed's log, where
  printk continuation lines lost their stamp) keep the previous line's time
  and are marked ``cont``.

Compressed files (``.gz``, ``.xz``, ``.bz2``, by magic bytes) and ``-``
(stdin) are read the same way.  Everything is a generator: memory does not
grow with the size of the log.
"""

import bz2
import gzip
import io
import lzma
import re
import sys
from dataclasses import dataclass
from typing import IO, Iterable, Iterator, Optional, Tuple

from ..errors import InputError

__all__ = ["LogLine", "open_log", "read_lines", "normalize", "from_records",
           "log_lines"]


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


_DMESG = re.compile(r"\[\s*(\d+)\.(\d+)\]\s?")
_DMESG_T = re.compile(r"\[((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d "
                      r"\d\d:\d\d:\d\d \d{4})\]\s?")
_CALLER = re.compile(r"\[\s*[TC]\d+\]\s?")
_LEVEL = re.compile(r"<\d{1,3}>")
# syslog / journalctl: "Feb  9 08:09:39 host kernel: " or ISO stamp; host optional
_SYSLOG = re.compile(
    r"(?P<stamp>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"\s+(?:(?P<host>[^\s:]+)\s+)?(?P<prog>[^\s:\[]+)(?:\[\d+\])?:\s?")
_MONO = re.compile(r"\[\s*(\d+)\.(\d+)\]\s+(?:[^\s:]+\s+)?(?P<prog>[^\s:\[]+)(?:\[\d+\])?:\s?")


def _split_escapes(text: str) -> Iterator[str]:
    if "#0" not in text:
        yield text
        return
    text = text.replace("#011", "\t")
    for part in text.split("#012"):
        yield part


def normalize(lines: Iterable[str]) -> Iterator[LogLine]:
    """Each raw line as :class:`LogLine` (kernel lines only for syslog input)."""
    last_ts: Optional[float] = None
    last_stamp: Optional[str] = None
    for lineno, raw in enumerate(lines, 1):
        line = raw
        if line.startswith("<") and _LEVEL.match(line):
            line = line[_LEVEL.match(line).end():]
        ts: Optional[float] = None
        stamp: Optional[str] = None
        cont = False
        if line.startswith("["):
            m = _DMESG.match(line)
            if m:
                mm = _MONO.match(line)
                if mm and mm.group("prog") == "kernel":
                    line = line[mm.end():]
                else:
                    line = line[m.end():]
                ts = float(m.group(1) + "." + m.group(2))
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
                    continue  # another program's message
                stamp = m.group("stamp")
                line = line[m.end():]
                if line.startswith("["):
                    m2 = _DMESG.match(line)
                    if m2:
                        ts = float(m2.group(1) + "." + m2.group(2))
                        line = line[m2.end():]
            else:
                cont = True
        else:
            cont = True
        if line.startswith("[") and not cont:
            m = _CALLER.match(line)
            if m:
                line = line[m.end():]
        if cont:
            ts, stamp = last_ts, last_stamp
        else:
            last_ts, last_stamp = ts, stamp
        first = True
        for part in _split_escapes(line):
            yield LogLine(ts, part, lineno, stamp, cont or not first)
            first = False


def from_records(records: Iterable[Tuple[Optional[float], str]]) -> Iterator[LogLine]:
    """The log of a dump (``Target.log_records()``) as :class:`LogLine`."""
    for n, (ts, text) in enumerate(records, 1):
        yield LogLine(ts, text, n, None, False)


def log_lines(path: str) -> Iterator[LogLine]:
    """Open, decompress, decode and normalise ``path`` (``-`` for stdin)."""
    stream = open_log(path)
    try:
        yield from normalize(read_lines(stream, path))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
