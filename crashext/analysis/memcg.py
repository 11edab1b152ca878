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

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import CrashextError, MissingSymbolError, ReadError
from ..kernel.idr import IdrWalk, idr_entries  # noqa: F401  (IdrWalk: re-exported)
from ..kernel.target import Target
from ..kernel.walk import BlockCache, walk_list
# the reading of one memcg lives in memcg_read; _Fast is named here for tests
from .memcg_read import Memcg, _Fast, _Layout, _Reader, _opt_symbol  # noqa: F401
# the kmem id arrays' growth rules live in memcg_kmem; named here as before
from .memcg_kmem import kmalloc_order, largest_free_order, next_array_resize  # noqa: F401

__all__ = ["Memcg", "MemcgReport", "memcg_report", "idr_entries", "ANOMALIES",
           "next_array_resize", "kmalloc_order", "dying_by_parent"]

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
class MemcgReport:
    summary: Dict[str, Any]
    memcgs: List[Memcg]

    def to_json(self) -> Dict[str, Any]:
        return {"summary": self.summary, "memcgs": [m.to_json() for m in self.memcgs]}


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
    read.clear()
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


def dying_by_parent(memcgs: List[Memcg], top: int = 10) -> List[Dict[str, Any]]:
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
        lfo, lfo_why = largest_free_order(t)
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
