"""The buddy allocator's zones and free lists, read from a kernel or from /proc text.

:func:`from_target` reads every online node's zones through the access layer
(``free_area[order].nr_free``, watermarks, ``lowmem_reserve[]``,
NR_FREE_PAGES and, with ``migratetypes=True``, the free blocks per order
and migrate type counted by walking ``free_area[o].free_list[mt]``);
:func:`from_proc` reads buddyinfo, zoneinfo, pagetypeinfo and, where
present, debugfs extfrag files (:mod:`crashext.sources.procfs`).  Both give
a :class:`crashext.analysis.buddy.FragReport`.

Zone layout facts used (include/linux/mmzone.h):

- ``zone->_watermark[]`` + ``zone->watermark_boost`` since Linux kernel
  commit 1c30844d2dfe ("mm: reclaim small amounts of memory when an external
  fragmentation event occurs") (in v5.0), ``zone->watermark[]`` before;
  which one the kernel has is read from debug info.  Indices from ``enum
  zone_watermarks``.
- ``zone->managed_pages`` is an ``atomic_long_t`` since Linux kernel commit
  9705bea5f833 ("mm: convert zone->managed_pages to atomic variable") (in
  v5.0).
- ``free_area[]`` has MAX_ORDER + 1 entries since Linux kernel commit
  23baf831a32c ("mm, treewide: redefine MAX_ORDER sanely") (in v6.4),
  MAX_ORDER before (NR_PAGE_ORDERS since v6.8): we take the array's length
  from debug info.
- per-CPU vm_stat deltas live in ``zone->per_cpu_zonestats->vm_stat_diff[]``
  since Linux kernel commit 28f836b6777b ("mm/page_alloc: split per cpu page
  lists and zone stats") (in v5.14), in ``zone->pageset->vm_stat_diff[]``
  before.
- free high-atomic pages: ``zone->nr_free_highatomic`` where present (since
  Linux kernel commit c928807f6f6b ("mm/page_alloc: keep track of free
  highatomic") (in v6.12)), else the reserve ``zone->nr_reserved_highatomic``
  (v4.4+).
- nodes: ``node_data[]`` with ``node_states[N_ONLINE]`` (NUMA kernels) or
  ``contig_page_data``; zone index -> ``enum zone_type`` enumerators.
"""

from typing import Any, Dict, List, Optional, Tuple

from ..errors import CrashextError, InputError, MissingSymbolError, ReadError
from ..kernel.target import KObj, Target
from ..kernel.walk import walk_list
from ..progress import Progress
from ..sources import procfs
from . import allocflags
from .buddy import FragReport, ZoneInfo, classzone_index
from .watermark import ZoneState, rule_for_release

__all__ = ["from_target", "from_proc", "largest_free_order", "text_page_size",
           "online_pgdats", "pgdats_zone", "DEFAULT_PAGE_SIZE"]


# ---------------------------------------------------------------- kernel

def _atomic(obj: KObj) -> int:
    """An ``atomic_long_t`` or a plain integer member."""
    try:
        return int(obj)
    except (CrashextError, TypeError, ValueError):
        return int(obj.counter)


def _signed(v: int, bits: int = 64) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def online_pgdats(t: Target) -> List[Tuple[int, KObj]]:
    if t.has_symbol("node_data"):
        arr = t.symbol("node_data")
        online: Optional[set] = None
        try:
            states = t.symbol("node_states")
            mask = states[t.constant("N_ONLINE")].bits
            online = set()
            for w in range(mask.length()):
                word = int(mask[w])
                for b in range(64):
                    if word >> b & 1:
                        online.add(w * 64 + b)
        except CrashextError:
            online = None
        # node_data may be typed from `extern ... node_data[];` (length 0, as
        # gdb inside crash sees it): the online mask then says which to read
        if online is not None:
            nids = sorted(online)
        else:
            nids = list(range(arr.length()))
        out = []
        for nid in nids:
            p = arr[nid]
            if p.is_null():
                continue
            out.append((nid, p.deref()))
        return out
    return [(0, t.symbol("contig_page_data"))]


