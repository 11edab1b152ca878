"""The buddy allocator's per-zone watermark check, emulated per kernel generation.

Pure functions over plain data: no kernel access, no printing.  Whoever has a
zone's numbers -- read from a dump, from /proc/zoneinfo, or parsed from a
"page allocation failure" report in a kernel log -- builds a
:class:`ZoneState` (everything in PAGES, not kB) and asks
:func:`watermark_ok` whether an order-N allocation passes that zone's
watermark the way ``__zone_watermark_ok()`` in mm/page_alloc.c decides it.

API::

    zone = ZoneState(node=0, name="Normal", free_pages=118387,
                     min=13885, low=17356, high=20827,
                     lowmem_reserve=[0, 0, 0, 0], nr_free=[8454, 6702, ...])
    rule = rule_for_release("3.10.0-693.2.2.el7.x86_64")      # -> "3.10"
    v = watermark_ok(zone, order=6, mark="min", classzone_idx=2, rule=rule)
    v.ok, v.failed_order, v.check, v.reason, v.numbers

``mark`` is ``"min"``, ``"low"``, ``"high"`` (the zone's watermark plus its
``watermark_boost``, as ``wmark_pages()`` gives it since v5.0) or a number
of pages.  ``classzone_idx`` is the index of the highest zone the request
may use (``highest_zoneidx`` since v5.8): it selects ``lowmem_reserve[]``.
Flags (all False by default; a plain GFP_KERNEL request has none):

``high``
    ALLOC_HIGH (``__GFP_HIGH``; renamed ALLOC_MIN_RESERVE in v6.3).
``harder``
    ALLOC_HARDER (atomic or real-time callers, before v6.3); on the v6.3
    rule it stands for ALLOC_NON_BLOCK.
``oom``
    ALLOC_OOM (an OOM victim, v4.15+).
``highatomic``
    ALLOC_HIGHATOMIC (v6.3+: may use the MIGRATE_HIGHATOMIC free lists;
    before v6.3 ``harder`` gives that right).
``cma``
    ALLOC_CMA (movable requests that may use CMA pageblocks).

The three rules (see :data:`RULES`):

``"3.10"`` -- v2.6.x through v4.3, and RHEL7's 3.10.0 (mm/page_alloc.c of
    v3.10, ``__zone_watermark_ok``)::

        free -= (1 << order) - 1
        if ALLOC_HIGH:   min -= min / 2
        if ALLOC_HARDER: min -= min / 4
        if free - free_cma <= min + lowmem_reserve[classzone_idx]: fail
        for o in 0 .. order-1:
            free -= nr_free[o] << o;  min >>= 1
            if free <= min: fail

    i.e. for each k = 1..order the pages held in free blocks of order >= k
    must exceed ``min >> k``.  (free_cma since v3.7, "cma: fix watermark
    checking"; ALLOC_CMA is set for movable requests only.)

``"4.4"`` -- v4.4 through v6.2, since Linux kernel commit 97a16fc82a7c ("mm,
    page_alloc: only enforce watermarks for order-0 allocations") (in v4.4),
    with the high-atomic reserve of Linux kernel commit 0aaa29a56e4f ("mm,
    page_alloc: reserve pageblocks for high-order atomic allocations on
    demand") (in v4.4).  As read in v5.10 and v6.1 (``__zone_watermark_ok``
    + ``__zone_watermark_unusable_free``)::

        free -= (1 << order) - 1
        if not (ALLOC_HARDER or ALLOC_OOM): free -= nr_reserved_highatomic
        if not ALLOC_CMA: free -= NR_FREE_CMA_PAGES
        if ALLOC_HIGH: min -= min / 2
        if ALLOC_OOM: min -= min / 2  elif ALLOC_HARDER: min -= min / 4
        if free <= min + lowmem_reserve[classzone_idx]: fail
        if order == 0: pass
        pass if some order o >= order has a non-empty free list of
            MIGRATE_UNMOVABLE, MOVABLE or RECLAIMABLE (the MIGRATE_PCPTYPES),
            or of MIGRATE_CMA with ALLOC_CMA,
            or of MIGRATE_HIGHATOMIC with ALLOC_HARDER/ALLOC_OOM
        else fail

``"6.3"`` -- v6.3 and later (Mel Gorman's "Discard __GFP_ATOMIC" series,
    v6.3: ALLOC_HIGH renamed ALLOC_MIN_RESERVE, ALLOC_HARDER split into
    ALLOC_NON_BLOCK and ALLOC_HIGHATOMIC, ALLOC_RESERVES their union with
    ALLOC_OOM; backported to stable 6.1.116 and 5.15.171, see
    :mod:`crashext.analysis.allocflags`), as read in v6.12::

        free -= (1 << order) - 1
        if not ALLOC_RESERVES: free -= highatomic   (see below)
        if not ALLOC_CMA: free -= NR_FREE_CMA_PAGES
        free -= NR_UNACCEPTED                       (v6.5+, unaccepted memory)
        if ALLOC_MIN_RESERVE: min -= min / 2; if ALLOC_NON_BLOCK: min -= min / 4
        if ALLOC_OOM: min -= min / 2
        same order-0 check and free-block search as "4.4", HIGHATOMIC lists
            only with ALLOC_HIGHATOMIC or ALLOC_OOM

    ``highatomic`` is ``nr_reserved_highatomic`` until the zone has
    ``nr_free_highatomic``, since Linux kernel commit c928807f6f6b
    ("mm/page_alloc: keep track of free highatomic") (in v6.12), which counts
    only free high-atomic pages; the caller passes whichever the kernel has in
    ``ZoneState.highatomic``.

Not emulated: the order-0 shortcut of ``zone_watermark_fast()`` (v4.6+),
which can pass an order-0 request that ``__zone_watermark_ok`` alone would
fail only because of the high-atomic reserve, and its v5.x+ retry without
``watermark_boost`` for ``__GFP_HIGH`` order-0 requests at WMARK_MIN.

Without per-migrate-type counts (``free_by_mt`` None, e.g. from buddyinfo)
the "4.4"/"6.3" search assumes any free block of a high enough order is
usable and says so: ``Verdict.certain`` is then False.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple, Union

from . import allocflags

__all__ = ["ZoneState", "Verdict", "RULES", "rule_for_release", "watermark_ok",
           "mark_pages", "suitable_free_pages", "held_back_by_reserve"]

#: rule name -> the kernel versions it covers (mm/page_alloc.c of each)
RULES = {
    "3.10": "v2.6.x .. v4.3 and RHEL7 3.10.0: every lower order's free pages are "
            "discounted and the remainder must exceed min >> k",
    "4.4": "v4.4 .. v6.2 (read in v5.10 and v6.1): order-0 watermark, then any free "
           "block of the order or above on a usable migrate-type list",
    "6.3": "v6.3 and later, stable 6.1.116+ and 5.15.171+ (read in v6.12): as 4.4 with "
           "ALLOC_RESERVES / ALLOC_MIN_RESERVE / ALLOC_NON_BLOCK / ALLOC_HIGHATOMIC",
}

# The free lists any request may take from: the MIGRATE_PCPTYPES
# (include/linux/mmzone.h, enum migratetype, all versions).
_PCPTYPES = ("MIGRATE_UNMOVABLE", "MIGRATE_MOVABLE", "MIGRATE_RECLAIMABLE")


@dataclass
class ZoneState:
    """One zone's allocator numbers, in pages.

    ``nr_free[o]`` is ``zone->free_area[o].nr_free`` (blocks, not pages);
    ``free_by_mt`` maps enumerator names (``"MIGRATE_MOVABLE"``) to free
    blocks per order.  ``highatomic`` is ``nr_reserved_highatomic`` (or
    ``nr_free_highatomic`` where the kernel has it), ``free_cma``
    NR_FREE_CMA_PAGES, ``unaccepted`` NR_UNACCEPTED.
    """

    node: int
    name: str
    free_pages: int
    min: int
    low: int
    high: int
    lowmem_reserve: List[int]
    nr_free: List[int]
    free_by_mt: Optional[Dict[str, List[int]]] = None
    managed: Optional[int] = None
    present: Optional[int] = None
    index: Optional[int] = None
    watermark_boost: int = 0
    highatomic: int = 0
    free_cma: int = 0
    unaccepted: int = 0


@dataclass
class Verdict:
    """The outcome of one watermark check.

    ``check`` is ``"ok"``, ``"watermark"`` (the order-0 test against
    min + lowmem_reserve failed; ``failed_order`` 0), ``"order"`` (rule
    "3.10": the free pages in blocks of order >= ``failed_order`` did not
    exceed ``min >> failed_order``) or ``"no_block"`` (rules "4.4"/"6.3":
    no usable free block of order >= ``failed_order`` == the request's
    order).  ``numbers`` holds the deciding values, all in pages.
    """

    ok: bool
    failed_order: Optional[int]
    check: str
    reason: str
    numbers: Dict[str, Any] = field(default_factory=dict)
    certain: bool = True
    rule: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"ok": self.ok, "failed_order": self.failed_order, "check": self.check,
                "reason": self.reason, "numbers": self.numbers, "certain": self.certain,
                "rule": self.rule}


def rule_for_release(release: str, uts_version: Optional[str] = None) -> str:
    """Which generation of ``__zone_watermark_ok`` a kernel release runs.

    ``"3.10.0-693.2.2.el7.x86_64"`` -> ``"3.10"``; ``"5.10.0-30-amd64"`` ->
    ``"4.4"``; ``"6.12.9-amd64"`` -> ``"6.3"``.  Distribution kernels are
    taken at their base version (RHEL8's 4.18 and RHEL9's 5.14 -> ``"4.4"``),
    stable ones at their sublevel: the "6.3" rule came to 6.1.116 and
    5.15.171 by backport, so ``"6.1.192"`` or ``"6.1.0-57-cloud-amd64"``
    with ``uts_version`` ``"#1 SMP Debian 6.1.192-3"`` -> ``"6.3"``
    (:mod:`crashext.analysis.allocflags` keeps those versions).
    """
    return allocflags.watermark_rule(release, uts_version)


def mark_pages(zone: ZoneState, mark: Union[str, int]) -> int:
    """The watermark in pages: ``wmark_pages()`` = watermark + boost (v5.0+)."""
    if isinstance(mark, str):
        name = mark.lower()
        if name not in ("min", "low", "high"):
            raise ValueError(f"unknown watermark {mark!r} (min, low, high or a number)")
        return int(getattr(zone, name)) + int(zone.watermark_boost)
    return int(mark)


def _usable_lists(rule: str, cma: bool, harder: bool, oom: bool,
                  highatomic: bool) -> List[str]:
    names = list(_PCPTYPES)
    if cma:
        names.append("MIGRATE_CMA")
    if rule == "4.4" and (harder or oom):
        names.append("MIGRATE_HIGHATOMIC")
    if rule == "6.3" and (highatomic or oom):
        names.append("MIGRATE_HIGHATOMIC")
    return names


def suitable_free_pages(nr_free: List[int], order: int) -> int:
    """Pages held in free blocks of order >= ``order``."""
    return sum(n << o for o, n in enumerate(nr_free) if o >= order)


def watermark_ok(zone: ZoneState, order: int, mark: Union[str, int],
                 classzone_idx: int, rule: str, high: bool = False,
                 harder: bool = False, oom: bool = False, highatomic: bool = False,
                 cma: bool = False) -> Verdict:
    """Whether an order-``order`` request passes ``zone``'s watermark ``mark``.

    Emulates ``__zone_watermark_ok()`` of the kernel generation ``rule``
    (see the module docstring); integer arithmetic as the kernel's ``long``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown watermark rule {rule!r} (one of {', '.join(RULES)})")
    if order < 0 or order >= max(len(zone.nr_free), 1):
        raise ValueError(f"order {order} out of range 0..{len(zone.nr_free) - 1}")
    if not 0 <= classzone_idx < len(zone.lowmem_reserve):
        raise ValueError(f"classzone index {classzone_idx} out of range "
                         f"0..{len(zone.lowmem_reserve) - 1}")
    mark_v = mark_pages(zone, mark)
    reserve = int(zone.lowmem_reserve[classzone_idx])
    mn = mark_v
    free = int(zone.free_pages)
    # the reason names the mark compared: the kernel's `min` is whichever mark the
    # caller passed (wmark_pages(zone, alloc_flags & ALLOC_WMARK_MASK))
    label = mark.lower() if isinstance(mark, str) else "mark"
    nums: Dict[str, Any] = {"free_pages": free, "mark": mark_v, "mark_name": label,
                            "reserve": reserve, "order": order, "classzone_idx": classzone_idx}
    if rule == "3.10":
        return _ok_310(zone, order, mn, free, reserve, nums, high, harder, cma, label)

    free -= (1 << order) - 1
    unusable = (1 << order) - 1
    if rule == "4.4":
        reserves = harder or oom
        if high:
            mn -= _div(mn, 2)
        if reserves:
            mn -= _div(mn, 2) if oom else _div(mn, 4)
    else:
        reserves = high or harder or oom or highatomic
        if high:
            mn -= _div(mn, 2)
            if harder:
                mn -= _div(mn, 4)
        if oom:
            mn -= _div(mn, 2)
    if not reserves:
        free -= zone.highatomic
        unusable += zone.highatomic
    if not cma:
        free -= zone.free_cma
        unusable += zone.free_cma
    if rule == "6.3":
        free -= zone.unaccepted
        unusable += zone.unaccepted
    nums.update({"unusable": unusable, "free_after": free, "min": mn,
                 "highatomic": zone.highatomic, "free_cma": zone.free_cma})
    if free <= mn + reserve:
        return Verdict(False, 0, "watermark",
                       f"free {free} (after {unusable} unusable) <= {label} {mn} + "
                       f"lowmem_reserve[{classzone_idx}] {reserve}", nums, True, rule)
    if order == 0:
        return Verdict(True, None, "ok", f"free {free} > {label} {mn} + reserve {reserve}",
                       nums, True, rule)
    return _free_block(zone, order, rule, _usable_lists(rule, cma, harder, oom, highatomic),
                       nums)


