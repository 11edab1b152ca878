"""What keeps each dying memory cgroup alive.

:func:`memcg_pins` finds every memcg (the memcg walk of :mod:`.memcg`),
counts the memory still charged to each by kind in one pass over the page
array (:mod:`.memcgpins_pass`), adds the swapped-out pages its swap owner
records name (:mod:`crashext.kernel.swapcg`), names the files behind its
page cache (:mod:`crashext.kernel.vfs`), and sets the references these
account for against the memcg's reference count: what is left is a leak
candidate.  Which kinds can pin a dying memcg on this kernel, and what cures
each, is the table of :mod:`.memcgpins_rules`; the rows, verdicts and
summary it makes of what was read are :mod:`.memcgpins_report`'s.
"""

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from ..errors import CrashextError, MissingSymbolError, ReadError, TargetError
from ..kernel.pages import PageArray
from ..kernel.swapcg import SwapOwners, swap_owners
from ..kernel.target import Target
from ..kernel.vfs import FileNamer
from ..kernel.walk import BlockCache, walk_list
from .memcg import Memcg, memcg_scan
from .memcgpins_pass import PageLayout, PassResult, page_pass
from .memcgpins_report import (HELD_ORDER, MemcgRow, PinnedMemcg, PinsReport, Read,
                               set_verdict, summarize)
from .memcgpins_rules import generation

__all__ = ["MemcgRow", "PinnedMemcg", "PinsReport", "WalkKeeper", "Walked", "memcg_pins", "memcg_walk",
           "HELD_ORDER", "TOP_FILES"]

#: files named per memcg unless asked otherwise (the command's ``--top``;
#: the summary's files holding most memcgs are gathered from them)
TOP_FILES = 5


# -- the pass and its keys -------------------------------------------------------

class _Keys:
    """What a memcg word points to: a memcg itself, or an obj_cgroup whose
    ``memcg`` (the memcg it is charged to now) is followed."""

    def __init__(self, t: Target, memcgs: Set[int]) -> None:
        self.t = t
        self.memcgs = memcgs
        self.objcg_off: Optional[int] = None
        if t.has_member("struct obj_cgroup", "memcg"):
            self.objcg_off = t.member_offset("struct obj_cgroup", "memcg")
        #: key -> (memcg address or None, "memcg" | "objcg" | "unknown")
        self.cache: Dict[int, Tuple[Optional[int], str]] = {}

    def resolve(self, key: int) -> Tuple[Optional[int], str]:
        got = self.cache.get(key)
        if got is None:
            got = self._resolve(key)
            self.cache[key] = got
        return got

    def _resolve(self, key: int) -> Tuple[Optional[int], str]:
        if key in self.memcgs:
            return key, "memcg"
        if self.objcg_off is not None:
            try:
                m = self.t.read_pointer(key + self.objcg_off)
            except ReadError:
                return None, "unknown"
            if m in self.memcgs:
                return m, "objcg"
        return None, "unknown"


def _slab_cache_memcg(t: Target, memcgs: Set[int]):
    """For v3.19-v5.8: the memcg of a per-memcg slab cache
    (``kmem_cache->memcg_params.memcg``; a pointer to the params on v3.10),
    0 for a root cache or one that cannot be read."""
    cache: Dict[int, int] = {}
    if not t.has_member("struct kmem_cache", "memcg_params"):
        return None
    ptr = t.object("struct kmem_cache", 0).memcg_params.type_name.endswith("*")

    def memcg_of(kc: int) -> int:
        got = cache.get(kc)
        if got is None:
            got = 0
            try:
                p = t.object("struct kmem_cache", kc).memcg_params
                m = int(p.memcg) if not ptr or int(p) else 0
                got = m if m in memcgs else 0
            except (ReadError, MissingSymbolError):
                got = 0
            cache[kc] = got
        return got
    return memcg_of


# -- references --------------------------------------------------------------------