class _ZoneReader:
    """Per-kernel facts looked up once (member names, enum values)."""

    def __init__(self, t: Target) -> None:
        self.t = t
        self.wm_member = "_watermark" if t.has_member("struct zone", "_watermark") else "watermark"
        wm = t.enum_constants("enum zone_watermarks") if t.has_type("enum zone_watermarks") else {}
        self.wmark = {k: wm.get(f"WMARK_{k.upper()}", i) for i, k in enumerate(("min", "low", "high"))}
        self.has_boost = t.has_member("struct zone", "watermark_boost")
        self.nr_free_idx = t.constant("NR_FREE_PAGES")
        self.cma_idx = t.constant("NR_FREE_CMA_PAGES") if t.has_constant("NR_FREE_CMA_PAGES") else None
        self.unacc_idx = t.constant("NR_UNACCEPTED") if t.has_constant("NR_UNACCEPTED") else None
        if t.has_member("struct zone", "nr_free_highatomic"):
            self.highatomic = "nr_free_highatomic"
        elif t.has_member("struct zone", "nr_reserved_highatomic"):
            self.highatomic = "nr_reserved_highatomic"
        else:
            self.highatomic = None
        if t.has_member("struct zone", "per_cpu_zonestats"):
            self.pcp_stats = "per_cpu_zonestats"
        elif t.has_member("struct zone", "pageset"):
            self.pcp_stats = "pageset"
        else:
            self.pcp_stats = None
        self.cpus = t.possible_cpus()

    def vm_stat(self, zone: KObj, idx: int) -> Tuple[int, int]:
        """(atomic value as zone_page_state() gives it, value with per-CPU deltas folded).

        zone_page_state() clamps a negative atomic to 0 (CONFIG_SMP), and
        zone_page_state_snapshot() adds every CPU's vm_stat_diff then clamps."""
        raw = _signed(_atomic(zone.vm_stat[idx]))
        folded = raw
        if self.pcp_stats is not None:
            ptr = zone.member(self.pcp_stats)
            for cpu in self.cpus:
                try:
                    folded += _signed(int(self.t.per_cpu(ptr, cpu).vm_stat_diff[idx]) & 0xFF, 8)
                except ReadError:
                    continue
        return max(raw, 0), max(folded, 0)


def _mt_names(t: Target, nlists: int) -> List[str]:
    enum = t.enum_constants("enum migratetype")
    by_val: Dict[int, str] = {}
    for name, val in sorted(enum.items(), key=lambda kv: kv[1]):
        if name in ("MIGRATE_TYPES", "MIGRATE_PCPTYPES"):
            continue
        by_val.setdefault(val, name)
    return [by_val.get(i, f"MIGRATE_{i}") for i in range(nlists)]


def from_target(t: Target, migratetypes: bool = False, all_zones: bool = False,
                progress: bool = True, err=None) -> FragReport:
    """Read every online node's zones from ``t``; on a live kernel once more
    when a block was allocated while its free list was walked (a walk error)."""
    report = _from_target(t, migratetypes, all_zones, progress, err)
    if t.is_live and any(z.walk_errors for z in report.zones):
        report = _from_target(t, migratetypes, all_zones, progress, err)
    return report


def _from_target(t: Target, migratetypes: bool, all_zones: bool, progress: bool,
                 err) -> FragReport:
    rd = _ZoneReader(t)
    zone_types = [n for n, _ in sorted(t.enum_constants("enum zone_type").items(),
                                       key=lambda kv: kv[1]) if n != "MAX_NR_ZONES"]
    try:
        uts_version: Optional[str] = t.uts()["version"]
    except CrashextError:
        uts_version = None
    report = FragReport(source=t.source, release=t.release,
                        rule=rule_for_release(t.release, uts_version),
                        rule_note=allocflags.generation(t.release, uts_version).assumed,
                        orders=0, page_size=t.page_size, migratetypes=[], zones=[],
                        zone_types=zone_types, uts_version=uts_version)
    pgdats = online_pgdats(t)
    for nid, pgdat in pgdats:
        nzones = pgdat.node_zones.length()
        for zi in range(nzones):
            zone = pgdat.node_zones[zi]
            try:
                info = _read_zone(t, rd, nid, zi, zone)
            except ReadError as exc:
                report.errors.append(f"node {nid} zone {zi}: {exc.one_line()}")
                continue
            if not info.populated and not all_zones:
                continue
            # __setup_per_zone_wmarks (mm/page_alloc.c) scales watermarks from the
            # zone's managed pages; one larger than the whole zone is damage (or an
            # absurd vm.min_free_kbytes): say so next to the verdicts it drives
            for k in ("min", "low", "high"):
                v = getattr(info.state, k)
                if v > max(info.spanned, info.state.present):
                    report.errors.append(
                        f"node {nid} zone {info.state.name}: watermark {k} is {v} pages, more "
                        f"than the zone's {info.spanned} spanned pages; the zone struct looks "
                        "damaged, its verdicts are unreliable")
            report.orders = max(report.orders, len(info.state.nr_free))
            report.zones.append(info)
    if migratetypes:
        for info in report.zones:
            if not info.populated:
                continue
            zone = pgdats_zone(t, pgdats, info)
            _walk_free_lists(t, zone, info, report, progress, err)
    return report