def _free_block(zone: ZoneState, order: int, rule: str, lists: List[str],
                nums: Dict[str, Any]) -> Verdict:
    """The second half of the check (rules "4.4" and "6.3"): a free block of
    order >= ``order`` on a list the request may take from."""
    nums["lists"] = lists
    if zone.free_by_mt is None:
        have = suitable_free_pages(zone.nr_free, order)
        nums["suitable_pages"] = have
        if have > 0:
            return Verdict(True, None, "ok",
                           f"{have} pages free in blocks of order >= {order} "
                           "(migrate types unknown: assumed usable)", nums, False, rule)
        return Verdict(False, order, "no_block",
                       f"no free block of order >= {order}", nums, True, rule)
    for o in range(order, len(zone.nr_free)):
        if not zone.nr_free[o]:
            continue
        for mt in lists:
            counts = zone.free_by_mt.get(mt)
            if counts is not None and o < len(counts) and counts[o] > 0:
                nums["found"] = {"order": o, "migratetype": mt}
                return Verdict(True, None, "ok", f"free order-{o} block on {mt}",
                               nums, True, rule)
    have = {mt: suitable_free_pages(c, order) for mt, c in zone.free_by_mt.items()}
    nums["suitable_pages_by_mt"] = have
    other = [mt for mt, n in have.items() if n and mt not in lists]
    why = f"no free block of order >= {order} on {'/'.join(x[8:] for x in lists)}"
    if other:
        why += f" (only on {', '.join(other)})"
    return Verdict(False, order, "no_block", why, nums, True, rule)