def _children(t: Target, m: MemcgRow, cache: Optional[BlockCache] = None) -> int:
    """Child csses still linked under ``m`` (each holds a reference on it:
    ``css_get(css->parent)`` in init_and_link_css(), kernel/cgroup/cgroup.c)."""
    try:
        if t.has_member("struct cgroup_subsys_state", "children"):
            head = t.object("struct mem_cgroup", m.address).css.children.address
        else:  # v3.10: cgroup->children
            head = t.object("struct mem_cgroup", m.address).css.cgroup.children.address
    except (ReadError, MissingSymbolError):
        return 0
    return sum(1 for _ in walk_list(t, head, limit=1 << 20, cache=cache))


def _stock_refs(t: Target) -> Dict[int, int]:
    """memcg -> per-CPU charge stocks caching it (``memcg_stock.cached``
    holds a css reference: refill_stock(), mm/memcontrol.c v5.10-v6.12)."""
    out: Dict[int, int] = {}
    try:
        stock = t.symbol("memcg_stock")
        cpus = t.possible_cpus()
    except (MissingSymbolError, ReadError, TargetError):
        return out
    for cpu in cpus:
        try:
            s = t.per_cpu(stock, cpu)
            c = s.cached
            vals = [int(c[i]) for i in range(c.length())] if c.type_name.endswith("]") \
                else [int(c)]
        except (MissingSymbolError, ReadError, TargetError):
            continue
        for v in vals:
            if v:
                out[v] = out.get(v, 0) + 1
    return out


def _offline_cgwbs(t: Target) -> Optional[Dict[int, int]]:
    """memcg -> writeback contexts killed at its removal and not yet released:
    the kernel's list ``offline_cgwbs`` (mm/backing-dev.c, linked by
    ``wb->offline_node`` in cgwb_kill(), unlinked when the last inode lets go
    in cgwb_release_workfn()), which came with Linux kernel commit
    c22d70a162d3 ("writeback, cgroup: release dying cgwbs by switching
    attached inodes") (in v5.14).  None on kernels without it."""
    if not t.has_symbol("offline_cgwbs") \
            or not t.has_member("struct bdi_writeback", "offline_node"):
        return None
    out: Dict[int, int] = {}
    try:
        head = t.symbol_address("offline_cgwbs")
        node_off = t.member_offset("struct bdi_writeback", "offline_node")
        css_off = t.member_offset("struct mem_cgroup", "css")
        for node in walk_list(t, head, limit=1 << 20):
            css = int(t.object("struct bdi_writeback", node - node_off).memcg_css)
            if css:
                out[css - css_off] = out.get(css - css_off, 0) + 1
    except (ReadError, MissingSymbolError):
        return None
    return out


def _writeback_refs(t: Target, p: "PinnedMemcg") -> int:
    """Writeback contexts of this memcg that the inodes of its files still
    use: a ``struct bdi_writeback`` of a memcg holds a reference on it
    (``wb->memcg_css``, mm/backing-dev.c) until the last inode attached to
    it (``inode->i_wb``) lets go.  Before v5.14 (see :func:`_offline_cgwbs`)
    nothing lists the contexts killed at removal, so the inodes whose pages
    are counted here are looked at."""
    if not p.files or not t.has_member("struct inode", "i_wb") \
            or not t.has_member("struct bdi_writeback", "memcg_css"):
        return 0
    css = p.memcg.address + t.member_offset("struct mem_cgroup", "css")
    wbs = set()
    for f in p.files:
        if not f.get("inode"):
            continue
        try:
            wb = int(t.object("struct inode", int(f["inode"], 16)).i_wb)
            if wb and int(t.object("struct bdi_writeback", wb).memcg_css) == css:
                wbs.add(wb)
        except (ReadError, MissingSymbolError):
            continue
    return len(wbs)


def _v310_refcnt(t: Target, m: MemcgRow) -> Optional[int]:
    """v3.10: the memcg's own ``refcnt`` (what frees it, __mem_cgroup_free())."""
    try:
        return int(t.object("struct mem_cgroup", m.address).refcnt.counter)
    except (ReadError, MissingSymbolError):
        return None


