"""Every show_mem() block analysed alike: allocation failures, OOM-kill
reports (global, cpuset, memcg) and SysRq-m dumps.

For each block, per zone: free memory (the zone line's ``free``), the
watermarks, ``lowmem_reserve``, the buddy line's free blocks per order and
its printed total (checked against the sum of the blocks), the largest free
order.  Then the watermark check re-run on those numbers
(:func:`crashext.analysis.zonecheck.explain_request`, the kernel's rule of
the release):

- an OOM report: for its own request (``gfp_mask`` and ``order`` from the
  ``invoked oom-killer`` line) -- did every zone it may use fail the MIN
  watermark, and was that a lack of free memory or of large enough blocks;
- a SysRq-m / show_mem dump (no request): for a GFP_KERNEL request of each
  order, which is the largest order that would still pass in some zone.

A memcg OOM prints no zone lines (mem_cgroup_print_oom_meminfo() instead of
show_mem()): its analysis is the memcg's usage against its limit.

:func:`timeline` gives, for every block of a log, each zone's free memory
and largest free order: fragmentation building up over time.
"""

from typing import Any, Dict, Iterable, List, Optional, Tuple

from .. import gfp
from ..sources.kmsg import AllocFailure, OomReport, record_when
from ..sources.showmem import ShowMem, largest_order_of
from . import zonecheck

__all__ = ["zone_rows", "showmem_view", "oom_view", "timeline", "report_timeline", "block_kind",
           "conclusion", "zone_series"]


def block_kind(rec) -> str:
    """``allocfail``, ``oom-global``, ``oom-memcg``, ``oom-cpuset``,
    ``oom-mempolicy``, ``sysrq`` or ``show_mem``."""
    if isinstance(rec, AllocFailure):
        return "allocfail"
    if isinstance(rec, OomReport):
        return "oom-" + oom_scope(rec)
    return rec.trigger


def oom_scope(rec: OomReport) -> str:
    """global / memcg / cpuset / mempolicy, from the constraint line (v4.19+)
    or, before it, from the memcg lines of the report."""
    c = (rec.constraint or {}).get("constraint")
    # mm/oom_kill.c oom_constraint_text[]
    scope = {"CONSTRAINT_NONE": "global", "CONSTRAINT_CPUSET": "cpuset",
             "CONSTRAINT_MEMORY_POLICY": "mempolicy", "CONSTRAINT_MEMCG": "memcg"}.get(c or "")
    if scope:
        return scope
    if rec.memcg:
        return "memcg"
    # a global OOM report without a constraint line (before v4.19) still has
    # show_mem and a kill; an excerpt with neither does not say
    return "global" if rec.zones or rec.killed_pid is not None else "unknown"


def zone_rows(rec) -> List[Dict[str, Any]]:
    """Per zone of a show_mem block: the zone line and the buddy line together."""
    buddies = {(b.node, b.zone): b for b in rec.buddy}
    rows = []
    seen = set()
    for z in rec.zones:
        key = (z.node, z.zone)
        seen.add(key)
        rows.append(_row(z, buddies.get(key)))
    for b in rec.buddy:
        if (b.node, b.zone) not in seen:
            rows.append(_row(None, b))
    return rows


def _row(z, b) -> Dict[str, Any]:
    src = z if z is not None else b
    row: Dict[str, Any] = {"node": src.node, "zone": src.zone}
    for k in ("free", "min", "low", "high", "managed", "present", "boost"):
        row[f"{k}_kb"] = z.kb(k) if z is not None else None
    row["lowmem_reserve"] = z.lowmem_reserve if z is not None else None
    if b is not None:
        row.update({
            "buddy_total_kb": b.total_kb, "buddy_sum_kb": b.computed_kb,
            "buddy_total_ok": b.total_ok, "free_blocks": b.counts,
            "block_kb": b.block_kb, "migrate_letters": b.types,
            "largest_free_order": largest_order_of(b),
            "free_kb_by_order": [c * s for c, s in zip(b.counts, b.block_kb)]})
    else:
        row.update({"buddy_total_kb": None, "buddy_sum_kb": None, "buddy_total_ok": None,
                    "free_blocks": None, "block_kb": None, "migrate_letters": None,
                    "largest_free_order": None, "free_kb_by_order": None})
    free, mn = row["free_kb"], row["min_kb"]
    row["below_min"] = None if free is None or mn is None else free < mn
    return row


def _table(release: Optional[str]) -> gfp.GfpTable:
    return gfp.table_for_release(release)[0]


