"""What cgroupfs alone tells about memory cgroups: no debug info, no root.

:func:`read_cgroupfs` walks a mounted cgroup file system (or a copy of one)
and returns every visible cgroup of the memory hierarchy with its usage and,
on cgroup v2, the ``cgroup.stat`` counts of live and dying descendants; from
``/proc/cgroups`` it takes ``num_cgroups`` of the memory controller and
compares it with the 65535-id ceiling of memory cgroups.

Kernel facts used (file and version named where each comes from):

- ``MEM_CGROUP_ID_MAX`` is ``USHRT_MAX`` (include/linux/memcontrol.h, v4.6
  through 6.x; mm/memcontrol.c before): ``mem_cgroup_alloc`` takes an id from
  ``mem_cgroup_idr`` in ``[1, MEM_CGROUP_ID_MAX]`` and ``mkdir`` fails with
  ENOSPC when none is left.  On 3.10 (RHEL7) the memory controller's css ids
  have the same ceiling (``CSS_ID_MAX`` 65535, kernel/cgroup.c v3.10).
- Who holds an id: since Linux kernel commit 73f576c04b94 ("mm: memcontrol:
  fix cgroup creation failure after many small jobs") (in v4.8 as read here;
  the knowledge base's memcg-id-exhaustion entry says 4.7: not confirmed) the
  id is released at offline unless swap entries pin it; before, and on
  RHEL7, a dying memcg keeps its id until it is freed, so leaked dying
  memcgs exhaust the ids.
- ``num_cgroups`` in ``/proc/cgroups`` is ``root->nr_cgrps`` of the
  controller's hierarchy (kernel/cgroup/cgroup-v1.c ``proc_cgroupstats_show``,
  v4.x-6.x), decremented only when a cgroup is freed
  (``css_free_rwork_fn``): it counts dying cgroups too, and on v2 every
  cgroup of the unified hierarchy, with or without the memory controller.
  It is therefore an upper bound of the memcgs alive (online + dying).  On
  3.10 ``number_of_cgroups`` drops in ``cgroup_free_fn`` (kernel/cgroup.c
  v3.10), while a memcg still charged with pages outlives its cgroup
  (``mem_cgroup_put`` -> ``__mem_cgroup_free``, mm/memcontrol.c v3.10): there
  dying memcgs are not in the count.
- ``cgroup.stat`` (v2 only, since Linux kernel commit ec39225cca42 ("cgroup:
  add cgroup.stat interface with basic hierarchy stats") (in v4.14)):
  ``nr_descendants`` and ``nr_dying_descendants`` of the whole subtree.  A dying cgroup has no
  directory, so its count shows in the nearest visible ancestor; the
  difference between a cgroup's count and the sum of its visible children's
  (``dying_here``) says where the dying ones were removed from.
- Usage: v2 ``memory.current`` (not in the root before v5.x kernels give it),
  v1 ``memory.usage_in_bytes`` and ``memory.kmem.usage_in_bytes``.

The tree changes while it is read on a live host: a directory that vanishes
during the walk is counted in ``vanished`` and skipped, not an error.
"""

import errno
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputError

__all__ = ["CgroupDir", "CgroupfsReport", "read_cgroupfs", "read_dir", "find_memory_root",
           "parse_proc_cgroups", "proc_cgroups_report", "MEM_CGROUP_ID_MAX"]

#: include/linux/memcontrol.h (v4.6-6.x): ``#define MEM_CGROUP_ID_MAX USHRT_MAX``
MEM_CGROUP_ID_MAX = 65535

#: most directories one walk visits (a leaking host has tens of thousands)
DIR_LIMIT = 1 << 20