def _div(a: int, b: int) -> int:
    """C division of signed longs (truncates toward zero)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _ok_310(zone: ZoneState, order: int, mn: int, free: int, reserve: int,
            nums: Dict[str, Any], high: bool, harder: bool, cma: bool,
            label: str = "min") -> Verdict:
    # mm/page_alloc.c v3.10, __zone_watermark_ok(); the same text in RHEL7 3.10.0.
    free -= (1 << order) - 1
    if high:
        mn -= _div(mn, 2)
    if harder:
        mn -= _div(mn, 4)
    free_cma = 0 if cma else zone.free_cma
    nums.update({"free_after": free, "min": mn, "free_cma": free_cma})
    if free - free_cma <= mn + reserve:
        return Verdict(False, 0, "watermark",
                       f"free {free - free_cma} <= {label} {mn} + "
                       f"lowmem_reserve[{nums['classzone_idx']}] {reserve}", nums, True, "3.10")
    steps = []
    nums["steps"] = steps
    for o in range(order):
        free -= zone.nr_free[o] << o
        mn >>= 1
        steps.append({"order": o + 1, "free": free, "min": mn})
        if free <= mn:
            return Verdict(False, o + 1, "order",
                           f"{free} pages left in blocks of order >= {o + 1} <= "
                           f"{label} >> {o + 1} = {mn}", nums, True, "3.10")
    return Verdict(True, None, "ok",
                   f"{free} pages in blocks of order >= {order} > {label} >> {order} = {mn}"
                   if order else f"free {free - free_cma} > {label} {mn} + reserve {reserve}",
                   nums, True, "3.10")


def held_back_by_reserve(zone: ZoneState, verdict: Verdict, order: int, mark: Union[str, int],
                         classzone_idx: int, rule: str, **flags: bool
                         ) -> Tuple[bool, Optional[Verdict]]:
    """Whether ``lowmem_reserve`` alone made ``verdict`` fail: (held, verdict without it).

    ``verdict`` is :func:`watermark_ok` of ``zone`` with these same
    arguments.  The zone is *held back by lowmem_reserve* for this request
    when that check FAILS with the zone's real
    ``lowmem_reserve[classzone_idx]`` and the same check -- same rule, same
    flags, same free counts -- PASSES with a reserve of 0.  The reserve
    enters ``__zone_watermark_ok()`` (mm/page_alloc.c) in one comparison
    only, the order-0 one: ``if (free_pages - free_cma <= min +
    lowmem_reserve)`` with ``lowmem_reserve = z->lowmem_reserve[classzone_idx]``
    in v3.10 (and RHEL7's 3.10.0), ``if (free_pages <= min +
    z->lowmem_reserve[classzone_idx])`` in v4.4 .. v5.7, and ``... +
    z->lowmem_reserve[highest_zoneidx])`` since Linux kernel commit
    97a225e69a1f ("mm/page_alloc: integrate classzone_idx and high_zoneidx")
    (in v5.8), the rename; so only a ``"watermark"`` failure with a non-zero reserve
    can be the reserve's doing, and the check is re-run to see whether the
    zone then also has the blocks (rule "3.10": every ``min >> k`` step;
    "4.4"/"6.3": a usable free block of the order).  The verdict without
    the reserve is returned when it was re-run (else None): a zone whose
    re-run fails at an order > 0 has the memory above min but not the
    blocks (fragmentation), one that fails at order 0 is short of memory.
    """
    reserve = int(zone.lowmem_reserve[classzone_idx])
    if verdict.ok or verdict.check != "watermark" or reserve <= 0:
        return False, None
    free_of_reserve = list(zone.lowmem_reserve)
    free_of_reserve[classzone_idx] = 0
    bare = watermark_ok(replace(zone, lowmem_reserve=free_of_reserve), order, mark,
                        classzone_idx, rule, **flags)
    return bare.ok, bare
