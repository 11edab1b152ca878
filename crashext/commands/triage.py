"""``triage``: why did this kernel crash -- verdict first, then the evidence."""

import argparse
import itertools
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional

from .. import render
from ..render import dash
from .memcgids import kmem_ids_text
from ..analysis.panic import format_location
from ..analysis.triage import log_source, triage
from ..errors import InputError
from ..sources import kmsg, logs

NAME = "triage"
SUMMARY = "why the kernel crashed (or is about to): known-bug verdict, panic, allocation failures, memcgs"
DESCRIPTION = """\
Run the whole investigation in one go and match it against a knowledge base
of known kernel bugs.  Sources (any combination):

  -c VMCORE -s VMLINUX   a dump: panicking task and backtrace, kernel log,
                         memcg ids and anomalies
  --log FILE             the kernel log as text (dmesg, vmcore-dmesg.txt,
                         /var/log/messages)
  --crash-log FILE       a saved crash session (sys, bt, dis -l output)
  SOSREPORT / --sos PATH a sosreport directory or .tar.xz/.tar.gz, read in
                         place: its kernel log, and the memory state in its
                         /proc and cgroups when it was taken
  --text FILE            user-space text: kubelet, runc or docker logs,
                         `kubectl describe` output, /proc/cgroups (repeatable);
                         for failures the kernel does not print, such as a
                         memory cgroup mkdir refused with ENOMEM or ENOSPC

Sections: verdict (matches strongest first, each signature element marked
matched / unmatched / unknown; the score counts only what could be checked),
system, panic, memory.  --kb DIR adds knowledge-base entries (TOML, see
docs/knowledge-base.md); --markdown prints a report for a ticket, --html FILE
writes the HTML page of `report` (pictures of fragmentation, memcgs, the log)."""
TARGET = "optional"


def add_arguments(parser) -> None:
    parser.add_argument("path", nargs="?", metavar="SOSREPORT",
                        help="a sosreport directory or .tar.xz/.tar.gz archive (as --sos)")
    parser.add_argument("--sos", metavar="PATH",
                        help="a sosreport (directory or archive, read in place): its kernel "
                             "log, /proc memory state and cgroups")
    parser.add_argument("--log", metavar="FILE", help="kernel log text (dmesg, vmcore-dmesg.txt)")
    parser.add_argument("--crash-log", metavar="FILE", dest="crash_log",
                        help="saved crash session transcript (sys, bt, dis -l)")
    parser.add_argument("--text", metavar="FILE", action="append", default=[],
                        help="user-space text: kubelet/runc/docker logs, kubectl describe, "
                             "/proc/cgroups (repeatable)")
    parser.add_argument("--kb", metavar="DIR", action="append", default=[],
                        help="extra knowledge-base directory of .toml entries (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown for a ticket")
    parser.add_argument("--html", metavar="FILE",
                        help="write the HTML report to FILE instead (as `report -o FILE`)")
    parser.add_argument("--all", action="store_true",
                        help="also list the entries that did not match, with why")


