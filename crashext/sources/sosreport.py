"""A sosreport, read in place: a directory or its ``.tar.xz`` / ``.tar.gz`` /
``.tar.bz2`` archive, never unpacked to disk.

:class:`SosReport` gives the parts crashext reads by their path inside the
report (``proc/buddyinfo``, ``sos_commands/kernel/uname_-a``,
``sys/fs/cgroup/...``, ``var/log/kern.log``...), as text or as a stream.
What the report lacks is listed by :meth:`SosReport.parts` and shown by the
commands; it is not an error.

Archive reading (Python's :mod:`tarfile`): one pass over the members builds
the index and keeps the text of the small members crashext uses (``proc/``
files, the cgroup files, ``uname``, the sos manifest); logs are read later
as streams from the archive (``TarFile.extractfile``), so memory does not
grow with the size of the archive or of a log.  Member names are only ever
looked up, never used as file names: a name that would leave the report
(``../``, an absolute path, a link pointing outside) is ignored and listed
in :attr:`SosReport.problems`.  A truncated or corrupt archive keeps what
was read before the damage and says where it stopped; one with nothing
readable, or no sosreport part in it, is an :class:`InputError`.

When it was taken (a saved report is never "read now"):
``sos_reports/manifest.json`` of sos 4.x has ``start_time`` and
``end_time`` (the local time of the host that ran sos, without zone);
without it, the newest modification time of the ``proc/`` and
``sos_commands/`` files (archive member times, or the directory's file
times) is used and the label says so.
"""

import gzip
import io
import json
import lzma
import bz2
import os
import posixpath
import tarfile
import time
import zlib
from typing import IO, Dict, Iterator, List, Optional, Tuple

from ..errors import InputError

__all__ = ["SosReport", "PARTS", "LOG_FAMILIES", "is_sosreport_path", "MEMBER_LIMIT"]

#: What crashext reads from a sosreport, with what it is used for.
PARTS: Tuple[Tuple[str, str], ...] = (
    ("sos_commands/kernel/uname_-a", "kernel release"),
    ("sos_commands/kernel/dmesg", "kernel log (ring buffer at collection)"),
    ("var/log/kern.log", "kernel log (syslog, with rotated files)"),
    ("var/log/messages", "kernel log (syslog, with rotated files)"),
    ("proc/buddyinfo", "free blocks per order"),
    ("proc/pagetypeinfo", "free blocks per migrate type"),
    ("proc/zoneinfo", "watermarks, lowmem_reserve"),
    ("proc/vmstat", "compaction and reclaim counters"),
    ("proc/meminfo", "memory totals"),
    ("proc/cgroups", "memcg count against the id limit"),
    ("proc/slabinfo", "slab caches"),
    ("sys/fs/cgroup", "cgroup tree (v1 or v2)"),
)

#: Syslog files holding the kernel log, in order of preference; each with
#: its rotations (``kern.log.1``, ``kern.log.2.gz``...).
LOG_FAMILIES = ("var/log/kern.log", "var/log/messages", "var/log/syslog")

#: Largest member kept in memory whole (the /proc and cgroup files are a few
#: kB; a bigger one is named as too large, not read).
MEMBER_LIMIT = 64 << 20

# The small files read in the index pass of an archive.
_PROC_NAMES = {"buddyinfo", "pagetypeinfo", "zoneinfo", "vmstat", "meminfo", "cgroups",
               "slabinfo", "cmdline", "uptime"}
_CGROUP_FILES = {"memory.current", "cgroup.stat", "cgroup.events", "cgroup.controllers",
                 "memory.usage_in_bytes", "memory.kmem.usage_in_bytes", "memory.max",
                 "memory.limit_in_bytes", "memory.events", "memory.failcnt"}
_SMALL = {"sos_commands/kernel/uname_-a", "sos_reports/manifest.json", "uname",
          "proc/sys/kernel/osrelease", "sos_commands/host/hostname", "hostname"}
