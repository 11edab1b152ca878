"""``triage``: why did this kernel crash -- verdict first, then the evidence."""

import itertools
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional

from .. import render
from ..render import dash
from ..analysis.evidence import TriageInputs, log_source, triage
from ..errors import InputError
from ..presentation import MARKS, evidence_lines
from ..sources import logs

NAME = "triage"
SUMMARY = "why the kernel crashed (or is about to): known-bug verdict, panic, allocation failures, memcgs"
DESCRIPTION = """\
Run the whole investigation in one go and match it against a knowledge base
of known kernel bugs.  Sources (any combination):

  -c VMCORE -s VMLINUX   a dump: panicking task and backtrace, kernel log,
                         memcg ids and anomalies, what holds the dying
                         memcgs (the summary of memcgpins)
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
    sos = _sosreport(args, ctx)
    if args.html:
        if getattr(args, "text", None):
            # the HTML page (crashext report) has no place for user-space text yet
            raise InputError("--text goes with the text, --json or --markdown report, not --html")
        if sos is not None:
            # the page is made from a dump, a log and /proc (crashext report);
            # a sosreport's parts are not wired into it yet
            raise InputError("--html does not take a sosreport yet: give its kernel log "
                             "with --log (and its proc/ with `crashext report --proc`)")
        from ..report import write_report
        return write_report(ctx, args.html, log=args.log, kb=args.kb, crash_log=args.crash_log)
    report = triage(_inputs(args, ctx, sos))
    if args.json:
        render.write_json(ctx.out, report)
    elif args.markdown:
        ctx.out.write(markdown_report(report, show_all=args.all))
    else:
        ctx.out.write(text_report(report, show_all=args.all))
    return 0


def _sosreport(args, ctx):
    """The sosreport PATH or --sos names (None if neither), opened."""
    sos_path = args.sos or args.path
    if args.sos and args.path:
        raise InputError("give the sosreport once: as PATH or with --sos")
    if not sos_path:
        return None
    from ..sources import sosreport
    if args.path and not os.path.isdir(args.path) and not sosreport.is_sosreport_path(args.path):
        if not os.path.exists(args.path):
            raise InputError(f"{args.path}: no such file or directory")
        raise InputError(f"{args.path}: not a sosreport directory or tar archive (a kernel "
                         "log goes with --log FILE)")
    if args.log or ctx.has_target:
        raise InputError("a sosreport brings its own kernel log and system: not with --log "
                         "or a dump")
    return sosreport.SosReport(sos_path)


def _inputs(args, ctx, sos) -> TriageInputs:
    """What the arguments name, opened in this order: a bad log or transcript
    is refused before a dump is opened."""
    lines, log_path = log_source(args.log)
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
    return TriageInputs(target=target, log_lines=lines, log_path=log_path,
                        crash_text=crash_text, crash_name=args.crash_log or "crash log",
                        kb_dirs=args.kb, texts=texts, sos=sos)


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


# -- a sosreport: when it was taken, what it lacks, the memory state in its /proc ----


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
        out.append(tree + (f"; {c['num_cgroups_source']} {c['num_cgroups']} of "
                      f"{c['id_limit']}" if c["num_cgroups"] is not None else ""))
    for k, v in sec["errors"].items():
        out.append(f"({k}: {v})")
    return out


# -- rendering ------------------------------------------------------------------


def _bytes(v) -> str:
    return render.human_bytes(v) if isinstance(v, (int, float)) else (v or "-")


def _system_rows(s: Dict[str, Any]) -> List[tuple]:
    return [("RELEASE", s.get("release") or "-"), ("MACHINE", s.get("machine") or "-"),
            ("HARDWARE", s.get("hardware") or "-"),
            ("NODENAME", s.get("nodename") or "-"), ("CPUS", s.get("cpus") or "-"),
            ("MEMORY", _bytes(s.get("memory_bytes") or s.get("memory"))),
            ("UPTIME", s.get("uptime") or "-"), ("PANIC TIME", s.get("panic_time") or "-"),
            ("PANIC", f'"{s["panic"]}"' if s.get("panic") else "-")]


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
            lines.append(f"  [{MARKS[e['status']]}] {e['element']}{req}: {e['detail']}")
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
                   else f"  [{MARKS[e['status']]}] {e['element']}{req}: {e['detail']}")
    m = dict(a, elements=[])
    return out + ([""] if md else []) + [ln for ln in _match_lines(m, md)
                                         if not ln.startswith(("score", "why", "**Why"))]


def text_report(report: Dict[str, Any], show_all: bool = False) -> str:
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
    ev = evidence_lines(report)
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


def markdown_report(report: Dict[str, Any], show_all: bool = False) -> str:
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
    ev = evidence_lines(report)
    lines += ["", "### Panic", "", "```"] + ev["panic"] + ["```", "", "### Memory", "", "```"]
    lines += ev["memory"] + ["```"]
    if report.get("sosreport"):
        lines += ["", "### Sosreport", "", "```"] + _sos_lines(report["sosreport"]) + ["```"]
    if report["errors"]:
        lines += ["", "### Not available", ""]
        lines += [f"- {k}: {why}" for k, why in report["errors"].items()]
    lines += ["", f"_Sources: {', '.join(report['sources'])}; generated by crashext triage._"]
    return "\n".join(lines) + "\n"
