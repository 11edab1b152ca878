"""How the analyses' results read as text, in every home that shows them.

The lines the ``triage`` text and Markdown, the HTML report and the crash
and drgn commands share: a panic's location and frames, the panic and memory
evidence, the kmem ids of a memcg summary, when a saved snapshot was taken.  Each takes the plain data an analysis returned
(its ``--json`` shape) and returns text; nothing here reads a kernel or a
file, and nothing prints.
"""

from typing import Any, Dict, List, Optional

from . import render
from .render import dash
from .sources import kmsg

__all__ = ["MARKS", "SHOW_FAILURES", "format_location", "frame_text", "evidence_lines",
           "memcgpins_lines", "kmem_ids_text", "snapshot_label"]

#: the mark of a knowledge-base element's status in text and in the page
MARKS = {"matched": "+", "unmatched": "-", "unknown": "?"}
#: failures shown with their verdict; JSON has every kept one
SHOW_FAILURES = 10


def format_location(rip: Optional[Dict[str, Any]]) -> str:
    """``ida_simple_remove+0x41/0x50 at lib/idr.c:1157`` (parts that are known)."""
    if not rip:
        return "-"
    text = rip.get("function") or (f"{rip['pc']:#x}" if rip.get("pc") is not None else "?")
    if rip.get("function") and rip.get("offset") is not None:
        text += f"+{rip['offset']:#x}"
        if rip.get("size"):
            text += f"/{rip['size']:#x}"
    if rip.get("file"):
        text += f" at {rip['file']}"
        if rip.get("line"):
            text += f":{rip['line']}"
    return text


def frame_text(f: Dict[str, Any]) -> str:
    """One backtrace frame: location, pc, module; "? " before an unreliable one."""
    loc = format_location(f)
    if f.get("pc") is not None and f.get("function"):
        loc += f"  ({f['pc']:#x})"
    if f.get("module"):
        loc += f" [{f['module']}]"
    if f.get("reliable") is False:
        loc = "? " + loc
    return loc


def evidence_lines(report: Dict[str, Any]) -> Dict[str, List[str]]:
    """A triage result's panic and memory sections as lines (the triage text,
    its Markdown and the HTML report show the same ones)."""
    out: Dict[str, List[str]] = {"panic": [], "memory": []}
    p = report.get("panic")
    if p:
        task = "-"
        if p.get("pid") is not None or p.get("comm"):
            task = f"PID {p.get('pid', '?')} \"{p.get('comm') or '?'}\" on CPU {p.get('cpu', '?')}"
            if p.get("task"):
                task += f" (task {p['task']:#x})"
        out["panic"].append(f"task: {task}  [from {p['source']}]")
        out["panic"].append(f"exception RIP: {format_location(p.get('rip'))}")
        if p.get("frames"):
            out["panic"].append("backtrace:")
            for i, f in enumerate(p["frames"]):
                tag = "  <exception>" if f.get("exception") else ""
                out["panic"].append(f"  #{i:<2} {frame_text(f)}{tag}")
        for k, v in p.get("errors", {}).items():
            out["panic"].append(f"({k}: {v})")
        if report["system"].get("crash_warning"):
            out["panic"].append(f"crash warned: {report['system']['crash_warning']}")
    else:
        out["panic"].append("no panic information")
    mem = report["memory"]
    shown = list(zip(mem["allocation_failures"], mem["zone_verdicts"]))
    more = len(shown) - SHOW_FAILURES + (mem.get("failures_not_kept") or 0)
    for f, zv in shown[:SHOW_FAILURES]:
        when = f"[{f['time']:.6f}] " if f.get("time") is not None else ""
        who = f"{f['comm']}" + (f" (PID {f['pid']}, CPU {f['cpu']})" if f.get("pid") is not None else "")
        what = ("vmalloc failure, " + kmsg.vmalloc_size_text(f.get("size"), f.get("allocated"))
                if f.get("kind") == "vmalloc"
                else f"page allocation failure, order {f['order']}")
        out["memory"].append(f"{when}{who}: {what}, mode {f['mode'] or '?'}"
                             + (f" ({f['flags']})" if f.get("flags") else ""))
        chain = [x["function"] for x in f["frames"]][:16]
        if chain:
            out["memory"].append("  via " + " <- ".join(chain))
        if f.get("caller"):
            out["memory"].append(f"  caller: {f['caller']}"
                                 + (f" -- {f['caller_why']}" if f.get("caller_why") else ""))
        if zv.get("conclusion"):
            out["memory"].append(f"  verdict: {zv['conclusion']}")
        for z in zv.get("zones", []):
            out["memory"].append(f"    Node {z['node']} {z['zone']:<8} "
                                 f"{'ok  ' if z['ok'] else 'FAIL'} largest free order "
                                 f"{dash(z['largest_free_order'])}: {z['reason']}")
        if zv.get("error"):
            out["memory"].append(f"  verdict: unavailable ({zv['error']})")
    if more > 0:
        out["memory"].append(f"... and {more} more allocation failure(s) (allocfail lists them all)")
    out["memory"] += _oom_and_showmem_lines(mem)
    mc = mem.get("memcg")
    if mc:
        s = mc["summary"]
        out["memory"].append(f"memcgs: {dash(s.get('total'))} ({dash(s.get('online'))} online, "
                             f"{dash(s.get('dying'))} dying), kmem ids {kmem_ids_text(s)}")
        for c in mc["codes"]:
            out["memory"].append(f"  anomaly {c}: {mc['explanations'].get(c) or ''}".rstrip(": "))
    if mem.get("memcgpins"):
        out["memory"] += memcgpins_lines(mem["memcgpins"])
    for k, v in mem["errors"].items():
        out["memory"].append(f"({k}: {v})")
    if not out["memory"]:
        out["memory"].append("no allocation failures in the log")
    return out


