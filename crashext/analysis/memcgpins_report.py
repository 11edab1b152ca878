"""The report of memcgpins: its rows, the verdict of each memcg and the summary.

What :func:`.memcgpins.memcg_pins` read, put into words: a
:class:`PinnedMemcg` per memcg with what holds it in the order of
:data:`HELD_ORDER` and its verdict (:func:`set_verdict`), and the summary of
them all with its verdict line and the cure of each kind
(:func:`summarize`).  Nothing here reads the kernel.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..kernel.pages import PageArray
from ..kernel.swapcg import SwapOwners
from ..kernel.target import Target
from .memcg import Memcg
from .memcgpins_pass import PassResult
from .memcgpins_rules import CURES

__all__ = ["HELD_ORDER", "PAGE_KINDS", "MemcgRow", "PinnedMemcg", "PinsReport", "Read",
           "set_verdict", "summarize"]

#: the order a verdict names what holds a memcg (and how a memcg is counted
#: in the summary: by the first that holds it)
HELD_ORDER = ("file", "shmem", "anon", "swap", "kmem", "slab", "children", "writeback", "refs")
PAGE_KINDS = ("file", "shmem", "anon", "kmem", "slab")


class MemcgRow:
    """What memcgpins keeps of a memcg's row (:class:`~.memcg.Memcg`): its
    identity, state and reference count, in slots (15,000 dying memcgs
    kept as whole rows would be 10 MiB)."""

    __slots__ = ("address", "path", "state", "cgroup_id", "memcg_id", "css_id",
                 "kmemcg_id", "refcount", "ref_mode", "kmem_flags")

    def __init__(self, m: Memcg) -> None:
        self.address = m.address
        self.path = m.path
        self.state = m.state
        self.cgroup_id = m.cgroup_id
        self.memcg_id = m.memcg_id
        self.css_id = m.css_id
        self.kmemcg_id = m.kmemcg_id
        self.refcount = m.refcount
        self.ref_mode = m.ref_mode
        self.kmem_flags = m.kmem_flags


class PinnedMemcg:
    """One memcg and what holds it: ``pages`` and ``folios`` by kind,
    ``swap`` slots, ``children`` linked, ``files`` named ({"path", "ino",
    ...}) and ``nr_files`` by kind, ``refs`` (the reference count against
    what accounts for it), ``caches`` (v3.10: the memcg's own copies of
    slab caches, {"cache", "pages", "dead"}), ``held_by`` (kinds, in the
    verdict's order) and the ``verdict``.  A class with slots, one per
    memcg: 15,000 dying memcgs are made in a few milliseconds."""

    __slots__ = ("memcg", "pages", "folios", "swap", "children", "files", "nr_files",
                 "refs", "caches", "held_by", "verdict")

    def __init__(self, memcg: MemcgRow) -> None:
        self.memcg = memcg
        self.pages: Dict[str, int] = {}
        self.folios: Dict[str, int] = {}
        self.swap = 0
        self.children = 0
        self.files: List[Dict[str, Any]] = []
        self.nr_files: Dict[str, int] = {}
        self.refs: Dict[str, Optional[int]] = {}
        self.caches: List[Dict[str, Any]] = []
        self.held_by: List[str] = []
        self.verdict = ""

    @property
    def slab_pages(self) -> int:
        """Slab pages: of its own caches (v3.10, their nr_pages) or counted."""
        if self.caches:
            return sum(c["pages"] for c in self.caches) or self.pages.get("slab", 0)
        return self.pages.get("slab", 0)

    def to_json(self) -> Dict[str, Any]:
        m = self.memcg
        return {"address": f"{m.address:#x}", "path": m.path, "state": m.state,
                "cgroup_id": m.cgroup_id, "memcg_id": m.memcg_id, "css_id": m.css_id,
                "pages": {k: self.pages.get(k, 0) for k in PAGE_KINDS},
                "folios": {k: self.folios.get(k, 0) for k in PAGE_KINDS},
                "swap": self.swap, "children": self.children,
                "refs": self.refs, "files": self.files, "nr_files": self.nr_files,
                "caches": self.caches, "held_by": self.held_by, "verdict": self.verdict}


@dataclass
class PinsReport:
    summary: Dict[str, Any]
    memcgs: List[PinnedMemcg]

    def to_json(self, memcgs: Any = None) -> Dict[str, Any]:
        """The report as JSON.  ``memcgs``: what stands for the memcgs' rows
        (a front end passes rows made as they are written, from
        :meth:`PinnedMemcg.to_json`); by default the list of them."""
        if memcgs is None:
            memcgs = [m.to_json() for m in self.memcgs]
        return {"summary": self.summary, "cures": dict(CURES), "memcgs": memcgs}


# -- the verdict of each memcg ------------------------------------------------------

_HELD_RANK = {k: i for i, k in enumerate(HELD_ORDER)}


def _held(p: PinnedMemcg, gen) -> Dict[str, int]:
    """What holds ``p``, kind -> how much (memory: pages and swap slots,
    largest first; then children, writeback contexts, references)."""
    pages = p.pages
    memory = [(k, pages[k]) for k in ("file", "shmem", "anon", "kmem") if pages.get(k)]
    if p.swap:
        memory.append(("swap", p.swap))
    slab = p.slab_pages
    if slab:
        memory.append(("slab", slab))
    if len(memory) > 1:
        memory.sort(key=lambda kv: (-kv[1], _HELD_RANK[kv[0]]))
    out = dict(memory)
    if p.children:
        out["children"] = p.children
    refs = p.refs
    wb = refs.get("writeback")
    if wb:
        out["writeback"] = wb
    left = refs.get("unexplained")
    if left is not None and left > 0:
        out["refs"] = left
    return out


def set_verdict(p: PinnedMemcg, gen, partial: bool = False) -> None:
    """What holds ``p`` (its ``held_by``) and its ``verdict``; ``partial``:
    some struct pages or memcg words could not be read."""
    held = _held(p, gen)
    p.held_by = list(held)
    parts = [_phrase(k, v, p, partial) for k, v in held.items()]
    if p.memcg.state != "dying":
        p.verdict = "online" + (": " + "; ".join(parts) if parts else "")
    elif not parts:
        p.verdict = "nothing counted holds it: being freed"
    else:
        p.verdict = "held by " + "; ".join(parts)


def _pl(word: str, k: int) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def _of_files(p: PinnedMemcg, kind: str) -> str:
    """`` of 2 files, e.g. /data/x``"""
    nf = p.nr_files.get(kind, 0)
    for f in p.files:
        if f.get("kind") == kind:
            return f" of {_pl('file', nf)}, e.g. {f['path'] or 'inode ' + str(f['ino'])}"
    return f" of {_pl('file', nf)}"


def _phrase(kind: str, n: int, p: PinnedMemcg, partial: bool = False) -> str:
    pl = _pl
    if kind == "file":
        return pl("page-cache page", n) + _of_files(p, "file")
    if kind == "shmem":
        return pl("tmpfs/shmem page", n) + _of_files(p, "shmem")
    if kind == "anon":
        return pl("anonymous page", n)
    if kind == "swap":
        return pl("swapped-out page", n)
    if kind == "kmem":
        return pl("kernel page", n) + " charged with __GFP_ACCOUNT"
    if kind == "slab":
        return pl("slab page", n) + " of its own kmem caches"
    if kind == "children":
        return pl("child cgroup", n) + " still linked"
    if kind == "writeback":
        return pl("writeback context", n) + " of its files' inodes not yet released"
    if partial:
        return pl("reference", n) + " no page read accounts for (struct pages that could " \
            "not be read hold some; else a leak)"
    return pl("reference", n) + " no page accounts for (leak candidate)"


# -- the summary -------------------------------------------------------------------

@dataclass
class Read:
    """What was read besides the memcgs' rows: the summary's inputs."""

    pa: PageArray
    res: PassResult
    swap: SwapOwners
    walk: Dict[str, Any]
    warnings: List[str]
    via_objcg: int


def summarize(t: Target, gen_key: str, gen, rows: List[PinnedMemcg],
             read: Read) -> Dict[str, Any]:
    """The summary of the memcgs ``rows``: how many dying, what holds how
    many of them (by the first kind each is held by), pages by kind, the
    files holding most, the cures, and what was read and could not be."""
    pa, res, swap, walk, warnings = read.pa, read.res, read.swap, read.walk, read.warnings
    dying = [p for p in rows if p.memcg.state == "dying"]
    held: Dict[str, int] = {k: 0 for k in HELD_ORDER}
    free = 0
    for p in dying:
        if p.held_by:
            held[p.held_by[0]] += 1
        else:
            free += 1
    totals = dict.fromkeys(PAGE_KINDS, 0)
    for p in dying:
        for k, n in p.pages.items():
            totals[k] += n
    totals["swap"] = sum(p.swap for p in dying)
    # mapping -> [pages, memcgs, first description]; dicts only for the top 10
    files: Dict[str, List[Any]] = {}
    for p in dying:
        for f in p.files:
            g = files.get(f["mapping"])
            if g is None:
                files[f["mapping"]] = [f["pages"], 1, f]
            else:
                g[0] += f["pages"]
                g[1] += 1
    top_files = [dict(g[2], pages=g[0], memcgs=g[1])
                 for g in sorted(files.values(), key=lambda g: -g[0])[:10]]
    if pa.unreadable:
        warnings.insert(0, f"{pa.unreadable} of {pa.nr_pages} struct pages could not be read "
                           f"(the dump lacks them): pages they describe are not counted, so "
                           f"counts are lower bounds")
    verdict = _verdict_line(len(dying), held, free, dying)
    return {
        "release": t.release,
        "generation": {"key": gen_key, "releases": gen.releases, "record": gen.record,
                       "pins": dict(gen.pins), "refs_per": gen.refs_per,
                       "swap_id": gen.swap_id, "slab": gen.slab},
        "verdict": verdict,
        "memcgs": walk.get("total"),
        "dying": len(dying),
        "held_by": held,
        "being_freed": free,
        "pages": totals,
        "top_files": top_files,
        "cures": {k: CURES[k] for k in HELD_ORDER if k in CURES and held.get(k)},
        "page_array": {"model": pa.model, "pages": pa.nr_pages, "scanned": res.scanned,
                       "unreadable": pa.unreadable,
                       "unreadable_ranges": [[f"{a:#x}", f"{b:#x}"]
                                             for a, b in pa.unreadable_ranges],
                       "struct_page_bytes": pa.struct_size},
        "slab_pages_with_object_vectors": res.slab_vectors,
        "pages_charged_through_obj_cgroup": read.via_objcg,
        "swap": {"source": swap.source, "devices": swap.devices, "slots": swap.total,
                 "unreadable_pages": swap.unreadable_pages},
        "walk_problem": walk.get("walk_problem"),
        "live": t.is_live,
        "warnings": warnings,
    }


def _verdict_line(n: int, held: Dict[str, int], free: int, dying: List[PinnedMemcg]) -> str:
    """``7 dying memcgs: 2 by page cache (3 files on /mnt/disk (ext4)), ...``"""
    if not n:
        return "no dying memcgs"
    words = {"file": "page cache", "shmem": "tmpfs/shmem", "anon": "anonymous memory",
             "swap": "swap", "kmem": "kernel pages", "slab": "slab caches",
             "children": "dying children only", "writeback": "writeback contexts",
             "refs": "unexplained references"}
    parts = []
    for k in HELD_ORDER:
        c = held.get(k, 0)
        if not c:
            continue
        extra = ""
        if k in ("file", "shmem"):
            files = {f["mapping"]: f for p in dying if p.held_by and p.held_by[0] == k
                     for f in p.files if f.get("kind") == k}
            extra = f" ({_files_where(list(files.values()))})"
        parts.append(f"{c:,} by {words[k]}{extra}")
    if free:
        parts.append(f"{free:,} held by nothing counted (being freed)")
    return f"{n:,} dying memcg{'s' if n != 1 else ''}: " + ", ".join(parts)


def _files_where(files: List[Dict[str, Any]]) -> str:
    """``3 files on /mnt/disk (ext4)``: how many, and on which filesystems
    (the two that hold most of them)."""
    nf = len(files)
    where: Dict[str, int] = {}
    for f in files:
        if f.get("fstype") == "bdev":  # a block device's own page cache
            key = (f.get("path") or "block device").strip("()")
        elif f.get("fstype"):
            key = f"{f.get('mount') or f.get('sb_id') or '?'} ({f['fstype']})"
        else:
            continue
        where[key] = where.get(key, 0) + 1
    top = sorted(where.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    text = f"{nf:,} file{'s' if nf != 1 else ''}"
    if top:
        text += " on " + ", ".join(k for k, _c in top)
        if len(where) > 2:
            text += ", ..."
    return text