def conclusion(verdicts: List["zonecheck.ZoneVerdict"], order: Optional[int]) -> Optional[str]:
    """What the verdicts of one request add up to, in a sentence."""
    if not verdicts:
        return None
    if any(v.verdict["ok"] for v in verdicts):
        ok = [f"{v.zone}" for v in verdicts if v.verdict["ok"]]
        return (f"{', '.join(ok)} passes the MIN watermark as printed: memory was there when "
                "the block was printed (reclaim may have freed it meanwhile)")
    short = [v for v in verdicts if v.verdict["check"] == "watermark"]
    frag = [v for v in verdicts if v.verdict["check"] != "watermark"]
    if frag and not short:
        return (f"fragmentation: every zone has free memory above its MIN watermark but no "
                f"free block of order {order} or larger")
    if short and not frag:
        return ("out of memory: every zone the request may use is below its MIN watermark "
                "(plus lowmem_reserve) -- a lack of free memory, not of large blocks")
    return ("both: " + ", ".join(f"{v.zone} below MIN" for v in short) + "; "
            + ", ".join(f"{v.zone} without an order-{order} block" for v in frag))


def _verdicts_json(rule, verdicts) -> List[Dict[str, Any]]:
    return [{"node": v.node, "zone": v.zone, "index": v.index,
             "classzone_idx": v.classzone_idx, "free_pages": v.free_pages, "min": v.min,
             "low": v.low, "high": v.high, "reserve": v.reserve, "verdict": v.verdict,
             "notes": v.notes} for v in verdicts]


def showmem_view(rec, release: Optional[str], uts_version: Optional[str] = None
                 ) -> Dict[str, Any]:
    """A SysRq-m / show_mem dump: zones, and for a GFP_KERNEL request of each
    order whether some zone passes the MIN watermark."""
    table = _table(release)
    gk = dict(table.names).get("GFP_KERNEL")
    per_order: Dict[str, Any] = {}
    rule = None
    notes: List[str] = []
    orders = max((len(b.counts) for b in rec.buddy), default=0)
    largest_ok = None
    first_fail = None
    for o in range(orders):
        try:
            rule, verdicts, out = zonecheck.explain_request(gk, o, rec.zones, rec.buddy, table,
                                                            release, uts_version)
        except ValueError as exc:   # numbers a mangled log cannot give the check
            rule, verdicts, out = None, [], [f"watermark check not possible: {exc}"]
        if not verdicts:
            notes = out
            break
        ok = [f"{v.node}:{v.zone}" for v in verdicts if v.verdict["ok"]]
        per_order[str(o)] = {"pass_zones": ok, "ok": bool(ok)}
        if ok:
            largest_ok = o
        elif first_fail is None:
            first_fail = o
    return {"kind": block_kind(rec), "header": rec.header, "time": rec.ts, "stamp": rec.stamp,
            "when": record_when(rec), "lines": list(rec.lines), "partial": rec.partial,
            "problems": rec.problems, "meminfo": rec.meminfo.counters if rec.meminfo else None,
            "extra": rec.extra, "zones": zone_rows(rec),
            "gfp_kernel": {"rule": rule, "mode": None if gk is None else f"{gk:#x}",
                           "largest_passing_order": largest_ok,
                           "first_failing_order": first_fail, "per_order": per_order,
                           "notes": notes}}