def _oom_and_showmem_lines(mem: Dict[str, Any]) -> List[str]:
    """OOM reports, show_mem dumps and the free-memory timeline, as lines."""
    out: List[str] = []
    ooms = mem.get("oom_reports") or []
    for v in ooms[:SHOW_FAILURES]:
        g = v["gfp"]
        names = "|".join(g["names"] or g["printed"] or [])
        out.append(f"[{v['when']}] {v['comm']} invoked the OOM killer ({v['scope']}): order "
                   f"{dash(v['order'])}, gfp_mask {dash(g['mask'])}"
                   + (f" ({names})" if names else "")
                   + f", oom_score_adj {dash(v['oom_score_adj'])}")
        if v["killed"]:
            k = v["killed"]
            rss = sum(k["kb"].get(x, 0) for x in ("anon-rss", "file-rss", "shmem-rss"))
            out.append(f"  killed {k['pid']} ({k['comm']})"
                       + (f", rss {render.human_bytes(rss * 1024)}" if k["kb"] else ""))
        m = (v["memcg"] or {}).get("counters", {}).get("memory")
        if m:
            out.append(f"  memcg {v['memcg']['path'] or '?'}: usage {dash(m['usage_kb'])} kB, "
                       f"limit {dash(m['limit_kb'])} kB, failcnt {dash(m['failcnt'])}")
        if v["conclusion"]:
            out.append(f"  verdict: {v['conclusion']}")
        for z in v["verdicts"]:
            d = z["verdict"]
            out.append(f"    Node {z['node']} {z['zone']:<8} {'ok  ' if d['ok'] else 'FAIL'} "
                       f"{d['reason']}")
    if len(ooms) > SHOW_FAILURES:
        out.append(f"... and {len(ooms) - SHOW_FAILURES} more OOM report(s) (allocfail -v)")
    for v in (mem.get("show_mem") or [])[:SHOW_FAILURES]:
        zones = "; ".join(f"{z['zone']} free {dash(z['free_kb'])} kB, largest order "
                          f"{dash(z['largest_free_order'])}" for z in v["zones"])
        out.append(f"[{v['when']}] {v['kind']} Mem-Info: {zones or 'no zone lines'}")
    tl = mem.get("mem_info_timeline") or []
    if len(tl) > 1:
        per: Dict[str, List[str]] = {}
        for e in tl:
            for z in e["zones"]:
                per.setdefault(f"Node {z['node']} {z['zone']}", []).append(
                    "-" if z["largest_free_order"] is None else str(z["largest_free_order"]))
        out.append(f"largest free order at each of the {len(tl)} Mem-Info blocks "
                   "(frag --log shows the timeline):")
        for k, v in per.items():
            out.append(f"  {k}: " + " -> ".join(v))
    return out


#: the words of the kinds pages are charged by, in a memcgpins summary's ``pages``
_PIN_PAGES = (("file", "page cache"), ("shmem", "tmpfs/shmem"), ("anon", "anonymous"),
              ("swap", "swapped out"), ("kmem", "kernel"), ("slab", "slab"))


def memcgpins_lines(s: Dict[str, Any]) -> List[str]:
    """What holds the dying memcgs, from a memcgpins summary: its verdict,
    the pages still charged to them by kind, the cure of each kind that
    holds one, and what could not be read."""
    out = [f"memcgpins: {s['verdict']}"]
    pages = s.get("pages") or {}
    held = [f"{pages[k]:,} {word}" for k, word in _PIN_PAGES if pages.get(k)]
    if held:
        out.append("  pages charged to dying memcgs: " + ", ".join(held))
    for k, cure in (s.get("cures") or {}).items():
        out.append(f"  cure {k}: {cure}")
    for w in s.get("warnings") or []:
        out.append(f"  warning: {w}")
    return out


def kmem_ids_text(s: Dict[str, Any]) -> str:
    """``16 in use, capacity 22 (memcg_nr_cache_ids)`` from a memcg summary;
    ``-`` where the kernel has no such number (no per-id arrays since v5.18)."""
    return (f"{dash(s.get('kmem_ids_in_use'))} in use, capacity "
            f"{dash(s.get('kmem_id_capacity'))}"
            + (f" ({s['kmem_id_capacity_symbol']})" if s.get("kmem_id_capacity_symbol") else ""))


def snapshot_label(snap) -> str:
    """When a saved tree was taken, and how that is known."""
    start, end = snap.get("start"), snap.get("end")
    if not start and not end:
        return f"time unknown ({snap.get('how')})"
    span = end if not start else (start if end in (None, start) else f"{start} .. {end}")
    return f"taken {span} ({snap.get('how')}); not read now"


