"""The fast way through a big kernel log: raw bytes are searched for the
record triggers (:data:`~crashext.sources.logs.TRIGGER_LITERALS`) and only the
lines a record can hold are decoded and normalised.  Same
:class:`~crashext.sources.logs.LogLine` s, line numbers included, as
:func:`~crashext.sources.logs.gated_chunks` over the decoded text."""

import lzma
import re
import sys
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import InputError
from .literals import required_literals
from .logs import (KERNEL_LOG_HINT, TRIGGER_LITERALS, Gate, LogLine, Normalizer, byte_chunks,  # noqa: F401
                   checked_stream, is_kernel_line, kernel_log, open_log)

__all__ = ["byte_chunks", "gated_bytes", "gated_file", "trigger_finder", "newline_counter",
           "literal_finder", "gated_kernel_log", "growing_counter", "read_windows", "ScanFacts"]


def _hyperscan_finder(literals: Tuple[Tuple[str, bool], ...]):
    """Start offsets of every literal of ``literals`` ((text, caseless)
    pairs) in ``buf[lo:hi]``, with Hyperscan (one pass for all of them);
    None when it is not installed."""
    try:
        import hyperscan  # optional: pip install crashext[fast]
    except ImportError:
        return None
    lits = [x.encode() for x, _ in literals]
    try:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=[re.escape(x) for x in lits], ids=list(range(len(lits))),
                   elements=len(lits),
                   flags=[hyperscan.HS_FLAG_CASELESS if c else 0 for _, c in literals])
    except Exception:  # hyperscan.error: e.g. a CPU without SSSE3
        return None
    lens = [len(x) for x in lits]

    def starts(buf, lo: int, hi: int) -> List[int]:
        out: List[int] = []
        add = out.append
        base = [lo - x for x in lens]

        def hit(i, _frm, to, _flags, _ctx):
            add(to + base[i])
        with memoryview(buf) as whole, whole[lo:hi] as view:
            db.scan(view, match_event_handler=hit)
        out.sort()
        return out
    return starts


def _regex_finder(literals: Tuple[Tuple[str, bool], ...]):
    """As :func:`_hyperscan_finder`, with one ``re`` search over the bytes
    (``(?i:...)`` around the caseless literals: ASCII-caseless in bytes)."""
    rx = re.compile(b"|".join((b"(?i:%s)" if c else b"%s") % re.escape(x.encode())
                              for x, c in literals))

    def starts(buf, lo: int, hi: int) -> List[int]:
        return [m.start() for m in rx.finditer(buf, lo, hi)]
    return starts


_FINDERS: dict = {}
_TRIGGERS = tuple((x, False) for x in TRIGGER_LITERALS)


def literal_finder(literals: Tuple[Tuple[str, bool], ...], engine: Optional[str] = None):
    """A function ``(buf, lo, hi)`` giving the sorted start offsets of all
    occurrences of ``literals`` ((text, caseless) pairs) in ``buf[lo:hi]``
    (bytes-like): Hyperscan's when it is installed (``engine`` "hyperscan"
    insists on it), else ``re`` ("re")."""
    if engine != "re":
        hs = _cached(("hyperscan", literals), _hyperscan_finder, literals)
        if hs is not None:
            return hs
        if engine == "hyperscan":
            raise ImportError("hyperscan is not installed")
    return _cached(("re", literals), _regex_finder, literals)


def _cached(key, make, literals):
    if key not in _FINDERS:
        _FINDERS[key] = make(literals)
    return _FINDERS[key]


def trigger_finder(engine: Optional[str] = None):
    """:func:`literal_finder` of the record triggers (:data:`TRIGGER_LITERALS`)."""
    return literal_finder(_TRIGGERS, engine)