def pgdats_zone(t: Target, pgdats: List[Tuple[int, KObj]], info: ZoneInfo) -> KObj:
    for nid, pgdat in pgdats:
        if nid == info.state.node:
            return pgdat.node_zones[info.state.index]
    raise MissingSymbolError(f"node {info.state.node} vanished")


def _read_zone(t: Target, rd: _ZoneReader, nid: int, zi: int, zone: KObj) -> ZoneInfo:
    name = zone.name.string()
    present = int(zone.present_pages)
    managed = _atomic(zone.managed_pages)
    spanned = int(zone.spanned_pages)
    wm = zone.member(rd.wm_member)
    marks = {k: int(wm[i]) for k, i in rd.wmark.items()}
    boost = int(zone.watermark_boost) if rd.has_boost else 0
    lr = zone.lowmem_reserve
    reserve = [int(lr[i]) for i in range(lr.length())]
    fa = zone.free_area
    nr_free = [int(fa[o].nr_free) for o in range(fa.length())]
    raw_free, folded_free = rd.vm_stat(zone, rd.nr_free_idx)
    free_cma = rd.vm_stat(zone, rd.cma_idx)[0] if rd.cma_idx is not None else 0
    unacc = rd.vm_stat(zone, rd.unacc_idx)[0] if rd.unacc_idx is not None else 0
    highatomic = int(zone.member(rd.highatomic)) if rd.highatomic else 0
    st = ZoneState(node=nid, name=name, free_pages=raw_free, min=marks["min"], low=marks["low"],
                   high=marks["high"], lowmem_reserve=reserve, nr_free=nr_free, managed=managed,
                   present=present, index=zi, watermark_boost=boost, highatomic=highatomic,
                   free_cma=free_cma, unaccepted=unacc)
    # the allocator's own checks read zone_page_state() (unfolded): that is
    # state.free_pages; the folded value is reported beside it
    return ZoneInfo(state=st, populated=present != 0, spanned=spanned,
                    free_pages_unfolded=raw_free, free_pages_folded=folded_free)


def _walk_free_lists(t: Target, zone: KObj, info: ZoneInfo, report: FragReport,
                     progress: bool, err) -> None:
    fa = zone.free_area
    orders = fa.length()
    nlists = fa[0].free_list.length()
    names = _mt_names(t, nlists)
    if not report.migratetypes:
        report.migratetypes = names
    by_mt: Dict[str, List[int]] = {n: [0] * orders for n in names}
    managed = info.state.managed or info.state.present or (1 << 40)
    prog = Progress(f"walking free lists of node {info.state.node} {info.state.name}",
                    total=sum(info.state.nr_free), stream=err, enabled=progress)
    for o in range(orders):
        area = fa[o]
        for mt in range(nlists):
            head = area.free_list[mt].address
            w = walk_list(t, head, limit=(managed >> o) + 1, progress=prog)
            by_mt[names[mt]][o] = w.run()
            if w.corruption:
                info.walk_errors.append(f"order {o} {names[mt]}: {w.corruption}")
        walked = sum(by_mt[n][o] for n in names)
        if walked != info.state.nr_free[o]:
            info.mt_mismatch[o] = (walked, info.state.nr_free[o])
    prog.done()
    info.state.free_by_mt = by_mt


# ---------------------------------------------------------------- text

#: the page size text input is taken to have when it does not say (x86_64's)
DEFAULT_PAGE_SIZE = 4096