_MARKERS = ("sos_commands", "sos_reports", "sos_logs")

_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error,
                   ValueError)


def is_sosreport_path(path: str) -> bool:
    """Whether ``path`` looks like a sosreport (directory or tar archive)."""
    if os.path.isdir(path):
        return any(os.path.isdir(os.path.join(path, m)) for m in _MARKERS)
    if not (_tar_name(path) and os.path.isfile(path)):
        return False
    try:
        return tarfile.is_tarfile(path)
    except _ARCHIVE_ERRORS:
        return False


def _tar_name(path: str) -> bool:
    low = path.lower()
    return low.endswith((".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2"))


def _clean(name: str) -> Optional[str]:
    """A member name relative to the report root, or None if it leaves it."""
    if name.startswith("/"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".":
        return ""
    if norm.startswith("../") or norm == "..":
        return None
    return norm


class _Entry:
    __slots__ = ("info", "data", "mtime", "size", "kind", "link", "path")

    def __init__(self, kind: str, size: int = 0, mtime: Optional[float] = None,
                 info=None, link: Optional[str] = None) -> None:
        self.kind = kind          # "file", "dir", "link"
        self.size = size
        self.mtime = mtime
        self.info = info          # TarInfo (archive) or None
        self.data: Optional[bytes] = None
        self.link = link          # resolved target path (links)
        self.path = ""            # its own path in the report


class SosReport:
    """One sosreport, directory or archive.

    ``path``: the directory or the archive file.  InputError (one line) if it
    is neither, if the archive cannot be read at all, or if it holds no
    sosreport (no ``sos_commands/``, ``sos_reports/`` or ``sos_logs/``).
    """

    def __init__(self, path: str, member_limit: int = MEMBER_LIMIT) -> None:
        self.path = path
        self.name = os.path.basename(path.rstrip("/")) or path
        self.member_limit = member_limit
        self.problems: List[str] = []
        self.partial = False
        self._tar: Optional[tarfile.TarFile] = None
        self._index: Dict[str, _Entry] = {}
        self._kept: Dict[str, bytes] = {}
        self._children: Dict[str, List[str]] = {}
        if os.path.isdir(path):
            self.kind = "directory"
            self.root = os.path.realpath(path)
            if not any(os.path.isdir(os.path.join(path, m)) for m in _MARKERS):
                raise InputError(f"{path}: not a sosreport directory (no sos_commands/, "
                                 "sos_reports/ or sos_logs/ in it)")
        elif os.path.isfile(path):
            self.kind = "archive"
            self.root = ""
            self._open_archive()
        elif os.path.lexists(path):
            raise InputError(f"{path}: not a directory or a file")
        else:
            raise InputError(f"{path}: no such file or directory")
        self.taken = self._taken()

    # -- archive index ---------------------------------------------------------------

    def _open_archive(self) -> None:
        path = self.path
        try:
            tar = tarfile.open(path, "r:*")
        except tarfile.ReadError as exc:
            raise InputError(f"{path}: not a readable tar archive (.tar.xz/.tar.gz/.tar.bz2 "
                             f"of a sosreport): {exc}") from exc
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise InputError(f"{path}: cannot read the archive: {exc}") from exc
        self._tar = tar
        entries, top = self._members(tar)
        if not entries:
            raise InputError(f"{path}: an empty archive, not a sosreport")
        self._index_members(entries, top)
        if not any(m in self._index for m in _MARKERS):
            if self.partial:
                raise InputError(f"{path}: {self.problems[-1].split(':')[0]}, before any "
                                 "sosreport part (sos_commands/, sos_reports/, sos_logs/)")
            raise InputError(f"{path}: not a sosreport (no sos_commands/, sos_reports/ or "
                             "sos_logs/ in the archive)")

    def _members(self, tar: tarfile.TarFile
                 ) -> Tuple[List[Tuple[str, tarfile.TarInfo]], Optional[str]]:
        """One pass over the archive: its members by clean name, the small
        ones crashext reads kept in memory, and the one top directory (""
        if there are several).  A member naming a path outside the report
        is ignored; damage after the first member ends the pass (said in
        :attr:`problems`)."""
        path = self.path
        entries: List[Tuple[str, tarfile.TarInfo]] = []
        top: Optional[str] = None
        count = 0
        try:
            for info in tar:
                count += 1
                name = _clean(info.name)
                if name is None:
                    self.problems.append(f"member {info.name[:80]!r} points outside the "
                                         "report: ignored")
                    continue
                if not name:
                    continue
                first = name.split("/", 1)[0]
                if top is None:
                    top = first
                elif first != top:
                    top = ""
                entries.append((name, info))
                if info.isreg() and self._wanted(name):
                    if info.size > self.member_limit:
                        continue
                    f = tar.extractfile(info)
                    if f is not None:
                        self._kept[name] = f.read()
        except _ARCHIVE_ERRORS as exc:
            if not count:
                raise InputError(f"{path}: not a readable tar archive: "
                                 f"{exc or type(exc).__name__}") from exc
            self.partial = True
            self.problems.append(f"archive damaged or truncated after {count} members "
                                 f"({exc or type(exc).__name__}): the rest is missing")
        return entries, top

    def _index_members(self, entries: List[Tuple[str, tarfile.TarInfo]],
                       top: Optional[str]) -> None:
        """The index of the members by their path inside the report (the top
        directory stripped), with directory entries for every parent and the
        children of each directory."""
        # sosreports hold one top directory (sosreport-HOST-DATE-ID/)
        strip = top + "/" if top and any(n.startswith(top + "/") for n, _ in entries) else ""
        self.root = top or ""
        kept = self._kept
        self._kept = {}
        for name, info in entries:
            rel = name[len(strip):] if strip and name.startswith(strip) else \
                ("" if name == top else name)
            if not rel:
                continue
            if info.isdir():
                e = _Entry("dir", 0, info.mtime, info)
            elif info.issym() or info.islnk():
                target = info.linkname if info.islnk() else posixpath.join(
                    posixpath.dirname(name), info.linkname)
                t = _clean(target)
                if t is None or (strip and not (t + "/").startswith(strip)):
                    self.problems.append(f"link {rel} -> {info.linkname[:60]} points outside "
                                         "the report: ignored")
                    continue
                e = _Entry("link", 0, info.mtime, info, t[len(strip):] if strip else t)
            elif info.isreg():
                e = _Entry("file", info.size, info.mtime, info)
                e.data = kept.get(name)
            else:
                continue
            self._index[rel] = e
            # parents of members listed without their own directory entry
            parent = posixpath.dirname(rel)
            while parent and parent not in self._index:
                self._index[parent] = _Entry("dir")
                parent = posixpath.dirname(parent)
        # children per directory, so a listing does not scan every member
        for rel, e in self._index.items():
            e.path = rel
            self._children.setdefault(posixpath.dirname(rel), []).append(
                posixpath.basename(rel))

    @staticmethod
    def _wanted(name: str) -> bool:
        rel = name.split("/", 1)[1] if "/" in name else name
        if rel in _SMALL:
            return True
        if rel.startswith("proc/") and rel[5:] in _PROC_NAMES:
            return True
        return rel.startswith("sys/fs/cgroup/") and posixpath.basename(rel) in _CGROUP_FILES

    # -- lookups -----------------------------------------------------------------------

    def _resolve(self, rel: str, depth: int = 0) -> Optional[_Entry]:
        """The entry at ``rel``, links followed (inside the report only)."""
        rel = _clean(rel) or ""
        if depth > 8:
            return None
        e = self._index.get(rel)
        if e is None:
            # a link in a parent directory (e.g. sys/fs/cgroup/cpuacct -> cpu,cpuacct)
            parts = rel.split("/")
            for i in range(len(parts) - 1, 0, -1):
                p = self._index.get("/".join(parts[:i]))
                if p is not None and p.kind == "link" and p.link is not None:
                    return self._resolve(posixpath.join(p.link, *parts[i:]), depth + 1)
            return None
        if e.kind == "link":
            return self._resolve(e.link or "", depth + 1) if e.link is not None else None
        return e

    def _fs_path(self, rel: str) -> Optional[str]:
        """A directory report's file for ``rel``; None if it leaves the report."""
        clean = _clean(rel)
        if clean is None:
            return None
        full = os.path.realpath(os.path.join(self.root, clean))
        if full != self.root and not full.startswith(self.root + os.sep):
            self.problems.append(f"{rel}: a link pointing outside the report: ignored")
            return None
        return full

    def isdir(self, rel: str) -> bool:
        if self.kind == "directory":
            p = self._fs_path(rel)
            return p is not None and os.path.isdir(p)
        e = self._resolve(rel)
        return e is not None and e.kind == "dir"

    def isfile(self, rel: str) -> bool:
        if self.kind == "directory":
            p = self._fs_path(rel)
            return p is not None and os.path.isfile(p)
        e = self._resolve(rel)
        return e is not None and e.kind == "file"

    def listdir(self, rel: str) -> List[str]:
        """Names in directory ``rel`` (sorted); [] if it is not one."""
        if self.kind == "directory":
            p = self._fs_path(rel)
            try:
                return sorted(os.listdir(p)) if p else []
            except OSError:
                return []
        rel = _clean(rel) or ""
        e = self._resolve(rel)
        if e is None or e.kind != "dir":
            return []
        # the resolved directory's own path (links followed)
        return sorted(self._children.get(e.path, []))

    def mtime(self, rel: str) -> Optional[float]:
        if self.kind == "directory":
            p = self._fs_path(rel)
            try:
                return os.stat(p).st_mtime if p else None
            except OSError:
                return None
        e = self._resolve(rel)
        return e.mtime if e is not None else None

    def size(self, rel: str) -> Optional[int]:
        if self.kind == "directory":
            p = self._fs_path(rel)
            try:
                return os.stat(p).st_size if p else None
            except OSError:
                return None
        e = self._resolve(rel)
        return e.size if e is not None and e.kind == "file" else None

    def open(self, rel: str) -> Optional[IO[bytes]]:
        """A binary stream of file ``rel`` (decompressed if it is .gz/.xz/.bz2),
        or None where the report has no such file."""
        if self.kind == "directory":
            p = self._fs_path(rel)
            if p is None or not os.path.isfile(p):
                return None
            try:
                raw: IO[bytes] = open(p, "rb")
            except OSError as exc:
                self.problems.append(f"{rel}: {exc.strerror or exc}")
                return None
        else:
            e = self._resolve(rel)
            if e is None or e.kind != "file":
                return None
            if e.data is not None:
                raw = io.BytesIO(e.data)
            else:
                try:
                    raw = self._tar.extractfile(e.info)  # type: ignore[union-attr,assignment]
                except _ARCHIVE_ERRORS as exc:
                    self.problems.append(f"{rel}: cannot read it from the archive: {exc}")
                    return None
                if raw is None:
                    return None
        return _decompressed(raw, rel)

    def read(self, rel: str, limit: Optional[int] = None) -> Optional[str]:
        """The text of file ``rel``; None where it is missing, too large
        (``limit``, default :data:`MEMBER_LIMIT`) or unreadable (both named
        in :attr:`problems`)."""
        limit = self.member_limit if limit is None else limit
        size = self.size(rel)
        if size is not None and size > limit:
            self.problems.append(f"{rel}: {size} bytes, more than the {limit} read whole: "
                                 "not read")
            return None
        f = self.open(rel)
        if f is None:
            return None
        try:
            data = f.read(limit + 1)
        except _ARCHIVE_ERRORS as exc:
            self.problems.append(f"{rel}: stopped reading: {exc}")
            return None
        finally:
            f.close()
        if len(data) > limit:
            self.problems.append(f"{rel}: more than {limit} bytes: not read")
            return None
        if b"\0" in data[:4096]:
            self.problems.append(f"{rel}: binary data where text was expected: not read")
            return None
        return data.decode("utf-8", "replace")

    # -- what the report says ----------------------------------------------------------

    def release(self) -> Optional[str]:
        """The kernel release (``uname -a``'s third word)."""
        for rel in ("sos_commands/kernel/uname_-a", "uname"):
            text = self.read(rel)
            if text and text.split():
                words = text.split()
                return words[2] if words[0] == "Linux" and len(words) > 2 else words[0]
        text = self.read("proc/sys/kernel/osrelease")
        return text.strip() or None if text else None

    def hostname(self) -> Optional[str]:
        text = self.read("sos_commands/kernel/uname_-a")
        if text and len(text.split()) > 1:
            return text.split()[1]
        return None

    def _taken(self) -> Dict[str, Optional[str]]:
        text = self.read("sos_reports/manifest.json")
        if text:
            try:
                man = json.loads(text)
            except ValueError:
                man = None
                self.problems.append("sos_reports/manifest.json: not JSON")
            if isinstance(man, dict) and man.get("start_time"):
                return {"start": str(man.get("start_time")), "end": str(man.get("end_time")),
                        "how": "sos_reports/manifest.json start_time/end_time (local time "
                               "of the host, as sos wrote it)",
                        "sos_version": str(man.get("version")) if man.get("version") else None}
        times = []
        for d in ("proc", "sos_commands/kernel", "sos_commands/memory"):
            for n in self.listdir(d):
                t = self.mtime(d + "/" + n)
                if t:
                    times.append(t)
        if times:
            fmt = "%Y-%m-%d %H:%M:%S UTC"
            return {"start": time.strftime(fmt, time.gmtime(min(times))),
                    "end": time.strftime(fmt, time.gmtime(max(times))),
                    "how": f"modification times of the report's files ({self.kind})",
                    "sos_version": None}
        return {"start": None, "end": None, "how": "unknown: no manifest and no file times",
                "sos_version": None}

    def taken_label(self) -> str:
        t = self.taken
        if not t["start"]:
            return "SNAPSHOT (time unknown)"
        span = t["start"] if t["end"] in (None, t["start"], "None") else \
            f"{t['start']} .. {t['end']}"
        return f"SNAPSHOT taken {span} (from {t['how']})"

    def parts(self) -> List[Dict[str, object]]:
        """Each part of :data:`PARTS`: present (with size) or missing."""
        out = []
        for rel, what in PARTS:
            if rel.startswith("var/log/"):
                files = self.log_files(rel)
                out.append({"part": rel, "what": what, "present": bool(files),
                            "files": files})
                continue
            if rel == "sys/fs/cgroup":
                present = self.isdir(rel) and bool(self.listdir(rel))
                out.append({"part": rel, "what": what, "present": present})
                continue
            size = self.size(rel)
            out.append({"part": rel, "what": what, "present": bool(size),
                        "empty": size == 0})
        return out

    def missing(self) -> List[str]:
        """The parts of :data:`PARTS` the report lacks (or has empty)."""
        return [p["part"] + (" (empty)" if p.get("empty") else "")  # type: ignore[operator]
                for p in self.parts() if not p["present"]]

    def log_files(self, family: str) -> List[str]:
        """A syslog file and its rotations, oldest first (``kern.log.3.gz``,
        ``kern.log.2.gz``, ``kern.log.1``, ``kern.log``)."""
        d, base = posixpath.split(family)
        rotated: List[Tuple[int, str]] = []
        for n in self.listdir(d):
            if n == base:
                rotated.append((0, n))
            elif n.startswith(base + "."):
                num = n[len(base) + 1:].split(".")[0]
                if num.isdigit():
                    rotated.append((int(num), n))
                elif num[:8].isdigit():  # dateext: messages-20240101
                    rotated.append((int(num[:8]), n))
            elif n.startswith(base + "-") and n[len(base) + 1:][:8].isdigit():
                rotated.append((-int(n[len(base) + 1:][:8]), n))
        rotated.sort(key=lambda x: -x[0] if x[0] >= 0 else x[0])
        return [posixpath.join(d, n) for _, n in rotated if self.isfile(posixpath.join(d, n))]

    def journal_files(self) -> List[str]:
        """The journal as sos's logs plugin saves it (``add_journal()``, sos
        4.x): ``journalctl --no-pager`` (every boot) if present, else the last
        boot (``--boot -1``) then this boot (``--boot``), with ``--catalog``."""
        d = "sos_commands/logs"
        names = [n for n in self.listdir(d) if n.startswith("journalctl_--no-pager")
                 and self.isfile(f"{d}/{n}")]
        if "journalctl_--no-pager" in names:
            return [f"{d}/journalctl_--no-pager"]
        last = [n for n in names if n.endswith("--boot_-1")]
        this = [n for n in names if n.endswith("--boot")]
        return [f"{d}/{n}" for n in last + this]

    def kernel_log_sources(self) -> Tuple[List[str], List[str]]:
        """(files read as the kernel log, in order; notes on what was left out).

        The syslog family with the most history is used (kern.log, else
        messages, else syslog) -- they repeat one another's kernel lines;
        else the journal sos saved (:meth:`journal_files`);
        ``sos_commands/kernel/dmesg`` (the ring buffer when sos ran) only when
        there is neither, since they hold the same lines."""
        notes: List[str] = []
        dmesg = "sos_commands/kernel/dmesg"
        journal = self.journal_files()
        for fam in LOG_FAMILIES:
            files = self.log_files(fam)
            if files:
                others = [f for f in LOG_FAMILIES if f != fam and self.log_files(f)]
                others += journal + ([dmesg] if self.isfile(dmesg) else [])
                if others:
                    notes.append(f"{', '.join(others)}: not read, {fam} holds the same "
                                 "kernel lines")
                return files, notes
        if journal:
            if self.isfile(dmesg):
                notes.append(f"{dmesg}: not read, the journal holds the same kernel lines")
            return journal, notes
        if self.isfile(dmesg):
            return [dmesg], notes
        return [], notes

    def log_lines(self, files: Optional[List[str]] = None) -> Iterator[str]:
        """Decoded lines of ``files`` (default :meth:`kernel_log_sources`), one after another."""
        if files is None:
            files = self.kernel_log_sources()[0]
        for rel in files:
            f = self.open(rel)
            if f is None:
                continue
            try:
                # a "line" of binary garbage is cut at 1 MiB, not held whole
                for raw in iter(lambda: f.readline(1 << 20), b""):
                    yield raw.decode("utf-8", "replace").rstrip("\r\n")
            except _ARCHIVE_ERRORS as exc:
                self.problems.append(f"{rel}: stopped reading: {exc}")
            finally:
                f.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None


_MAGIC = ((b"\x1f\x8b", gzip.GzipFile), (b"\xfd7zXZ\x00", lzma.LZMAFile), (b"BZh", bz2.BZ2File))


def _decompressed(raw: IO[bytes], rel: str) -> IO[bytes]:
    """``raw``, decompressed where the member is a .gz/.xz/.bz2 (rotated logs)."""
    if not rel.endswith((".gz", ".xz", ".bz2")):
        return raw
    buf = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw  # type: ignore[arg-type]
    head = buf.peek(6)[:6]
    for magic, cls in _MAGIC:
        if head.startswith(magic):
            return cls(fileobj=buf)  # type: ignore[call-arg]
    return buf