def run(args, ctx) -> int:
    for opt in ("path", "sos"):
        if not hasattr(args, opt):
            setattr(args, opt, None)
    sos_path = args.sos or args.path
    if args.sos and args.path:
        raise InputError("give the sosreport once: as PATH or with --sos")
    sos = None
    if sos_path:
        from ..sources import sosreport
        if args.path and not os.path.isdir(args.path) and not sosreport.is_sosreport_path(args.path):
            if not os.path.exists(args.path):
                raise InputError(f"{args.path}: no such file or directory")
            raise InputError(f"{args.path}: not a sosreport directory or tar archive (a kernel "
                             "log goes with --log FILE)")
        if args.log or ctx.has_target:
            raise InputError("a sosreport brings its own kernel log and system: not with --log "
                             "or a dump")
        sos = sosreport.SosReport(sos_path)
    if args.html:
        if getattr(args, "text", None):
            # the HTML page (crashext report) has no place for user-space text yet
            raise InputError("--text goes with the text, --json or --markdown report, not --html")
        if sos is not None:
            # the page is made from a dump, a log and /proc (crashext report);
            # a sosreport's parts are not wired into it yet
            raise InputError("--html does not take a sosreport yet: give its kernel log "
                             "with --log (and its proc/ with `crashext report --proc`)")
        from .report import write_report
        return write_report(ctx, args.html, log=args.log, kb=args.kb, crash_log=args.crash_log)
    lines, log_path = log_source(args.log)
    sos_files: List[str] = []
    if sos is not None:
        sos_files, _notes = sos.kernel_log_sources()
        if sos_files:
            lines = logs.normalize(sos.log_lines(sos_files))
    crash_text = ("\n".join(logs.checked_lines(args.crash_log, "crash session transcript"))
                  if args.crash_log else None)
    target = ctx.target() if ctx.has_target else None
    texts = _texts(getattr(args, "text", None) or [], sos)
    if target is None and lines is None and log_path is None and crash_text is None \
            and sos is None and texts is None:
        raise InputError("nothing to triage: give -c VMCORE -s VMLINUX, --log FILE, "
                         "--crash-log FILE, --text FILE or a sosreport")
    if sos is not None and lines is None and log_path is None and crash_text is None:
        report = triage(log_lines=iter(()), kb_dirs=args.kb, texts=texts)
        report["errors"]["log"] = "the sosreport has no kernel log (sos_commands/kernel/dmesg, " \
                                  "var/log/kern.log, var/log/messages)"
    else:
        report = triage(target=target, log_lines=lines, crash_text=crash_text,
                        crash_name=args.crash_log or "crash log", kb_dirs=args.kb, texts=texts,
                        log_path=log_path)
    if sos is not None:
        add_sosreport(report, sos, sos_files, ctx)
    if args.json:
        render.write_json(ctx.out, report)
    elif args.markdown:
        ctx.out.write(markdown(report, show_all=args.all))
    else:
        ctx.out.write(human(report, show_all=args.all))
    return 0


#: a sosreport's user-space text: the memory hierarchy's cgroup count, and the
#: syslog family that also holds the programs' lines (kubelet, dockerd), else
#: the journal sos saved
_SOS_TEXT_FILES = ("proc/cgroups",)
_SOS_USER_LOGS = ("var/log/messages", "var/log/syslog")


def _texts(paths: List[str], sos) -> Optional[Iterator[str]]:
    """The user-space text lines of ``--text`` files and of a sosreport, read
    lazily (one pass, by triage, after the kernel log); None if there are none."""
    # checked_lines checks each file now: a missing, empty or binary one is one
    # clear line before any work is done
    parts: List[Iterable[str]] = [logs.checked_lines(p, "text file") for p in paths]
    if sos is not None:
        for rel in _SOS_TEXT_FILES:
            text = sos.read(rel)
            if text:
                parts.append(text.splitlines())
        users = next((fs for fs in map(sos.log_files, _SOS_USER_LOGS) if fs), None)
        users = users or sos.journal_files()
        if users:
            # read a second time when it is also the kernel log (messages on RHEL)
            parts.append(sos.log_lines(users))
    return itertools.chain.from_iterable(parts) if parts else None


def _oom_and_showmem(mem: Dict[str, Any]) -> List[str]:
    """OOM reports, show_mem dumps and the free-memory timeline, as lines."""
    out: List[str] = []
    ooms = mem.get("oom_reports") or []
    for v in ooms[:_SHOW_FAILURES]:
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
    if len(ooms) > _SHOW_FAILURES:
        out.append(f"... and {len(ooms) - _SHOW_FAILURES} more OOM report(s) (allocfail -v)")
    for v in (mem.get("show_mem") or [])[:_SHOW_FAILURES]:
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


# -- a sosreport: when it was taken, what it lacks, the memory state in its /proc ----

