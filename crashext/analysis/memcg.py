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
  goes.  Cross-checks: ``mem_cgroup_idr`` (since Linux kernel commit
  73f576c04b94 ("mm: memcontrol: fix cgroup creation failure after many small
  jobs") (in v4.8 as read here; the knowledge base's memcg-id-exhaustion
  entry says 4.7: not confirmed)) and the memory subsystem's ``css_idr``
  (entries replaced by NULL in ``css_release_work_fn`` too).
- 3.10 (RHEL7): the tree is ``cgroup->children`` / ``cgroup->sibling`` with
  the css in ``cgroup->subsys[mem_cgroup_subsys_id]``; ``cgroup_destroy_locked``
  unlinks a removed cgroup from its parent at rmdir (kernel/cgroup.c v3.10),
  so removed-but-not-freed memcgs are found through the memory subsystem's
  css id idr (``mem_cgroup_subsys.idr`` of ``struct css_id``), whose entry
  is dropped only by ``free_css_id`` in ``__mem_cgroup_free``
  (mm/memcontrol.c v3.10).

The walks are in :mod:`.memcg_tree`, the reading of one memcg in
:mod:`.memcg_read`.  Everything is read through
:class:`~crashext.kernel.target.Target`; kernel
names (members, enumerators) come from debug info.
"""

from array import array
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import CrashextError, MissingSymbolError, ReadError
from ..kernel.target import Target
from ..spool import FileStore, ListStore
# the reading of one memcg lives in memcg_read; named here with the report
from .memcg_read import Memcg, MemcgLayout, MemcgReader, optional_symbol
# the kmem id arrays' growth rules live in memcg_kmem; named here with the report
from .memcg_kmem import kmalloc_order, largest_free_order_or_why, next_array_resize
# the tree walk and the id trees that find them live in memcg_tree
from .memcg_tree import IdMap, SortedInts, idr_sources, tree_memcgs

__all__ = ["Memcg", "MemcgReport", "MemcgScan", "memcg_report", "memcg_scan",
           "ANOMALIES", "next_array_resize", "kmalloc_order", "dying_by_parent"]

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
class MemcgReport:
    summary: Dict[str, Any]
    memcgs: List[Memcg]

    def to_json(self) -> Dict[str, Any]:
        return {"summary": self.summary, "memcgs": [m.to_json() for m in self.memcgs]}


# -- the report ---------------------------------------------------------------------------

def memcg_report(t: Target, progress=None) -> MemcgReport:
    """Every memcg of ``t`` with its ids, state and anomalies, and a summary."""
    with memcg_scan(t, progress) as scan:
        return MemcgReport(summary=scan.summary, memcgs=list(scan.rows()))


def memcg_scan(t: Target, progress=None, spool: bool = False) -> "MemcgScan":
    """Walk every memcg of ``t``; the rows are read back from the result.

    With ``spool`` each memcg goes to a temporary file as it is read
    (:class:`crashext.spool.FileStore`), so memory does not grow with the
    number of memcgs beyond a few small maps (the anomaly checks need,
    besides the row itself, the id trees and the kmemcg_id holders); the
    rows are made again from the file each time :meth:`MemcgScan.rows` is
    iterated.  Without it, or where no temporary file can be made (no
    writable ``TMPDIR``), they are kept in a list.  The summary is counted
    from the finished rows, so it says what the rows say.
    """
    root_obj = optional_symbol(t, "root_mem_cgroup")
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
    lay = MemcgLayout(t)
    reader = MemcgReader(t, lay, root)
    store = ListStore()
    if spool:
        try:
            store = FileStore(_pack, _unpack)
        except OSError:
            pass  # no writable temporary directory: the rows stay in memory

    try:
        return _scan(t, lay, root, reader, store, progress)
    except BaseException:
        store.close()
        raise


def _scan(t: Target, lay: MemcgLayout, root: int, reader: MemcgReader, store, progress) -> "MemcgScan":
    facts = _Facts(lay, root)

    def keep(addr: int) -> Tuple[Memcg, int]:
        """Read a memcg, note its kmemcg_id, store it: (row, handle)."""
        m = reader.read(addr)
        facts.note_holder(m)
        if progress is not None:
            progress.step()
        return m, store.put(m)

    def visit(addr: int) -> int:
        # read as the walk reaches it: its page is still in the shared cache
        return keep(addr)[1]

    in_tree: Dict[int, None] = {}
    linked: Dict[int, int] = {}
    # progress is stepped per read (in visit), not again per node walked:
    # "memcgs read" counts each memcg once
    order, tree_problem = tree_memcgs(t, lay, root, None, visit, reader.cache,
                                      reader.children_empty, members=in_tree, linked=linked)
    n_tree = len(order)
    # the tree's addresses as one sorted array: the set goes before the id
    # trees are read
    tree_addrs = SortedInts(in_tree)
    del in_tree
    sources_used = ["css tree (css.children/sibling)" if lay.css_tree
                    else "cgroup tree (cgroup.children/sibling)"]
    idr_problems = {}
    only_idr = []
    found_only: set = set()
    for name, ids, addrs, problem in idr_sources(t, lay):
        sources_used.append(name)
        facts.idr_names.append(name)
        facts.idr_addrs.append(SortedInts(addrs))
        if problem:
            idr_problems[name] = problem
        if name == "mem_cgroup_idr":
            facts.memcg_ids = IdMap(ids, addrs)
        # what only an id tree knows, in the order the trees gave it
        for addr in addrs:
            if addr in tree_addrs or addr in found_only:
                continue
            found_only.add(addr)
            m, handle = keep(addr)
            only_idr.append((m.path, handle))
    # ... then by path
    only_idr.sort(key=lambda pair: pair[0])
    order.extend(h for _path, h in only_idr)
    facts.kmem = _kmem_facts(t, lay, facts)
    scan = MemcgScan(store, order, n_tree, facts)
    scan.children = linked
    scan.summary = _summary(t, lay, scan, sources_used, tree_problem, idr_problems)
    return scan


class MemcgScan:
    """The memcgs a walk found: :attr:`summary` and :meth:`rows`, in the
    report's order (the tree in pre-order, then what only an id tree knows,
    by path).  Close it (or use it in a ``with``) to drop the rows."""

    def __init__(self, store, order: "array[int]", n_tree: int, facts: "_Facts") -> None:
        self._store = store
        self._order = order
        self._n_tree = n_tree
        self._facts = facts
        self._finished = False
        self.summary: Dict[str, Any] = {}
        #: memcg address -> the children linked under it, as the tree walk
        #: found them, for the memcgs with any; the first :attr:`n_tree` rows
        #: are the tree's, and those absent here have none
        self.children: Dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._order)

    @property
    def n_tree(self) -> int:
        """How many of the rows (the first) the tree walk found."""
        return self._n_tree

    def rows(self) -> Iterator[Memcg]:
        """Each memcg with its sources and anomalies (made anew from a
        spool, the kept object from a list)."""
        get = self._store.get
        if self._finished:
            # kept in a list and all finished by an earlier pass
            for handle in self._order:
                yield get(handle)
            return
        finish = self._facts.finish
        for i, handle in enumerate(self._order):
            m = get(handle)
            finish(m, i < self._n_tree)
            yield m
        self._finished = isinstance(self._store, ListStore)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "MemcgScan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_FIELDS = tuple(f.name for f in fields(Memcg))
_pack = attrgetter(*_FIELDS)


def _unpack(values: Tuple[Any, ...]) -> Memcg:
    return Memcg(*values)


def dying_by_parent(memcgs: Iterable[Memcg], top: int = 10) -> List[Dict[str, Any]]:
    """The parents holding the most dying memcgs: ``[{"parent", "dying"}]``,
    most first (a parent is the path up to the last "/"; "/" for the root's
    children).  What a memcg leak looks like: one service's slice with
    thousands of removed-but-pinned children."""
    counts: Dict[str, int] = {}
    for m in memcgs:
        if m.state != "dying":
            continue
        parent = (m.path.rsplit("/", 1)[0] or "/") if "/" in m.path else "?"
        counts[parent] = counts.get(parent, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"parent": p, "dying": n} for p, n in ranked[:top]]


class _Facts:
    """What a row's sources and anomalies depend on besides the row: the id
    trees, who holds which kmemcg_id, kmem accounting.  :meth:`finish`
    gives a row those from scratch, so finishing a row twice changes
    nothing."""

    def __init__(self, lay: MemcgLayout, root: int) -> None:
        self.lay = lay
        self.root = root
        #: names of the id trees read, in order, and the memcgs each holds
        self.idr_names: List[str] = []
        self.idr_addrs: List[SortedInts] = []
        #: mem_cgroup_idr's id -> memcg, where the kernel has it
        self.memcg_ids: Optional[IdMap] = None
        #: memcg address -> the kmemcg_id it must own (see _holds_own_id);
        #: by address, so a memcg read twice (a list reached twice) counts once
        self.holder_ids: Dict[int, int] = {}
        self._holders: Optional[Dict[int, int]] = None
        self.kmem: Dict[str, Any] = {}

    def note_holder(self, m: Memcg) -> None:
        if _holds_own_id(self.lay, m):
            self.holder_ids[m.address] = m.kmemcg_id

    def holders(self) -> Dict[int, int]:
        """kmemcg_id -> how many memcgs hold it as their own."""
        if self._holders is None:
            self._holders = {}
            for kid in self.holder_ids.values():
                self._holders[kid] = self._holders.get(kid, 0) + 1
        return self._holders

    def finish(self, m: Memcg, in_tree: bool) -> None:
        lay = self.lay
        idrs = [name for name, addrs in zip(self.idr_names, self.idr_addrs)
                if m.address in addrs]
        m.sources = ["tree"] + idrs if in_tree else idrs
        # the read's own finding: read_slow marks any member it could not read
        a = ["unreadable"] if m.errors else []
        # on 3.10 the css id idr is where removed memcgs live by design
        if not in_tree and not (idrs[0] == "css_id_idr" and not m.online):
            a.append("not-in-tree")
        kid = m.kmemcg_id
        if kid is not None:
            if lay.kmem_account_flags:
                # mm/memcontrol.c v3.10 memcg_propagate_kmem copies the parent's
                # flags, and memcg_update_cache_sizes leaves kmemcg_id at -1 when
                # growing the caches fails; ACTIVE then makes disarm_kmem_keys
                # call ida_simple_remove(-1).
                if kid < 0 and m.kmem_flags and (
                        "KMEM_ACCOUNTED_ACTIVE" in m.kmem_flags
                        or "KMEM_ACCOUNTED_ACTIVATED" in m.kmem_flags):
                    a.append("kmemcg-id-unassigned")
            elif kid < 0 and m.kmem_state is not None and m.kmem_state.endswith("ONLINE"):
                a.append("kmemcg-id-unassigned")
            elif kid < 0 and self.kmem["enabled"] and m.online and m.address != self.root:
                a.append("kmemcg-id-missing")
            if _holds_own_id(lay, m):
                if self.holders().get(kid, 0) > 1:
                    a.append("kmemcg-id-duplicate")
                cap = self.kmem.get("capacity")
                if cap is not None and kid >= cap:
                    a.append("kmemcg-id-over-capacity")
        ids = self.memcg_ids
        if ids is not None and m.online and m.memcg_id is not None and m.memcg_id > 0 \
                and ids.get(m.memcg_id) != m.address:
            a.append("memcg-idr-mismatch")
        m.anomalies = a


def _kmem_facts(t: Target, lay: MemcgLayout, facts: _Facts) -> Dict[str, Any]:
    kmem: Dict[str, Any] = {"kmemcg_id": lay.has_kmemcg_id}
    nokmem = optional_symbol(t, "cgroup_memory_nokmem")
    if not lay.has_kmemcg_id:
        kmem["mode"] = "no kmemcg_id in this kernel"
        kmem["enabled"] = False
    elif nokmem is not None and int(nokmem):
        kmem["mode"] = "kmem accounting disabled (cgroup.memory=nokmem)"
        kmem["enabled"] = False
    elif lay.kmem_account_flags:
        kmem["mode"] = "per-memcg kmem accounting (activated by a kmem limit)"
        kmem["enabled"] = True
    else:
        kmem["mode"] = "kmem accounting enabled"
        kmem["enabled"] = True
    cap_sym = None
    for name in ("memcg_limited_groups_array_size", "memcg_nr_cache_ids"):
        if t.has_symbol(name):
            cap_sym = name
            break
    kmem["capacity_symbol"] = cap_sym
    kmem["capacity"] = int(t.symbol(cap_sym)) if cap_sym else None
    kmem["ids_in_use"] = len(facts.holders())
    return kmem


def _holds_own_id(lay: MemcgLayout, m: Memcg) -> bool:
    """Whether ``m``'s kmemcg_id must be its own, unique one.

    3.10 (``kmem_account_flags``): a memcg keeps its id until
    ``__mem_cgroup_free`` (disarm_kmem_keys), dying or not.  Since Linux
    kernel commit 2788cf0c401c ("memcg: reparent list_lrus and free kmemcg_id
    on css offline") (in v4.5) offline memcgs hand their id back and carry
    the parent's, so only online ones own one.
    """
    if m.kmemcg_id is None or m.kmemcg_id < 0:
        return False
    return bool(lay.kmem_account_flags or m.online)


def _summary(t: Target, lay: MemcgLayout, scan: MemcgScan, sources: List[str],
             tree_problem: Optional[str], idr_problems: Dict[str, str]) -> Dict[str, Any]:
    total = online = dying = unknown = flagged = in_tree = 0
    counts: Dict[str, int] = {}
    for m in scan.rows():
        total += 1
        if m.online:
            online += 1
        state = m.state
        if state == "dying":
            dying += 1
        elif state == "unknown":
            unknown += 1
        if m.anomalies:
            flagged += 1
            for a in m.anomalies:
                counts[a] = counts.get(a, 0) + 1
        if "tree" in m.sources:
            in_tree += 1
    kmem = scan._facts.kmem
    resize = None
    if kmem.get("capacity") is not None:
        resize = next_array_resize(t, kmem["capacity"])
    lfo, lfo_why = (None, None)
    if resize is not None and resize.get("order") is not None:
        lfo, lfo_why = largest_free_order_or_why(t)
    return {
        "release": t.release,
        "layout": "css tree (v3.15+)" if lay.css_tree else "cgroup tree (v3.10)",
        "hierarchy": "v2" if lay.on_dfl else "v1",
        "sources": sources,
        "total": total,
        "online": online,
        # a memcg whose css.flags are unreadable is neither (not counted as dying)
        "dying": dying,
        "state_unknown": unknown,
        "flagged": flagged,
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
        "in_tree": in_tree,
        "only_in_idr": total - in_tree,
    }
