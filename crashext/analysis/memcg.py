"""Every memory cgroup, online and dying, with its ids and kmem id anomalies.

:func:`memcg_report` finds each ``struct mem_cgroup`` of a kernel, reads its
ids (cgroup inode number, css id, memcg id, ``kmemcg_id``), state, refcount
and usage, cross-checks the cgroup tree against the kernel's id radix trees,
and flags states the kernel should never be in — above all the RHEL7 3.10
one that panics in ``ida_simple_remove``: kmem accounting marked active on a
memcg whose ``kmemcg_id`` is still -1.

Where the memcgs are found, by kernel generation:

- 3.15 and later (cgroup v1 and v2): a pre-order walk from
  ``root_mem_cgroup->css`` over ``css.children`` / ``css.sibling``.  An
  offline (dying) css stays linked there until ``css_release_work_fn``
  unlinks it (``list_del_rcu(&css->sibling)``, kernel/cgroup/cgroup.c,
  v4.x-6.x; kernel/cgroup.c before v4.5), i.e. until its last reference
  goes.  Cross-checks: ``mem_cgroup_idr`` (v4.8+, commit 73f576c04b94) and
  the memory subsystem's ``css_idr`` (entries replaced by NULL in
  ``css_release_work_fn`` too).
- 3.10 (RHEL7): the tree is ``cgroup->children`` / ``cgroup->sibling`` with
  the css in ``cgroup->subsys[mem_cgroup_subsys_id]``; ``cgroup_destroy_locked``
  unlinks a removed cgroup from its parent at rmdir (kernel/cgroup.c v3.10),
  so removed-but-not-freed memcgs are found through the memory subsystem's
  css id idr (``mem_cgroup_subsys.idr`` of ``struct css_id``), whose entry
  is dropped only by ``free_css_id`` in ``__mem_cgroup_free``
  (mm/memcontrol.c v3.10).

Everything is read through :class:`~crashext.kernel.target.Target`; kernel
names (members, enumerators) come from debug info.
"""

import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import CrashextError, MissingSymbolError, ReadError
from ..kernel.fields import StructFields
from ..kernel.target import KObj, Target
from ..kernel.walk import BlockCache, walk_list

__all__ = ["Memcg", "MemcgReport", "memcg_report", "idr_entries", "ANOMALIES",
           "next_array_resize", "kmalloc_order"]

_PTR = 8

#: Anomaly codes and their one-line explanations.
ANOMALIES: Dict[str, str] = {
    "kmemcg-id-unassigned":
        "kmem accounting is marked active but kmemcg_id is -1: freeing this memcg "
        "calls ida_simple_remove(-1) and hits BUG_ON(id < 0) (RHEL7 lib/idr.c:1157; "
        "fixed in kernel-3.10.0-1048.el7)",
    "kmemcg-id-missing":
        "online non-root memcg without a kmemcg_id while kmem accounting is on",
    "kmemcg-id-duplicate":
        "kmemcg_id shared with another memcg that should own a unique id",
    "kmemcg-id-over-capacity":
        "kmemcg_id is beyond the per-id arrays' size (memcg_nr_cache_ids / "
        "memcg_limited_groups_array_size): slab and list_lru lookups index out of bounds",
    "not-in-tree":
        "found in an id radix tree but not linked in the cgroup tree: released "
        "just now, or the sibling list is broken",
    "memcg-idr-mismatch":
        "online memcg whose id does not map back to it in mem_cgroup_idr",
    "unreadable":
        "part of this memcg could not be read from the dump",
}


@dataclass
class Memcg:
    """One ``struct mem_cgroup`` and what was read from it."""

    address: int
    path: str = "?"
    depth: int = 0
    cgroup_id: Optional[int] = None
    css_id: Optional[int] = None
    memcg_id: Optional[int] = None
    kmemcg_id: Optional[int] = None
    online: bool = False
    #: False when css.flags could not be read: online or dying is then unknown
    state_known: bool = False
    css_flags: List[str] = field(default_factory=list)
    refcount: Optional[int] = None
    ref_mode: str = "?"
    usage_pages: Optional[int] = None
    kmem_pages: Optional[int] = None
    kmem_state: Optional[str] = None
    kmem_flags: Optional[List[str]] = None
    sources: List[str] = field(default_factory=list)
    anomalies: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if not self.state_known:
            return "unknown"
        return "online" if self.online else "dying"

    def to_json(self) -> Dict[str, Any]:
        return {
            "address": f"{self.address:#x}",
            "path": self.path,
            "depth": self.depth,
            "cgroup_id": self.cgroup_id,
            "css_id": self.css_id,
            "memcg_id": self.memcg_id,
            "kmemcg_id": self.kmemcg_id,
            "state": self.state,
            "css_flags": self.css_flags,
            "refcount": self.refcount,
            "ref_mode": self.ref_mode,
            "usage_pages": self.usage_pages,
            "kmem_pages": self.kmem_pages,
            "kmem_state": self.kmem_state,
            "kmem_flags": self.kmem_flags,
            "sources": self.sources,
            "anomalies": self.anomalies,
            "errors": self.errors,
        }


@dataclass
class MemcgReport:
    summary: Dict[str, Any]
    memcgs: List[Memcg]

    def to_json(self) -> Dict[str, Any]:
        return {"summary": self.summary, "memcgs": [m.to_json() for m in self.memcgs]}


# -- small helpers ------------------------------------------------------------

def _opt_symbol(t: Target, name: str) -> Optional[KObj]:
    try:
        return t.symbol(name)
    except MissingSymbolError:
        return None