def add_sosreport(report: Dict[str, Any], sos, log_files: List[str], ctx) -> None:
    """Add the ``sosreport`` section (snapshot time, parts present and
    missing, the /proc memory state with frag's verdict, compaction and
    reclaim counters, cgroups) and fill the system facts the log lacked."""
    from . import frag as fragcmd
    from ..errors import CrashextError
    from ..sources import sosreport
    files, notes = sos.kernel_log_sources()
    sec: Dict[str, Any] = {"path": sos.path, "kind": sos.kind, "taken": sos.taken,
                           "label": sos.taken_label(), "release": sos.release(),
                           "hostname": sos.hostname(), "missing": sos.missing(),
                           "log_files": files, "log_notes": notes, "frag": None,
                           "reclaim": None, "cgroups": None, "errors": {}}
    fargs = argparse.Namespace(order=None, migratetypes=False, all=False, proc=None,
                               sos=sos.path, sos_report=sos, release=None, classzone=None,
                               alloc_flags="", watch=None, count=None, log=None)
    try:
        res = fragcmd.build(fargs, ctx)
        sec["frag"] = {"verdict": fragcmd._verdict_line(res, res["page_size"]),
                       "rule": res["rule"], "summary": res["verdict"],
                       "zones": [{"node": z["node"], "zone": z["zone"],
                                  "free_pages": z["free_pages"],
                                  "min": z["watermark"]["min"],
                                  "largest_free_order": max(
                                      [o for o, n in enumerate(z["nr_free"]) if n] or [-1]),
                                  "nr_free": z["nr_free"]} for z in res["zones"]],
                       "errors": res["errors"]}
        sec["reclaim"] = res.get("reclaim")
    except CrashextError as exc:
        sec["errors"]["frag"] = str(exc)
    sec["meminfo"], sec["slab_top"] = _sos_memory(sos, sec["errors"])
    try:
        cg = sosreport.read_cgroups(sos)
        sec["cgroups"] = cg.summary
    except CrashextError as exc:
        sec["errors"]["cgroups"] = str(exc)
    sec["problems"] = list(sos.problems)
    report["sosreport"] = sec
    report["sources"].append(f"sosreport {sos.path}")
    system = report["system"]
    if system.get("release") is None and sec["release"]:
        system["release"] = sec["release"]
        system["sources"]["release"] = "sosreport uname"
    if system.get("nodename") is None and sec["hostname"]:
        system["nodename"] = sec["hostname"]
        system["sources"]["nodename"] = "sosreport uname"


_MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Slab", "SReclaimable", "SUnreclaim",
                 "AnonPages", "Cached", "Shmem", "PageTables", "KernelStack", "VmallocUsed")


def _sos_memory(sos, errors: Dict[str, str]):
    """/proc/meminfo's main lines and the five largest slab caches."""
    from ..errors import CrashextError
    from ..sources import procfs
    mi = top = None
    text = sos.read("proc/meminfo")
    if text:
        try:
            full = procfs.parse_meminfo(text, "proc/meminfo")
            mi = {k: full[k] for k in _MEMINFO_KEYS if k in full}
        except CrashextError as exc:
            errors["meminfo"] = str(exc)
    text = sos.read("proc/slabinfo")
    if text:
        try:
            caches = procfs.parse_slabinfo(text, "proc/slabinfo")
            top = sorted(caches, key=lambda c: (-c["bytes"], c["name"]))[:5]
        except CrashextError as exc:
            errors["slabinfo"] = str(exc)
    return mi, top


