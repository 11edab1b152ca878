"""Readings to Prometheus metric families: no I/O here.

Each function takes what an analysis or source already returned and gives
``prometheus_client`` metric families.  Names follow Prometheus' naming
conventions (``crashext_`` prefix, base units: bytes and seconds; ratios
0..1; ``_total`` on counters); every label takes values from a set the
kernel bounds (node, zone, order, migrate type, GFP class, anomaly code) or
is capped: per-parent memcg counts keep the ``top`` parents and sum the
rest under ``parent="_other"``; process names are capped by
:mod:`crashext.exporter.logwatch`.

Metric reference: docs/exporter.md.
"""

import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from .. import gfp
from ..analysis import buddy
from ..analysis import allocflags
from ..analysis.vmstat import parse_vmstat  # noqa: F401  (one /proc/vmstat reader; collector uses it here)
from ..analysis.memcg import ANOMALIES
from ..analysis.memcgpins_report import HELD_ORDER
from ..sources.cgroupfs import MEM_CGROUP_ID_MAX, CgroupfsReport
from .logwatch import OTHER

__all__ = ["cgroupfs_families", "kernel_memcg_counts", "kernel_memcg_families", "memcgpins_families",
           "frag_families",
           "vmstat_families", "log_families", "parse_vmstat", "GFP_CLASSES", "top_parents"]

#: the request classes whose watermark verdict is exported
GFP_CLASSES = ("GFP_KERNEL", "GFP_ATOMIC")

#: orders exported for the watermark verdict (the issue: 0..10)
MAX_VERDICT_ORDER = 10


def top_parents(counts: Dict[str, Dict[str, int]], top: int) -> List[Tuple[str, str, int]]:
    """``[(parent, state, n)]`` for the ``top`` parents with the most dying
    (then online) memcgs; the others summed under ``parent="_other"``."""
    ranked = sorted(counts.items(),
                    key=lambda kv: (-kv[1].get("dying", 0), -kv[1].get("online", 0), kv[0]))
    out: List[Tuple[str, str, int]] = []
    rest: Dict[str, int] = {}
    for i, (parent, per) in enumerate(ranked):
        for state, n in sorted(per.items()):
            if i < top:
                out.append((parent, state, n))
            else:
                rest[state] = rest.get(state, 0) + n
    for state, n in sorted(rest.items()):
        out.append((OTHER, state, n))
    return out


def _parent(path: str) -> str:
    return os.path.dirname(path.rstrip("/")) or "/"


def _memcg_common(online: Optional[int], dying: Optional[int],
                  per_parent: Dict[str, Dict[str, int]], ids_used: Optional[int],
                  ids_how: str, top: int) -> List:
    fams = []
    g = GaugeMetricFamily("crashext_memcg_cgroups",
                          "Memory cgroups by state: online, or dying (removed but still "
                          "referenced, e.g. by charged page cache)", labels=["state"])
    if online is not None:
        g.add_metric(["online"], online)
    if dying is not None:
        g.add_metric(["dying"], dying)
    fams.append(g)
    p = GaugeMetricFamily("crashext_memcg_parent_cgroups",
                          f"Memory cgroups by parent cgroup and state, for the {top} parents "
                          "with the most dying memcgs (the rest summed under parent=\"_other\"; "
                          "a dying memcg counts under its nearest ancestor still present)",
                          labels=["parent", "state"])
    for parent, state, n in top_parents(per_parent, top):
        p.add_metric([parent, state], n)
    fams.append(p)
    u = GaugeMetricFamily("crashext_memcg_ids_used",
                          f"Memory cgroup ids in use ({ids_how})")
    if ids_used is not None:
        u.add_metric([], ids_used)
    fams.append(u)
    fams.append(GaugeMetricFamily("crashext_memcg_ids_limit",
                                  "Most memory cgroup ids the kernel hands out "
                                  "(MEM_CGROUP_ID_MAX); mkdir fails with ENOSPC beyond it",
                                  value=MEM_CGROUP_ID_MAX))
    return fams


