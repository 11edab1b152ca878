"""What the HTML report shows, as plain data (no plotting, no HTML).

:func:`assemble` runs the analyses once -- :func:`crashext.analysis.evidence.triage`
for the verdict, system, panic, allocation failures and memcgs (its result
dict is used through its existing keys), :mod:`crashext.analysis.buddy_read` for
the free lists -- and adds what only the report shows: per-order watermark
passes for every zone, the log's events on one time axis and the largest
free order each Mem-Info block printed.

Where the fragmentation numbers come from, first that applies:

- ``--proc DIR``: buddyinfo, zoneinfo, pagetypeinfo (:func:`buddy_read.from_proc`);
- a kernel (dump, live, QEMU): the zones and, walked, the free lists per
  migrate type (:func:`buddy_read.from_target`);
- a log: the Mem-Info block of the last allocation failure that printed
  one (zone and buddy lines, :func:`zonecheck.mem_info_zones`); the buddy
  line's letters tell only which migrate types had free blocks, so the
  bars are not split by type there.

A section that cannot be had is ``{"error": "why"}``; the page shows the
reason in place of the picture.
"""

from typing import Any, Dict, List, Optional, Tuple

from ..analysis import allocreport
from ..analysis import buddy, buddy_read
from ..analysis import zonecheck
from ..analysis.evidence import TriageInputs, log_source, triage
from ..analysis.watermark import rule_for_release
from ..errors import CrashextError, InputError
from ..kernel.target import Target
from ..sources import kmsg, logs
from ..sources.procfs import ProcDir

__all__ = ["assemble", "frag_section", "timeline_section", "memcg_section", "memcgpins_section",
           "TOP_PARENTS"]

#: dying-memcg parents shown (the page aggregates; JSON of memcgids lists every memcg)
TOP_PARENTS = 10


def assemble(target: Optional[Target] = None, log_path: Optional[str] = None,
             proc_dir: Optional[str] = None, release: Optional[str] = None,
             kb_dirs: Optional[List[str]] = None, crash_log: Optional[str] = None,
             err=None) -> Dict[str, Any]:
    """Everything the page shows, from the sources given (at least one).

    ``crash_log``: a saved crash session transcript, as ``triage --crash-log``."""
    if target is None and log_path is None and proc_dir is None and crash_log is None:
        raise InputError("nothing to report on: give -c VMCORE -s VMLINUX, -k, --qemu SOCKET, "
                         "--log FILE or --proc DIR")
    if target is not None and proc_dir is not None:
        raise InputError("give either --proc DIR or a kernel (-c/-k/--qemu), not both")
    tri: Optional[Dict[str, Any]] = None
    tri_why = None
    sink: List[allocreport.AllocReport] = []
    if target is not None or log_path is not None or crash_log is not None:
        lines, path = log_source(log_path)
        crash_text = ("\n".join(logs.checked_lines(crash_log, "crash session transcript"))
                      if crash_log else None)
        tri = triage(TriageInputs(target=target, log_lines=lines, crash_text=crash_text,
                                  crash_name=crash_log or "crash log", kb_dirs=kb_dirs,
                                  log_sink=sink, log_path=path))
    else:
        tri_why = "the verdict needs a dump or a kernel log (--proc gives only fragmentation)"
    rep = sink[0] if sink else None
    failed = _failed_order(tri)
    sources = list(tri["sources"]) if tri else []
    if proc_dir:
        sources.append(f"text {proc_dir}")
    return {
        "sources": sources,
        "triage": tri,
        "triage_error": tri_why,
        "frag": frag_section(target, proc_dir, release, rep, failed, err),
        "memcg": memcg_section(tri, target),
        "memcgpins": memcgpins_section(tri, target),
        "timeline": timeline_section(rep, tri, "the dump's kernel log"
                                     if log_path is None and target is not None else None),
        "system": _system(tri),
    }


