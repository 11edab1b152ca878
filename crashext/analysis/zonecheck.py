"""The watermark check re-run on the zone and buddy lines a kernel log printed.

A show_mem() block -- with an allocation failure, an OOM-kill report or a
SysRq-m dump -- prints per zone a zone line (``Node 0 Normal free:...``,
watermarks, ``lowmem_reserve[]``) and a buddy line (free blocks per order).
:func:`explain_request` turns them into
:class:`~crashext.analysis.watermark.ZoneState` and runs
:func:`crashext.analysis.watermark.watermark_ok` at the MIN watermark for a
request given by its GFP mode and order, on every zone the request may use
(``gfp_zone()``, include/linux/gfp.h, then the zonelist down to DMA), with
the ALLOC_* rights :mod:`crashext.analysis.allocflags` derives for the
kernel's generation.  :mod:`crashext.analysis.allocreport` uses it for each
failure, :mod:`crashext.analysis.meminfo_blocks` for OOM reports and SysRq-m dumps.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .. import gfp
from ..sources.kmsg import AllocFailure, BuddyLine, MIGRATE_LETTERS, ZoneLine
from . import allocflags
from . import watermark

__all__ = ["ZoneVerdict", "explain", "explain_request", "request_flags", "mem_info_zones"]

# zone type order on x86-64 and most arches (include/linux/mmzone.h, enum zone_type);
# HighMem only on 32-bit, Device (v4.3+, CONFIG_ZONE_DEVICE) last.
_ZONE_ORDER = ["DMA", "DMA32", "Normal", "HighMem", "Movable", "Device"]


@dataclass
class ZoneVerdict:
    node: int
    zone: str
    index: int
    classzone_idx: int
    free_pages: int
    min: int
    low: int
    high: int
    reserve: int
    verdict: Dict[str, Any]
    notes: List[str] = field(default_factory=list)


def _zone_indices(zones: List[ZoneLine]) -> Tuple[Dict[str, int], List[str]]:
    """zone name -> zone type index, from the zones printed and lowmem_reserve."""
    seen = {z.zone for z in zones}
    order = [z for z in _ZONE_ORDER
             if z in seen or z in ("Normal", "Movable") or (z == "DMA32" and "DMA" in seen)]
    if "Device" in order and "Device" not in seen:
        order.remove("Device")
    if "DMA32" in order and "DMA32" not in seen:
        order.remove("DMA32")
    n = max((len(z.lowmem_reserve) for z in zones if z.lowmem_reserve), default=len(order))
    while len(order) < n:
        order.append("Device")
    idx = {name: i for i, name in enumerate(order)}
    notes = []
    for z in zones:
        i = idx.get(z.zone)
        if z.lowmem_reserve and i is not None and i < len(z.lowmem_reserve) \
                and z.lowmem_reserve[i] != 0:
            notes.append(f"zone {z.zone}: lowmem_reserve[{i}] is not 0; zone index uncertain")
    return idx, notes


def _highest_zone(mask: int, table: gfp.GfpTable, idx: Dict[str, int]) -> Optional[str]:
    """gfp_zone(): the highest zone type the request may use."""
    zb = gfp.zone_bits(mask, table)
    if zb["DMA"]:
        return "DMA"
    if zb["DMA32"]:
        return "DMA32" if "DMA32" in idx else "Normal"
    if zb["HIGHMEM"] and zb["MOVABLE"]:
        return "Movable"
    if zb["HIGHMEM"]:
        return "HighMem" if "HighMem" in idx else "Normal"
    return "Normal"


def _zone_state(z: ZoneLine, b: BuddyLine, index: int) -> Tuple[watermark.ZoneState, List[str]]:
    page_kb = b.block_kb[0] if b.block_kb else 4
    notes = []

    def pages(key):
        v = z.kb(key)
        return None if v is None else v // page_kb

    free_by_mt: Dict[str, List[int]] = {}
    if any(b.types):
        for o, letters in enumerate(b.types):
            for ch in letters:
                name = MIGRATE_LETTERS.get(ch)
                if name is None:
                    continue
                free_by_mt.setdefault(name, [0] * len(b.counts))[o] = 1
        notes.append("migrate types from the buddy line's letters (which lists are "
                     "non-empty per order), not counts")
    nr_free = list(b.counts)
    if len(nr_free) < 11:
        notes.append(f"buddy line has {len(nr_free)} orders; higher orders taken as empty")
        nr_free += [0] * (11 - len(nr_free))
    # The high-atomic pages __zone_watermark_ok() subtracts for requests without
    # reserve rights: zone->nr_reserved_highatomic, or since Linux kernel commit
    # c928807f6f6b ("mm/page_alloc: keep track of free highatomic") (in v6.12)
    # zone->nr_free_highatomic.
    # show_free_areas() prints the first as "reserved_highatomic:" and, on kernels
    # that have the second, "free_highatomic:" too; with only the reserve printed
    # on a v6.12+ kernel it is an upper bound of what the kernel subtracted.
    highatomic = pages("free_highatomic")
    if highatomic is None:
        highatomic = pages("reserved_highatomic")
        if highatomic:
            notes.append("high-atomic pages: the reserve (reserved_highatomic); kernels from "
                         "v6.12 subtract only its free part, which this log does not print")
    st = watermark.ZoneState(node=z.node, name=z.zone, free_pages=pages("free") or 0,
                             min=pages("min") or 0, low=pages("low") or 0, high=pages("high") or 0,
                             lowmem_reserve=list(z.lowmem_reserve or []), nr_free=nr_free,
                             free_by_mt=free_by_mt or None, managed=pages("managed"),
                             present=pages("present"), index=index,
                             free_cma=pages("free_cma") or 0, highatomic=highatomic or 0)
    return st, notes


def mem_info_zones(rec: AllocFailure) -> Tuple[List[watermark.ZoneState], List[str]]:
    """The zones a failure's Mem-Info printed (zone + buddy lines) as
    :class:`~crashext.analysis.watermark.ZoneState`, for a fragmentation
    picture of the moment of the failure; ``free_by_mt`` there marks only
    which lists were non-empty (the buddy line's letters), not counts."""
    idx, notes = _zone_indices(rec.zones)
    buddies = {(b.node, b.zone): b for b in rec.buddy}
    out = []
    for z in rec.zones:
        b = buddies.get((z.node, z.zone))
        if b is None:
            continue
        st, znotes = _zone_state(z, b, idx.get(z.zone, 0))
        out.append(st)
        notes.extend(n for n in znotes if n not in notes)
    return out, notes


def explain(rec: AllocFailure, table: gfp.GfpTable, release: Optional[str],
            uts_version: Optional[str] = None):
    """Watermark verdicts for every zone the request could use:
    ``(rule, verdicts, notes, alloc flags as JSON or None)``."""
    return explain_request(rec.mode, rec.order, rec.zones, rec.buddy, table, release,
                           uts_version=uts_version, with_flags=True)


def request_flags(mode: int, order: int, table: gfp.GfpTable, release: Optional[str],
                  uts_version: Optional[str] = None
                  ) -> Tuple[str, allocflags.AllocFlags, Dict[str, Any], List[str]]:
    """The watermark rule and ALLOC_* flags of a request, as
    :mod:`crashext.analysis.allocflags` derives them for ``release``; the
    flags as JSON and notes on what was assumed."""
    notes: List[str] = []
    gen = None
    if release:
        try:
            gen = allocflags.generation(release, uts_version)
        except ValueError:
            gen = None
    if gen is None:
        name = "3.10" if table.since < (4, 4) else ("4.4" if table.since < (6, 3) else "6.3")
        gen = allocflags.KernelGen(name, allocflags.WATERMARK_RULE[name],
                                   f"kernel release unknown: generation {name} assumed from the "
                                   "GFP table")
    if gen.assumed:
        notes.append(gen.assumed)
    flags = allocflags.alloc_flags(mode, order, table, gen.name)
    js = {"generation": gen.name, "names": flags.names(gen.name), "assumed": gen.assumed}
    return gen.rule, flags, js, notes


def explain_request(mode: Optional[int], order: Optional[int], all_zones: List[ZoneLine],
                    buddy: List[BuddyLine], table: gfp.GfpTable, release: Optional[str],
                    uts_version: Optional[str] = None, with_flags: bool = False):
    """:func:`explain` for a request given by its GFP ``mode`` and ``order``
    and the zone and buddy lines of any show_mem() block (an allocation
    failure, an OOM report, a SysRq-m dump): ``(rule, verdicts, notes)``,
    and the ALLOC_* flags as JSON (None if not derived) with ``with_flags``."""
    def ret(rule, verdicts, notes, flags_js=None):
        return (rule, verdicts, notes, flags_js) if with_flags else (rule, verdicts, notes)
    out: List[str] = []
    if mode is None or order is None:
        what = ("no mode printed" if mode is None and order is not None else
                "no allocation order printed (a vmalloc failure before any page allocation, "
                "or a cut header)" if mode is not None else "no mode/order")
        return ret(None, [], [f"{what}: cannot re-run the watermark check"])
    rule, flags, flags_js, fnotes = request_flags(mode, order, table, release, uts_version)
    if not all_zones:
        return ret(None, [], ["no zone lines printed with this failure (rate-limited show_mem, "
                              "or a filtered report): cannot re-run the watermark check"],
                   flags_js)
    out.extend(fnotes)
    idx, notes = _zone_indices(all_zones)
    out.extend(notes)
    top = _highest_zone(mode, table, idx)
    top_i = idx.get(top, idx.get("Normal", 0))
    buddies = {(b.node, b.zone): b for b in buddy}
    verdicts: List[ZoneVerdict] = []
    ver = gfp.parse_version(release or "") or table.since
    for node in sorted({z.node for z in all_zones}):
        zones = [z for z in all_zones if z.node == node and idx.get(z.zone, 99) <= top_i]
        if not zones:
            continue
        # the class zone: gfp_zone() itself (highest_zoneidx) since Linux kernel
        # commit 97a225e69a1f ("mm/page_alloc: integrate classzone_idx and
        # high_zoneidx") (in v5.8); before, the preferred (highest populated)
        # zone's index
        populated = max(idx[z.zone] for z in zones)
        classzone = top_i if ver >= (5, 8) else populated
        for z in sorted(zones, key=lambda z: -idx[z.zone]):
            b = buddies.get((z.node, z.zone))
            if b is None or not z.lowmem_reserve:
                out.append(f"node {node} {z.zone}: no buddy or lowmem_reserve line; not checked")
                continue
            st, znotes = _zone_state(z, b, idx[z.zone])
            cz = min(classzone, len(st.lowmem_reserve) - 1)
            if order >= len(st.nr_free):
                out.append(f"order {order} beyond the buddy line's orders")
                continue
            v = watermark.watermark_ok(st, order, "min", cz, rule, **flags.kwargs())
            vj = v.to_json()
            # held back by lowmem_reserve: fails with the reserve, passes without
            # it (the rule and its kernel source: watermark.held_back_by_reserve)
            held, bare = watermark.held_back_by_reserve(st, v, order, "min", cz, rule,
                                                        **flags.kwargs())
            vj["lowmem_reserve_held"] = held
            vj["without_reserve"] = None if bare is None else {
                "ok": bare.ok, "check": bare.check, "failed_order": bare.failed_order,
                "reason": bare.reason}
            verdicts.append(ZoneVerdict(node, z.zone, idx[z.zone], cz, st.free_pages, st.min,
                                        st.low, st.high, st.lowmem_reserve[cz], vj, znotes))
    if verdicts:
        all_fail = all(not v.verdict["ok"] for v in verdicts)
        out.insert(0, ("every zone the request could use fails the MIN watermark check"
                       if all_fail else
                       "some zone passes the MIN watermark as printed: the failure came from "
                       "elsewhere (cpuset/mempolicy, numbers changed between check and report, "
                       "or a flag not modelled)"))
    return ret(rule, verdicts, out, flags_js)