@dataclass
class CgroupDir:
    """One visible cgroup directory of the memory hierarchy."""

    path: str
    ino: Optional[int] = None
    depth: int = 0
    memory_current: Optional[int] = None
    kmem_usage: Optional[int] = None
    populated: Optional[bool] = None
    nr_descendants: Optional[int] = None
    nr_dying_descendants: Optional[int] = None
    dying_here: Optional[int] = None
    errors: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        return {"path": self.path, "ino": self.ino, "depth": self.depth,
                "memory_current": self.memory_current, "kmem_usage": self.kmem_usage,
                "populated": self.populated, "nr_descendants": self.nr_descendants,
                "nr_dying_descendants": self.nr_dying_descendants,
                "dying_here": self.dying_here, "errors": self.errors}


@dataclass
class CgroupfsReport:
    summary: Dict[str, Any]
    cgroups: List[CgroupDir]

    def to_json(self) -> Dict[str, Any]:
        return {"summary": self.summary, "cgroups": [c.to_json() for c in self.cgroups]}


def _why(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


class LocalFs:
    """The files :func:`read_cgroupfs` reads, from the local file system.

    A saved copy (anything outside ``/sys``) is a snapshot: its inode numbers
    are the copy's, not cgroup ids, so :meth:`ino` gives None there.
    ``crashext.sources.sosviews.SosCgroupFs`` is the same interface over a
    sosreport directory or archive."""

    def __init__(self, path: str) -> None:
        real = os.path.realpath(path)
        self.live = real == "/sys" or real.startswith("/sys/")
        self.newest: Optional[float] = None   # newest file time read (snapshots)

    def exists(self, p: str) -> bool:
        return os.path.exists(p)

    def isdir(self, p: str) -> bool:
        return os.path.isdir(p)

    def isfile(self, p: str) -> bool:
        return os.path.isfile(p)

    def readable(self, p: str) -> bool:
        return os.access(p, os.R_OK | os.X_OK)

    def read(self, p: str) -> Optional[str]:
        """File text; None if the file does not exist; _Gone if its directory went."""
        text = _read(p)
        if text is not None and not self.live:
            try:
                t = os.stat(p).st_mtime
                self.newest = t if self.newest is None else max(self.newest, t)
            except OSError:
                pass
        return text

    def ino(self, p: str) -> Optional[int]:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise _Gone()
        return st.st_ino if self.live else None

    def subdirs(self, p: str) -> List[str]:
        with os.scandir(p) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)


def find_memory_root(path: str, fs=None) -> Dict[str, str]:
    """``{"root": dir, "hierarchy": "v1" | "v2"}`` for the memory cgroups under ``path``.

    Accepts a cgroup2 mount, a v1 memory hierarchy, or the tmpfs at
    /sys/fs/cgroup holding v1 hierarchies (hybrid layouts use its
    ``memory/``).  InputError, one line, for anything else.
    """
    fs = fs or LocalFs(path)
    if not fs.exists(path):
        raise InputError(f"{path}: no such directory")
    if not fs.isdir(path):
        raise InputError(f"{path}: not a directory (give the cgroup mount, e.g. /sys/fs/cgroup)")
    if not fs.readable(path):
        raise InputError(f"{path}: permission denied")
    if fs.isfile(fs.join(path, "memory.usage_in_bytes")):
        return {"root": path, "hierarchy": "v1"}
    for sub in ("memory", "memory,cpuacct", "cpuacct,memory"):
        cand = fs.join(path, sub)
        if fs.isfile(fs.join(cand, "memory.usage_in_bytes")):
            return {"root": cand, "hierarchy": "v1"}
    if fs.isfile(fs.join(path, "cgroup.controllers")):
        return {"root": path, "hierarchy": "v2"}
    raise InputError(f"{path}: not a cgroup file system with the memory controller "
                     "(no memory.usage_in_bytes, memory/ or cgroup.controllers)")


def parse_proc_cgroups(text: str, what: str = "/proc/cgroups") -> Dict[str, Dict[str, int]]:
    """``{controller: {"hierarchy", "num_cgroups", "enabled"}}``."""
    out: Dict[str, Dict[str, int]] = {}
    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip() or ln.startswith("#"):
            continue
        parts = ln.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
            raise InputError(f"{what}: line {i} is not 'name hierarchy num_cgroups enabled': "
                             f"{ln.strip()[:80]!r}")
        out[parts[0]] = {"hierarchy": int(parts[1]), "num_cgroups": int(parts[2]),
                         "enabled": int(parts[3])}
    return out