def _failed_order(tri: Optional[Dict[str, Any]]) -> Optional[int]:
    """The order of the last page allocation failure triage kept (None: none)."""
    if not tri:
        return None
    fails = [f for f in tri["memory"]["allocation_failures"]
             if f.get("kind") == "page" and f.get("order") is not None]
    return fails[-1]["order"] if fails else None


# -- fragmentation ---------------------------------------------------------------

def _log_frag(rep: "allocreport.AllocReport") -> Tuple[Optional[buddy.FragReport], Optional[int], str]:
    """A FragReport of the last failure's Mem-Info block, its class zone, and why not."""
    for view in reversed(rep.failures):
        rec = view.record
        if not rec.zones or not rec.buddy:
            continue
        states, notes = zonecheck.mem_info_zones(rec)
        if not states:
            continue
        page_kb = rec.buddy[0].block_kb[0] if rec.buddy[0].block_kb else 4
        rule = view.watermark_rule
        if rule is None:
            try:
                rule = rule_for_release(view.release) if view.release else "4.4"
            except ValueError:
                rule = "4.4"
        for st in states:
            st.free_by_mt = None  # letters say which lists were non-empty, not how many blocks
        notes = [n for n in notes if "letters" not in n]
        if any(b.types and any(b.types) for b in rec.buddy):
            notes.append("the buddy lines' letters (U, M, E, ...) say which migrate types had "
                         "free blocks at each order, not how many: the bars are not split by type")
        when = f" at [{rec.ts:.6f}]" if rec.ts is not None else ""
        report = buddy.FragReport(
            source=f"kernel log: Mem-Info of {rec.comm}'s order-{rec.order} failure{when}",
            release=view.release, rule=rule, orders=max(len(s.nr_free) for s in states),
            page_size=page_kb * 1024, migratetypes=[],
            zones=[buddy.ZoneInfo(state=s) for s in states], zone_types=[], errors=list(notes),
            page_size_source=("the buddy line's order-0 block size" if rec.buddy[0].block_kb
                              else "assumed 4 KiB: the buddy line gives no block size"))
        cz = view.zone_verdicts[0].classzone_idx if view.zone_verdicts else None
        return report, cz, ""
    if rep.failures:
        return None, None, "no allocation failure in the log printed its Mem-Info zone and buddy lines"
    return None, None, "no allocation failure with Mem-Info in the log, and no dump or --proc"


def frag_section(target: Optional[Target], proc_dir: Optional[str], release: Optional[str],
                 rep: Optional["allocreport.AllocReport"], failed_order: Optional[int],
                 err=None) -> Dict[str, Any]:
    cz: Optional[int] = None
    try:
        if proc_dir:
            report = buddy_read.from_proc(ProcDir(proc_dir), release=release)
        elif target is not None:
            report = buddy_read.from_target(target, migratetypes=True, progress=False, err=err)
        elif rep is not None:
            report, cz, why = _log_frag(rep)
            if report is None:
                return {"error": why}
        else:
            return {"error": "no source of free-list numbers"}
    except InputError as exc:
        if proc_dir:
            raise  # the text the user named is unusable: one line, not an empty page
        return {"error": exc.one_line()}
    except CrashextError as exc:
        return {"error": exc.one_line()}
    zones_in = [z for z in report.zones if z.populated]
    if not zones_in:
        return {"error": f"{report.source}: no populated zones"}
    if cz is None:
        cz = buddy.classzone_index(report, None)
    orders = list(range(report.orders))
    ver = buddy.verdicts(report, orders, cz)
    zones = []
    for z in zones_in:
        d = buddy.zone_json(z, report.page_size)
        v = ver.get(z.key)
        st = z.state
        reserve = (st.lowmem_reserve[cz] if st.lowmem_reserve and cz < len(st.lowmem_reserve)
                   else None)
        d["classzone_reserve"] = reserve
        d["passes"] = None if v is None else [
            {"order": o, "min": per["min"].ok, "low": per["low"].ok,
             "min_reason": per["min"].reason, "low_reason": per["low"].reason}
            for o, per in sorted(v.items())]
        d["largest_free_order"] = max((o for o, n in enumerate(st.nr_free) if n), default=None)
        zones.append(d)
    return {"source": report.source, "release": report.release, "rule": report.rule,
            "orders": report.orders, "page_size": report.page_size,
            "page_size_source": report.page_size_source,
            "migratetypes": report.migratetypes, "classzone": cz,
            "classzone_name": next((z.state.name for z in report.zones
                                    if z.state.index == cz), None),
            "failed_order": failed_order, "zones": zones, "notes": report.errors}


