"""What ``frag`` reports about a kernel, a /proc copy or a sosreport, as plain data.

:func:`fragmentation` reads the zones (:mod:`crashext.analysis.buddy_read`),
runs the watermark check for every order asked in every zone a request may
use (:func:`crashext.analysis.buddy.verdicts`), sums up per order where the
request passes the min and the low watermark, and adds the compaction and
reclaim counters (:mod:`crashext.analysis.vmstat`).  The result is the
``--json`` of ``frag``; triage shows a part of it for a sosreport.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from ..errors import CrashextError, InputError
from ..kernel.target import Target
from ..sources.procfs import ProcDir
from ..sources.sosreport import SosReport
from ..sources.sosviews import SosProcDir
from ..units import human_bytes
from . import buddy, buddy_read, vmstat
from .watermark import RULES

__all__ = ["FragOptions", "fragmentation", "verdict_line", "SOS_PARTS"]

#: the parts of a sosreport fragmentation reads (a missing one is said)
SOS_PARTS = ("proc/buddyinfo", "proc/zoneinfo", "proc/pagetypeinfo", "proc/vmstat")


@dataclass
class FragOptions:
    """The request and the reading :func:`fragmentation` is asked for."""

    #: the order of the request (None: every order)
    order: Optional[int] = None
    #: the highest zone the request may use (None: Normal, else the highest populated)
    classzone: Optional[str] = None
    #: the request's ALLOC_* rights (``{"high": True, ...}``)
    alloc_flags: Dict[str, bool] = field(default_factory=dict)
    #: walk a kernel's free lists per migrate type
    migratetypes: bool = False
    #: unpopulated zones too
    all_zones: bool = False
    #: the kernel release of /proc text (picks the watermark rule)
    release: Optional[str] = None
    #: the page size of /proc text in bytes (None: from its meminfo and zoneinfo)
    page_size: Optional[int] = None


def fragmentation(source: Union[Target, ProcDir, SosReport], opts: FragOptions,
                  err=None) -> Dict[str, Any]:
    """Zones, free lists, indices and verdicts of ``source`` (``err``: where a
    long walk reports progress).  ``live`` is None here: the caller that
    read a live kernel says when."""
    snapshot = None
    pdir: Any = None
    if isinstance(source, SosReport):
        pdir = SosProcDir(source)
        missing = [m for m in source.missing() if m.split(" ")[0] in SOS_PARTS]
        report = buddy_read.from_proc(pdir, release=opts.release, all_zones=opts.all_zones,
                                      page_size=opts.page_size)
        report.errors[:0] = source.problems + [f"{m}: missing from the sosreport"
                                               for m in missing]
        snapshot = dict(source.taken)
    elif isinstance(source, ProcDir):
        pdir = source
        report = buddy_read.from_proc(pdir, release=opts.release, all_zones=opts.all_zones,
                                      page_size=opts.page_size)
        if not pdir.live:
            snapshot = pdir.snapshot()
    else:
        report = buddy_read.from_target(source, migratetypes=opts.migratetypes,
                                        all_zones=opts.all_zones, err=err)
    if not report.zones:
        raise InputError(f"{report.source}: no populated zones found")
    if opts.order is not None and not 0 <= opts.order < report.orders:
        raise InputError(f"--order {opts.order} out of range: this kernel has orders "
                         f"0..{report.orders - 1}")
    cz = buddy.classzone_index(report, opts.classzone)
    orders = [opts.order] if opts.order is not None else list(range(report.orders))
    ver = buddy.verdicts(report, orders, cz, **opts.alloc_flags)
    zones = []
    for z in report.zones:
        d = buddy.zone_json(z, report.page_size)
        if not opts.migratetypes and not isinstance(source, ProcDir):
            d["free_by_migratetype"] = None
        v = ver.get(z.key)
        d["verdicts"] = None if v is None else {
            str(o): {m: vv.to_json() for m, vv in per.items()} for o, per in v.items()}
        zones.append(d)
    summary = _order_summary(report, ver, orders, cz)
    reclaim = _reclaim(source, pdir, report.errors)
    return {
        "live": None, "snapshot": snapshot,
        "source": report.source, "release": report.release, "rule": report.rule,
        "rule_covers": RULES[report.rule], "rule_note": report.rule_note,
        "orders": report.orders,
        "page_size": report.page_size, "page_size_source": report.page_size_source,
        "migratetypes": report.migratetypes,
        "classzone": {"index": cz, "name": _zone_name(report, cz)},
        "alloc_flags": sorted(opts.alloc_flags), "order": opts.order,
        "verdict": summary, "zones": zones, "errors": report.errors,
        "reclaim": reclaim,
    }


def _order_summary(report: buddy.FragReport, ver, orders: List[int], cz: int) -> Dict[str, Any]:
    """Per order: passes min somewhere (allocation can succeed without
    reclaim), passes low somewhere (no kswapd wakeup needed)."""
    per_order = {}
    # the zonelist is tried from the classzone downwards (Normal, DMA32, DMA)
    idx = {z.key: (z.state.index or 0) for z in report.zones}
    ver = dict(sorted(ver.items(), key=lambda kv: (-idx.get(kv[0], 0), kv[0][0])))
    for o in orders:
        min_pass = [f"{k[0]}:{k[1]}" for k, per in ver.items() if o in per and per[o]["min"].ok]
        low_pass = [f"{k[0]}:{k[1]}" for k, per in ver.items() if o in per and per[o]["low"].ok]
        per_order[str(o)] = {"min_pass_zones": min_pass, "low_pass_zones": low_pass,
                             "ok": bool(min_pass)}
    failing = [o for o in orders if not per_order[str(o)]["ok"]]
    return {"checked_zones": [f"{k[0]}:{k[1]}" for k in ver], "per_order": per_order,
            "ok": not failing and bool(ver), "first_failing_order": failing[0] if failing else None,
            "unknown": not ver}


def _reclaim(source, pdir, errors: List[str]) -> Optional[Dict[str, Any]]:
    """Compaction and reclaim counters: /proc/vmstat of the text, or the kernel's."""
    if pdir is not None:
        text = pdir.read("vmstat")
        if not text:
            errors.append("no vmstat: compaction and reclaim counters unknown")
            return None
        return vmstat.summary(vmstat.parse_vmstat(text), "vmstat")
    try:
        counters = vmstat.from_target(source)
    except CrashextError as exc:
        errors.append(f"compaction and reclaim counters: {exc}")
        return None
    if not counters:
        return None
    return vmstat.summary(counters, "vm_event_states (per-CPU, summed)")


