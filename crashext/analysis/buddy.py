"""Buddy allocator free lists, fragmentation indices and watermark verdicts.

A :class:`FragReport` holds every zone's watermark inputs and free blocks;
:mod:`crashext.analysis.buddy_read` makes it from a kernel (vmcore or live:
``from_target``) or from /proc text (``from_proc``).

:func:`unusable_index` and :func:`fragmentation_index` are mm/vmstat.c's
``unusable_free_index()`` and ``__fragmentation_index()`` over
``fill_contig_page_info()``, in the same integer arithmetic, so they equal
debugfs ``extfrag/unusable_index`` and ``extfrag/extfrag_index`` (which
print them as ``%d.%03d`` of thousandths).  :func:`verdicts` runs
:func:`crashext.analysis.watermark.watermark_ok` on each zone.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InputError
from .watermark import ZoneState, Verdict, watermark_ok

__all__ = ["ZoneInfo", "FragReport", "unusable_index", "fragmentation_index",
           "contig_page_info", "verdicts", "format_index", "classzone_index", "zone_json"]


@dataclass
class ZoneInfo:
    """One zone: the watermark inputs plus what frag shows besides them."""

    state: ZoneState
    populated: bool = True
    spanned: Optional[int] = None
    #: NR_FREE_PAGES as /proc/zoneinfo shows it (atomic counter, deltas not folded)
    free_pages_unfolded: Optional[int] = None
    #: NR_FREE_PAGES with every CPU's vm_stat_diff folded in (zone_page_state_snapshot)
    free_pages_folded: Optional[int] = None
    #: (node, order, migrate type) counts that came out of a broken walk
    walk_errors: List[str] = field(default_factory=list)
    #: orders where the walked per-type total differs from nr_free: {order: (walked, nr_free)}
    mt_mismatch: Dict[int, Tuple[int, int]] = field(default_factory=dict)
    #: pagetypeinfo counts shown as ">100000": [(migratetype, order)]
    mt_capped: List[Tuple[str, int]] = field(default_factory=list)
    #: the kernel's own indices where a text source had them (thousandths)
    kernel_unusable: Optional[List[int]] = None
    kernel_extfrag: Optional[List[int]] = None

    @property
    def key(self) -> Tuple[int, str]:
        return (self.state.node, self.state.name)


@dataclass
class FragReport:
    source: str
    release: Optional[str]
    rule: str
    orders: int
    page_size: int
    migratetypes: List[str]
    zones: List[ZoneInfo]
    zone_types: List[str]
    errors: List[str] = field(default_factory=list)
    uts_version: Optional[str] = None   # `uname -v`: Debian's names the stable sublevel
    page_size_source: str = "the kernel (PAGE_SIZE)"   # where page_size came from
    rule_note: Optional[str] = None   # why the rule is a guess (stable sublevel unknown)


# ---------------------------------------------------------------- indices

def contig_page_info(nr_free: List[int], suitable_order: int) -> Tuple[int, int, int]:
    """mm/vmstat.c fill_contig_page_info(): (free_pages, free_blocks_total,
    free_blocks_suitable), suitable blocks counted in units of the order."""
    free_pages = total = suitable = 0
    for order, blocks in enumerate(nr_free):
        total += blocks
        free_pages += blocks << order
        if order >= suitable_order:
            suitable += blocks << (order - suitable_order)
    return free_pages, total, suitable


def unusable_index(nr_free: List[int], order: int) -> int:
    """mm/vmstat.c unusable_free_index(), in thousandths (0..1000)."""
    free_pages, _total, suitable = contig_page_info(nr_free, order)
    if free_pages == 0:  # no free memory: all of it is "unusable"
        return 1000
    return ((free_pages - (suitable << order)) * 1000) // free_pages


def fragmentation_index(nr_free: List[int], order: int) -> int:
    """mm/vmstat.c __fragmentation_index(), in thousandths; -1000 where a
    block of the order is free (the request would succeed)."""
    free_pages, total, suitable = contig_page_info(nr_free, order)
    requested = 1 << order
    if not total:
        return 0
    if suitable:
        return -1000
    return 1000 - (1000 + (free_pages * 1000) // requested) // total


def format_index(v: int) -> str:
    """``%d.%03d`` of C's ``index / 1000`` and ``index % 1000`` (truncating)."""
    q = abs(v) // 1000
    r = abs(v) % 1000
    if v < 0:
        return f"-{q}.{r:03d}"
    return f"{q}.{r:03d}"


# ---------------------------------------------------------------- verdicts

def classzone_index(report: FragReport, name: Optional[str]) -> int:
    """Index of the highest zone a request may use: ``name`` (e.g. "Normal",
    what GFP_KERNEL reaches on x86_64), by default Normal if the kernel has
    it, else the highest populated zone."""
    want = name or "Normal"
    for z in report.zones:
        if z.state.name.lower() == want.lower() and z.state.index is not None:
            return z.state.index
    if report.zone_types:
        for i, n in enumerate(report.zone_types):
            if n.lower() == f"zone_{want.lower()}":
                return i
    if name:
        raise InputError(f"no zone named {name!r} (zones: "
                         f"{', '.join(sorted({z.state.name for z in report.zones}))})")
    return max((z.state.index or 0) for z in report.zones if z.populated)


def verdicts(report: FragReport, orders: List[int], classzone: int, marks=("low", "min"),
             **flags) -> Dict[Tuple[int, str], Dict[int, Dict[str, Verdict]]]:
    """``{(node, zone): {order: {mark: Verdict}}}`` for zones at or below the
    classzone that have watermarks."""
    out: Dict[Tuple[int, str], Dict[int, Dict[str, Verdict]]] = {}
    for z in report.zones:
        st = z.state
        if not z.populated or st.index is None or st.index > classzone:
            continue
        if not st.lowmem_reserve or classzone >= len(st.lowmem_reserve) or not (st.min or st.low):
            continue
        per: Dict[int, Dict[str, Verdict]] = {}
        for o in orders:
            if o >= len(st.nr_free):
                continue
            per[o] = {m: watermark_ok(st, o, m, classzone, report.rule, **flags) for m in marks}
        out[z.key] = per
    return out


def zone_json(z: ZoneInfo, page_size: int) -> Dict[str, Any]:
    st = z.state
    return {
        "node": st.node, "zone": st.name, "index": st.index, "populated": z.populated,
        "managed_pages": st.managed, "present_pages": st.present, "spanned_pages": z.spanned,
        "free_pages": st.free_pages,
        "free_pages_folded": z.free_pages_folded,
        "free_pages_buddy": sum(n << o for o, n in enumerate(st.nr_free)),
        "watermark": {"min": st.min, "low": st.low, "high": st.high,
                      "boost": st.watermark_boost},
        "lowmem_reserve": st.lowmem_reserve, "highatomic_pages": st.highatomic,
        "free_cma_pages": st.free_cma, "nr_free": st.nr_free,
        "free_by_migratetype": st.free_by_mt,
        "migratetype_mismatch": {str(o): {"walked": a, "nr_free": b}
                                 for o, (a, b) in sorted(z.mt_mismatch.items())},
        "migratetype_capped": [{"migratetype": m, "order": o} for m, o in z.mt_capped],
        "walk_errors": z.walk_errors,
        "unusable_index": [unusable_index(st.nr_free, o) for o in range(len(st.nr_free))],
        "extfrag_index": [fragmentation_index(st.nr_free, o) for o in range(len(st.nr_free))],
        "kernel_unusable_index": z.kernel_unusable,
        "kernel_extfrag_index": z.kernel_extfrag,
    }