# -- memcgs ------------------------------------------------------------------------

def memcg_section(tri: Optional[Dict[str, Any]], target: Optional[Target]) -> Dict[str, Any]:
    if tri is None or target is None:
        return {"error": "no dump or kernel: memcg state is not in a log or /proc text"}
    mc = tri["memory"].get("memcg")
    if not mc:
        return {"error": tri["memory"]["errors"].get("memcg", "memcg analysis unavailable")}
    s = mc["summary"]
    resize = s.get("next_resize") or {}
    expl = dict(mc.get("explanations", {}))
    # triage derives these two from the counts; say what they mean in those counts
    if not expl.get("many-dying-memcgs") and "many-dying-memcgs" in mc.get("codes", []):
        expl["many-dying-memcgs"] = (f"{s.get('dying')} dying memcgs against {s.get('online')} "
                                     "online: removed cgroups still pinned by charged pages "
                                     "or slab objects")
    if not expl.get("memcg-ids-near-limit") and "memcg-ids-near-limit" in mc.get("codes", []):
        expl["memcg-ids-near-limit"] = (f"{s.get('total')} memcgs, near the 65535 memcg ids "
                                        "the kernel has (16-bit ids)")
    return {
        "summary": s,
        "online": s.get("online"), "dying": s.get("dying"), "flagged": s.get("flagged"),
        "total": s.get("total"),
        "dying_parents": (mc.get("dying_parents") or [])[:TOP_PARENTS],
        "kmem_ids_in_use": s.get("kmem_ids_in_use"),
        "kmem_id_capacity": s.get("kmem_id_capacity"),
        "kmem_id_capacity_symbol": s.get("kmem_id_capacity_symbol"),
        "next_resize": resize or None,
        "largest_free_order": s.get("largest_free_order"),
        "codes": mc.get("codes", []), "explanations": expl,
        "flagged_rows": mc.get("flagged", []),
    }


#: the kinds of memory a dying memcg can be held by, and their words on the page
_PIN_KINDS = (("file", "page cache"), ("shmem", "tmpfs/shmem"), ("anon", "anonymous"),
              ("swap", "swapped out"), ("kmem", "kernel (__GFP_ACCOUNT)"), ("slab", "slab"))


def memcgpins_section(tri: Optional[Dict[str, Any]], target: Optional[Target]) -> Dict[str, Any]:
    """What holds the dying memcgs: triage's memcgpins summary, with the
    pages by kind and the dying memcgs held first by each kind as rows."""
    if tri is None or target is None:
        return {"error": "no dump or kernel: what holds dying memcgs is in kernel memory only"}
    s = tri["memory"].get("memcgpins")
    if not s:
        return {"error": tri["memory"]["errors"].get("memcgpins", "memcgpins unavailable")}
    held = dict(s["held_by"])
    return {
        "summary": s, "verdict": s["verdict"], "dying": s["dying"],
        "kinds": [{"kind": k, "label": label, "pages": s["pages"].get(k, 0),
                   "memcgs": held.get(k, 0)} for k, label in _PIN_KINDS],
        "other_holders": {k: n for k, n in held.items()
                          if n and k not in dict(_PIN_KINDS)},
        "being_freed": s["being_freed"],
        "top_files": s["top_files"], "cures": s["cures"], "warnings": s["warnings"],
        "rule": f"{s['release']}: rules of {s['generation']['releases']}",
    }