def text_page_size(pdir: "procfs.ProcDir", zinfo: Dict[Tuple[int, str], Dict[str, Any]],
                   given: Optional[int] = None) -> Tuple[int, str]:
    """The page size of /proc text and where it came from.

    ``given`` (a power of two, 4 KiB .. 256 KiB) wins; a live /proc is this
    system's (``sysconf(_SC_PAGESIZE)``); saved text says it when it has
    meminfo and zoneinfo: MemTotal is ``totalram_pages()`` in kB and every
    page of it is counted in one zone's ``managed`` (mm/page_alloc.c
    ``__free_pages_core()`` adds to both), so MemTotal * 1024 / the sum of
    ``managed`` is the page size -- taken only when that division is exact and
    a power of two.  Else 4 KiB, said to be an assumption."""
    if given is not None:
        if given < 4096 or given > 1 << 18 or given & (given - 1):
            raise InputError(f"--page-size {given}: not a page size (a power of two, "
                             "4096 .. 262144 bytes)")
        return given, "given (--page-size)"
    if getattr(pdir, "live", False):
        import os
        return os.sysconf("SC_PAGE_SIZE"), "this system (sysconf PAGE_SIZE)"
    managed = sum(int(z.get("managed") or 0) for z in zinfo.values())
    text = pdir.read("meminfo")
    if text and managed:
        try:
            total_kb = procfs.parse_meminfo(text, "meminfo").get("MemTotal")
        except InputError:
            total_kb = None
        if total_kb and (total_kb * 1024) % managed == 0:
            ps = total_kb * 1024 // managed
            if 4096 <= ps <= 1 << 18 and not ps & (ps - 1):
                return ps, "meminfo MemTotal / zoneinfo managed pages"
    return DEFAULT_PAGE_SIZE, ("assumed 4 KiB: the text does not say (no meminfo with "
                               "zoneinfo to tell it); give --page-size")


def from_proc(pdir: "procfs.ProcDir", release: Optional[str] = None,
              all_zones: bool = False, page_size: Optional[int] = None) -> FragReport:
    """Read a /proc-like directory (see :class:`crashext.sources.procfs.ProcDir`).

    Counts there are in pages; ``page_size`` (bytes) is taken as
    :func:`text_page_size` finds it."""
    text = pdir.read("buddyinfo")
    if text is None:
        raise InputError(f"{pdir.path}: no buddyinfo in it (is this a /proc, an sosreport "
                         "proc/ or a truth/ directory?)")
    buddy = procfs.parse_buddyinfo(text, f"{pdir.path}/buddyinfo")
    zt = pdir.read("zoneinfo")
    zinfo = procfs.parse_zoneinfo(zt, f"{pdir.path}/zoneinfo") if zt else {}
    pt = pdir.read("pagetypeinfo")
    ptinfo = procfs.parse_pagetypeinfo(pt, f"{pdir.path}/pagetypeinfo") if pt else None
    ex = pdir.read("extfrag_index")
    extfrag = procfs.parse_frag_index(ex, "extfrag_index") if ex else {}
    un = pdir.read("unusable_index")
    unusable = procfs.parse_frag_index(un, "unusable_index") if un else {}
    errors: List[str] = []
    rel, uts_version, rule = _text_rule(pdir, release, ptinfo, errors)
    # zone index: order of zones within a node in zoneinfo (it lists every zone,
    # populated or not, in zone_type order); buddyinfo lists only populated ones
    zone_order: Dict[int, List[str]] = {}
    for (node, name) in list(zinfo) + list(buddy):
        lst = zone_order.setdefault(node, [])
        if name not in lst:
            lst.append(name)
    zones: List[ZoneInfo] = []
    keys = list(zinfo) if (all_zones and zinfo) else list(buddy)
    orders = len(next(iter(buddy.values())))
    for key in keys:
        node, name = key
        info = _text_zone(key, zinfo.get(key, {}), buddy.get(key, [0] * orders), orders,
                          zone_order[node].index(name), ptinfo)
        info.populated = key in buddy
        info.kernel_unusable, info.kernel_extfrag = unusable.get(key), extfrag.get(key)
        zones.append(info)
    if not zinfo:
        errors.append("no zoneinfo: watermarks unknown, verdicts skipped")
    ps, ps_source = text_page_size(pdir, zinfo, page_size)
    note = allocflags.generation(rel, uts_version).assumed if rel else None
    return FragReport(source=f"text {pdir.path}", release=rel, rule=rule, orders=orders,
                      page_size=ps, migratetypes=list(ptinfo["types"]) if ptinfo else [],
                      zones=zones, zone_types=[], errors=errors, uts_version=uts_version,
                      page_size_source=ps_source, rule_note=note)


