"""Finding every memcg of a kernel: the cgroup tree walk, one function per
kernel layout, and the id trees that cross-check it (used by :mod:`.memcg`).

- 3.15 and later (cgroup v1 and v2): a pre-order walk from
  ``root_mem_cgroup->css`` over ``css.children`` / ``css.sibling``
  (:func:`tree_memcgs` through ``_css_tree``).
- 3.10 (RHEL7): ``cgroup->children`` / ``cgroup->sibling`` with the css in
  ``cgroup->subsys[mem_cgroup_subsys_id]`` (``_cgroup_tree``).

:func:`idr_sources` reads the id trees this kernel has (``mem_cgroup_idr``,
the css id idr of 3.10, the memory subsystem's ``css_idr``); :class:`SortedInts`
and :class:`IdMap` keep their addresses and ids as sorted arrays.
"""

from array import array
from bisect import bisect_left
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ..errors import MissingSymbolError, ReadError
from ..kernel.idr import idr_entries
from ..kernel.target import Target
from ..kernel.walk import BlockCache, walk_list
from .memcg_read import MemcgLayout, optional_symbol

__all__ = ["tree_memcgs", "idr_sources", "SortedInts", "IdMap"]

_PTR = 8


def tree_memcgs(t: Target, lay: MemcgLayout, root: int, progress=None,
                visit: Optional[Callable[[int], int]] = None,
                cache: Optional[BlockCache] = None,
                childless: Optional[Callable[[int], bool]] = None,
                members: Optional[Dict[int, None]] = None,
                linked: Optional[Dict[int, int]] = None) -> Tuple["array[int]", Optional[str]]:
    """The cgroup tree's memcgs in pre-order, and the corruption reason or None.

    ``visit(address)`` reads a memcg and returns the handle it is kept
    under; the result holds those handles (the addresses themselves without
    ``visit``).  It is called as soon as the walk reaches the memcg (as a
    node of its parent's children list, whose block is then in ``cache``,
    shared with the list walks): in list order, not pre-order, and possibly
    twice for a node reached twice (the result has it once).
    ``childless(address)``: True if that memcg's children list is known to
    be empty (its walk is skipped); asked once per read, right after
    ``visit``.  ``members``, if given, is a dict filled with the addresses
    of the memcgs in the result (as keys).  ``linked``, if given, is filled
    with the number of children each memcg with any has linked (the
    memcgs absent from it have none)."""
    if visit is None:
        visit = int
    if lay.css_tree:
        return _css_tree(t, root, visit, progress, cache, childless, members, linked)
    return _cgroup_tree(t, lay, root, visit, progress, cache, members, linked)


def _css_tree(t: Target, root: int, visit: Callable[[int], int], progress,
              cache: Optional[BlockCache], childless: Optional[Callable[[int], bool]],
              members: Optional[Dict[int, None]],
              linked: Optional[Dict[int, int]]) -> Tuple["array[int]", Optional[str]]:
    """:func:`tree_memcgs` of a kernel whose memcgs hang in their own css tree:
    ``css.children`` / ``css.sibling`` from ``root_mem_cgroup->css`` (3.15
    and later)."""
    out = array("Q")
    problems: List[str] = []
    css_off = t.member_offset("struct mem_cgroup", "css")
    children_off = t.member_offset("struct cgroup_subsys_state", "children")
    sib_off = t.member_offset("struct cgroup_subsys_state", "sibling")
    # The memcgs read and not yet walked: css address, handle, and
    # whether the read found no children (asked right after the read,
    # so the reader need not remember it), as arrays.  A parent's
    # children are all read when its list is walked, so the 15,000
    # children of one parent wait here at once, 17 bytes each.
    stack, handles = array("Q", [root + css_off]), array("Q", [visit(root)])
    leaves = bytearray([childless is not None and childless(root)])
    # memcg addresses; a dict, not a set: a third of the memory for
    # 20,000 addresses
    seen: Dict[int, None] = {} if members is None else members
    while stack:
        css, handle, leaf = stack.pop(), handles.pop(), leaves.pop()
        addr = css - css_off
        if addr in seen:
            problems.append(f"css {css:#x} reached twice")
            continue
        seen[addr] = None
        out.append(handle)
        if progress is not None:
            progress.step()
        if leaf:
            continue
        w = walk_list(t, css + children_off, cache=cache)
        kids, kid_handles, kid_leaves = array("Q"), array("Q"), bytearray()
        for node in w:
            kid = node - sib_off - css_off
            kids.append(node - sib_off)
            kid_handles.append(visit(kid))
            kid_leaves.append(childless is not None and childless(kid))
        if w.corruption:
            problems.append(f"children of css {css:#x}: {w.corruption}")
        if linked is not None and kids:
            linked[addr] = len(kids)
        kids.reverse()
        kid_handles.reverse()
        kid_leaves.reverse()
        stack.extend(kids)
        handles.extend(kid_handles)
        leaves.extend(kid_leaves)
    return out, "; ".join(problems[:3]) or None


