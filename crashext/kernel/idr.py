"""Every entry of a kernel ``struct idr``, read defensively.

Used for the memory controller's id trees (``mem_cgroup_idr``, the css id
idrs); any idr of the three layouts below can be walked.  A walk never
raises for a broken tree: it stops and says why in
:attr:`IdrWalk.corruption`.  Each node's slot array is read in one piece.
"""

import struct
from array import array
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import ReadError
from .target import KObj, Target

__all__ = ["IdrWalk", "idr_entries"]

_PTR = 8


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class IdrWalk:
    """Result of :func:`idr_entries`: ``ids`` and ``ptrs``, the entries in
    the order the walk found them, kept as two arrays (16 bytes an entry:
    an id tree of a host with tens of thousands of cgroups stays small);
    ``entries`` maps id to pointer."""

    def __init__(self) -> None:
        self.ids = array("Q")
        self.ptrs = array("Q")
        self.corruption: Optional[str] = None
        self.nodes = 0

    def _add(self, idx: int, ptr: int) -> None:
        if idx >= 1 << 64:
            self.corruption = self.corruption or f"idr index {idx:#x} beyond 64 bits"
            return
        self.ids.append(idx)
        self.ptrs.append(ptr)

    def _check_unique(self) -> None:
        """An index found twice (nodes whose shifts overlap) is corruption;
        only its first entry is kept."""
        ids = sorted(self.ids)
        if all(a != b for a, b in zip(ids, ids[1:])):
            return
        seen = set()
        keep_ids, keep_ptrs = array("Q"), array("Q")
        for i, p in zip(self.ids, self.ptrs):
            if i in seen:
                self.corruption = self.corruption or f"idr index {i} found twice"
                continue
            seen.add(i)
            keep_ids.append(i)
            keep_ptrs.append(p)
        self.ids, self.ptrs = keep_ids, keep_ptrs

    @property
    def entries(self) -> Dict[int, int]:
        """id -> pointer, in the order found."""
        return dict(zip(self.ids, self.ptrs))

    def __len__(self) -> int:
        return len(self.ids)


def idr_entries(t: Target, idr: KObj, node_limit: int = 1 << 20) -> IdrWalk:
    """All non-NULL entries of a ``struct idr``, walked through the access layer.

    Three layouts, told apart by debug info:

    - v4.20+: ``idr_rt`` is a ``struct xarray``; ``xa_head`` and node slots
      hold internal entries tagged ``(entry & 3) == 2``, nodes being those
      above 4096 (include/linux/xarray.h, ``xa_is_node``): since Linux kernel
      commit f8d5d0cc145c ("xarray: Add definition of struct xarray") (in
      v4.20).
    - v4.11-v4.19: ``idr_rt`` is a ``struct radix_tree_root`` whose ``rnode``
      and slots tag nodes with ``RADIX_TREE_INTERNAL_NODE`` = 1
      (include/linux/radix-tree.h): since Linux kernel commit 0a835c4f090a
      ("Reimplement IDR and IDA using the radix tree") (in v4.11).
    - v3.9-v4.10: the layered idr: ``top`` with ``layers``; each
      ``struct idr_layer`` has ``ary[1 << IDR_BITS]`` and ``layer`` (0 for
      leaves) (lib/idr.c and include/linux/idr.h v3.10).

    ``idr_base`` is added to every index since Linux kernel commit
    6ce711f27500 ("idr: Make 1-based IDRs more efficient") (in v4.16).
    """
    w = IdrWalk()
    if t.has_member("struct idr", "idr_rt"):
        base = int(idr.idr_base) if t.has_member("struct idr", "idr_base") else 0
        rt = idr.idr_rt
        if t.has_member("struct xarray", "xa_head"):
            node_type, tag, head = "struct xa_node", 2, int(rt.xa_head)
        else:
            node_type, tag, head = "struct radix_tree_node", 1, int(rt.rnode)
        _walk_radix(t, w, head, node_type, tag, base, node_limit)
    else:
        _walk_layered(t, w, idr, node_limit)
    w._check_unique()
    return w


