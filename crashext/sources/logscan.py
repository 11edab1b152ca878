"""The fast way through a big kernel log: raw bytes are searched for the
record triggers (:data:`~crashext.sources.logs.TRIGGER_LITERALS`) and only the
lines a record can hold are decoded and normalised.  Same
:class:`~crashext.sources.logs.LogLine` s, line numbers included, as
:func:`~crashext.sources.logs.gated_chunks` over the decoded text."""

import lzma
import re
import sys
from typing import Iterable, Iterator, List, Optional

from ..errors import InputError
from .logs import TRIGGER, TRIGGER_LITERALS, Gate, LogLine, Normalizer, open_log

__all__ = ["byte_chunks", "gated_bytes", "gated_file", "trigger_finder"]

_TRIGGER_B = re.compile(TRIGGER.pattern.encode())


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


def _reused_chunks(path: str, size: int = 1 << 20) -> Iterator[memoryview]:
    """As :func:`byte_chunks`, read into one buffer that every chunk reuses
    (no fresh megabyte per chunk): each chunk is valid until the next."""
    stream = open_log(path)
    buf = bytearray(size)
    view = memoryview(buf)
    try:
        while True:
            try:
                n = stream.readinto(view)
            except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                raise InputError(f"{path}: stopped reading: {exc}") from exc
            if not n:
                return
            yield view[:n]
    finally:
        view.release()
        if stream is not sys.stdin.buffer:
            stream.close()


def _hyperscan_finder():
    """Start offsets of every trigger literal in ``buf[:size]``, with
    Hyperscan (one pass for all literals); None when it is not installed."""
    try:
        import hyperscan  # optional: pip install crashext[fast]
    except ImportError:
        return None
    lits = [x.encode() for x in TRIGGER_LITERALS]
    try:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=lits, ids=list(range(len(lits))), elements=len(lits),
                   flags=[0] * len(lits))
    except Exception:  # hyperscan.error: e.g. a CPU without SSSE3
        return None
    lens = [len(x) for x in lits]

    def starts(buf, size: int) -> List[int]:
        out: List[int] = []
        add = out.append

        def hit(i, _frm, to, _flags, _ctx):
            add(to - lens[i])
        with memoryview(buf) as whole, whole[:size] as view:
            db.scan(view, match_event_handler=hit)
        out.sort()
        return out
    return starts


def _regex_finder(buf, size: int) -> List[int]:
    return [m.start() for m in _TRIGGER_B.finditer(buf, 0, size)]


_FINDER: list = []


def trigger_finder(engine: Optional[str] = None):
    """A function ``(buf, size)`` giving the sorted start offsets of all
    :data:`TRIGGER` matches in ``buf[:size]`` (bytes-like): Hyperscan's when
    it is installed (``engine`` "hyperscan" insists on it), else ``re``
    ("re")."""
    if engine == "re":
        return _regex_finder
    if not _FINDER:
        _FINDER.append(_hyperscan_finder())
    if _FINDER[0] is None:
        if engine == "hyperscan":
            raise ImportError("hyperscan is not installed")
        return _regex_finder
    return _FINDER[0]


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


def gated_bytes(chunks: Iterable[bytes], gate: Gate, finder=None) -> Iterator[LogLine]:
    """:func:`gated_chunks` over raw bytes: the text between records is found
    with one multi-literal search per block (:func:`trigger_finder`) and never
    decoded; only lines a record can hold (and the lines whose stamp a
    continuation inherits) are.  Same :class:`LogLine` s as
    :func:`gated_chunks` of the decoded text, line numbers included.
    ``chunks`` may reuse one buffer (each is copied before the next)."""
    import bisect
    find = finder or trigger_finder()
    n = Normalizer()
    lineno = 0
    buf = bytearray()   # the text not yet processed; complete lines first
    chunks = iter(chunks)
    done = False
    while not done:
        try:
            buf += next(chunks)
            size = buf.rfind(b"\n") + 1
            if size == 0:
                continue
        except StopIteration:
            done = True
            if not buf:
                break
            if not buf.endswith(b"\n"):
                buf += b"\n"
            size = len(buf)
        hits: Optional[List[int]] = None
        pos = 0
        while pos < size:
            if not gate.open:
                if hits is None:
                    hits = find(buf, size)
                i = bisect.bisect_left(hits, pos)
                if i == len(hits):
                    lineno += buf.count(b"\n", pos, size)
                    _prime_bytes(n, buf, size, pos)
                    break
                start = buf.rfind(b"\n", pos, hits[i])
                start = pos if start < 0 else start + 1
                if start > pos:
                    lineno += buf.count(b"\n", pos, start)
                    _prime_bytes(n, buf, start, pos)
                pos = start
            nl = buf.find(b"\n", pos)
            lineno += 1
            end = nl - 1 if buf[nl - 1:nl] == b"\r" else nl
            text = buf[pos:end].decode("utf-8", "replace")
            pos = nl + 1
            for ln in n.lines(text, lineno):
                yield ln
        del buf[:size]
    gate.lines = lineno


def gated_file(path: str, gate: Gate) -> Iterator[LogLine]:
    """:func:`gated_bytes` of ``path`` (``-``: stdin), decompressed."""
    return gated_bytes(_reused_chunks(path), gate)