class _Gone(Exception):
    """The cgroup directory vanished while it was read."""


def _read(path: str) -> Optional[str]:
    """File text; None if the file does not exist; _Gone if its directory went."""
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(path)):
            raise _Gone()
        return None
    except OSError as exc:
        if exc.errno == errno.ENODEV:  # file of a directory being removed
            raise _Gone()
        raise


def _text_file(d: CgroupDir, path: str, fs=None) -> Optional[str]:
    """The file's text; None (with the reason in ``d.errors``) if unreadable."""
    try:
        return fs.read(path) if fs is not None else _read(path)
    except _Gone:
        raise
    except OSError as exc:
        d.errors.append(f"{os.path.basename(path)}: {_why(exc)}")
        return None


def _int_file(d: CgroupDir, path: str, fs=None) -> Optional[int]:
    text = _text_file(d, path, fs)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        d.errors.append(f"{os.path.basename(path)}: not a number: {text.strip()[:40]!r}")
        return None


def _kv_file(d: CgroupDir, path: str, fs=None) -> Optional[Dict[str, str]]:
    text = _text_file(d, path, fs)
    if text is None:
        return None
    out = {}
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def _opt_int(kv: Optional[Dict[str, str]], key: str) -> Optional[int]:
    if kv is None or key not in kv:
        return None
    try:
        return int(kv[key])
    except ValueError:
        return None


def read_dir(root: str, rel: str, hierarchy: str, fs: "LocalFs") -> CgroupDir:
    full = root if rel == "/" else root + rel
    d = CgroupDir(path=rel, depth=0 if rel == "/" else rel.count("/"))
    try:
        d.ino = fs.ino(full)
    except _Gone:
        raise
    except OSError as exc:
        d.errors.append(f"stat: {_why(exc)}")
    j = fs.join
    if hierarchy == "v2":
        d.memory_current = _int_file(d, j(full, "memory.current"), fs)
        stat = _kv_file(d, j(full, "cgroup.stat"), fs)
        d.nr_descendants = _opt_int(stat, "nr_descendants")
        d.nr_dying_descendants = _opt_int(stat, "nr_dying_descendants")
        events = _kv_file(d, j(full, "cgroup.events"), fs)
        pop = _opt_int(events, "populated")
        d.populated = None if pop is None else bool(pop)
    else:
        d.memory_current = _int_file(d, j(full, "memory.usage_in_bytes"), fs)
        d.kmem_usage = _int_file(d, j(full, "memory.kmem.usage_in_bytes"), fs)
    return d


def _walk(root: str, hierarchy: str, limit: int, fs: "LocalFs"):
    """Pre-order (sorted) cgroup dirs; (dirs, vanished, problem)."""
    out: List[CgroupDir] = []
    vanished = 0
    problem = None
    stack = ["/"]
    while stack:
        rel = stack.pop()
        if len(out) >= limit:
            problem = f"stopped after {limit} cgroups"
            break
        full = root if rel == "/" else root + rel
        try:
            d = read_dir(root, rel, hierarchy, fs=fs)
        except _Gone:
            vanished += 1
            continue
        try:
            kids = fs.subdirs(full)
        except FileNotFoundError:
            vanished += 1
            continue
        except OSError as exc:
            d.errors.append(f"cannot list the directory: {_why(exc)}")
            kids = []
        out.append(d)
        base = "" if rel == "/" else rel
        stack.extend(base + "/" + k for k in reversed(kids))
    return out, vanished, problem


def _dying_here(dirs: List[CgroupDir]) -> None:
    child_sum: Dict[str, int] = {}
    for d in dirs:
        if d.path == "/" or d.nr_dying_descendants is None:
            continue
        parent = d.path.rsplit("/", 1)[0] or "/"
        child_sum[parent] = child_sum.get(parent, 0) + d.nr_dying_descendants
    for d in dirs:
        if d.nr_dying_descendants is not None:
            d.dying_here = d.nr_dying_descendants - child_sum.get(d.path, 0)