def _zone_name(report: buddy.FragReport, idx: int) -> Optional[str]:
    for z in report.zones:
        if z.state.index == idx:
            return z.state.name
    if report.zone_types and idx < len(report.zone_types):
        return report.zone_types[idx][5:].capitalize()
    return None


def verdict_line(res: Dict[str, Any], page_size: int) -> str:
    """frag's first line, from a :func:`fragmentation` result: PASS or FAIL for
    the order asked, or for every order, with the rule and zones checked."""
    s = res["verdict"]
    cz = res["classzone"]["name"] or res["classzone"]["index"]
    head = f"rule {res['rule']}, zones up to {cz}"
    if res["alloc_flags"]:
        head += ", flags " + "|".join(res["alloc_flags"])
    if s["unknown"]:
        return f"VERDICT UNKNOWN: no zone with watermarks to check ({head})"
    zones = {f"{z['node']}:{z['zone']}": z for z in res["zones"]}
    if res["order"] is not None:
        o = res["order"]
        po = s["per_order"][str(o)]
        size = human_bytes(page_size << o)
        if po["ok"]:
            where = po["min_pass_zones"][0]
            v = zones[where]["verdicts"][str(o)]["min"]
            kswapd = "" if po["low_pass_zones"] else "; below low in every zone: kswapd woken"
            return (f"PASS: order-{o} ({size}) request passes the min watermark in Node "
                    f"{where.replace(':', ' ')} ({v['reason']}){kswapd} [{head}]")
        parts = []
        for key in s["checked_zones"]:
            v = zones[key]["verdicts"][str(o)]["min"]
            parts.append(f"Node {key.replace(':', ' ')}: {v['reason']}")
        return (f"FAIL: order-{o} ({size}) request fails the min watermark in every zone "
                f"[{head}]: " + "; ".join(parts))
    first = s["first_failing_order"]
    if first is None:
        top = max(int(o) for o in s["per_order"])
        return (f"PASS: every order 0..{top} passes the min watermark in some zone [{head}]")
    return (f"FAIL: orders {first} and above (>= {human_bytes(page_size << first)}) "
            f"fail the min watermark in every zone; order {first - 1} is the largest that "
            f"passes [{head}]" if first > 0 else
            f"FAIL: even order 0 fails the min watermark in every zone [{head}]")