def cgroupfs_families(rep: CgroupfsReport, top: int) -> List:
    """From :func:`crashext.sources.cgroupfs.read_cgroupfs`."""
    s = rep.summary
    per: Dict[str, Dict[str, int]] = {}
    for c in rep.cgroups:
        if c.path != "/":
            d = per.setdefault(_parent(c.path), {})
            d["online"] = d.get("online", 0) + 1
        if c.dying_here:
            d = per.setdefault(c.path, {})
            d["dying"] = d.get("dying", 0) + c.dying_here
    return _memcg_common(s["visible"], s["dying"], per, s["num_cgroups"],
                         "/proc/cgroups num_cgroups of the memory controller, or visible plus "
                         "dying cgroups where it has no memory line: an upper bound, "
                         "it counts dying cgroups until they are freed", top)


def kernel_memcg_counts(memcgs: Iterable) -> Tuple[Dict[str, Dict[str, int]], int]:
    """What the memcg families need of the rows of a memcg walk: online and
    dying memcgs per parent path, and how many hold a memcg id.  Counted
    once as the rows go by, so a cache of them between scrapes holds a
    count per parent, not a row per memcg."""
    per: Dict[str, Dict[str, int]] = {}
    ids = 0
    for m in memcgs:
        mid = m.memcg_id if m.memcg_id is not None else m.css_id
        if mid is not None and mid > 0:
            ids += 1
        if m.state == "unknown" or m.path in ("/", "?"):
            continue
        d = per.setdefault(_parent(m.path), {})
        d[m.state] = d.get(m.state, 0) + 1
    return per, ids


def kernel_memcg_families(summary: Dict[str, Any],
                          counts: Tuple[Dict[str, Dict[str, int]], int], top: int) -> List:
    """From a memcg walk (:func:`crashext.analysis.memcg.memcg_scan`, drgn):
    its summary and :func:`kernel_memcg_counts` of its rows."""
    per, ids = counts
    fams = _memcg_common(summary["online"], summary["dying"], per, ids,
                         "memcgs holding a memcg id, read from kernel memory", top)
    a = GaugeMetricFamily("crashext_memcg_anomalies",
                          "Memory cgroups with each anomaly crashext memcgids flags "
                          "(codes: crashext memcgids --help)", labels=["code"])
    for code in ANOMALIES:
        a.add_metric([code], summary["anomalies"].get(code, 0))
    fams.append(a)
    used = GaugeMetricFamily("crashext_memcg_kmem_ids_used",
                             "kmemcg ids owned by memcgs (kmem accounting)")
    cap = GaugeMetricFamily("crashext_memcg_kmem_ids_capacity",
                            "Size of the per-kmemcg-id arrays (memcg_nr_cache_ids or "
                            "memcg_limited_groups_array_size): the next id beyond it grows them")
    order = GaugeMetricFamily("crashext_memcg_kmem_next_growth_order",
                              "Page order of the allocation that grows the per-kmemcg-id "
                              "arrays next (kernels 3.10 to 5.17 with such arrays)")
    size = GaugeMetricFamily("crashext_memcg_kmem_next_growth_ids",
                             "Number of kmemcg ids the per-id arrays hold after their next growth")
    if summary.get("kmem_ids_in_use") is not None:
        used.add_metric([], summary["kmem_ids_in_use"])
    if summary.get("kmem_id_capacity") is not None:
        cap.add_metric([], summary["kmem_id_capacity"])
    r = summary.get("next_resize")
    if r and not r.get("at_maximum"):
        if r.get("order") is not None:
            order.add_metric([], r["order"])
        size.add_metric([], r["size"])
    fams += [used, cap, order, size]
    return fams


#: the kinds of memory charged to a dying memcg (a memcgpins summary's ``pages``)
PIN_KINDS = ("file", "shmem", "anon", "swap", "kmem", "slab")


def memcgpins_families(summary: Dict[str, Any], page_size: int) -> List:
    """From the summary of a memcgpins reading (:func:`crashext.analysis.
    memcgpins.memcg_pins`, drgn): the memory still charged to the dying
    memcgs by kind, and the dying memcgs by what holds each."""
    b = GaugeMetricFamily("crashext_memcg_dying_pinned_bytes",
                          "Memory still charged to dying memory cgroups, by kind (file: page "
                          "cache; shmem: tmpfs and shared memory; anon; swap: swapped-out "
                          "pages; kmem: kernel pages charged with __GFP_ACCOUNT; slab: pages "
                          "of per-memcg kmem caches), read from the page array as crashext "
                          "memcgpins does", labels=["kind"])
    for k in PIN_KINDS:
        b.add_metric([k], summary["pages"].get(k, 0) * page_size)
    h = GaugeMetricFamily("crashext_memcg_dying_held_cgroups",
                          "Dying memory cgroups by what holds each, its largest holder first "
                          "(children: dying children only; writeback: writeback contexts; "
                          "refs: references nothing counted accounts for; none: being freed)",
                          labels=["held_by"])
    for k in HELD_ORDER:
        h.add_metric([k], summary["held_by"].get(k, 0))
    h.add_metric(["none"], summary["being_freed"])
    return [b, h]


