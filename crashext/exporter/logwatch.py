"""The kernel log as the exporter reads it: followed, cut into records, counted.

Two sources give :class:`~crashext.sources.logs.LogLine` batches:

- :class:`FileSource`: a text log (``/var/log/kern.log``, a ``dmesg -w``
  capture...) followed like ``tail -F``: read from its start, then whatever
  is appended; a file replaced under the same name (rotation) is reopened
  (after the rest of the old one is read), a file that shrank (truncated
  with ``> file`` or ``copytruncate``) is read again from its start, a file
  that is missing is waited for.  Lines are normalised by
  :class:`~crashext.sources.logs.Normalizer`, so every form ``allocfail``
  reads is accepted.
- :class:`KmsgSource`: ``/dev/kmsg``, one record per ``read()``
  (Documentation/ABI/testing/dev-kmsg: ``prio,seq,usec,flags;text``,
  non-printable bytes as ``\\xNN``, continuation lines `` KEY=value``);
  ``EPIPE`` means records were overwritten before they were read: counted
  as lost, reading goes on.

:class:`LogWatcher` runs :func:`crashext.sources.kmsg.extract` over a
source in a thread and counts what it yields in :class:`LogCounts`: page
and vmalloc allocation failures by kind, order and process, OOM-killer
invocations by order, process and scope, OOM kills by the killed process.
``extract`` closes a record only when later lines show it has ended; when
the log stays idle with a record still open, the watcher feeds it lines
that belong to no record (as the next unrelated message would), so the
last failure is counted without waiting for more log traffic.

Process names are label values: at most ``top`` distinct ones per metric
are kept, later new ones are counted under ``"_other"``, so the label set
stays bounded however many processes fail.
"""

import errno
import os
import re
import stat
import threading
from typing import Dict, Iterator, List, Optional, Tuple

from ..sources import kmsg
from ..sources.logs import Gate, LogLine, Normalizer

__all__ = ["LogCounts", "FileSource", "KmsgSource", "LogWatcher", "parse_kmsg_record",
           "open_source", "OTHER"]

#: the label value for process names beyond the first ``top`` seen
OTHER = "_other"

#: most bytes one poll reads from a file (bounded memory on a huge log)
CHUNK = 1 << 20


def _comm(name: Optional[str]) -> str:
    """A process name fit for a label: printable, at most 32 characters."""
    if not name:
        return "unknown"
    text = "".join(ch if ch.isprintable() else "?" for ch in name.strip())
    return text[:32] or "unknown"