def _sos_lines(sec: Dict[str, Any]) -> List[str]:
    out = [sec["label"], f"{sec['kind']} {sec['path']}"]
    if sec["log_files"]:
        out.append("kernel log: " + ", ".join(sec["log_files"]))
    out += sec["log_notes"]
    if sec["missing"]:
        out.append("missing from the report: " + ", ".join(sec["missing"]))
    out += [f"problem: {p}" for p in sec.get("problems", [])]
    f = sec.get("frag")
    if f:
        out.append(f"free lists at collection: {f['verdict']}")
        for z in f["zones"]:
            out.append(f"  Node {z['node']} {z['zone']:<7} free {dash(z['free_pages'])} pages, "
                       f"min {dash(z['min'])}, largest free order "
                       f"{dash(z['largest_free_order'])}")
        out += [f"  ({e})" for e in f["errors"] if e not in sec.get("problems", [])]
    mi = sec.get("meminfo")
    if mi:
        out.append("meminfo: " + ", ".join(f"{k} {render.human_bytes(v * 1024)}"
                                            for k, v in mi.items()))
    if sec.get("slab_top"):
        out.append("largest slab caches (objects x size): " + ", ".join(
            f"{c['name']} {render.human_bytes(c['bytes'])}" for c in sec["slab_top"]))
    r = sec.get("reclaim")
    if r:
        out.append("compaction and reclaim (cumulative since boot):")
        out += ["  " + x for x in r["statements"]]
    c = sec.get("cgroups")
    if c:
        dying = "unknown" if c["dying"] is None else c["dying"]
        tree = (f"cgroups ({c['hierarchy']}): {c['visible']} visible, {dying} dying"
                if c["visible"] is not None else "cgroups: no sys/fs/cgroup in the report, "
                "per-cgroup detail is missing")
        out.append(tree + (f"; /proc/cgroups memory num_cgroups {c['num_cgroups']} of "
                      f"{c['id_limit']}" if c["num_cgroups"] is not None else ""))
    for k, v in sec["errors"].items():
        out.append(f"({k}: {v})")
    return out


# -- rendering ------------------------------------------------------------------

_MARK = {"matched": "+", "unmatched": "-", "unknown": "?"}
_SHOW_FAILURES = 10   # failures shown with their verdict; JSON has every kept one


def _bytes(v) -> str:
    return render.human_bytes(v) if isinstance(v, (int, float)) else (v or "-")


def _system_rows(s: Dict[str, Any]) -> List[tuple]:
    return [("RELEASE", s.get("release") or "-"), ("MACHINE", s.get("machine") or "-"),
            ("HARDWARE", s.get("hardware") or "-"),
            ("NODENAME", s.get("nodename") or "-"), ("CPUS", s.get("cpus") or "-"),
            ("MEMORY", _bytes(s.get("memory_bytes") or s.get("memory"))),
            ("UPTIME", s.get("uptime") or "-"), ("PANIC TIME", s.get("panic_time") or "-"),
            ("PANIC", f'"{s["panic"]}"' if s.get("panic") else "-")]


def _frame_text(f: Dict[str, Any]) -> str:
    loc = format_location(f)
    if f.get("pc") is not None and f.get("function"):
        loc += f"  ({f['pc']:#x})"
    if f.get("module"):
        loc += f" [{f['module']}]"
    if f.get("reliable") is False:
        loc = "? " + loc
    return loc