def _mt_label(name: str) -> str:
    return name[8:].lower() if name.startswith("MIGRATE_") else name.lower()


def gfp_flags(release: Optional[str], rule: str, cls: str, order: int,
              uts_version: Optional[str] = None) -> Dict[str, bool]:
    """The ALLOC_* rights of an order-``order`` ``cls`` request (GFP_KERNEL,
    GFP_ATOMIC) on this kernel: the mask from its generation's GFP table,
    the rights from :func:`crashext.analysis.allocflags.alloc_flags` (the
    one place that follows gfp_to_alloc_flags() across versions).  Without
    a release the generation of the watermark ``rule`` is taken."""
    table, _how = gfp.table_for_release(release)
    mask = dict(table.names)[cls]
    gen = None
    if release:
        try:
            gen = allocflags.generation(release, uts_version).name
        except ValueError:
            gen = None
    return allocflags.alloc_flags(mask, order, table, gen or rule).kwargs()


def frag_families(rep: "buddy.FragReport") -> List:
    """From a :class:`~crashext.analysis.buddy.FragReport` (``/proc`` text or drgn)."""
    ps = rep.page_size
    blocks = GaugeMetricFamily("crashext_buddy_free_blocks",
                               "Free blocks in the buddy allocator per zone and order "
                               "(/proc/buddyinfo)", labels=["node", "zone", "order"])
    bymt = GaugeMetricFamily("crashext_buddy_migratetype_free_blocks",
                             "Free blocks per zone, order and migrate type (/proc/pagetypeinfo; "
                             "counts the kernel shows as >100000 are 100000)",
                             labels=["node", "zone", "order", "migratetype"])
    unusable = GaugeMetricFamily("crashext_buddy_unusable_index",
                                 "Share of free memory unusable for an order-N block (the "
                                 "kernel's unusable_free_index, debugfs extfrag/unusable_index)",
                                 labels=["node", "zone", "order"])
    extfrag = GaugeMetricFamily("crashext_buddy_extfrag_index",
                                "The kernel's fragmentation index of an order-N request "
                                "(debugfs extfrag/extfrag_index): towards 1 a failure would be "
                                "due to fragmentation, towards 0 to lack of memory; -1 when a "
                                "block of the order is free", labels=["node", "zone", "order"])
    free = GaugeMetricFamily("crashext_zone_free_bytes",
                             "Free memory per zone (NR_FREE_PAGES)", labels=["node", "zone"])
    managed = GaugeMetricFamily("crashext_zone_managed_bytes",
                                "Memory managed by the buddy allocator per zone",
                                labels=["node", "zone"])
    marks = GaugeMetricFamily("crashext_zone_watermark_bytes",
                              "Zone watermarks (min, low, high; boost is added to each by "
                              "the allocator)", labels=["node", "zone", "mark"])
    largest = GaugeMetricFamily("crashext_buddy_largest_free_order",
                                "Highest order with a free block in a zone a GFP_KERNEL request "
                                "may use (-1: none)")
    for z in rep.zones:
        st = z.state
        if not z.populated:
            continue
        lab = [str(st.node), st.name]
        for o, n in enumerate(st.nr_free):
            blocks.add_metric(lab + [str(o)], n)
            unusable.add_metric(lab + [str(o)], buddy.unusable_index(st.nr_free, o) / 1000.0)
            extfrag.add_metric(lab + [str(o)], buddy.fragmentation_index(st.nr_free, o) / 1000.0)
        for mt, counts in sorted((st.free_by_mt or {}).items()):
            for o, n in enumerate(counts):
                bymt.add_metric(lab + [str(o), _mt_label(mt)], n)
        free.add_metric(lab, st.free_pages * ps)
        if st.managed is not None:
            managed.add_metric(lab, st.managed * ps)
        if st.min or st.low or st.high:
            for k in ("min", "low", "high", "boost"):
                v = st.watermark_boost if k == "boost" else getattr(st, k)
                marks.add_metric(lab + [k], v * ps)
    fams = [blocks, bymt, unusable, extfrag, free, managed, marks]
    try:
        cz = buddy.classzone_index(rep, None)
    except Exception:  # no zones to pick from: no verdicts
        return fams
    best = -1
    for z in rep.zones:
        if z.populated and (z.state.index is None or z.state.index <= cz):
            for o, n in enumerate(z.state.nr_free):
                if n:
                    best = max(best, o)
    largest.add_metric([], best)
    fams.append(largest)
    fams += _verdict_families(rep, cz)
    return fams