def _release(proc: Optional[str]) -> Optional[str]:
    if not proc:
        return None
    for name in ("sys/kernel/osrelease",):
        try:
            with open(os.path.join(proc, name)) as f:
                return f.read().strip() or None
        except OSError:
            continue
    return None


def read_cgroupfs(path: str, proc: Optional[str] = "/proc", limit: int = DIR_LIMIT,
                  warn=None, fs=None, proc_cgroups: Optional[str] = None,
                  release: Optional[str] = None,
                  snapshot: Optional[Dict[str, Any]] = None) -> CgroupfsReport:
    """Every visible memory cgroup under ``path`` and what cgroupfs says of them.

    ``proc`` is where ``cgroups`` (and ``sys/kernel/osrelease``) are read,
    None to skip; ``warn(message)`` receives one line per unreadable file.
    ``fs`` reads the files (default :class:`LocalFs`; a sosreport passes its
    own, with ``proc_cgroups`` text, ``release`` and ``snapshot``, when it
    was taken).  A tree that is not the live ``/sys`` is a snapshot: its
    summary says when it was saved (the newest file time read), never
    "read now".
    """
    fs = fs or LocalFs(path)
    found = find_memory_root(path, fs)
    root, hierarchy = found["root"].rstrip("/") or "/", found["hierarchy"]
    t0 = time.time()
    dirs, vanished, problem = _walk(root, hierarchy, limit, fs)
    if not dirs:
        raise InputError(f"{root}: the cgroup root vanished or cannot be read")
    if hierarchy == "v2":
        ctrls = _read_root_controllers(root, fs)
        if ctrls is not None and "memory" not in ctrls:
            raise InputError(f"{root}: the memory controller is not on this cgroup2 hierarchy "
                             "(a hybrid host mounts it as v1: give the directory holding memory/)")
        _dying_here(dirs)
    errors: List[str] = []
    for d in dirs:
        for e in d.errors:
            errors.append(f"{root if d.path == '/' else root + d.path}: {e}")
    proc_cg = _proc_cgroups(proc_cgroups, proc, errors)
    mem = (proc_cg or {}).get("memory")
    num = mem["num_cgroups"] if mem else None
    visible = len(dirs)
    top = dirs[0]
    dying, dying_how = _dying(hierarchy, top, num, visible, release or _release(proc))
    num_how = "/proc/cgroups memory num_cgroups" if num is not None else None
    if num is None and proc_cg is not None and hierarchy == "v2" and dying is not None:
        # Since Linux kernel commit af000ce85293 ("cgroup: Do not report
        # unavailable v1 controllers in /proc/cgroups") (in v6.12), a memory
        # controller built without CONFIG_MEMCG_V1 has no line there (Debian's
        # 7.3; its 6.12.118 still lists one, cgroup_v1_proc=1 brings it back).
        # On v2 the hierarchy's nr_cgrps it printed is every cgroup not yet
        # freed: the visible ones and the root's nr_dying_descendants.
        num = visible + dying
        num_how = "memcgs (visible + dying, no memory line in /proc/cgroups)"
    if warn is not None:
        for e in errors:
            warn(e)
    live = bool(getattr(fs, "live", False))
    if snapshot is None and not live:
        snapshot = _saved_when(fs)
    summary = {
        "root": root,
        "hierarchy": hierarchy,
        "release": release or _release(proc),
        "live": live,
        "snapshot": None if live else snapshot,
        "read_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
        "read_seconds": round(time.time() - t0, 3),
        "visible": visible,
        "dying": dying,
        "dying_source": dying_how,
        "memory_current": top.memory_current,
        "num_cgroups": num,
        "num_cgroups_source": num_how,
        "memory_enabled": None if mem is None else bool(mem["enabled"]),
        "id_limit": MEM_CGROUP_ID_MAX,
        "id_use_percent": None if num is None else round(100.0 * num / MEM_CGROUP_ID_MAX, 2),
        "vanished": vanished,
        "walk_problem": problem,
        "errors": errors,
    }
    return CgroupfsReport(summary=summary, cgroups=dirs)