def _prime_bytes(n: "Normalizer", block, end: int, lower: int, limit: int = 64) -> None:
    """:meth:`Normalizer.prime` over ``block[lower:end]``, decoding only the
    ``limit`` lines it may look at (the same lines, found the same way)."""
    e = lo = end
    for _ in range(limit):
        if e <= lower:
            break
        b = block.rfind(b"\n", lower, e - 1)
        lo = e = lower if b < 0 else b + 1
    text = block[lo:end].decode("utf-8", "replace")
    n.prime(text, len(text), 0, limit)


def _count_bytes(buf, lo: int, hi: int) -> int:
    """Newlines in ``buf[lo:hi]`` with ``bytes.count``."""
    return buf.count(b"\n", lo, hi)


def _numpy_counter():
    """Newlines in ``buf[lo:hi]`` with numpy (a vectorised compare, about 3x
    ``bytes.count``'s speed); None when numpy is not installed."""
    try:
        import numpy  # optional: pip install crashext[fast]
    except ImportError:
        return None
    frombuffer, count_nonzero, u8 = numpy.frombuffer, numpy.count_nonzero, numpy.uint8

    def count(buf, lo: int, hi: int) -> int:
        if hi - lo < 65536:
            return _count_bytes(buf, lo, hi)
        # the array is a view on buf; it is gone before buf is resized or closed
        return int(count_nonzero(frombuffer(buf, u8, hi - lo, lo) == 10))
    return count


_COUNTER: list = []


def newline_counter(engine: Optional[str] = None):
    """A function ``(buf, lo, hi)`` counting the newlines in ``buf[lo:hi]``:
    numpy's when it is installed (``engine`` "numpy" insists on it), else
    ``bytes.count`` ("bytes")."""
    if engine == "bytes":
        return _count_bytes
    if not _COUNTER:
        _COUNTER.append(_numpy_counter())
    if _COUNTER[0] is None:
        if engine == "numpy":
            raise ImportError("numpy is not installed")
        return _count_bytes
    return _COUNTER[0]


def growing_counter(after: int = 384 << 20):
    """``bytes.count`` for the first ``after`` bytes counted, then
    :func:`newline_counter`'s best.  Measured here: numpy's import costs
    ~90 ms of CPU and its count saves ~0.33 ms per MiB, so it pays for
    itself on logs of some 300 MB and more; shorter ones never import it."""
    seen = [0]
    best: list = []

    def count(buf, lo: int, hi: int) -> int:
        if best:
            return best[0](buf, lo, hi)
        seen[0] += hi - lo
        if seen[0] > after:
            best.append(newline_counter())
        return buf.count(b"\n", lo, hi)
    return count


def _stream_windows(chunks: Iterable[bytes]) -> Iterator[Tuple[bytearray, int, int]]:
    """``(buf, 0, hi)`` with ``buf[:hi]`` the complete lines read so far
    from ``chunks`` (the last line may lack its newline); ``buf`` is reused."""
    buf = bytearray()
    for chunk in chunks:
        old = len(buf)   # holds no newline (see below)
        buf += chunk
        hi = buf.rfind(b"\n", old) + 1
        if hi:
            yield buf, 0, hi
            del buf[:hi]
    if buf:
        yield buf, 0, len(buf)


def read_windows(stream, name: str, size: int = 1 << 18) -> Iterator[Tuple[bytearray, int, int]]:
    """:func:`_stream_windows` of a stream, read straight into one buffer
    (no copy of each chunk, no fresh megabyte per read)."""
    buf = bytearray(2 * size)
    have = 0
    while True:
        if len(buf) - have < size:   # a line longer than the buffer
            buf.extend(bytes(size))
        with memoryview(buf) as whole, whole[have:] as view:
            try:
                n = stream.readinto(view)
            except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                raise InputError(f"{name}: stopped reading: {exc}") from exc
        if not n:
            if have:
                yield buf, 0, have
            return
        # what was kept from the last read holds no newline: look in the new bytes only
        hi = buf.rfind(b"\n", have, have + n) + 1
        have += n
        if hi:
            yield buf, 0, hi
            buf[:have - hi] = buf[hi:have]
            have -= hi