def oom_view(rec: OomReport, release: Optional[str]) -> Dict[str, Any]:
    """An OOM-kill report: its header decoded, scope and constraint, the memcg
    counters, the kill, the largest tasks, and the zone analysis of its
    show_mem block re-run for its own request."""
    table, how = _oom_table(rec, release)
    decoded = gfp.decode(rec.gfp, table) if rec.gfp is not None else None
    rule, verdicts, notes = (None, [], [])
    if rec.sysrq:
        notes = [f"manual OOM kill (SysRq-f, order={rec.order}): no allocation asked for "
                 "memory, so there is no request to re-run the watermark check for"]
    elif rec.zones:
        try:
            rule, verdicts, notes = zonecheck.explain_request(
                rec.gfp, rec.order, rec.zones, rec.buddy, table, release,
                rec.uts_version if release == rec.release else None)
        except ValueError as exc:   # numbers a mangled log cannot give the check
            notes = [f"watermark check not possible: {exc}"]
    elif scope_is_memcg(rec):
        notes = ["memcg OOM: charging the memcg failed at its limit (a memcg OOM prints the "
                 "memcg's counters, no zone lines)"]
    else:
        notes = ["no zone lines in this report (a cut or filtered log): the watermark check "
                 "cannot be re-run"]
    mem = rec.memcg_counters.get("memory")
    memcg = None
    if rec.memcg_counters or rec.memcg_path:
        memcg = {"path": rec.memcg_path or (rec.constraint or {}).get("oom_memcg"),
                 "counters": rec.memcg_counters,
                 "at_limit": None if mem is None else mem["usage_kb"] >= mem["limit_kb"]}
    tasks = [{"pid": t.pid, "uid": t.uid, "tgid": t.tgid, "total_vm_pages": t.total_vm,
              "rss_pages": t.rss, "swapents": t.swapents, "oom_score_adj": t.oom_score_adj,
              "name": t.name} for t in rec.tasks]
    return {
        "kind": block_kind(rec), "scope": oom_scope(rec), "header": rec.header,
        "time": rec.ts, "stamp": rec.stamp, "when": record_when(rec),
        "lines": list(rec.lines), "partial": rec.partial, "problems": rec.problems,
        "comm": rec.comm, "pid": rec.pid, "release": release,
        "gfp": {"mask": None if rec.gfp is None else f"{rec.gfp:#x}", "printed": rec.gfp_names,
                "names": decoded, "table": table.key, "table_how": how,
                "agree": None if rec.gfp_names is None or decoded is None
                else decoded == rec.gfp_names},
        "order": rec.order, "oom_score_adj": rec.oom_score_adj, "nodemask": rec.nodemask,
        "constraint": rec.constraint, "memcg": memcg,
        "killed": None if rec.killed_pid is None else {
            "pid": rec.killed_pid, "comm": rec.killed_comm, "kb": rec.killed_kb},
        "tasks_listed": rec.tasks_seen, "largest_tasks": tasks,
        "meminfo": rec.meminfo.counters if rec.meminfo else None, "extra": rec.extra,
        "zones": zone_rows(rec), "watermark_rule": rule,
        "verdicts": _verdicts_json(rule, verdicts), "conclusion": conclusion(verdicts, rec.order),
        "notes": notes,
    }


def _oom_table(rec: OomReport, release: Optional[str]):
    """The GFP table for an OOM report's mask and how it was chosen: the
    release's; without one, the newest table that reproduces the names the
    kernel printed, or, with no names printed (before v4.5), the 3.10 table
    (as for allocation failures, allocfail._choose_table)."""
    if not release and rec.gfp is not None:
        if rec.gfp_names is None:
            return gfp.T310, ("kernel version unknown; no names printed, so a kernel "
                                 "before v4.5: assumed the 3.10 table")
        fits = [t for t in gfp.TABLES if gfp.decode(rec.gfp, t) == rec.gfp_names]
        if fits:
            return fits[-1], (f"kernel version unknown: the {fits[-1].key} table is the "
                              "newest that reproduces the printed names")
    return gfp.table_for_release(release)


def scope_is_memcg(rec: OomReport) -> bool:
    return oom_scope(rec) == "memcg"


def timeline(records: Iterable[Any]) -> List[Dict[str, Any]]:
    """One entry per show_mem block (allocation failure, OOM report, SysRq-m)
    in log order: when, what, and per zone free kB and largest free order."""
    out = []
    for rec in records:
        if not isinstance(rec, (AllocFailure, OomReport, ShowMem)):
            continue
        if not rec.zones and not rec.buddy:
            continue
        out.append({"when": record_when(rec), "time": rec.ts, "stamp": rec.stamp,
                    "line": rec.lines[0], "kind": block_kind(rec),
                    "order": getattr(rec, "order", None),
                    "zones": [{"node": r["node"], "zone": r["zone"], "free_kb": r["free_kb"],
                               "min_kb": r["min_kb"], "buddy_total_kb": r["buddy_total_kb"],
                               "largest_free_order": r["largest_free_order"],
                               "largest_block_kb": None if r["largest_free_order"] is None
                               else r["block_kb"][r["largest_free_order"]],
                               "free_kb_by_order": r["free_kb_by_order"]}
                              for r in zone_rows(rec)]})
    return out


def zone_series(entries: List[Dict[str, Any]]) -> Dict[Tuple[int, str], List[Dict[str, Any]]]:
    """The timeline regrouped per zone."""
    out: Dict[Tuple[int, str], List[Dict[str, Any]]] = {}
    for e in entries:
        for z in e["zones"]:
            out.setdefault((z["node"], z["zone"]), []).append(dict(z, when=e["when"],
                                                                   kind=e["kind"]))
    return out


def report_timeline(rep) -> List[Dict[str, Any]]:
    """:func:`timeline` of an :class:`~crashext.analysis.allocreport.AllocReport`:
    its kept allocation failures, OOM reports and show_mem dumps in log order."""
    recs = [f.record for f in rep.failures] + list(rep.ooms) + list(rep.showmem)
    recs.sort(key=lambda r: r.lines[0])
    return timeline(recs)