def _v310_caches(t: Target, m: MemcgRow) -> List[Dict[str, Any]]:
    """v3.10: the memcg's own copies of slab caches (``memcg->memcg_slab_caches``,
    linked by ``memcg_cache_params.list``) with their ``nr_pages``; the cache
    itself is ``root_cache->memcg_params->memcg_caches[kmemcg_id]``."""
    out: List[Dict[str, Any]] = []
    if not t.has_member("struct mem_cgroup", "memcg_slab_caches"):
        return out
    try:
        head = t.object("struct mem_cgroup", m.address).memcg_slab_caches.address
        list_off = t.member_offset("struct memcg_cache_params", "list")
        kid = m.kmemcg_id
        for node in walk_list(t, head, limit=4096):
            p = t.object("struct memcg_cache_params", node - list_off)
            name = None
            try:
                root = p.root_cache
                if kid is not None and kid >= 0:
                    name = root.memcg_params.memcg_caches[kid].name.string(64)
                if not name:
                    name = root.name.string(64)
            except (ReadError, MissingSymbolError):
                pass
            out.append({"cache": name, "pages": int(p.nr_pages.counter),
                        "dead": bool(int(p.dead))})
    except (ReadError, MissingSymbolError):
        pass
    return out


# -- the walk and the report ----------------------------------------------------------

@dataclass
class Walked:
    """What memcgpins keeps of the memcg walk: the rows it reports on, the
    address of every memcg (what a memcg word may point to), the id the
    swap records use for each, and the walk's summary.  The other rows are
    read back once from the walk's temporary file and dropped."""

    chosen: List[MemcgRow]
    addresses: Set[int]
    swap_ids: Dict[int, int]
    summary: Dict[str, Any]
    #: memcg -> children linked under it, as the tree walk found them (the
    #: memcgs with any); a chosen memcg in :attr:`off_tree` was found by an
    #: id tree only, and its children are counted by reading its list
    children: Dict[int, int] = field(default_factory=dict)
    off_tree: Set[int] = field(default_factory=set)


class WalkKeeper:
    """Keeps, of the memcg rows fed through it, what memcgpins needs
    (:class:`Walked`): a walk made for something else (triage's memcg
    evidence) then serves memcgpins too, and the memcgs are read once."""

    def __init__(self, t: Target, all_memcgs: bool = False) -> None:
        self.css_ids = generation(t)[0] == "3.10"   # the swap records' id (swapcg.py)
        self.all_memcgs = all_memcgs
        self.chosen: List[MemcgRow] = []
        self.addresses: Set[int] = set()
        self.ids: Dict[int, int] = {}
        self.off_tree: Set[int] = set()

    def feed(self, scan) -> Iterator[Memcg]:
        """``scan.rows()``, each row kept as it passes."""
        n_tree = scan.n_tree
        for row, m in enumerate(scan.rows()):
            self.addresses.add(m.address)
            i = m.css_id if self.css_ids else m.memcg_id
            if i is not None and i > 0:
                self.ids.setdefault(i, m.address)
            if self.all_memcgs or m.state == "dying":
                self.chosen.append(MemcgRow(m))
                if row >= n_tree:
                    self.off_tree.add(m.address)
            yield m

    def walked(self, scan) -> Walked:
        """What was kept, once ``scan``'s rows have all been fed."""
        return Walked(self.chosen, self.addresses, self.ids, scan.summary, scan.children,
                      self.off_tree)