def gated_bytes(chunks: Iterable[bytes], gate: Gate, finder=None,
                counter=None) -> Iterator[LogLine]:
    """:func:`gated_chunks` over raw bytes in chunks of any size."""
    return _gated_windows(_stream_windows(chunks), gate, finder, counter)


def _gated_windows(windows, gate: Gate, finder=None, counter=None,
                   facts: Optional["ScanFacts"] = None) -> Iterator[LogLine]:
    """:func:`gated_chunks` over raw bytes: the text between records is found
    with one multi-literal search per window (:func:`trigger_finder`) and
    never decoded, its newlines only counted (:func:`newline_counter`); only
    lines a record can hold (and the lines whose stamp a continuation
    inherits) are decoded.  Same :class:`LogLine` s as :func:`gated_chunks`
    of the decoded text, line numbers included.  A window may reuse the
    buffer of the one before it.  ``facts``, when given, is kept up to date
    for the skipped lines too (:class:`ScanFacts`)."""
    import bisect
    find = finder or trigger_finder()
    count = counter or growing_counter()
    n = Normalizer()
    lineno = 0
    for buf, lo, hi in windows:
        hits: Optional[List[int]] = None
        pos = lo
        while pos < hi:
            if not gate.open:
                if hits is None:
                    hits = find(buf, lo, hi)
                i = bisect.bisect_left(hits, pos)
                if i == len(hits):
                    lineno += count(buf, pos, hi)
                    if buf[hi - 1:hi] != b"\n":
                        lineno += 1        # the last line of the input, unterminated
                    _prime_bytes(n, buf, hi, pos)
                    if facts is not None:
                        facts.skipped(buf, pos, hi)
                    break
                start = buf.rfind(b"\n", pos, hits[i])
                start = pos if start < 0 else start + 1
                if start > pos:
                    lineno += count(buf, pos, start)
                    _prime_bytes(n, buf, start, pos)
                    if facts is not None:
                        facts.skipped(buf, pos, start)
                pos = start
            nl = buf.find(b"\n", pos, hi)
            if nl < 0:
                nl = hi
            lineno += 1
            end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl   # CRLF
            text = buf[pos:end].decode("utf-8", "replace")
            pos = nl + 1
            for ln in n.lines(text, lineno):
                if facts is not None:
                    facts.read(ln)
                yield ln
    gate.lines = lineno


def gated_file(path: str, gate: Gate, finder=None, counter=None) -> Iterator[LogLine]:
    """The fast scan of ``path`` (``-``: stdin), decompressed, read in
    chunks.  (A plain file is not mapped instead: measured, mmap's page
    faults cost what the copy of read() does, and a log truncated while
    mapped -- logrotate's copytruncate -- would kill the process with
    SIGBUS.)"""
    yield from _gated_stream(open_log(path), path, gate, finder, counter)


def _gated_stream(stream, name: str, gate: Gate, finder, counter,
                  facts: Optional["ScanFacts"] = None) -> Iterator[LogLine]:
    """:func:`_gated_windows` of an open stream, closed at the end (stdin is left open)."""
    try:
        yield from _gated_windows(read_windows(stream, name), gate, finder, counter, facts)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


# -- a whole kernel log for triage: records, and the lines its regexes need ----