def _verdict_families(rep: "buddy.FragReport", cz: int) -> List:
    ok = GaugeMetricFamily("crashext_watermark_ok",
                           "1 if an order-N request of the GFP class would pass the min "
                           "watermark in some zone it may use, now (the kernel's "
                           "__zone_watermark_ok of this generation, as crashext frag checks it)",
                           labels=["gfp", "order"])
    zok = GaugeMetricFamily("crashext_zone_watermark_ok",
                            "1 if an order-N request of the GFP class passes this zone's min "
                            "watermark now", labels=["node", "zone", "gfp", "order"])
    orders = list(range(min(rep.orders, MAX_VERDICT_ORDER + 1)))
    for cls in GFP_CLASSES:
        for o in orders:
            ver = buddy.verdicts(rep, [o], cz, marks=("min",),
                                 **gfp_flags(rep.release, rep.rule, cls, o, rep.uts_version))
            if not ver:
                continue
            passing = False
            for (node, zone), per in sorted(ver.items()):
                if o not in per:
                    continue
                v = per[o]["min"].ok
                passing = passing or v
                zok.add_metric([str(node), zone, cls, str(o)], 1 if v else 0)
            ok.add_metric([cls, str(o)], 1 if passing else 0)
    return [ok, zok]


def vmstat_families(vm: Dict[str, int]) -> List:
    c = CounterMetricFamily("crashext_compaction",
                            "Memory compaction counters of /proc/vmstat (compact_*), by name",
                            labels=["vmstat"])
    for k in sorted(vm):
        if k.startswith("compact_"):
            c.add_metric([k], vm[k])
    return [c]


def log_families(snap: Dict[str, Any]) -> List:
    """From :meth:`crashext.exporter.logwatch.LogCounts.snapshot`."""
    a = CounterMetricFamily("crashext_allocation_failures",
                            "Allocation failures in the kernel log (page allocation failure, "
                            "vmalloc failure) by kind, order and failing process",
                            labels=["kind", "order", "comm"])
    for (kind, order, comm), n in sorted(snap["alloc"].items()):
        a.add_metric([kind, order, comm], n)
    inv = CounterMetricFamily("crashext_oom_invocations",
                              "OOM-killer invocations in the kernel log by the order of the "
                              "request, the invoking process and scope (memcg or global)",
                              labels=["order", "comm", "scope"])
    for (order, comm, scope), n in sorted(snap["oom_invoked"].items()):
        inv.add_metric([order, comm, scope], n)
    k = CounterMetricFamily("crashext_oom_kills",
                            "Processes killed by the OOM killer in the kernel log, by name "
                            "and scope", labels=["comm", "scope"])
    for (comm, scope), n in sorted(snap["oom_killed"].items()):
        k.add_metric([comm, scope], n)
    r = CounterMetricFamily("crashext_log_records",
                            "Kernel log records read, by kind", labels=["kind"])
    for kind in ("allocation_failure", "oom", "slub_failure", "oops"):
        r.add_metric([kind], snap["records"].get(kind, 0))
    lines = CounterMetricFamily("crashext_log_lines", "Kernel log lines read",
                                value=snap["lines"])
    ev = CounterMetricFamily("crashext_log_reopens",
                             "Times the log was read anew: rotated (a new file under the name), "
                             "truncated (read again from its start), lost (/dev/kmsg records "
                             "overwritten before they were read)", labels=["reason"])
    for name in ("rotated", "truncated", "lost"):
        ev.add_metric([name], snap["events"].get(name, 0))
    return [a, inv, k, r, lines, ev]


def kernel_info_family(release: Optional[str], rule: Optional[str], source: str):
    i = InfoMetricFamily("crashext_kernel",
                         "The kernel read: release and the watermark rule crashext applies")
    i.add_metric([], {"release": release or "unknown", "watermark_rule": rule or "unknown",
                      "source": source})
    return i