def memcg_walk(t: Target, all_memcgs: bool = False) -> Walked:
    """The memcg walk for memcgpins (dying memcgs kept, every one with
    ``all_memcgs``); on a live kernel a walk broken by a memcg freed under it
    is tried once more, as memcgids does."""
    for attempt in (0, 1):
        keep = WalkKeeper(t, all_memcgs)
        with memcg_scan(t, spool=True) as scan:
            for _ in keep.feed(scan):
                pass
            w = keep.walked(scan)
        if not (t.is_live and w.summary.get("walk_problem")) or attempt:
            return w
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _gc_paused():
    """The cyclic garbage collector off while the report is made.  It
    makes dicts and lists without cycles, tens of thousands of them where
    thousands of memcgs are dying, and each collection they set off walks
    every object the memcg walk and drgn hold: a fifth of the time on the
    scale dump (docs/performance.md)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def memcg_pins(t: Target, all_memcgs: bool = False, top: int = 10,
               progress=None, walked: Optional[Walked] = None) -> PinsReport:
    """What holds each dying memcg of ``t`` (each memcg with ``all_memcgs``),
    with the ``top`` files of each, and a summary.  ``walked``: the memcg
    walk (:func:`memcg_walk`), when already read."""
    with _gc_paused():
        return _memcg_pins(t, all_memcgs, top, progress, walked)


def _memcg_pins(t: Target, all_memcgs: bool, top: int, progress,
                walked: Optional[Walked]) -> PinsReport:
    gen_key, gen = generation(t)
    w = walked if walked is not None else memcg_walk(t, all_memcgs)
    memcgs = w.addresses
    chosen = w.chosen
    walk_summary = w.summary
    keys = _Keys(t, memcgs)
    # files are counted per memcg word: the dying memcgs' own (their pages
    # point to them directly), or every word with --all (since v7.1 an
    # online memcg's file pages point to its obj_cgroups)
    want: Optional[Set[int]] = None if all_memcgs else {m.address for m in chosen}

    # -- the page pass and the swap records
    pa = PageArray.of(t)
    warnings = list(pa.problems)
    try:
        lay = PageLayout.of(t)
    except MissingSymbolError as exc:
        raise CrashextError(f"cannot read what pages are charged to: {exc.one_line()}") from exc
    slab_route = _slab_cache_memcg(t, memcgs) if gen.slab == "per-memcg caches" else None
    if progress is not None:
        progress.total = pa.nr_pages
    res = page_pass(t, pa, lay, want, slab_cache_memcg=slab_route, progress=progress)
    if progress is not None:
        progress.done()
    swap = swap_owners(t, pa)
    warnings.extend(swap.problems)

    # -- per memcg: pages by kind, swap slots, files, references, verdict
    per: Dict[int, PinnedMemcg] = {m.address: PinnedMemcg(m) for m in chosen}
    unresolved, via_objcg = _add_pages(per, res, keys, warnings)
    _add_swap(per, w.swap_ids, swap, warnings)
    namer = FileNamer(t)
    stocks = _stock_refs(t)
    offline_wbs = _offline_cgwbs(t)
    files_by_memcg: Dict[int, List[Tuple[int, int]]] = {}
    for (key, mapping), n in res.files.items():
        addr, _how = keys.resolve(key)
        if addr is not None:
            files_by_memcg.setdefault(addr, []).append((n, mapping))
    # what the pass counted is in the rows now: its dicts (tens of
    # thousands of entries on a host with many dying memcgs) go before the
    # rows' files and verdicts are made
    res.pages.clear()
    res.folios.clear()
    res.files.clear()
    for addr, p in per.items():
        _files(p, files_by_memcg.pop(addr, []), res, namer, top)
        if addr in w.off_tree:
            p.children = _children(t, p.memcg, namer.cache)
        else:  # as the walk found them (each child holds a reference)
            p.children = w.children.get(addr, 0)
        _refs(t, gen_key, gen, p, stocks, offline_wbs)
        set_verdict(p, gen, partial=pa.unreadable > 0 or unresolved > 0)
    out = sorted(per.values(), key=lambda p: p.memcg.path)
    read = Read(pa, res, swap, walk_summary, warnings, via_objcg)
    return PinsReport(summarize(t, gen_key, gen, out, read), out)


def _add_pages(per: Dict[int, PinnedMemcg], res: PassResult, keys: _Keys,
               warnings: List[str]) -> Tuple[int, int]:
    """Pages and folios by kind into each memcg's row; (pages whose word
    resolves to no memcg, pages resolved through an obj_cgroup)."""
    unresolved = unresolved_keys = via_objcg = 0
    for (key, kind), n in res.pages.items():
        addr, how = keys.resolve(key)
        if addr is None:
            unresolved += n
            unresolved_keys += 1
            continue
        if how == "objcg":
            via_objcg += n
        p = per.get(addr)
        if p is None:
            continue
        p.pages[kind] = p.pages.get(kind, 0) + n
        if how == "memcg":
            p.folios[kind] = p.folios.get(kind, 0) + res.folios.get((key, kind), 0)
    if unresolved:
        pl = "s point" if unresolved != 1 else " points"
        wl = "s" if unresolved_keys != 1 else ""
        warnings.append(f"{unresolved} charged page{pl} ({unresolved_keys} distinct "
                        f"memcg word{wl}) to neither a memcg nor an obj_cgroup of one: "
                        "damaged struct pages, or memcgs freed while a live kernel was "
                        "read; left out of the counts")
    return unresolved, via_objcg


def _add_swap(per: Dict[int, PinnedMemcg], ids: Dict[int, int], swap: SwapOwners,
              warnings: List[str]) -> None:
    """Swap slots into each memcg's row, by the id the records use."""
    unknown = 0
    for i, n in swap.slots.items():
        addr = ids.get(i)
        if addr is None:
            unknown += n
        elif addr in per:
            per[addr].swap += n
    if unknown:
        warnings.append(f"{unknown} swap slots are recorded for memcg ids no memcg has")