class ScanFacts:
    """What a reader of every line would know that the skipped lines
    hold: the timestamp of the last line that has its own ``[seconds]``
    stamp (continuation lines inherit it, so it is the last timestamp any
    line has), and whether any line shows the input is a kernel log
    (:func:`~crashext.sources.logs.is_kernel_line`)."""

    __slots__ = ("last_ts", "seen")

    def __init__(self) -> None:
        self.last_ts: Optional[float] = None
        self.seen = False

    def read(self, ln: LogLine) -> None:
        if not ln.cont and ln.ts is not None:
            self.last_ts = ln.ts
        if not self.seen and is_kernel_line(ln):
            self.seen = True

    def skipped(self, buf, lower: int, end: int) -> None:
        """Take the skipped lines ``buf[lower:end]``: the last of them with
        its own stamp.  A stamp is ``[seconds]``, so only lines holding
        :data:`_STAMP_B` (a byte pattern that takes every stamp the
        normaliser takes, Unicode digits and spaces included) are decoded,
        last first: the line before ``end`` in a dmesg log, after a search
        in C in a syslog whose lines have no stamp."""
        e = end
        for _ in range(8):   # a dmesg log: the stamp is on the last line or near it
            j = buf.rfind(b"]", lower, e)
            if j < 0:
                return
            b = buf.rfind(b"\n", lower, j)
            b = lower if b < 0 else b + 1
            if _STAMP_END_B.search(buf, b, j + 1) is None:
                e = j        # an earlier ']' of the same line may still be one
                continue
            if self._own_stamp(buf, b, end):
                return
            e = b
        for m in reversed([m.start() for m in _STAMP_B.finditer(buf, lower, e)]):
            b = buf.rfind(b"\n", lower, m)
            if self._own_stamp(buf, lower if b < 0 else b + 1, end):
                return

    def _own_stamp(self, buf, b: int, end: int) -> bool:
        nl = buf.find(b"\n", b, end)
        stop = end if nl < 0 else nl
        if stop > b and buf[stop - 1] == 13:
            stop -= 1
        got = Normalizer().lines(buf[b:stop].decode("utf-8", "replace"), 0)
        if got and not got[0].cont and got[0].ts is not None:
            self.last_ts = got[0].ts
            self.seen = True
            return True
        return False


# Every "[seconds]" stamp the normaliser reads (logs._DMESG: \[\s*\d+\.\d+\]) as
# bytes: its Unicode spaces and digits other than ASCII are UTF-8 bytes >= 0x80.
_STAMP = rb"\[[\t\n\x0b\x0c\r \x1c-\x1f\x80-\xff]*[0-9\x80-\xff]+\.[0-9\x80-\xff]+\]"
_STAMP_B = re.compile(_STAMP)
_STAMP_END_B = re.compile(_STAMP + rb"\Z")


def gated_kernel_log(path: str, gate: Gate, patterns: Sequence[str],
                     facts: ScanFacts, engine: Optional[str] = None) -> Optional[Iterator[LogLine]]:
    """:func:`~crashext.sources.logs.kernel_log` for a reader that needs
    the records (``gate``) and the lines matching ``patterns`` (regexes run
    on each normalised line): the lines that can hold neither are skipped
    undecoded, ``facts`` tells what they held.  A line that matches a
    pattern holds one of its required literals
    (:func:`~crashext.sources.literals.required_literals`), so the search
    for the records' triggers and those literals finds every such line.
    None when a pattern has no required literal: then every line must be
    read.  Same errors as ``kernel_log`` (missing, empty, binary, no
    kernel log line at all); ``-`` (stdin) is refused with None too, as
    the last check may need a second read.  ``engine``: as for
    :func:`literal_finder`."""
    if path == "-":
        return None
    extra: List[Tuple[str, bool]] = []
    for p in patterns:
        got = required_literals(p)
        if got is None:
            return None
        extra.extend((x, got[1]) for x in got[0])
    find = literal_finder(tuple(dict.fromkeys(_TRIGGERS + tuple(extra))), engine)
    stream = checked_stream(path, "kernel log", KERNEL_LOG_HINT)
    return _gated_kernel_lines(stream, path, gate, find, facts)


def _gated_kernel_lines(stream, path: str, gate: Gate, find, facts: ScanFacts
                        ) -> Iterator[LogLine]:
    yield from _gated_stream(stream, path, gate, find, None, facts)
    if not facts.seen:
        # no line read or passed over shows a kernel log yet: look at every
        # line until one does (a garbage file is read to its end, then refused)
        for ln in kernel_log(path):
            if is_kernel_line(ln):
                facts.seen = True
                break