# -- the log on one time axis ------------------------------------------------------------

def timeline_section(rep: Optional["allocreport.AllocReport"], tri: Optional[Dict[str, Any]],
                     source: Optional[str] = None) -> Dict[str, Any]:
    if rep is None:
        why = (tri or {}).get("errors", {}).get("log") or "no kernel log"
        return {"error": why}
    events: List[Dict[str, Any]] = []
    untimed = 0
    free_orders: Dict[str, List[Tuple[float, int]]] = {}
    for view in rep.failures:
        r = view.record
        if r.ts is None:
            untimed += 1
            continue
        events.append({"time": r.ts, "kind": "allocfail", "order": r.order,
                       "label": f"{r.comm}: " + (f"order-{r.order} page allocation failure"
                                                 if r.kind == "page"
                                                 else "vmalloc failure, "
                                                 + kmsg.vmalloc_size_text(r.size, r.allocated))})
        for b in r.buddy:
            lfo = max((o for o, n in enumerate(b.counts) if n), default=-1)
            free_orders.setdefault(f"Node {b.node} {b.zone}", []).append((r.ts, lfo))
    for o in rep.ooms:
        if o.ts is None:
            untimed += 1
            continue
        who = f"killed {o.killed_comm} (PID {o.killed_pid})" if o.killed_comm else "OOM"
        events.append({"time": o.ts, "kind": "oom", "order": o.order,
                       "label": f"{o.comm} invoked the OOM killer"
                                + (" (memcg)" if o.memcg else "") + f": {who}"})
    for h in rep.oops:
        if h.ts is None:
            untimed += 1
            continue
        kind = "warning" if h.kind == "warning" else ("panic" if h.kind == "panic" else "oops")
        events.append({"time": h.ts, "kind": kind, "order": None, "label": h.message.strip()})
    pan = (tri or {}).get("panic") or {}
    if pan.get("time") is not None and not any(e["kind"] == "panic" for e in events):
        # the oops that caused the panic is the panic on the axis (one mark, not two)
        cause = next((e for e in events if e["kind"] == "oops" and e["time"] == pan["time"]), None)
        if cause is not None:
            cause["kind"] = "panic"
        else:
            events.append({"time": pan["time"], "kind": "panic", "order": None,
                           "label": f"panic: {pan.get('panic') or '?'}"})
    events.sort(key=lambda e: e["time"])
    for e in events:
        e["when"] = logs.printk_time(e["time"])
    counts = {k: sum(1 for e in events if e["kind"] == k)
              for k in ("allocfail", "oom", "warning", "oops", "panic")}
    out: Dict[str, Any] = {"events": events, "counts": counts, "untimed": untimed,
                           "failures_not_kept": rep.dropped,
                           "largest_free_order": free_orders,
                           "source": source or (f"the {rep.source}" if rep.source == "kernel log"
                                                else rep.source)}
    if not events:
        out["error"] = ("no allocation failure, OOM kill, warning or panic with a time stamp "
                        "in the log" + (f" ({untimed} without time stamps)" if untimed else ""))
    return out


# -- system facts --------------------------------------------------------------------

_FACTS = [("release", "Release"), ("machine", "Machine"), ("hardware", "Hardware"),
          ("nodename", "Node name"), ("cpus", "CPUs"), ("memory_bytes", "Memory"),
          ("memory", "Memory"), ("uptime", "Uptime"), ("panic_time", "Panic time"),
          ("panic", "Panic")]


def _system(tri: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    if not tri:
        return []
    s = tri["system"]
    srcs = dict(s.get("sources", {}))
    pan = tri.get("panic") or {}
    if "panic" not in srcs and pan.get("source"):
        srcs["panic"] = pan["source"]  # the panic string comes with the panic section
    rows = []
    for key, label in _FACTS:
        v = s.get(key)
        if v is None:
            continue
        rows.append({"key": key, "label": label, "value": v, "source": srcs.get(key, "-")})
    return rows