def _match_lines(m: Dict[str, Any], md: bool) -> List[str]:
    lines = []
    checked = f"{m['matched_weight']:g}/{m['checked_weight']:g} of checked weight"
    if m.get("unconfirmed_weight"):
        checked += (f", {m['unconfirmed_weight']:g} more required but unknown: "
                    + ", ".join(u["element"] for u in m["unconfirmed"]))
    if m["unknown"]:
        checked += f", {m['unknown']} element(s) unknown"
    lines.append(f"score {m['score']:.2f} ({checked})")
    lines.append("why:" if not md else "**Why it matched:**")
    for e in m["elements"]:
        req = " (required)" if e["required"] else ""
        if md:
            lines.append(f"- `{e['status']}` {e['element']}{req}: {e['detail']}")
        else:
            lines.append(f"  [{_MARK[e['status']]}] {e['element']}{req}: {e['detail']}")
    lines.append(("**What it means:** " if md else "meaning: ") + m["meaning"])
    lines.append(("**Fixed in:** " if md else "fixed in: ")
                 + (", ".join(m["fixed_in"]) if m["fixed_in"] else "no fixed release known"))
    for f in m.get("fixes", []):
        rel = f" (first release {f['first_release']})" if f.get("first_release") else ""
        fact = f"{f['what']}{rel} [{f['status']}" + (f": {f['checked']}]" if f["checked"] else "]")
        label = "remedy" if m.get("kind") == "condition" else "fix"
        lines.append(f"- {label}: {fact}" if md else f"  - {label}: {fact}")
    if m["workarounds"]:
        lines.append("**Workarounds:**" if md else "workarounds:")
        for w in m["workarounds"]:
            lines.append(f"- {w}" if md else f"  - {w}")
    if m["references"]:
        lines.append("**References:**" if md else "references:")
        for r in m["references"]:
            note = f" ({r['note']})" if r["note"] else ""
            st = f" [{r['status']}]" if r.get("status") else ""
            lines.append(f"- [{r['title']}]({r['url']}){st}{note}" if md
                         else f"  - {r['title']}: {r['url']}{st}{note}")
    return lines


def _evidence(report: Dict[str, Any]) -> Dict[str, List[str]]:
    """Panic and memory sections as lines (shared by both renderings)."""
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
                out["panic"].append(f"  #{i:<2} {_frame_text(f)}{tag}")
        for k, v in p.get("errors", {}).items():
            out["panic"].append(f"({k}: {v})")
        if report["system"].get("crash_warning"):
            out["panic"].append(f"crash warned: {report['system']['crash_warning']}")
    else:
        out["panic"].append("no panic information")
    mem = report["memory"]
    shown = list(zip(mem["allocation_failures"], mem["zone_verdicts"]))
    more = len(shown) - _SHOW_FAILURES + (mem.get("failures_not_kept") or 0)
    for f, zv in shown[:_SHOW_FAILURES]:
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
    out["memory"] += _oom_and_showmem(mem)
    mc = mem.get("memcg")
    if mc:
        s = mc["summary"]
        out["memory"].append(f"memcgs: {dash(s.get('total'))} ({dash(s.get('online'))} online, "
                             f"{dash(s.get('dying'))} dying), kmem ids {kmem_ids_text(s)}")
        for c in mc["codes"]:
            out["memory"].append(f"  anomaly {c}: {mc['explanations'].get(c) or ''}".rstrip(": "))
    for k, v in mem["errors"].items():
        out["memory"].append(f"({k}: {v})")
    if not out["memory"]:
        out["memory"].append("no allocation failures in the log")
    return out


def _event_line(v: Dict[str, Any]) -> List[str]:
    """The diagnosis class when the headline names something else (an entry)."""
    d = v.get("diagnosis")
    if d and d["headline"] != v["headline"] and d["class"] != "no event":
        return [f"EVENT: {d.get('event') or d['headline']}"]
    return []


def _at_risk_lines(a: Dict[str, Any], md: bool) -> List[str]:
    pre = a["precursor"]
    out = [("**Precursor:** " if md else "precursor: ") + pre["evidence"]]
    for e in pre["elements"]:
        req = " (required)" if e["required"] else ""
        out.append(f"- `{e['status']}` {e['element']}{req}: {e['detail']}" if md
                   else f"  [{_MARK[e['status']]}] {e['element']}{req}: {e['detail']}")
    m = dict(a, elements=[])
    return out + ([""] if md else []) + [ln for ln in _match_lines(m, md)
                                         if not ln.startswith(("score", "why", "**Why"))]