class _Bounded:
    """Label values: the first ``limit`` distinct ones as they are, then OTHER."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OTHER


class LogCounts:
    """What the log showed so far (thread safe; :meth:`snapshot` copies)."""

    def __init__(self, top: int = 20) -> None:
        self._lock = threading.Lock()
        self.alloc: Dict[Tuple[str, str, str], int] = {}
        self.oom_invoked: Dict[Tuple[str, str, str], int] = {}
        self.oom_killed: Dict[Tuple[str, str], int] = {}
        self.records: Dict[str, int] = {}
        self.lines = 0
        self.events: Dict[str, int] = {"rotated": 0, "truncated": 0, "lost": 0}
        self._labels = {k: _Bounded(top) for k in ("alloc", "oom_invoked", "oom_killed")}

    def add(self, rec) -> None:
        with self._lock:
            if isinstance(rec, kmsg.AllocFailure):
                key = (rec.kind, "unknown" if rec.order is None else str(rec.order),
                       self._labels["alloc"](_comm(rec.comm)))
                self.alloc[key] = self.alloc.get(key, 0) + 1
                kind = "allocation_failure"
            elif isinstance(rec, kmsg.OomReport):
                scope = "memcg" if rec.memcg else "global"
                key = ("unknown" if rec.order is None else str(rec.order),
                       self._labels["oom_invoked"](_comm(rec.comm)), scope)
                self.oom_invoked[key] = self.oom_invoked.get(key, 0) + 1
                if rec.killed_pid is not None:
                    k2 = (self._labels["oom_killed"](_comm(rec.killed_comm)), scope)
                    self.oom_killed[k2] = self.oom_killed.get(k2, 0) + 1
                kind = "oom"
            elif isinstance(rec, kmsg.SlubFailure):
                kind = "slub_failure"
            else:
                kind = "oops"
            self.records[kind] = self.records.get(kind, 0) + 1

    def add_lines(self, n: int) -> None:
        with self._lock:
            self.lines += n

    def event(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.events[name] = self.events.get(name, 0) + n

    def snapshot(self) -> Dict:
        with self._lock:
            return {"alloc": dict(self.alloc), "oom_invoked": dict(self.oom_invoked),
                    "oom_killed": dict(self.oom_killed), "records": dict(self.records),
                    "lines": self.lines, "events": dict(self.events)}


class FileSource:
    """A text log file followed like ``tail -F`` (see the module docstring)."""

    def __init__(self, path: str, counts: LogCounts) -> None:
        self.path = path
        self.counts = counts
        self.problem: Optional[str] = None
        self._f = None
        self._id: Optional[Tuple[int, int]] = None
        self._pos = 0
        self._rest = b""
        self._norm = Normalizer()
        self._lineno = 0

    def _open(self) -> bool:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self.problem = f"{self.path}: no such file (waiting for it)"
            return False
        except OSError as exc:
            self.problem = f"{self.path}: cannot read: {exc.strerror or exc}"
            return False
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            f.close()
            self.problem = f"{self.path}: is a directory, not a log file"
            return False
        head = f.read(6)
        if head.startswith(b"\x1f\x8b") or head.startswith(b"\xfd7zXZ") or head.startswith(b"BZh"):
            f.close()
            self.problem = f"{self.path}: compressed; the exporter follows plain text logs only"
            return False
        f.seek(0)
        self._f, self._id, self._pos, self._rest = f, (st.st_dev, st.st_ino), 0, b""
        self.problem = None
        return True

    def _close(self) -> None:
        if self._f is not None:
            self._f.close()
        self._f = None

    def close(self) -> None:
        self._close()

    def _lines(self, data: bytes, final: bool = False) -> List[LogLine]:
        data = self._rest + data
        if final:
            body, self._rest = data, b""
        else:
            cut = data.rfind(b"\n") + 1
            body, self._rest = data[:cut], data[cut:]
        out: List[LogLine] = []
        if not body:
            return out
        parts = body.split(b"\n")
        if body.endswith(b"\n"):
            parts.pop()
        for raw in parts:
            self._lineno += 1
            out.extend(self._norm.lines(raw.decode("utf-8", "replace").rstrip("\r"),
                                        self._lineno))
        return out

    def poll(self) -> List[LogLine]:
        """The lines appended since the last poll (complete lines only)."""
        if self._f is None and not self._open():
            return []
        try:
            st_fd = os.fstat(self._f.fileno())
            if st_fd.st_size < self._pos:
                # truncated in place (copytruncate, "> file"): read from the start
                self.counts.event("truncated")
                self._f.seek(0)
                self._pos, self._rest = 0, b""
            data = self._f.read(CHUNK)
        except OSError as exc:
            self.problem = f"{self.path}: read failed: {exc.strerror or exc}"
            self._close()
            return []
        self._pos += len(data)
        if data:
            return self._lines(data)
        # at the end of what we have open: has the name moved on to a new file?
        try:
            st = os.stat(self.path)
            moved = (st.st_dev, st.st_ino) != self._id
        except OSError:
            moved = False  # gone: keep the old file until a new one appears
        if moved:
            tail = self._lines(b"", final=True)
            self._close()
            self.counts.event("rotated")
            self._norm = Normalizer()
            if self._open():
                return tail + self.poll()
            return tail
        return []


_KMSG_ESC = re.compile(r"\\x([0-9a-fA-F]{2})")


def parse_kmsg_record(data: bytes, lineno: int) -> Optional[LogLine]:
    """One ``/dev/kmsg`` record (``prio,seq,usec,flags[,...];text``) as a
    LogLine of a kernel message, or None for a user-space one (facility > 0)
    or a record not in that form."""
    text = data.decode("utf-8", "replace")
    head, sep, body = text.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3:
        return None
    try:
        prio, usec = int(fields[0]), int(fields[2])
    except ValueError:
        return None
    if prio >> 3:  # facility: 0 is the kernel; user space writes to /dev/kmsg too
        return None
    msg = body.split("\n", 1)[0]
    msg = _KMSG_ESC.sub(lambda m: chr(int(m.group(1), 16)), msg)
    return LogLine(usec / 1e6, msg, lineno, None, False)


class KmsgSource:
    """``/dev/kmsg``: every record still in the ring buffer, then new ones."""

    def __init__(self, counts: LogCounts, path: str = "/dev/kmsg") -> None:
        self.path = path
        self.counts = counts
        self.problem: Optional[str] = None
        self._fd: Optional[int] = None
        self._lineno = 0

    def poll(self, limit: int = 100000) -> List[LogLine]:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                self.problem = None
            except OSError as exc:
                self.problem = f"{self.path}: cannot read: {exc.strerror or exc}"
                return []
        out: List[LogLine] = []
        for _ in range(limit):
            try:
                data = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten before we read them
                    self.counts.event("lost")
                    continue
                if exc.errno == errno.EINTR:
                    continue
                self.problem = f"{self.path}: read failed: {exc.strerror or exc}"
                self.close()
                break
            if not data:
                break
            self._lineno += 1
            ln = parse_kmsg_record(data, self._lineno)
            if ln is not None:
                out.append(ln)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None


def open_source(path: str, counts: LogCounts):
    """A :class:`KmsgSource` for a ``/dev/kmsg``-like character device, else a
    :class:`FileSource`."""
    try:
        if stat.S_ISCHR(os.stat(path).st_mode):
            return KmsgSource(counts, path)
    except OSError:
        pass
    return FileSource(path, counts)


class LogWatcher:
    """Records of a log source, counted as they end (in a thread, or once)."""

    #: the text of the lines fed to close a record left open by an idle log
    FILLER = "-- crashext exporter: no new kernel log lines --"

    def __init__(self, source, counts: LogCounts, poll_seconds: float = 0.5,
                 flush_seconds: float = 2.0) -> None:
        self.source = source
        self.counts = counts
        self.poll_seconds = poll_seconds
        self.flush_seconds = flush_seconds
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._gate = Gate()

    @property
    def problem(self) -> Optional[str]:
        return self.error or self.source.problem

    def _fillers(self) -> Iterator[LogLine]:
        for _ in range(kmsg.FOREIGN_LIMIT + 1):
            yield LogLine(None, self.FILLER, 0, None, False)

    def _follow(self) -> Iterator[LogLine]:
        idle = 0.0
        flushed = True
        while not self._stop.is_set():
            got = self.source.poll()
            if got:
                self.counts.add_lines(len(got))
                yield from got
                idle, flushed = 0.0, False
                continue
            if not flushed and self._gate.open and idle >= self.flush_seconds:
                yield from self._fillers()
                flushed = True
            self._stop.wait(self.poll_seconds)
            idle += self.poll_seconds

    def _drain(self) -> Iterator[LogLine]:
        while True:
            got = self.source.poll()
            if not got:
                return
            self.counts.add_lines(len(got))
            yield from got

    def read_once(self) -> None:
        """Read what the source holds now, count every record in it, return."""
        for rec in kmsg.extract(self._drain()):
            self.counts.add(rec)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for rec in kmsg.extract(self._follow(), gate=self._gate):
                    self.counts.add(rec)
                return
            except Exception as exc:  # never let the thread die silently
                self.error = f"log reader: {type(exc).__name__}: {exc}"
                self._stop.wait(5.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="crashext-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.source.close()

