"""Which memory cgroup owns each swapped-out page: the swap owner records.

When the memory controller accounts swap, every used swap slot records the
id of the memcg it is charged to, an ``unsigned short`` per slot (0 for a
free slot); :func:`swap_owners` counts the slots per id.  Where the records
live, by kernel generation:

- v3.10-v6.12: ``swap_cgroup_ctrl[type]``, one per swap device, whose
  ``map`` is ``length`` pages of ``struct swap_cgroup { unsigned short id;
  }`` (mm/page_cgroup.c in v3.10, mm/swap_cgroup.c later; read in the v3.10
  RHEL 7, 5.10, 6.1 and 6.12 sources).
- By v6.19 and still in v7.1 (their mm/swap_cgroup.c) ``map`` is one flat
  array of ``struct swap_cgroup { atomic_t ids; }``, two ids to an
  ``atomic_t``, the lower slot in the lower half: on a little-endian kernel
  the same bytes as an array of ``unsigned short``, ``si->max`` of them.
- v7.2 (mm/swap_table.h; 7.1 has none): each swap cluster
  (``si->cluster_info[i]``) points to a ``struct swap_memcg_table {
  unsigned short id[SWAPFILE_CLUSTER]; }``.

Which layout a kernel has is read from its debug info (the symbol
``swap_cgroup_ctrl``, the type of its ``map``, the member
``swap_cluster_info.memcg_table``), not from its release.

The id is the memcg's css id on v3.10-v4.7 and ``memcg->id.id`` since Linux
kernel commit 73f576c04b94 ("mm: memcontrol: fix cgroup creation failure
after many small jobs") (in v4.8); mapping ids to memcgs is the caller's.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import MissingSymbolError, ReadError
from .pages import PageArray, have_numpy
from .target import Target

__all__ = ["SwapOwners", "swap_owners"]

_PTR = 8


@dataclass
class SwapOwners:
    """Swap slots per owner id, read from the kernel's records."""

    #: "swap_cgroup_ctrl", "swap cluster memcg tables" or None (no records:
    #: no swap device, or swap not accounted)
    source: Optional[str] = None
    #: memcg id -> swap slots recorded for it
    slots: Dict[int, int] = field(default_factory=dict)
    #: swap devices whose records were read
    devices: int = 0
    #: record pages that could not be read (their slots are not counted)
    unreadable_pages: int = 0
    problems: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.slots.values())


def swap_owners(t: Target, pages: Optional[PageArray] = None) -> SwapOwners:
    """Count the swap owner records of every swap device of ``t``.
    ``pages`` (the page array) turns the record pages' struct pages into
    addresses; it is made when not given."""
    out = SwapOwners()
    try:
        if t.has_symbol("swap_cgroup_ctrl"):
            _from_ctrl(t, pages, out)
        elif t.has_member("struct swap_cluster_info", "memcg_table"):
            _from_clusters(t, out)
    except (ReadError, MissingSymbolError) as exc:
        out.problems.append(f"swap owner records unreadable: {exc.one_line()}")
    return out


def _nr_swapfiles(t: Target) -> int:
    try:
        return int(t.symbol("nr_swapfiles"))
    except MissingSymbolError:
        return 0


def _count(out: SwapOwners, raw: bytes) -> None:
    if have_numpy():
        import numpy as np
        ids = np.frombuffer(raw, dtype="<u2")
        nz = ids[ids != 0]
        if nz.size:
            vals, counts = np.unique(nz, return_counts=True)
            for v, c in zip(vals.tolist(), counts.tolist()):
                out.slots[v] = out.slots.get(v, 0) + c
        return
    from array import array
    ids = array("H")
    ids.frombytes(raw)
    slots = out.slots
    for v in ids:
        if v:
            slots[v] = slots.get(v, 0) + 1


def _from_ctrl(t: Target, pages: Optional[PageArray], out: SwapOwners) -> None:
    ctrl = t.symbol("swap_cgroup_ctrl")
    out.source = "swap_cgroup_ctrl"
    n = min(_nr_swapfiles(t), ctrl.length())
    page_map = None
    for i in range(n):
        c = ctrl[i]
        base = int(c.map)
        if not base:
            continue
        out.devices += 1
        if c.map.type_name.replace(" ", "").endswith("**"):
            # an array of struct page pointers, one page of ids each
            if pages is None:
                pages = PageArray.of(t)
            if page_map is None:
                page_map = _DirectMap(t, pages)
            length = int(c.member("length"))
            raw = t.read_bytes(base, length * _PTR)
            for k in range(length):
                page = int.from_bytes(raw[k * _PTR:(k + 1) * _PTR], "little")
                addr = page_map.address(page) if page else None
                if addr is None:
                    out.unreadable_pages += 1
                    continue
                try:
                    _count(out, t.read_bytes(addr, t.page_size))
                except ReadError:
                    out.unreadable_pages += 1
        else:
            slots = int(t.symbol("swap_info")[i].max)
            _count(out, t.read_bytes(base, slots * 2))


def _from_clusters(t: Target, out: SwapOwners) -> None:
    out.source = "swap cluster memcg tables"
    table_ids = t.object("struct swap_memcg_table", 0).id.length()
    ci_size = t.type_size("struct swap_cluster_info")
    tab_off = t.member_offset("struct swap_cluster_info", "memcg_table")
    info = t.symbol("swap_info")
    for i in range(_nr_swapfiles(t)):
        si = info[i]
        if not int(si):
            continue
        clusters = int(si.cluster_info)
        if not clusters:
            continue
        out.devices += 1
        nr = (int(si.max) + table_ids - 1) // table_ids
        raw = t.read_bytes(clusters, nr * ci_size)
        for k in range(nr):
            o = k * ci_size + tab_off
            tab = int.from_bytes(raw[o:o + _PTR], "little")
            if not tab:
                continue
            try:
                _count(out, t.read_bytes(tab, table_ids * 2))
            except ReadError:
                out.unreadable_pages += 1


class _DirectMap:
    """struct page address -> the kernel virtual address of its page in the
    direct map: ``page_offset_base`` where the kernel randomizes it, else
    x86_64's fixed ``__PAGE_OFFSET`` (0xffff880000000000 in
    arch/x86/include/asm/page_64_types.h of v3.10 and RHEL 7)."""

    def __init__(self, t: Target, pages: PageArray) -> None:
        self.t = t
        self.pages = pages
        if t.has_symbol("page_offset_base"):
            self.offset = int(t.symbol("page_offset_base"))
        else:
            self.offset = 0xFFFF880000000000
        self.shift = t.page_size.bit_length() - 1

    def address(self, page: int) -> Optional[int]:
        size = self.pages.struct_size
        for r in self.pages.ranges:
            lo = r.base + r.start_pfn * size
            hi = r.base + r.end_pfn * size
            if lo <= page < hi and (page - r.base) % size == 0:
                return self.offset + ((page - r.base) // size << self.shift)
        return None
