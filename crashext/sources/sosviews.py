"""A sosreport's ``proc/`` and ``sys/fs/cgroup`` as the /proc and cgroupfs
readers take them (:mod:`crashext.sources.procfs`, :mod:`crashext.sources.cgroupfs`).

:mod:`crashext.sources.sosreport` reads the report, directory or archive, in
place; this module only presents its parts through the interfaces those
readers already have, so a live system, a saved copy and a sosreport are
read by the same code.
"""

import posixpath
from typing import TYPE_CHECKING, List, Optional

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .sosreport import SosReport

__all__ = ["SosProcDir", "SosCgroupFs", "read_cgroups"]


class SosProcDir:
    """A sosreport's ``proc/`` as :class:`crashext.sources.procfs.ProcDir`
    presents it (``path``, ``live``, ``read``, ``release``, ``version``)."""

    def __init__(self, sos: "SosReport") -> None:
        self.sos = sos
        self.path = f"{sos.path}:proc"
        self.live = False

    def read(self, name: str) -> Optional[str]:
        text = self.sos.read("proc/" + name)
        return text if text and text.strip() else None

    def release(self) -> Optional[str]:
        return self.sos.release()

    def version(self) -> Optional[str]:
        """``uname -v``: what ``uname -a`` prints after the release."""
        for rel in ("sos_commands/kernel/uname_-a", "uname"):
            words = (self.sos.read(rel) or "").split()
            if len(words) > 3 and words[0] == "Linux":
                return " ".join(words[3:])
        text = self.sos.read("proc/sys/kernel/version")
        return text.strip() or None if text else None


class SosCgroupFs:
    """A sosreport's ``sys/fs/cgroup`` for :func:`crashext.sources.cgroupfs.read_cgroupfs`
    (the interface of :class:`crashext.sources.cgroupfs.LocalFs`).  Inode
    numbers are not in a report: cgroup ids are unknown (None)."""

    live = False
    newest = None

    def __init__(self, sos: "SosReport") -> None:
        self.sos = sos

    def exists(self, p: str) -> bool:
        return self.sos.isdir(p) or self.sos.isfile(p)

    def isdir(self, p: str) -> bool:
        return self.sos.isdir(p)

    def isfile(self, p: str) -> bool:
        return self.sos.isfile(p)

    def readable(self, p: str) -> bool:
        return True

    def read(self, p: str) -> Optional[str]:
        return self.sos.read(p)

    def ino(self, p: str) -> Optional[int]:
        return None

    def subdirs(self, p: str) -> List[str]:
        return [n for n in self.sos.listdir(p) if self.sos.isdir(posixpath.join(p, n))]

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)


def read_cgroups(sos: "SosReport", warn=None):
    """:func:`crashext.sources.cgroupfs.read_cgroupfs` of the report's
    ``sys/fs/cgroup`` with its ``proc/cgroups``.  A report without the tree
    (sos collects sys/fs/cgroup only in some versions and with some
    plugins) gives what its ``proc/cgroups`` tells, and says the per-cgroup
    detail is missing; InputError if it has neither."""
    from . import cgroupfs
    pc = sos.read("proc/cgroups")
    if not sos.isdir("sys/fs/cgroup") or not sos.listdir("sys/fs/cgroup"):
        why = ("sys/fs/cgroup: not in this sosreport (the cgroups plugin did not run or did "
               "not collect it, or found no cgroup file system)")
        if not pc or not pc.strip():
            raise InputError(f"{sos.path}: no sys/fs/cgroup and no proc/cgroups in this "
                             "sosreport (the cgroups plugin did not run, or found no cgroup "
                             "file system)")
        rep = cgroupfs.proc_cgroups_report(pc, "proc/cgroups", sos.path,
                                           why + ": per-cgroup detail is missing",
                                           release=sos.release(), snapshot=dict(sos.taken))
        if warn is not None:
            warn(rep.summary["errors"][0])
        return rep
    rep = cgroupfs.read_cgroupfs("sys/fs/cgroup", proc=None, warn=warn, fs=SosCgroupFs(sos),
                                 proc_cgroups=pc if pc and pc.strip() else None,
                                 release=sos.release(), snapshot=dict(sos.taken))
    rep.summary["root"] = f"{sos.path}:{rep.summary['root']}"
    if not pc or not pc.strip():
        rep.summary["errors"].append("proc/cgroups: missing from the sosreport")
    return rep
