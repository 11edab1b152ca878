"""``triage``: why did this kernel crash -- verdict first, then the evidence."""

from typing import Any, Dict, List

from .. import render
from ..analysis.panic import format_location
from ..analysis.triage import triage
from ..errors import InputError
from ..sources import logs

NAME = "triage"
SUMMARY = "why the kernel crashed: known-bug verdict, panic, allocation failures, memcgs"
DESCRIPTION = """\
Run the whole investigation in one go and match it against a knowledge base
of known kernel bugs.  Sources (any combination):

  -c VMCORE -s VMLINUX   a dump: panicking task and backtrace, kernel log,
                         memcg ids and anomalies
  --log FILE             the kernel log as text (dmesg, vmcore-dmesg.txt,
                         /var/log/messages)
  --crash-log FILE       a saved crash session (sys, bt, dis -l output)

Sections: verdict (matches strongest first, each signature element marked
matched / unmatched / unknown; the score counts only what could be checked),
system, panic, memory.  --kb DIR adds knowledge-base entries (TOML, see
docs/knowledge-base.md); --markdown prints a report for a ticket, --html FILE
writes the HTML page of `report` (pictures of fragmentation, memcgs, the log)."""
TARGET = "optional"


def add_arguments(parser) -> None:
    parser.add_argument("--log", metavar="FILE", help="kernel log text (dmesg, vmcore-dmesg.txt)")
    parser.add_argument("--crash-log", metavar="FILE", dest="crash_log",
                        help="saved crash session transcript (sys, bt, dis -l)")
    parser.add_argument("--kb", metavar="DIR", action="append", default=[],
                        help="extra knowledge-base directory of .toml entries (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown for a ticket")
    parser.add_argument("--html", metavar="FILE",
                        help="write the HTML report to FILE instead (as `report -o FILE`)")
    parser.add_argument("--all", action="store_true",
                        help="also list the entries that did not match, with why")


def run(args, ctx) -> int:
    if args.html:
        from .report import write_report
        return write_report(ctx, args.html, log=args.log, kb=args.kb, crash_log=args.crash_log)
    lines = logs.kernel_log(args.log) if args.log else None
    crash_text = ("\n".join(logs.checked_lines(args.crash_log, "crash session transcript"))
                  if args.crash_log else None)
    target = ctx.target() if ctx.has_target else None
    if target is None and lines is None and crash_text is None:
        raise InputError("nothing to triage: give -c VMCORE -s VMLINUX, --log FILE or --crash-log FILE")
    report = triage(target=target, log_lines=lines, crash_text=crash_text,
                    crash_name=args.crash_log or "crash log", kb_dirs=args.kb)
    if args.json:
        render.write_json(ctx.out, report)
    elif args.markdown:
        ctx.out.write(markdown(report, show_all=args.all))
    else:
        ctx.out.write(human(report, show_all=args.all))
    return 0


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
    if m["workarounds"]:
        lines.append("**Workarounds:**" if md else "workarounds:")
        for w in m["workarounds"]:
            lines.append(f"- {w}" if md else f"  - {w}")
    if m["references"]:
        lines.append("**References:**" if md else "references:")
        for r in m["references"]:
            note = f" ({r['note']})" if r["note"] else ""
            lines.append(f"- [{r['title']}]({r['url']}){note}" if md
                         else f"  - {r['title']}: {r['url']}{note}")
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
        what = (f"vmalloc failure, {f['size']} bytes" if f.get("kind") == "vmalloc"
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
            out["memory"].append(f"    Node {z['node']} {z['zone']:<8} {'ok  ' if z['ok'] else 'FAIL'} "
                                 f"largest free order {z['largest_free_order']}: {z['reason']}")
        if zv.get("error"):
            out["memory"].append(f"  verdict: unavailable ({zv['error']})")
    if more > 0:
        out["memory"].append(f"... and {more} more allocation failure(s) (allocfail lists them all)")
    mc = mem.get("memcg")
    if mc:
        s = mc["summary"]
        out["memory"].append(f"memcgs: {s.get('total')} ({s.get('online')} online, "
                             f"{s.get('dying')} dying), kmem ids in use {s.get('kmem_ids_in_use')}, "
                             f"capacity {s.get('kmem_id_capacity')}")
        for c in mc["codes"]:
            out["memory"].append(f"  anomaly {c}: {mc['explanations'].get(c) or ''}".rstrip(": "))
    for k, v in mem["errors"].items():
        out["memory"].append(f"({k}: {v})")
    if not out["memory"]:
        out["memory"].append("no allocation failures in the log")
    return out


def human(report: Dict[str, Any], show_all: bool = False) -> str:
    v = report["verdict"]
    lines = [f"VERDICT: {v['headline']}", ""]
    if v["matches"]:
        for n, m in enumerate(v["matches"], 1):
            lines.append(f"{n}. {m['title']}  [{m['id']}]")
            lines += ["   " + ln for ln in _match_lines(m, md=False)]
            lines.append("")
    else:
        lines.append(f"No entry of the knowledge base ({v['kb_entries']} entries) matched.")
        lines.append("")
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
    for n, m in enumerate(v["matches"], 1):
        lines.append(f"### {n}. {m['title']} (`{m['id']}`)")
        lines.append("")
        lines += _match_lines(m, md=True)
        lines.append("")
    if not v["matches"]:
        lines += [f"No entry of the knowledge base ({v['kb_entries']} entries) matched.", ""]
    if show_all and v["not_matched"]:
        lines += ["### Not matched", ""]
        lines += [f"- `{m['id']}`: score {m['score']:.2f}; {m['why_not']}" for m in v["not_matched"]]
        lines.append("")
    lines += ["### System", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {str(val).replace('|', '/')} |" for k, val in _system_rows(report["system"])]
    ev = _evidence(report)
    lines += ["", "### Panic", "", "```"] + ev["panic"] + ["```", "", "### Memory", "", "```"]
    lines += ev["memory"] + ["```"]
    if report["errors"]:
        lines += ["", "### Not available", ""]
        lines += [f"- {k}: {why}" for k, why in report["errors"].items()]
    lines += ["", f"_Sources: {', '.join(report['sources'])}; generated by crashext triage._"]
    return "\n".join(lines) + "\n"