def _text_rule(pdir: "procfs.ProcDir", release: Optional[str], ptinfo: Optional[Dict],
               errors: List[str]) -> Tuple[Optional[str], Optional[str], str]:
    """(release, ``uname -v``, watermark rule) of /proc text: ``release`` if
    given, else the text's own; without one, the rule its pagetypeinfo's
    migrate types tell."""
    rel = release or pdir.release()
    uts_version = None if release else pdir.version()
    if rel:
        try:
            return rel, uts_version, rule_for_release(rel, uts_version)
        except ValueError:
            if release:
                raise InputError(f"--release {release!r}: not a kernel release")
            errors.append(f"kernel release {rel[:40]!r} is not readable: ignored")
            rel = None
    if ptinfo is None:
        raise InputError(f"{pdir.path}: kernel release unknown and no pagetypeinfo to tell "
                         "the kernel generation: give --release")
    # "HighAtomic" replaced "Reserve" (MIGRATE_HIGHATOMIC) since Linux kernel commit
    # 0aaa29a56e4f ("mm, page_alloc: reserve pageblocks for high-order atomic
    # allocations on demand") (in v4.4), the release that changed __zone_watermark_ok;
    # the v4.4 and v6.3 rules agree for requests without ALLOC_* flags.
    rule = "3.10" if "MIGRATE_RESERVE" in ptinfo["types"] else "4.4"
    errors.append(f"kernel release unknown: watermark rule {rule} chosen from "
                  "pagetypeinfo's migrate types (give --release to be sure)")
    return rel, uts_version, rule


def _text_zone(key: Tuple[int, str], z: Dict[str, Any], nr: List[int], orders: int,
               index: int, ptinfo: Optional[Dict]) -> ZoneInfo:
    """One zone of /proc text: its zoneinfo fields ``z``, buddyinfo counts
    ``nr`` and, where pagetypeinfo has it, its free blocks per migrate type."""
    node, name = key
    free_unfolded = z.get("free", z.get("nr_free_pages"))
    prot = z.get("protection")
    st = ZoneState(node=node, name=name,
                   free_pages=free_unfolded if free_unfolded is not None
                   else sum(n << o for o, n in enumerate(nr)),
                   min=z.get("min", 0), low=z.get("low", 0), high=z.get("high", 0),
                   lowmem_reserve=list(prot) if prot else [],
                   nr_free=list(nr), managed=z.get("managed"), present=z.get("present"),
                   index=index, watermark_boost=z.get("boost", 0),
                   free_cma=z.get("nr_free_cma", 0), highatomic=0,
                   unaccepted=z.get("nr_unaccepted", 0))
    info = ZoneInfo(state=st, spanned=z.get("spanned"), free_pages_unfolded=free_unfolded)
    if ptinfo is not None and key in ptinfo["free"]:
        st.free_by_mt = {mt: list(c) for mt, c in ptinfo["free"][key].items()}
        info.mt_capped = [(c[2], c[3]) for c in ptinfo["capped"] if (c[0], c[1]) == key]
        for o in range(orders):
            tot = sum(c[o] for c in st.free_by_mt.values() if o < len(c))
            if tot != nr[o]:
                info.mt_mismatch[o] = (tot, nr[o])
    return info


def largest_free_order(t: Target) -> int:
    """The highest order with a free block in a zone a GFP_KERNEL request may
    use (Normal and below; -1 when none is free).  What memcgids sets next to
    the order of the next kmem id array growth."""
    report = from_target(t, progress=False)
    classzone = classzone_index(report, None)
    best = -1
    for z in report.zones:
        if not z.populated or (z.state.index is not None and z.state.index > classzone):
            continue
        for order, n in enumerate(z.state.nr_free):
            if n:
                best = max(best, order)
    return best