def _cgroup_tree(t: Target, lay: MemcgLayout, root: int, visit: Callable[[int], int], progress,
                 cache: Optional[BlockCache],
                 members: Optional[Dict[int, None]],
                 linked: Optional[Dict[int, int]]) -> Tuple["array[int]", Optional[str]]:
    """:func:`tree_memcgs` of a 3.10 kernel: the cgroup tree (``cgroup->children``
    / ``->sibling``), each cgroup's memcg css in ``cgroup->subsys[id]``;
    ``childless`` is not asked (a cgroup's children are not memcgs)."""
    out = array("Q")
    problems: List[str] = []
    if lay.mem_subsys_id is None:
        raise MissingSymbolError("cannot tell the memory controller's subsystem id")
    root_cg = int(t.object("struct mem_cgroup", root).css.cgroup)
    children_off = t.member_offset("struct cgroup", "children")
    sib_off = t.member_offset("struct cgroup", "sibling")
    subsys_off = t.member_offset("struct cgroup", "subsys") + lay.mem_subsys_id * _PTR
    css_off = t.member_offset("struct mem_cgroup", "css")
    stack = [root_cg]
    cgroups_seen = set()
    while stack:
        cg = stack.pop()
        if cg in cgroups_seen:
            problems.append(f"cgroup {cg:#x} reached twice")
            continue
        cgroups_seen.add(cg)
        try:
            css = t.read_pointer(cg + subsys_off)
        except ReadError as exc:
            problems.append(exc.one_line())
            continue
        if css:
            out.append(visit(css - css_off))
            if members is not None:
                members[css - css_off] = None
        if progress is not None:
            progress.step()
        w = walk_list(t, cg + children_off, cache=cache)
        kids = [node - sib_off for node in w]
        if w.corruption:
            problems.append(f"children of cgroup {cg:#x}: {w.corruption}")
        if linked is not None and kids and css:
            linked[css - css_off] = len(kids)
        stack.extend(reversed(kids))
    return out, "; ".join(problems[:3]) or None


def idr_sources(t: Target, lay: MemcgLayout) -> List[Tuple[str, "array[int]", "array[int]",
                                                           Optional[str]]]:
    """(source name, ids, memcg addresses, corruption) for each id tree this
    kernel has; ids and addresses are parallel arrays in the order found."""
    out = []
    css_off = t.member_offset("struct mem_cgroup", "css")
    idr = optional_symbol(t, "mem_cgroup_idr")
    if idr is not None:
        w = idr_entries(t, idr)
        out.append(("mem_cgroup_idr", w.ids, w.ptrs, w.corruption))
    if lay.css_id_is_ptr:
        ss = optional_symbol(t, "mem_cgroup_subsys")
        if ss is not None and t.has_member("struct cgroup_subsys", "idr"):
            w = idr_entries(t, ss.idr)
            css_ptr_off = t.member_offset("struct css_id", "css")
            ids, addrs = array("Q"), array("Q")
            for i, cid in zip(w.ids, w.ptrs):
                try:
                    css = t.read_pointer(cid + css_ptr_off)
                except ReadError:
                    w.corruption = w.corruption or f"unreadable css_id {cid:#x}"
                    continue
                if css:
                    ids.append(i)
                    addrs.append(css - css_off)
            out.append(("css_id_idr", ids, addrs, w.corruption))
    elif t.has_member("struct cgroup_subsys", "css_idr") and lay.mem_subsys_id is not None:
        subsys = optional_symbol(t, "cgroup_subsys")
        if subsys is not None:
            ss = subsys[lay.mem_subsys_id]
            if int(ss):
                w = idr_entries(t, ss.css_idr)
                addrs = w.ptrs if css_off == 0 else array("Q", (p - css_off for p in w.ptrs))
                out.append(("css_idr", w.ids, addrs, w.corruption))
    return out


class SortedInts:
    """A set of integers as one sorted array (8 bytes each, against about
    65 for a Python set of addresses): membership by bisection."""

    __slots__ = ("values",)

    def __init__(self, values: Iterable[int]) -> None:
        self.values = array("Q", sorted(values))

    def __contains__(self, v: int) -> bool:
        vals = self.values
        i = bisect_left(vals, v)
        return i < len(vals) and vals[i] == v


class IdMap:
    """id -> address of an id tree, as two arrays sorted by id."""

    __slots__ = ("ids", "addrs")

    def __init__(self, ids: "array[int]", addrs: "array[int]") -> None:
        order = sorted(range(len(ids)), key=ids.__getitem__)
        self.ids = array("Q", (ids[i] for i in order))
        self.addrs = array("Q", (addrs[i] for i in order))

    def get(self, i: int) -> Optional[int]:
        if i < 0:
            return None
        j = bisect_left(self.ids, i)
        if j < len(self.ids) and self.ids[j] == i:
            return self.addrs[j]
        return None