def human(report: Dict[str, Any], show_all: bool = False) -> str:
    v = report["verdict"]
    lines = [f"VERDICT: {v['headline']}"] + _event_line(v) + [""]
    risk: List[str] = []
    if v.get("at_risk"):
        risk.append("AT RISK (the state that leads to a known bug; the bug itself is not in the evidence)")
        for a in v["at_risk"]:
            risk.append(f"- {a['title']}  [{a['id']}]")
            risk += ["   " + ln for ln in _at_risk_lines(a, md=False)]
        risk.append("")
    risk_first = v["headline"].startswith("AT RISK")   # it outranks known conditions
    if risk_first:
        lines += risk
    if v["matches"]:
        for n, m in enumerate(v["matches"], 1):
            lines.append(f"{n}. {m['title']}  [{m['id']}]")
            lines += ["   " + ln for ln in _match_lines(m, md=False)]
            lines.append("")
    else:
        lines.append(f"No entry of the knowledge base ({v['kb_entries']} entries) matched.")
        lines.append("")
    if not risk_first:
        lines += risk
    if show_all and v["not_matched"]:
        lines.append("NOT MATCHED")
        for m in v["not_matched"]:
            lines.append(f"  {m['id']}: score {m['score']:.2f}; {m['why_not']}")
        lines.append("")
    lines.append("SYSTEM")
    lines.append(render.kv_block(_system_rows(report["system"])))
    lines.append("")
    ev = _evidence(report)
    lines.append("PANIC")
    lines += ["  " + ln for ln in ev["panic"]]
    lines.append("")
    lines.append("MEMORY")
    lines += ["  " + ln for ln in ev["memory"]]
    if report.get("sosreport"):
        lines.append("")
        lines.append("SOSREPORT (memory state when it was taken)")
        lines += ["  " + ln for ln in _sos_lines(report["sosreport"])]
    if report["errors"]:
        lines.append("")
        lines.append("NOT AVAILABLE")
        for k, why in report["errors"].items():
            lines.append(f"  {k}: {why}")
    lines.append("")
    lines.append("sources: " + ", ".join(report["sources"]))
    return "\n".join(lines) + "\n"


def markdown(report: Dict[str, Any], show_all: bool = False) -> str:
    v = report["verdict"]
    lines = ["## Kernel crash triage", "", f"**Verdict:** {v['headline']}", ""]
    lines += [f"**Event:** {ln[len('EVENT: '):]}" for ln in _event_line(v)]
    if _event_line(v):
        lines.append("")
    risk: List[str] = []
    for a in v.get("at_risk", []):
        risk += [f"### AT RISK: {a['title']} (`{a['id']}`)", ""] + _at_risk_lines(a, md=True) + [""]
    risk_first = v["headline"].startswith("AT RISK")   # it outranks known conditions
    if risk_first:
        lines += risk
    for n, m in enumerate(v["matches"], 1):
        lines.append(f"### {n}. {m['title']} (`{m['id']}`)")
        lines.append("")
        lines += _match_lines(m, md=True)
        lines.append("")
    if not v["matches"]:
        lines += [f"No entry of the knowledge base ({v['kb_entries']} entries) matched.", ""]
    if not risk_first:
        lines += risk
    if show_all and v["not_matched"]:
        lines += ["### Not matched", ""]
        lines += [f"- `{m['id']}`: score {m['score']:.2f}; {m['why_not']}" for m in v["not_matched"]]
        lines.append("")
    lines += ["### System", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {str(val).replace('|', '/')} |" for k, val in _system_rows(report["system"])]
    ev = _evidence(report)
    lines += ["", "### Panic", "", "```"] + ev["panic"] + ["```", "", "### Memory", "", "```"]
    lines += ev["memory"] + ["```"]
    if report.get("sosreport"):
        lines += ["", "### Sosreport", "", "```"] + _sos_lines(report["sosreport"]) + ["```"]
    if report["errors"]:
        lines += ["", "### Not available", ""]
        lines += [f"- {k}: {why}" for k, why in report["errors"].items()]
    lines += ["", f"_Sources: {', '.join(report['sources'])}; generated by crashext triage._"]
    return "\n".join(lines) + "\n"