def _files(p: PinnedMemcg, found: List[Tuple[int, int]], res: PassResult,
           namer: FileNamer, top: int) -> None:
    if len(found) > 1:
        found.sort(key=lambda x: (-x[0], x[1]))
    nr = {"file": 0, "shmem": 0}
    file_kind = res.file_kind
    for _n, m in found:
        k = file_kind.get(m)
        if k in nr:
            nr[k] += 1
    p.nr_files = nr
    for n, mapping in found[:top]:
        if mapping:
            f = namer.mapping(mapping)
        else:
            # tmpfs pages moved to the swap cache have no mapping (the swap
            # cache's address_space is not kept in page->mapping)
            f = {"mapping": "0x0", "inode": None, "ino": None, "size": None, "nlink": None,
                 "dev": None, "fstype": None, "sb_id": None, "mount": None,
                 "path": "(tmpfs pages in the swap cache)", "problem": None}
        f["pages"] = n
        f["kind"] = file_kind.get(mapping)
        p.files.append(f)


def _refs(t: Target, gen_key: str, gen, p: PinnedMemcg, stocks: Dict[int, int],
          offline_wbs: Optional[Dict[int, int]]) -> None:
    m = p.memcg
    if gen.refs_per == "refcnt":
        total = _v310_refcnt(t, m)
        caches = _v310_caches(t, m)
        p.refs = {"total": total, "swap": p.swap, "caches": len(caches),
                  "kmem_dead": int(bool(m.kmem_flags and "KMEM_ACCOUNTED_DEAD" in m.kmem_flags)),
                  "children": p.children}
        p.caches = caches
        counted = p.swap + len(caches) + p.refs["kmem_dead"] + p.children
    else:
        # the pass's kinds are PAGE_KINDS: every one is summed
        held = sum(p.folios.values())
        total = m.refcount if m.ref_mode in ("atomic", "dead") else None
        if gen.refs_per != "folio":
            # v3.19-v5.8: references went with page counter charges and the
            # per-memcg caches held their own; no dump of such a kernel here
            # to check a model against, so nothing is called left over
            held = sum(p.pages.values())
            total = None
        p.refs = {"total": total, "pages": held, "swap_id": 1 if p.swap else 0,
                  "children": p.children, "stock": stocks.get(m.address, 0),
                  "writeback": offline_wbs.get(m.address, 0) if offline_wbs is not None
                  else _writeback_refs(t, p)}
        counted = held + p.refs["swap_id"] + p.children + p.refs["stock"] \
            + p.refs["writeback"]
    p.refs["counted"] = counted
    p.refs["unexplained"] = (total - counted) if total is not None else None