def _slots(t: Target, addr: int, n: int) -> Iterator[Optional[int]]:
    """The ``n`` pointers of a slot array, read in one piece; if that read
    fails, one by one up to the first unreadable slot, which gives None."""
    try:
        raw = t.read_bytes(addr, n * _PTR)
    except ReadError:
        for i in range(n):
            try:
                yield t.read_pointer(addr + i * _PTR)
            except ReadError:
                yield None
                return
        return
    yield from struct.unpack_from(f"<{n}Q", raw)


def _walk_radix(t: Target, w: IdrWalk, head: int, node_type: str, tag: int,
                base: int, node_limit: int) -> None:
    def is_node(entry: int) -> bool:
        if tag == 2:
            return (entry & 3) == 2 and entry > 4096
        return (entry & 3) == 1

    if head == 0:
        return
    if not is_node(head):
        if head & 3 == 0:
            w._add(base, head)
        return
    slots_off = t.member_offset(node_type, "slots")
    shift_off = t.member_offset(node_type, "shift")
    nslots = t.object(node_type, head & ~3).slots.length()
    seen = set()
    stack: List[Tuple[int, int]] = [(head & ~3, 0)]
    while stack:
        node, index = stack.pop()
        if node in seen:
            w.corruption = f"idr node {node:#x} reached twice"
            return
        seen.add(node)
        w.nodes += 1
        if w.nodes > node_limit:
            w.corruption = f"more than {node_limit} idr nodes"
            return
        try:
            shift = t.read_u32(node + shift_off) & 0xFF
        except ReadError:
            w.corruption = f"unreadable idr node {node:#x}"
            continue
        if shift > 64:
            w.corruption = f"idr node {node:#x} has impossible shift {shift}"
            continue
        for i, entry in enumerate(_slots(t, node + slots_off, nslots)):
            if entry is None:
                w.corruption = f"unreadable slot {i} of idr node {node:#x}"
                break
            if entry == 0:
                continue
            idx = index | (i << shift)
            if is_node(entry):
                if shift == 0:
                    w.corruption = f"idr leaf {node:#x} points to a node"
                    continue
                stack.append((entry & ~3, idx))
            elif entry & 3 == 0:  # other internal entries: retry, zero, sibling
                w._add(base + idx, entry)


def _walk_layered(t: Target, w: IdrWalk, idr: KObj, node_limit: int) -> None:
    top = int(idr.top)
    if top == 0:
        return
    ary_off = t.member_offset("struct idr_layer", "ary")
    layer_off = t.member_offset("struct idr_layer", "layer")
    n = t.object("struct idr_layer", top).ary.length()
    bits = n.bit_length() - 1
    try:
        layers = int(idr.layers)
    except ReadError:
        layers = 0
    if not 0 < layers <= 8:
        w.corruption = f"idr has impossible layer count {layers}"
        return
    seen = set()
    stack: List[Tuple[int, int, int]] = [(top, layers - 1, 0)]
    while stack:
        node, layer, prefix = stack.pop()
        if node in seen:
            w.corruption = f"idr layer {node:#x} reached twice"
            return
        seen.add(node)
        w.nodes += 1
        if w.nodes > node_limit:
            w.corruption = f"more than {node_limit} idr layers"
            return
        try:
            recorded = _s32(t.read_u32(node + layer_off))
        except ReadError:
            w.corruption = f"unreadable idr layer {node:#x}"
            continue
        if recorded != layer:
            w.corruption = f"idr layer {node:#x} says layer {recorded}, expected {layer}"
            continue
        for i, entry in enumerate(_slots(t, node + ary_off, n)):
            if entry is None:
                w.corruption = f"unreadable slot {i} of idr layer {node:#x}"
                break
            if entry == 0:
                continue
            idx = (prefix << bits) | i
            if layer == 0:
                w._add(idx, entry)
            else:
                stack.append((entry, layer - 1, idx))