def _opt_constant(t: Target, name: str) -> Optional[int]:
    try:
        return t.constant(name)
    except MissingSymbolError:
        return None


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _counter(obj: KObj) -> int:
    """Value of an ``atomic_t`` / ``atomic_long_t`` or a plain integer."""
    try:
        return int(obj.counter)
    except MissingSymbolError:
        return int(obj)


# -- id radix trees -------------------------------------------------------------

class IdrWalk:
    """Result of :func:`idr_entries`: ``entries`` maps id to pointer."""

    def __init__(self) -> None:
        self.entries: Dict[int, int] = {}
        self.corruption: Optional[str] = None
        self.nodes = 0


def idr_entries(t: Target, idr: KObj, node_limit: int = 1 << 20) -> IdrWalk:
    """All non-NULL entries of a ``struct idr``, walked through the access layer.

    Three layouts, told apart by debug info:

    - v4.20+: ``idr_rt`` is a ``struct xarray``; ``xa_head`` and node slots
      hold internal entries tagged ``(entry & 3) == 2``, nodes being those
      above 4096 (include/linux/xarray.h, ``xa_is_node``, v4.20 commit
      f8d5d0cc145c "xarray: Add definition of struct xarray").
    - v4.11-v4.19: ``idr_rt`` is a ``struct radix_tree_root`` whose ``rnode``
      and slots tag nodes with ``RADIX_TREE_INTERNAL_NODE`` = 1
      (include/linux/radix-tree.h v4.11, commit 0a835c4f090a "Reimplement IDR
      and IDA using the radix tree").
    - v3.9-v4.10: the layered idr: ``top`` with ``layers``; each
      ``struct idr_layer`` has ``ary[1 << IDR_BITS]`` and ``layer`` (0 for
      leaves) (lib/idr.c and include/linux/idr.h v3.10).

    ``idr_base`` (v4.16+, commit 6ce711f27500) is added to every index.
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
            w.entries[base] = head
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
                w.entries[base + idx] = entry


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
                w.entries[idx] = entry
            else:
                stack.append((entry, layer - 1, idx))


# -- kmem id arrays ---------------------------------------------------------------

# include/linux/slab.h (SLUB, v3.10-v6.x): KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1,
# so kmalloc() of more than 2 pages goes straight to the page allocator
# (kmalloc_large / kmalloc_order) with get_order(size).
_SLUB_KMALLOC_MAX_CACHE_PAGES = 2


def kmalloc_order(t: Target, size: int) -> Optional[int]:
    """Page order of the pages a ``kmalloc(size)`` takes from the buddy allocator.

    None when the object comes from a kmalloc-N slab cache (SLUB, size up to
    two pages).  For SLAB, a kmalloc-N cache's slab holds at least one
    object of the power-of-two size N, so the order is that of N.
    """
    page = t.page_size
    slub = t.has_type("struct kmem_cache_cpu")
    if slub:
        if size <= _SLUB_KMALLOC_MAX_CACHE_PAGES * page:
            return None
        return _get_order(size, page)
    n = 1
    while n < size:
        n <<= 1
    return _get_order(n, page) if n > page else 0


def _get_order(size: int, page: int) -> int:
    pages = (size + page - 1) // page
    return max(0, (pages - 1).bit_length())


# mm/memcontrol.c v3.10 (and v4.x-v5.17): MEMCG_CACHES_MIN_SIZE 4; the
# maximum is MEMCG_CACHES_MAX_SIZE 65535 on 3.10, MEM_CGROUP_ID_MAX + 1 =
# 65536 from v4.x (include/linux/memcontrol.h MEM_CGROUP_ID_MAX USHRT_MAX).
_CACHES_MIN = 4


def next_array_resize(t: Target, capacity: int) -> Optional[Dict[str, Any]]:
    """The allocation the next kmem id array growth will make, or None.

    The rule (memcg_caches_array_size / memcg_alloc_cache_id, mm/memcontrol.c
    v3.10 and v4.x-v5.17): the next id needing growth is ``capacity``; the new
    size is ``2 * (id + 1)`` clamped to [4, max].  What is allocated per size:

    - v3.10 (``memcg_limited_groups_array_size``): ``memcg_update_cache_size``
      kzallocs ``size * sizeof(void *) + sizeof(struct memcg_cache_params)``
      for every root kmem cache — plain kmalloc, no fallback.
    - v4.x-v5.8 (``struct memcg_cache_array``): ``update_memcg_params``
      (mm/slab_common.c) allocates ``sizeof(struct memcg_cache_array) +
      size * sizeof(void *)`` per root cache, and ``memcg_update_list_lru``
      a ``struct list_lru_memcg`` array per list_lru node; both kvzalloc
      (vmalloc fallback) since v4.13 (commit f80c7dab95a1 "mm: memcontrol:
      use vmalloc fallback for large kmem memcg arrays"), kzalloc before.
    - v5.9-v5.17: only the list_lru arrays remain (kvmalloc).
    - v5.18+: no ``memcg_nr_cache_ids``; nothing to grow (None).
    """
    if t.has_symbol("memcg_limited_groups_array_size"):
        maximum = 65535
        header_type = "struct memcg_cache_params"
        what = "per-cache memcg_params (kzalloc in memcg_update_cache_size)"
        fallback = False
    elif t.has_symbol("memcg_nr_cache_ids"):
        maximum = 65536
        if t.has_type("struct memcg_cache_array"):
            header_type = "struct memcg_cache_array"
            what = "per-cache memcg_caches array (update_memcg_params)"
        else:
            header_type = "struct list_lru_memcg"
            what = "per-list_lru memcg_lrus array (memcg_update_list_lru)"
        fallback = _release_at_least(t.release, (4, 13))
    else:
        return None
    new_size = 2 * (capacity + 1)
    new_size = max(_CACHES_MIN, min(new_size, maximum))
    if new_size <= capacity:
        return {"size": capacity, "bytes": None, "order": None, "what": what,
                "vmalloc_fallback": fallback, "at_maximum": True}
    try:
        header = t.type_size(header_type)
    except MissingSymbolError:
        header = 0
    nbytes = new_size * _PTR + header
    return {"size": new_size, "bytes": nbytes, "order": kmalloc_order(t, nbytes),
            "what": what, "vmalloc_fallback": fallback, "at_maximum": False}


def _release_at_least(release: str, want: Tuple[int, int]) -> bool:
    import re
    m = re.match(r"(\d+)\.(\d+)", release or "")
    if not m:
        return True
    return (int(m.group(1)), int(m.group(2))) >= want


def _largest_free_order(t: Target) -> Tuple[Optional[int], Optional[str]]:
    """From the buddy-allocator analysis, if it exists: (order, why not)."""
    try:
        from . import frag  # type: ignore[attr-defined]
    except ImportError:
        return None, "frag analysis not available"
    fn = getattr(frag, "largest_free_order", None)
    if fn is None:
        return None, "frag analysis has no largest_free_order()"
    try:
        return fn(t), None
    except CrashextError as exc:
        return None, exc.one_line()


# -- the layout of this kernel -------------------------------------------------------

class _Layout:
    """What this kernel's memcg/cgroup structures look like, decided once."""

    def __init__(self, t: Target) -> None:
        self.t = t
        self.css_tree = t.has_member("struct cgroup_subsys_state", "children")
        self.kernfs = t.has_member("struct cgroup", "kn")
        # the memory controller's index in cgroup->subsys[]
        self.mem_subsys_id = _opt_constant(t, "memory_cgrp_id")
        if self.mem_subsys_id is None:
            self.mem_subsys_id = _opt_constant(t, "mem_cgroup_subsys_id")
        if self.mem_subsys_id is None:
            ss = _opt_symbol(t, "mem_cgroup_subsys")
            if ss is not None and t.has_member("struct cgroup_subsys", "subsys_id"):
                self.mem_subsys_id = int(ss.subsys_id)
        # v3.10: css->id is a struct css_id * (removed in v3.15 for an int id)
        self.css_id_is_ptr = t.has_type("struct css_id")
        self.css_id_int = not self.css_id_is_ptr and \
            t.has_member("struct cgroup_subsys_state", "id")
        self.cgroup_dentry = t.has_member("struct cgroup", "dentry")
        self.has_memcg_id = t.has_member("struct mem_cgroup", "id.id")
        self.has_kmemcg_id = t.has_member("struct mem_cgroup", "kmemcg_id")
        self.kmem_account_flags = t.has_member("struct mem_cgroup", "kmem_account_flags")
        self.kmem_state = t.has_member("struct mem_cgroup", "kmem_state")
        # usage counters: page_counter (v3.19+) or res_counter in bytes (3.10)
        self.res_counter = t.has_member("struct mem_cgroup", "res.usage")
        self.usage_member = None
        if t.has_member("struct mem_cgroup", "memory.usage"):
            self.usage_member = "usage"     # v4.16+ (commit bbec2e15170a renamed count)
        elif t.has_member("struct mem_cgroup", "memory.count"):
            self.usage_member = "count"
        self.kmem_counter = t.has_member("struct mem_cgroup", "kmem")
        # On the default (v2) hierarchy memcg->kmem is never charged: kmem is
        # charged to it only "if (!cgroup_subsys_on_dfl(memory_cgrp_subsys))"
        # (mm/memcontrol.c v5.10 __memcg_kmem_charge, v6.1 memcg_account_kmem).
        self.on_dfl = False
        dfl = _opt_symbol(t, "cgrp_dfl_root")
        if dfl is not None and t.has_member("struct cgroup", "root"):
            try:
                root = t.symbol("root_mem_cgroup")
                self.on_dfl = int(root.css.cgroup.root) == dfl.address
            except (ReadError, MissingSymbolError):
                pass
        if self.on_dfl:
            self.kmem_counter = False
        # kernfs ino: u64 kn->id since v5.5 (commit 67c0496e87d1); union
        # kernfs_node_id with .ino v4.14-v5.4; kn->ino v3.14-v4.13.
        self.kn_id_mode = None
        if self.kernfs:
            if t.has_member("struct kernfs_node", "id.ino"):
                self.kn_id_mode = "union"
            elif t.has_member("struct kernfs_node", "id"):
                self.kn_id_mode = "u64"
            elif t.has_member("struct kernfs_node", "ino"):
                self.kn_id_mode = "ino"
        # css flag names, values from debug info (masks on every version we read)
        self.css_flags: List[Tuple[str, int]] = []
        for name in ("CSS_NO_REF", "CSS_ROOT", "CSS_ONLINE", "CSS_RELEASED",
                     "CSS_VISIBLE", "CSS_DYING", "CSS_REMOVED"):
            v = _opt_constant(t, name)
            if v is not None:
                self.css_flags.append((name, v))
        self.css_online = _opt_constant(t, "CSS_ONLINE")
        # percpu_ref: count moved into percpu_ref_data in v5.9 (commit 2b0d3d3e4fcf)
        self.percpu_ref = t.has_type("struct percpu_ref") and \
            t.has_member("struct cgroup_subsys_state", "refcnt.percpu_count_ptr")
        self.ref_data = t.has_member("struct percpu_ref", "data")
        ra = _opt_constant(t, "__PERCPU_REF_ATOMIC")
        rd = _opt_constant(t, "__PERCPU_REF_DEAD")
        self.ref_atomic = 1 if ra is None else ra   # include/linux/percpu-refcount.h v3.18+
        self.ref_dead = 2 if rd is None else rd
        self.kmem_bits: List[Tuple[str, int]] = []
        if self.kmem_account_flags:
            for name in ("KMEM_ACCOUNTED_ACTIVE", "KMEM_ACCOUNTED_ACTIVATED",
                         "KMEM_ACCOUNTED_DEAD", "KMEM_MAY_SHRINK"):
                v = _opt_constant(t, name)
                if v is not None:
                    self.kmem_bits.append((name, v))
        self.kmem_state_names: Dict[int, str] = {}
        if self.kmem_state:
            try:
                self.kmem_state_names = {v: k for k, v in
                                         t.enum_constants("enum memcg_kmem_state").items()}
            except MissingSymbolError:
                pass


# -- reading one memcg -----------------------------------------------------------------

class _Fast:
    """Where the fast path finds what :meth:`_Reader.read_slow` reads member
    by member, on the layouts it covers: css tree, kernfs, percpu_ref with
    ``percpu_ref_data`` (v5.9+) and page_counter usage.  None of it exists
    (the constructor raises MissingSymbolError) on other kernels."""

    def __init__(self, t: Target, lay: _Layout) -> None:
        if not (lay.css_tree and lay.kernfs and lay.css_id_int and lay.percpu_ref
                and lay.ref_data and lay.usage_member and lay.kn_id_mode == "u64"
                and lay.css_online is not None and not lay.kmem_account_flags):
            raise MissingSymbolError("memcg fast path: not this layout")
        members = {"flags": "css.flags", "cgroup": "css.cgroup", "css_id": "css.id",
                   "kids_next": "css.children.next", "kids_prev": "css.children.prev",
                   "pcp": "css.refcnt.percpu_count_ptr", "data": "css.refcnt.data",
                   "usage": f"memory.{lay.usage_member}.counter"}
        if lay.has_memcg_id:
            members["memcg_id"] = "id.id"
        if lay.has_kmemcg_id:
            members["kmemcg_id"] = "kmemcg_id"
        if lay.kmem_counter:
            members["kmem"] = f"kmem.{lay.usage_member}.counter"
        if lay.kmem_state:
            members["kmem_state"] = "kmem_state"
        self.memcg = StructFields(t, "struct mem_cgroup", members)
        self.children_off = t.member_offset("struct mem_cgroup", "css.children")
        self.count = StructFields(t, "struct percpu_ref_data", {"count": "count.counter"})
        self.kn_off = t.member_int_layout("struct cgroup", "kn")[0]
        self.kn = StructFields(t, "struct kernfs_node",
                               {"id": "id", "parent": "parent", "name": "name"})


class _Reader:
    def __init__(self, t: Target, lay: _Layout, root_addr: int) -> None:
        self.t = t
        self.lay = lay
        self.root_addr = root_addr
        self._kn_path: Dict[int, Tuple[str, int]] = {}
        self._cg_path: Dict[int, Tuple[str, int]] = {}
        #: kernfs_node -> its id (the cgroup inode number), read with its path
        self._kn_id: Dict[int, int] = {}
        try:
            self.fast: Optional[_Fast] = _Fast(t, lay)
        except MissingSymbolError:
            self.fast = None
        self._checks = 16
        #: blocks shared by the tree walk and the fast reads (dumps only):
        #: memcgs, their cgroups and kernfs nodes sit in slab pages read once
        self.cache: Optional[BlockCache] = None if t.is_live else BlockCache(t, 1024)
        #: memcgs whose css.children list the fast read saw empty
        self.no_children: set = set()

    def children_empty(self, addr: int) -> bool:
        """Whether the read of ``addr`` found ``css.children`` pointing to
        itself both ways: an empty list, which a walk would end at once
        without a word."""
        return addr in self.no_children

    def read(self, addr: int) -> Memcg:
        """One memcg: from one read of its struct where the layout allows
        (:class:`_Fast`), member by member otherwise or if any of that read
        fails (the slow path then says which member could not be read)."""
        if self.fast is not None:
            try:
                m = self._read_fast(addr)
            except ReadError:
                return self.read_slow(addr)
            if self._checks <= 0:
                return m
            # the first memcgs are read both ways: a backend whose layout
            # answers disagree with its own member reads loses the fast path
            self._checks -= 1
            slow = self.read_slow(addr)
            if slow.to_json() != m.to_json():
                self.fast = None
            return slow
        return self.read_slow(addr)

    def _read_fast(self, addr: int) -> Memcg:
        f, lay, cache = self.fast, self.lay, self.cache
        v = f.memcg.read(addr, cache)
        # everything that can fail is read before the Memcg is built
        cg = v["cgroup"]
        if cache is not None:
            kn = cache.word(cg + f.kn_off)
            if kn is None:
                raise ReadError(f"cannot read cgroup {cg:#x}", cg)
        else:
            kn = self.t.read_pointer(cg + f.kn_off)
        path, depth = self._kernfs_path_fast(kn)
        ino = self._kn_id[kn]
        ptr = v["pcp"]
        refcount = None
        if ptr & lay.ref_dead:
            ref_mode = "dead"
        elif ptr & lay.ref_atomic:
            ref_mode = "atomic"
        else:
            ref_mode = "percpu"
        if ref_mode != "percpu":
            refcount = _s64(f.count.read(v["data"], cache)["count"])
        flags = v["flags"]
        m = Memcg(address=addr, path=path, depth=depth, cgroup_id=ino,
                  css_id=_s32(v["css_id"]), online=bool(flags & lay.css_online),
                  state_known=True, css_flags=[n for n, bit in lay.css_flags if flags & bit],
                  refcount=refcount, ref_mode=ref_mode, usage_pages=_s64(v["usage"]))
        head = addr + f.children_off
        if v["kids_next"] == head and v["kids_prev"] == head:
            self.no_children.add(addr)
        if "memcg_id" in v:
            m.memcg_id = _s32(v["memcg_id"])
        if "kmemcg_id" in v:
            m.kmemcg_id = _s32(v["kmemcg_id"])
        if "kmem" in v:
            m.kmem_pages = _s64(v["kmem"])
        if "kmem_state" in v:
            m.kmem_state = lay.kmem_state_names.get(v["kmem_state"], str(v["kmem_state"]))
        return m

    def _kernfs_path_fast(self, kn: int) -> Tuple[str, int]:
        """:meth:`_kernfs_path` from one read per kernfs_node (id, parent,
        name pointer) and one of its name; each node once per walk.  Raises
        ReadError where the slow path might differ (an unterminated name)."""
        got = self._kn_path.get(kn)
        if got is not None and kn in self._kn_id:
            return got
        f = self.fast
        chain = []
        vals = {}
        node = kn
        while node and (node not in self._kn_path or node not in self._kn_id):
            chain.append(node)
            if len(chain) > 4096:
                raise ReadError(f"kernfs parent chain from {kn:#x} does not end")
            vals[node] = f.kn.read(node, self.cache)
            node = vals[node]["parent"]
        base = self._kn_path.get(node, ("", -1)) if node else ("", -1)
        # the top of a chain that ends at NULL is the root directory: no name read
        named = chain if node else chain[:-1]
        names = {n: self._name(vals[n]["name"]) for n in named}
        for n in reversed(chain):
            if base[1] < 0:  # the hierarchy's root directory
                base = ("/", 0)
            else:
                base = ((base[0].rstrip("/") + "/" + names[n]), base[1] + 1)
            self._kn_path[n] = base
            self._kn_id[n] = vals[n]["id"]
        return self._kn_path[kn]

    def _name(self, ptr: int) -> str:
        """The kernfs name at ``ptr`` as ``KObj.string(256)`` gives it."""
        if ptr == 0:
            return ""
        n = min(256, 4096 - (ptr & 4095))
        raw = self.cache.read(ptr, n) if self.cache is not None else self.t.read_bytes(ptr, n)
        end = raw.find(b"\0")
        if end < 0:  # longer, or crossing a page: the slow path reads it
            raise ReadError("kernfs name not terminated in the bytes read", ptr)
        return raw[:end].decode("utf-8", "replace")

    def read_slow(self, addr: int) -> Memcg:
        m = Memcg(address=addr)
        t, lay = self.t, self.lay
        memcg = t.object("struct mem_cgroup", addr)
        css = memcg.css

        def attempt(what: str, fn: Callable[[], None]) -> None:
            try:
                fn()
            except (ReadError, MissingSymbolError) as exc:
                m.errors.append(f"{what}: {exc.one_line()}")

        def flags() -> None:
            v = int(css.flags)
            m.css_flags = [n for n, bit in lay.css_flags if v & bit]
            if lay.css_online is not None:
                m.online = bool(v & lay.css_online)
            m.state_known = True
        attempt("css.flags", flags)

        def path() -> None:
            cg = int(css.cgroup)
            m.path, m.depth = self.cgroup_path(cg)
            m.cgroup_id = self.cgroup_ino(cg)
        attempt("cgroup", path)

        def css_id() -> None:
            if lay.css_id_is_ptr:
                p = int(css.id)
                m.css_id = int(css.id.id) if p else None
            elif lay.css_id_int:
                m.css_id = _s32(int(css.id))
        attempt("css.id", css_id)

        if lay.has_memcg_id:
            attempt("id", lambda: setattr(m, "memcg_id", _s32(int(memcg.id.id))))
        if lay.has_kmemcg_id:
            attempt("kmemcg_id", lambda: setattr(m, "kmemcg_id", _s32(int(memcg.kmemcg_id))))
        attempt("css.refcnt", lambda: self._refcount(m, css))

        def usage() -> None:
            if lay.usage_member:
                m.usage_pages = _s64(_counter(memcg.memory.member(lay.usage_member)))
                if lay.kmem_counter:
                    m.kmem_pages = _s64(_counter(memcg.kmem.member(lay.usage_member)))
            elif lay.res_counter:
                m.usage_pages = int(memcg.res.usage) // t.page_size
                if lay.kmem_counter:
                    m.kmem_pages = int(memcg.kmem.usage) // t.page_size
        attempt("usage", usage)

        def kmem() -> None:
            if lay.kmem_account_flags:
                v = int(memcg.kmem_account_flags)
                m.kmem_flags = [n for n, bit in lay.kmem_bits if v & (1 << bit)]
            if lay.kmem_state:
                v = int(memcg.kmem_state)
                m.kmem_state = lay.kmem_state_names.get(v, str(v))
        attempt("kmem", kmem)
        if m.errors:
            m.anomalies.append("unreadable")
        return m

    def _refcount(self, m: Memcg, css: KObj) -> None:
        lay = self.lay
        ref = css.refcnt
        if not lay.percpu_ref:
            m.refcount = _counter(ref)
            m.ref_mode = "atomic"
            return
        ptr = int(ref.percpu_count_ptr)
        if ptr & lay.ref_dead:
            m.ref_mode = "dead"
        elif ptr & lay.ref_atomic:
            m.ref_mode = "atomic"
        else:
            m.ref_mode = "percpu"
            return
        count = ref.data.count if lay.ref_data else ref.count
        m.refcount = _s64(_counter(count))

    # paths --------------------------------------------------------------------
    def cgroup_path(self, cg: int) -> Tuple[str, int]:
        if self.lay.kernfs:
            kn = int(self.t.object("struct cgroup", cg).kn)
            return self._kernfs_path(kn)
        return self._cgroup_name_path(cg)

    def _kernfs_path(self, kn: int) -> Tuple[str, int]:
        chain = []
        node = kn
        while node and node not in self._kn_path:
            chain.append(node)
            if len(chain) > 4096:
                raise ReadError(f"kernfs parent chain from {kn:#x} does not end")
            node = int(self.t.object("struct kernfs_node", node).parent)
        base = self._kn_path.get(node, ("", -1)) if node else ("", -1)
        for n in reversed(chain):
            obj = self.t.object("struct kernfs_node", n)
            if base[1] < 0:  # the hierarchy's root directory
                base = ("/", 0)
            else:
                name = obj.name.string(256)
                base = ((base[0].rstrip("/") + "/" + name), base[1] + 1)
            self._kn_path[n] = base
        return self._kn_path[kn]

    def _cgroup_name_path(self, cg: int) -> Tuple[str, int]:
        # v3.10: cgroup->name is a struct cgroup_name (rcu string), the root's "/"
        chain = []
        node = cg
        while node and node not in self._cg_path:
            chain.append(node)
            if len(chain) > 4096:
                raise ReadError(f"cgroup parent chain from {cg:#x} does not end")
            node = int(self.t.object("struct cgroup", node).parent)
        base = self._cg_path.get(node, ("", -1)) if node else ("", -1)
        for n in reversed(chain):
            if base[1] < 0:
                base = ("/", 0)
            else:
                obj = self.t.object("struct cgroup", n)
                name = obj.name.name.string(256)
                base = (base[0].rstrip("/") + "/" + name, base[1] + 1)
            self._cg_path[n] = base
        return self._cg_path[cg]

    def cgroup_ino(self, cg: int) -> Optional[int]:
        t, lay = self.t, self.lay
        cgrp = t.object("struct cgroup", cg)
        if lay.kernfs:
            kn = cgrp.kn
            if lay.kn_id_mode == "u64":
                # fs/kernfs: on 64-bit ino_t the whole id is the inode number
                return int(kn.id)
            if lay.kn_id_mode == "union":
                return int(kn.id.ino)
            if lay.kn_id_mode == "ino":
                return int(kn.ino)
            return None
        if lay.cgroup_dentry:
            dentry = int(cgrp.dentry)
            if dentry:
                inode = int(cgrp.dentry.d_inode)
                if inode:
                    return int(cgrp.dentry.d_inode.i_ino)
        return None


# -- finding them ---------------------------------------------------------------------

def _tree(t: Target, lay: _Layout, root: int, progress=None,
          visit: Optional[Callable[[int], None]] = None,
          cache: Optional[BlockCache] = None,
          childless: Optional[Callable[[int], bool]] = None) -> Tuple[List[int], Optional[str]]:
    """Pre-order memcg addresses of the cgroup tree; corruption reason or None.

    ``visit(address)`` is called for each memcg as soon as the walk reads it
    (as a node of its parent's children list, whose block is then in
    ``cache``, shared with the list walks): in list order, not pre-order,
    and possibly for a node the result leaves out (seen twice).
    ``childless(address)``: True if that memcg's children list is known to
    be empty (its walk is skipped)."""
    out: List[int] = []
    problems: List[str] = []
    if lay.css_tree:
        css_off = t.member_offset("struct mem_cgroup", "css")
        children_off = t.member_offset("struct cgroup_subsys_state", "children")
        sib_off = t.member_offset("struct cgroup_subsys_state", "sibling")
        stack = [root + css_off]
        seen = set()
        if visit is not None:
            visit(root)
        while stack:
            css = stack.pop()
            if css in seen:
                problems.append(f"css {css:#x} reached twice")
                continue
            seen.add(css)
            out.append(css - css_off)
            if progress is not None:
                progress.step()
            if childless is not None and childless(css - css_off):
                continue
            w = walk_list(t, css + children_off, cache=cache)
            if visit is None:
                kids = [node - sib_off for node in w]
            else:
                kids = []
                for node in w:
                    kids.append(node - sib_off)
                    visit(node - sib_off - css_off)
            if w.corruption:
                problems.append(f"children of css {css:#x}: {w.corruption}")
            stack.extend(reversed(kids))
        return out, "; ".join(problems[:3]) or None
    # v3.10: cgroup->children / ->sibling, css in cgroup->subsys[id]
    if lay.mem_subsys_id is None:
        raise MissingSymbolError("cannot tell the memory controller's subsystem id")
    root_cg = int(t.object("struct mem_cgroup", root).css.cgroup)
    children_off = t.member_offset("struct cgroup", "children")
    sib_off = t.member_offset("struct cgroup", "sibling")
    subsys_off = t.member_offset("struct cgroup", "subsys") + lay.mem_subsys_id * _PTR
    css_off = t.member_offset("struct mem_cgroup", "css")
    stack = [root_cg]
    seen = set()
    while stack:
        cg = stack.pop()
        if cg in seen:
            problems.append(f"cgroup {cg:#x} reached twice")
            continue
        seen.add(cg)
        try:
            css = t.read_pointer(cg + subsys_off)
        except ReadError as exc:
            problems.append(exc.one_line())
            continue
        if css:
            out.append(css - css_off)
            if visit is not None:
                visit(css - css_off)
        if progress is not None:
            progress.step()
        w = walk_list(t, cg + children_off, cache=cache)
        kids = [node - sib_off for node in w]
        if w.corruption:
            problems.append(f"children of cgroup {cg:#x}: {w.corruption}")
        stack.extend(reversed(kids))
    return out, "; ".join(problems[:3]) or None


def _idr_sources(t: Target, lay: _Layout) -> List[Tuple[str, Dict[int, int], Optional[str]]]:
    """(source name, {id: memcg address}, corruption) for each id tree this kernel has."""
    out = []
    css_off = t.member_offset("struct mem_cgroup", "css")
    idr = _opt_symbol(t, "mem_cgroup_idr")
    if idr is not None:
        w = idr_entries(t, idr)
        out.append(("mem_cgroup_idr", dict(w.entries), w.corruption))
    if lay.css_id_is_ptr:
        ss = _opt_symbol(t, "mem_cgroup_subsys")
        if ss is not None and t.has_member("struct cgroup_subsys", "idr"):
            w = idr_entries(t, ss.idr)
            css_ptr_off = t.member_offset("struct css_id", "css")
            found: Dict[int, int] = {}
            for i, cid in w.entries.items():
                try:
                    css = t.read_pointer(cid + css_ptr_off)
                except ReadError:
                    w.corruption = w.corruption or f"unreadable css_id {cid:#x}"
                    continue
                if css:
                    found[i] = css - css_off
            out.append(("css_id_idr", found, w.corruption))
    elif t.has_member("struct cgroup_subsys", "css_idr") and lay.mem_subsys_id is not None:
        subsys = _opt_symbol(t, "cgroup_subsys")
        if subsys is not None:
            ss = subsys[lay.mem_subsys_id]
            if int(ss):
                w = idr_entries(t, ss.css_idr)
                found = {i: p - css_off for i, p in w.entries.items()}
                out.append(("css_idr", found, w.corruption))
    return out


# -- the report ---------------------------------------------------------------------------

def memcg_report(t: Target, progress=None) -> MemcgReport:
    """Every memcg of ``t`` with its ids, state and anomalies, and a summary."""
    root_obj = _opt_symbol(t, "root_mem_cgroup")
    if root_obj is None or not t.has_type("struct mem_cgroup"):
        raise MissingSymbolError("this kernel has no memory cgroup controller "
                                 "(no root_mem_cgroup / struct mem_cgroup in debug info)")
    root = int(root_obj)
    if root == 0:
        raise CrashextError("root_mem_cgroup is NULL: the memory controller is disabled "
                            "(cgroup_disable=memory?) or the dump was taken during boot")
    try:
        # the hierarchy (v1/v2) and the kmem counter choice are read through the
        # root; a root the dump lacks would make both silently wrong
        cg = t.object("struct mem_cgroup", root).css.cgroup
        if t.has_member("struct cgroup", "root"):
            int(cg.root)
        else:
            int(cg)
    except ReadError as exc:
        raise CrashextError(f"root_mem_cgroup ({root:#x}) cannot be read from the dump, so "
                            f"the memcg hierarchy is unknown: {exc.one_line()}") from exc
    lay = _Layout(t)
    reader = _Reader(t, lay, root)
    read: Dict[int, Memcg] = {}

    def visit(addr: int) -> None:
        # read as the walk reaches it: its page is still in the shared cache
        if addr not in read:
            read[addr] = reader.read(addr)
            if progress is not None:
                progress.step()
    tree, tree_problem = _tree(t, lay, root, progress, visit, reader.cache,
                               reader.children_empty)
    sources_used = ["css tree (css.children/sibling)" if lay.css_tree
                    else "cgroup tree (cgroup.children/sibling)"]
    memcgs: Dict[int, Memcg] = {}
    for addr in tree:
        m = read[addr]
        m.sources.append("tree")
        memcgs[addr] = m
    del read
    idrs = []
    idr_problems = {}
    for name, entries, problem in _idr_sources(t, lay):
        sources_used.append(name)
        idrs.append((name, entries))
        if problem:
            idr_problems[name] = problem
        for _id, addr in entries.items():
            m = memcgs.get(addr)
            if m is None:
                m = reader.read(addr)
                memcgs[addr] = m
                # on 3.10 the css id idr is where removed memcgs live by design
                if not (name == "css_id_idr" and not m.online):
                    m.anomalies.append("not-in-tree")
            if name not in m.sources:
                m.sources.append(name)
    # tree order first, then what only an id tree knows, by path
    in_tree = set(tree)
    rows = [memcgs[a] for a in tree if a in memcgs]
    rows += sorted((m for a, m in memcgs.items() if a not in in_tree), key=lambda m: m.path)

    kmem = _kmem_facts(t, lay, rows)
    _flag(t, lay, rows, root, kmem, dict(idrs))
    summary = _summary(t, lay, rows, sources_used, tree_problem, idr_problems, kmem)
    return MemcgReport(summary=summary, memcgs=rows)


def _kmem_facts(t: Target, lay: _Layout, rows: List[Memcg]) -> Dict[str, Any]:
    facts: Dict[str, Any] = {"kmemcg_id": lay.has_kmemcg_id}
    nokmem = _opt_symbol(t, "cgroup_memory_nokmem")
    if not lay.has_kmemcg_id:
        facts["mode"] = "no kmemcg_id in this kernel"
        facts["enabled"] = False
    elif nokmem is not None and int(nokmem):
        facts["mode"] = "kmem accounting disabled (cgroup.memory=nokmem)"
        facts["enabled"] = False
    elif lay.kmem_account_flags:
        facts["mode"] = "per-memcg kmem accounting (activated by a kmem limit)"
        facts["enabled"] = True
    else:
        facts["mode"] = "kmem accounting enabled"
        facts["enabled"] = True
    cap_sym = None
    for name in ("memcg_limited_groups_array_size", "memcg_nr_cache_ids"):
        if t.has_symbol(name):
            cap_sym = name
            break
    facts["capacity_symbol"] = cap_sym
    facts["capacity"] = int(t.symbol(cap_sym)) if cap_sym else None
    holders = _id_holders(lay, rows)
    facts["ids_in_use"] = len({m.kmemcg_id for m in holders})
    return facts


def _id_holders(lay: _Layout, rows: List[Memcg]) -> List[Memcg]:
    """Memcgs whose kmemcg_id must be their own, unique one.

    3.10 (``kmem_account_flags``): a memcg keeps its id until
    ``__mem_cgroup_free`` (disarm_kmem_keys), dying or not.  v4.5+
    (commit 2788cf0c401c "memcg: reparent list_lrus and free kmemcg_id on
    css offline"): offline memcgs hand their id back and carry the parent's,
    so only online ones own one.
    """
    out = []
    for m in rows:
        if m.kmemcg_id is None or m.kmemcg_id < 0:
            continue
        if lay.kmem_account_flags or m.online:
            out.append(m)
    return out


def _flag(t: Target, lay: _Layout, rows: List[Memcg], root: int,
          kmem: Dict[str, Any], idrs: Dict[str, Dict[int, int]]) -> None:
    for m in rows:
        if m.kmemcg_id is None:
            continue
        if lay.kmem_account_flags:
            # mm/memcontrol.c v3.10 memcg_propagate_kmem copies the parent's
            # flags, and memcg_update_cache_sizes leaves kmemcg_id at -1 when
            # growing the caches fails; ACTIVE then makes disarm_kmem_keys
            # call ida_simple_remove(-1).
            if m.kmemcg_id < 0 and m.kmem_flags and (
                    "KMEM_ACCOUNTED_ACTIVE" in m.kmem_flags or "KMEM_ACCOUNTED_ACTIVATED" in m.kmem_flags):
                m.anomalies.append("kmemcg-id-unassigned")
            continue
        if m.kmemcg_id < 0 and m.kmem_state is not None and m.kmem_state.endswith("ONLINE"):
            m.anomalies.append("kmemcg-id-unassigned")
        elif m.kmemcg_id < 0 and kmem["enabled"] and m.online and m.address != root:
            m.anomalies.append("kmemcg-id-missing")
    holders = _id_holders(lay, rows)
    by_id: Dict[int, List[Memcg]] = {}
    for m in holders:
        by_id.setdefault(m.kmemcg_id, []).append(m)
    for ms in by_id.values():
        if len(ms) > 1:
            for m in ms:
                m.anomalies.append("kmemcg-id-duplicate")
    cap = kmem.get("capacity")
    if cap is not None:
        for m in holders:
            if m.kmemcg_id >= cap:
                m.anomalies.append("kmemcg-id-over-capacity")
    ids = idrs.get("mem_cgroup_idr")
    if ids is not None:
        for m in rows:
            if m.online and m.memcg_id is not None and m.memcg_id > 0 and ids.get(m.memcg_id) != m.address:
                m.anomalies.append("memcg-idr-mismatch")


def _summary(t: Target, lay: _Layout, rows: List[Memcg], sources: List[str],
             tree_problem: Optional[str], idr_problems: Dict[str, str],
             kmem: Dict[str, Any]) -> Dict[str, Any]:
    online = sum(1 for m in rows if m.online)
    counts: Dict[str, int] = {}
    for m in rows:
        for a in m.anomalies:
            counts[a] = counts.get(a, 0) + 1
    resize = None
    if kmem.get("capacity") is not None:
        resize = next_array_resize(t, kmem["capacity"])
    lfo, lfo_why = (None, None)
    if resize is not None and resize.get("order") is not None:
        lfo, lfo_why = _largest_free_order(t)
    return {
        "release": t.release,
        "layout": "css tree (v3.15+)" if lay.css_tree else "cgroup tree (v3.10)",
        "hierarchy": "v2" if lay.on_dfl else "v1",
        "sources": sources,
        "total": len(rows),
        "online": online,
        # a memcg whose css.flags are unreadable is neither (not counted as dying)
        "dying": sum(1 for m in rows if m.state == "dying"),
        "state_unknown": sum(1 for m in rows if m.state == "unknown"),
        "flagged": sum(1 for m in rows if m.anomalies),
        "anomalies": counts,
        "kmem_mode": kmem.get("mode"),
        "kmem_enabled": kmem.get("enabled"),
        "kmem_ids_in_use": kmem.get("ids_in_use"),
        "kmem_id_capacity": kmem.get("capacity"),
        "kmem_id_capacity_symbol": kmem.get("capacity_symbol"),
        "next_resize": resize,
        "largest_free_order": lfo,
        "largest_free_order_note": lfo_why,
        "walk_problem": tree_problem,
        "idr_problems": idr_problems,
        "in_tree": sum(1 for m in rows if "tree" in m.sources),
        "only_in_idr": sum(1 for m in rows if "tree" not in m.sources),
    }