def _proc_cgroups(text: Optional[str], proc: Optional[str],
                  errors: List[str]) -> Optional[Dict[str, Dict[str, int]]]:
    """/proc/cgroups: the ``text`` given, else read from ``proc`` (None: not
    read); a file that cannot be read is one line in ``errors``."""
    if text is not None:
        return parse_proc_cgroups(text, "proc/cgroups")
    if not proc:
        return None
    pc_path = os.path.join(proc, "cgroups")
    try:
        with open(pc_path) as f:
            return parse_proc_cgroups(f.read(), pc_path)
    except FileNotFoundError:
        errors.append(f"{pc_path}: no such file (kernel without cgroups, or not a /proc)")
    except OSError as exc:
        errors.append(f"{pc_path}: {_why(exc)}")
    return None


def _dying(hierarchy: str, top: CgroupDir, num: Optional[int], visible: int,
           release: Optional[str]) -> Tuple[Optional[int], Optional[str]]:
    """The dying memcgs of the hierarchy and how that is known."""
    if hierarchy == "v2":
        dying = top.nr_dying_descendants
        return dying, ("cgroup.stat nr_dying_descendants of the root" if dying is not None
                       else None)
    if num is None:
        return None, None
    # v1: the memory hierarchy's nr_cgrps counts the dying until freed
    dying_how = "/proc/cgroups num_cgroups minus visible directories"
    if release and release.startswith(("2.", "3.")):
        # kernel/cgroup.c v3.10 cgroup_free_fn: the count drops when the
        # cgroup is freed, but a charged memcg outlives its cgroup
        dying_how += " (3.x: memcgs still charged after their cgroup was freed are not counted)"
    return max(0, num - visible), dying_how


def _saved_when(fs) -> Dict[str, Any]:
    """When a saved copy was taken, as far as its file times tell."""
    newest = getattr(fs, "newest", None)
    return {"start": None, "end": None if newest is None else
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(newest)),
            "how": "newest modification time of the files read (a saved copy)"
            if newest is not None else "unknown (a saved copy without file times)"}


def proc_cgroups_report(text: str, what: str, root: str, missing: Optional[str],
                        release: Optional[str] = None,
                        snapshot: Optional[Dict[str, Any]] = None) -> CgroupfsReport:
    """What /proc/cgroups alone tells (``text``, read from ``what``) when the
    cgroup tree is not there (``missing`` says why, None when none was
    asked for): the memory controller's num_cgroups against the id limit,
    and no per-cgroup rows.  The fields of the tree (visible cgroups, dying,
    usage) are None."""
    mem = parse_proc_cgroups(text, what).get("memory")
    num = mem["num_cgroups"] if mem else None
    errors = [missing] if missing else []
    if mem is None:
        errors.append(f"{what}: no memory controller line")
    summary = {
        "root": root, "hierarchy": None, "release": release, "live": False,
        "snapshot": snapshot, "read_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "read_seconds": 0.0, "visible": None, "dying": None, "dying_source": None,
        "memory_current": None, "num_cgroups": num,
        "num_cgroups_source": "/proc/cgroups memory num_cgroups" if num is not None else None,
        "memory_enabled": None if mem is None else bool(mem["enabled"]),
        "id_limit": MEM_CGROUP_ID_MAX,
        "id_use_percent": None if num is None else round(100.0 * num / MEM_CGROUP_ID_MAX, 2),
        "vanished": 0, "walk_problem": None, "errors": errors, "tree_missing": missing,
    }
    return CgroupfsReport(summary=summary, cgroups=[])


def _read_root_controllers(root: str, fs: "LocalFs") -> Optional[List[str]]:
    try:
        text = fs.read(fs.join(root, "cgroup.controllers"))
    except (OSError, _Gone):
        return None
    return None if text is None else text.split()
