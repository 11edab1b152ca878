"""Triage: the whole investigation of a crash in one report, and its verdict.

:func:`triage` gathers four sections from whatever is at hand -- a dump (a
:class:`~crashext.kernel.target.Target`), the kernel log as text, a saved
crash session transcript -- each section failing alone with a one-line
reason:

``system``   release, machine, CPUs, memory, uptime, panic time and string;
``panic``    the panicking task, its backtrace, the exception RIP (+ file:line);
``memory``   allocation failures from the log, the watermark verdict of each
             failure's zones, the memcg summary and anomalies of a dump,
             and what holds its dying memcgs (the memcgpins summary);
``verdict``  knowledge-base entries (:mod:`crashext.kb`) matched against that
             evidence, strongest first, each element marked matched,
             unmatched or unknown.

The score of an entry is the weight of its matched elements over the weight
of the elements that could be checked and of the required ones that could
not (no dump, no release in the log): those lower it, and the headline says
what would confirm them; other unknown elements do not count either way.
Whether an entry matches is decided on the checked elements alone.

Everything returned is plain data; the ``triage`` command renders it.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import gfp
from .. import kb
from ..errors import CrashextError, InputError
from ..kernel.target import Target
from ..sources import crashlog, logs, logscan
from ..sources.logs import LogLine
from ..sources.sosreport import SosReport
from . import allocreport
from . import diagnosis
from . import meminfo_blocks
from . import panic
from . import log_evidence
from .kbmatch import STATUS_MATCHED, Evidence, conditions, evaluate, evaluate_precursor
from .sos_memory import sos_section
from .system import panic_string

__all__ = ["TriageInputs", "triage", "log_source", "memcg_evidence"]


def log_source(path: Optional[str]) -> Tuple[Optional[Iterable[LogLine]], Optional[str]]:
    """(``log_lines``, ``log_path``) for :func:`triage` from a ``--log PATH``:
    a file goes by path (read the fast way), checked now so that a bad one
    is refused before a dump is opened; stdin (``-``), which can be read
    only once, as its lines."""
    if not path:
        return None, None
    if path == "-":
        return logs.kernel_log(path), None
    logs.checked_stream(path, "kernel log", logs.KERNEL_LOG_HINT).close()
    return None, path


# ---------------------------------------------------------------------------
# Memcg evidence of a dump
# ---------------------------------------------------------------------------

# Derived codes (not per-memcg anomalies of crashext.analysis.memcg):
# memcg ids are 16-bit: MEM_CGROUP_ID_MAX is USHRT_MAX (include/linux/
# memcontrol.h, v4.8+; the css id space of 3.10 has the same bound).
_MEMCG_ID_MAX = 65535
_NEAR_LIMIT = 0.9


def memcg_evidence(t: Target) -> Dict[str, Any]:
    """The memcg summary of ``t`` and the set of anomaly codes it shows."""
    from . import memcg
    with memcg.memcg_scan(t, spool=True) as scan:
        return _scan_evidence(scan, scan.rows())


def _scan_evidence(scan, rows: Iterable) -> Dict[str, Any]:
    """memcg_evidence of a memcg scan whose ``rows`` are read here."""
    from . import memcg
    # the rows in a temporary file, read back once for both lists: memory
    # stays flat
    flagged: List[Dict[str, Any]] = []

    def flag(rows):
        for m in rows:
            if m.anomalies and len(flagged) < 20:
                flagged.append(m.to_json())
            yield m
    summary = dict(scan.summary)
    dying_parents = memcg.dying_by_parent(flag(rows))
    codes = set(summary.get("anomalies", {}).keys())
    total = summary.get("total") or 0
    if total >= _NEAR_LIMIT * _MEMCG_ID_MAX:
        codes.add("memcg-ids-near-limit")
    if summary.get("dying", 0) > max(summary.get("online", 0), 100):
        codes.add("many-dying-memcgs")
    return {"summary": summary, "codes": sorted(codes), "flagged": flagged,
            "dying_parents": dying_parents,
            "explanations": {c: memcg.ANOMALIES.get(c, "") for c in codes}}


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

def _section(fn, *args):
    """(data, None) or (None, one-line reason)."""
    try:
        return fn(*args), None
    except CrashextError as exc:
        return None, exc.one_line()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@dataclass
class TriageInputs:
    """What :func:`triage` is given (at least one of the sources).

    ``log_lines``: the kernel log as text, normalised (``logs.kernel_log``,
    read once, streaming); without it a dump's own log is read.
    ``log_path``: a kernel log file instead of ``log_lines``, read the fast
    way (:func:`~crashext.sources.logscan.gated_kernel_log`: only the lines
    that can hold a record or match a knowledge-base regex are decoded; the
    same report as ``log_lines=logs.kernel_log(log_path)``).
    ``log_sink``: a list that receives the log's :class:`AllocReport` (OOM
    kills, oops headers, Mem-Info blocks) for a caller that shows more of
    the log than triage does (the HTML report), without a second pass.
    ``texts``: user-space text as raw lines (kubelet, runc or docker logs,
    ``kubectl describe``, a sosreport's proc/cgroups), read after the kernel
    log, for the entries' ``source = "text"`` elements: failures the kernel
    does not print (a cgroup mkdir refused with ENOMEM or ENOSPC).
    ``sos``: a sosreport (its kernel log given as ``log_lines``): its /proc
    and cgroups when it was taken make the ``sosreport`` section.
    """

    target: Optional[Target] = None
    log_lines: Optional[Iterable[LogLine]] = None
    log_path: Optional[str] = None
    crash_text: Optional[str] = None
    crash_name: str = "crash log"
    texts: Optional[Iterable[str]] = None
    kb_dirs: Optional[Sequence[str]] = None
    entries: Optional[List["kb.Entry"]] = None
    log_sink: Optional[List["allocreport.AllocReport"]] = None
    sos: Optional[SosReport] = None

    @property
    def log_given(self) -> bool:
        return self.log_lines is not None or self.log_path is not None


@dataclass
class _Log:
    """The log section: the shared analysis of the kernel log (None without
    one), its knowledge-base scan, and the scan of the user-space text."""

    rep: Optional["allocreport.AllocReport"]
    scan: log_evidence.LogScan
    text_scan: Optional[log_evidence.LogScan]


def triage(inp: TriageInputs) -> Dict[str, Any]:
    """The triage report of whatever ``inp`` gives, section by section; each
    section that cannot be had says why in ``errors`` (the report's, or its
    section's own)."""
    if inp.target is None and not inp.log_given and inp.crash_text is None \
            and inp.texts is None and inp.sos is None:
        raise InputError("nothing to triage: give a dump (-c VMCORE -s VMLINUX), --log FILE, "
                         "--crash-log FILE or --text FILE")
    no_log = inp.sos is not None and not inp.log_given and inp.crash_text is None
    if no_log:
        # a sosreport without a kernel log: an empty log, said to be missing below
        inp = dataclasses.replace(inp, log_lines=iter(()))
    errors: Dict[str, str] = {}
    entries = _knowledge_base(inp, errors)
    log = _log_section(inp, entries, errors)
    session = (crashlog.parse_crash_session(inp.crash_text, inp.crash_name)
               if inp.crash_text is not None else None)
    system = _system_section(inp.target, log.rep, log.scan, session, errors)
    pan = _panic_section(inp.target, log.rep, session, system, errors)
    memory, extra = _memory_section(log.rep, errors)
    mev, walked = _memcg_section(inp.target, memory)
    _memcgpins_section(inp.target, memory, walked)
    ev = _evidence(inp, log, system, pan, memory, extra, mev, errors)
    verdict = _verdict_section(entries, ev, pan, memory, log)
    report = {"sources": _sources(inp), "system": system, "panic": pan, "memory": memory,
              "verdict": verdict, "errors": errors}
    if no_log:
        errors["log"] = ("the sosreport has no kernel log (sos_commands/kernel/dmesg, "
                         "var/log/kern.log, var/log/messages)")
    if inp.sos is not None:
        sos_section(report, inp.sos)
    return report


def _knowledge_base(inp: TriageInputs, errors: Dict[str, str]) -> List["kb.Entry"]:
    """The entries given, else the knowledge base loaded (its problems in ``errors``)."""
    if inp.entries is not None:
        return inp.entries
    problems: List[str] = []
    entries = kb.load_kb(inp.kb_dirs, problems=problems)
    if problems:
        errors["kb"] = "; ".join(problems)
    return entries


def _sources(inp: TriageInputs) -> List[str]:
    sources = []
    if inp.target is not None:
        sources.append(inp.target.source)
    if inp.log_given:
        sources.append("kernel log")
    if inp.crash_text is not None:
        sources.append(inp.crash_name)
    if inp.texts is not None:
        sources.append("user-space text")
    return sources


# -- log ----------------------------------------------------------------------------

def _log_section(inp: TriageInputs, entries: List["kb.Entry"],
                 errors: Dict[str, str]) -> _Log:
    """The kernel log (the one given, else the dump's own) through the shared
    analysis, scanned for the knowledge base's regexes; then the user-space
    text scanned for its text regexes.  An unusable log or text file
    (InputError) stops triage."""
    t = inp.target
    lines = inp.log_lines
    if lines is None and t is not None and not t.is_live:
        lines, why = _section(lambda: list(logs.from_records(t.log_records())))
        if why:
            errors["log"] = f"cannot read the dump's kernel log: {why}"
    release_hint = gfp_names = None
    if t is not None:
        release_hint = _section(lambda: t.release)[0]
        gfp_names = _section(gfp.names_from_target, t)[0]
    regexes = [lp for e in entries for lp in e.signature.log + (e.precursor.log if e.precursor
                                                                else []) if lp.kind == "regex"]
    scan = log_evidence.LogScan(sorted({lp.pattern for lp in regexes if lp.source == "kernel"}
                                       | set(diagnosis.SCAN_PATTERNS)))
    rep = _scan_log(inp, lines, scan, release_hint, gfp_names)
    text_scan = None
    if inp.texts is not None:
        text_scan = log_evidence.LogScan(sorted({lp.pattern for lp in regexes
                                                 if lp.source == "text"}))
        for _ in text_scan.watch(LogLine(None, t_, n, None, False)
                                 for n, t_ in enumerate(inp.texts, 1)):
            pass
    return _Log(rep, scan, text_scan)


def _scan_log(inp: TriageInputs, lines: Optional[Iterable[LogLine]],
              scan: log_evidence.LogScan, release_hint: Optional[str],
              gfp_names) -> Optional["allocreport.AllocReport"]:
    """The shared log analysis of ``lines`` (or of the file ``inp.log_path``,
    read the fast way), or None without a log."""
    gate = facts = None
    if lines is None and inp.log_path is not None:
        gate, facts = logs.Gate(), logscan.ScanFacts()
        lines = logscan.gated_kernel_log(inp.log_path, gate,
                                         scan.patterns + [log_evidence.BANNER.pattern], facts)
        if lines is None:   # a regex without a literal to search for: every line
            gate = facts = None
            lines = logs.kernel_log(inp.log_path)
    if lines is None:
        return None
    rep = log_evidence.analyze(lines, scan, release_hint, gfp_names,
                               keep=log_evidence.KEEP_FAILURES, gate=gate)
    if facts is not None:
        scan.last_ts = facts.last_ts   # the skipped lines' too
    if inp.log_sink is not None:
        inp.log_sink.append(rep)
    if inp.log_given and release_hint and rep.releases and release_hint not in rep.releases:
        raise InputError(f"the log is of kernel {', '.join(rep.releases)} but the dump runs "
                         f"{release_hint}: give the dump's own log (vmcore-dmesg.txt) or "
                         "leave --log out to read the log inside the dump")
    return rep


# -- system ---------------------------------------------------------------------------

def _system_section(t: Optional[Target], rep: Optional["allocreport.AllocReport"],
                    scan: log_evidence.LogScan, session: Optional[Dict[str, Any]],
                    errors: Dict[str, str]) -> Dict[str, Any]:
    """Release, machine, CPUs, memory, uptime: from the log, then the dump,
    then crash's sys (each later source wins); the panic facts come with the
    panic section."""
    system: Dict[str, Any] = {"release": None, "machine": None, "hardware": None, "cpus": None,
                              "memory_bytes": None, "uptime": None, "panic_time": None,
                              "panic": None, "nodename": None, "sources": {}}
    if rep is not None:
        ls, _why = _section(log_evidence.log_system, scan, rep)
        if ls:
            for k in ("release", "machine", "hardware", "memory_bytes"):
                if ls[k] is not None:
                    system[k] = ls[k]
                    system["sources"][k] = "log" if k != "machine" else "log (release string)"
            if ls["uptime_seconds"] is not None:
                system["uptime"] = _fmt_uptime(ls["uptime_seconds"])
                system["sources"]["uptime"] = "log (last timestamp)"
    if t is not None:
        _system_from_dump(t, system, errors)
    if session is not None:
        s = session["sys"]
        for key, field_ in (("RELEASE", "release"), ("MACHINE", "machine"), ("CPUS", "cpus"),
                            ("MEMORY", "memory"), ("UPTIME", "uptime"), ("DATE", "panic_time"),
                            ("NODENAME", "nodename")):
            if s.get(key):
                system[field_] = s[key]
                system["sources"][field_] = "crash sys"
        if s.get("WARNING"):
            system["crash_warning"] = s["WARNING"]
    return system


def _system_from_dump(t: Target, system: Dict[str, Any], errors: Dict[str, str]) -> None:
    from .system import system_info
    si, why = _section(system_info, t)
    if why:
        errors["system"] = why
        return
    for k in ("release", "machine", "cpus", "memory_bytes", "nodename"):
        if si.get(k) is not None:
            system[k] = si[k]
            system["sources"][k] = "dump"
    if si.get("uptime_seconds") is not None:
        system["uptime"] = _fmt_uptime(si["uptime_seconds"])
        system["sources"]["uptime"] = "dump"
    for k, v in si.get("errors", {}).items():
        errors[f"system.{k}"] = v


# -- panic ------------------------------------------------------------------------------

def _panic_section(t: Optional[Target], rep: Optional["allocreport.AllocReport"],
                   session: Optional[Dict[str, Any]], system: Dict[str, Any],
                   errors: Dict[str, str]) -> Optional[Dict[str, Any]]:
    """The panicking task, backtrace and exception RIP: from the dump, else
    crash's transcript, else the log's oops header; one panic string for
    every source (crash's sys PANIC if a transcript says it, else the log's
    headers: system.panic_string), also set in ``system``."""
    oops = log_evidence.cause_header(rep) if rep is not None else None
    log_panic = panic_string(rep.oops) if rep is not None else None
    pan = None
    if t is not None and not t.is_live:
        pan, why = _section(panic.panic_from_target, t, log_panic)
        if why:
            errors["panic"] = why
    if pan is None and session is not None:
        pan = panic.panic_from_crash_session(session)
    elif pan is not None and session is not None:
        extra = panic.panic_from_crash_session(session)
        pan["crash_log"] = {k: extra[k] for k in ("panic", "pid", "comm", "cpu", "rip")}
        if pan.get("rip") and extra.get("rip") and not pan["rip"].get("file"):
            pan["rip"]["file"], pan["rip"]["line"] = extra["rip"]["file"], extra["rip"]["line"]
    if pan is None and rep is not None:
        pan = panic.panic_from_oops(oops, log_panic)
    if pan is not None and session is not None and pan["source"] == "crash-log" and oops:
        pan["log"] = {"pid": oops.pid, "comm": oops.comm, "cpu": oops.cpu,
                      "rip_function": oops.rip_func}
    if pan is not None:
        if pan.get("panic") is None:
            pan["panic"] = log_panic
        if pan.get("time") is None and oops is not None and oops.ts is not None:
            pan["time"] = oops.ts
        system["panic"] = pan.get("panic")
        if system["panic_time"] is None and pan.get("time") is not None:
            system["panic_time"] = f"{logs.printk_time(pan['time'])} s after boot"
            system["sources"]["panic_time"] = "log"
    return pan


# -- memory -------------------------------------------------------------------------------

def _memory_section(rep: Optional["allocreport.AllocReport"], errors: Dict[str, str]
                    ) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The log's allocation failures with their zone verdicts, OOM reports,
    show_mem dumps and the Mem-Info timeline; and, beyond the failures kept,
    the last failure of each group (still evidence for the knowledge base)."""
    memory: Dict[str, Any] = {"allocation_failures": [], "zone_verdicts": [], "memcg": None,
                              "memcgpins": None, "errors": {}}
    if rep is None:
        memory["errors"]["allocation_failures"] = errors.get("log", "no kernel log")
        return memory, []
    for view in rep.failures:
        memory["allocation_failures"].append(log_evidence.allocation_failure(view))
        zv, why = _section(log_evidence.zone_summary, view)
        if why:
            memory["errors"][f"zone_verdicts[{len(memory['zone_verdicts'])}]"] = why
            zv = {"order": view.record.order, "zones": [], "conclusion": None, "error": why}
        zv["comm"] = view.record.comm
        zv["time"] = view.record.ts
        memory["zone_verdicts"].append(zv)
    if rep.warnings:
        memory["log_warnings"] = list(rep.warnings)
    # every other Mem-Info block of the log (analysis/meminfo_blocks.py)
    memory["oom_reports"] = rep.oom_views
    memory["show_mem"] = rep.showmem_views
    memory["mem_info_timeline"] = meminfo_blocks.report_timeline(rep)
    memory["failures_not_kept"] = rep.dropped
    kept = {id(v) for v in rep.failures}
    extra = []
    for g in rep.groups:
        if g.last_view is not None and id(g.last_view) not in kept:
            f = log_evidence.allocation_failure(g.last_view)
            zs = _section(log_evidence.zone_summary, g.last_view)[0] or {}
            f["zones"], f["held_back"] = zs.get("class"), zs.get("held_back")
            extra.append(f)
    return memory, extra


# -- memcg --------------------------------------------------------------------------------

def _memcg_section(t: Optional[Target], memory: Dict[str, Any]) -> Tuple[Any, Any]:
    """The dump's memcg evidence, kept in ``memory["memcg"]`` (None without a
    dump), and the same walk kept for memcgpins (None where it cannot serve)."""
    if t is None:
        memory["errors"]["memcg"] = "no dump: memcg state is not in a log"
        return None, None
    from . import memcg
    from .memcgpins import WalkKeeper

    def read(t):
        keep = WalkKeeper(t)
        with memcg.memcg_scan(t, spool=True) as scan:
            return _scan_evidence(scan, keep.feed(scan)), keep.walked(scan)
    both, why = _section(read, t)
    if why:
        memory["errors"]["memcg"] = why
    mev, walked = both or (None, None)
    memory["memcg"] = mev
    # on a live kernel a walk broken by a memcg freed under it: memcgpins walks again
    if walked is not None and t.is_live and walked.summary.get("walk_problem"):
        walked = None
    return mev, walked


def _memcgpins_section(t: Optional[Target], memory: Dict[str, Any], walked=None) -> None:
    """What holds the dump's dying memcgs: the summary of memcgpins (files
    counted as the command does by default; its per-memcg rows are the
    command's to show), in ``memory["memcgpins"]``.  Where the page pass
    cannot run, the one-line reason in the memory errors; without a dump
    nothing (the memcg section says there is no memcg state)."""
    if t is None:
        return
    from .memcgpins import TOP_FILES, memcg_pins
    rep, why = _section(memcg_pins, t, False, TOP_FILES, None, walked)
    if why:
        memory["errors"]["memcgpins"] = f"what holds the dying memcgs: {why}"
        return
    memory["memcgpins"] = rep.summary


# -- evidence and verdict -------------------------------------------------------------------

def _evidence(inp: TriageInputs, log: _Log, system: Dict[str, Any],
              pan: Optional[Dict[str, Any]], memory: Dict[str, Any],
              extra: List[Dict[str, Any]], mev: Optional[Dict[str, Any]],
              errors: Dict[str, str]) -> Evidence:
    """What the knowledge base's elements are matched against; what could not
    be checked says why."""
    ev = Evidence()
    ev.release = system["release"]
    if pan is not None:
        ev.panic = pan.get("panic")
        ev.panic_known = ev.panic is not None or log.rep is not None
        if pan.get("rip") and pan["rip"].get("function"):
            ev.rip_function = pan["rip"]["function"]
            ev.rip_known = True
        elif pan.get("frames"):
            ev.rip_known = True  # a backtrace without an exception frame: no exception RIP
        if pan.get("frames"):
            ev.frames = [f["function"] for f in pan["frames"] if f.get("function")]
    if log.rep is not None:
        ev.log_hits = log.scan.hits
        ev.allocfails = [dict(f, zones=zv.get("class"), held_back=zv.get("held_back"))
                         for f, zv in zip(memory["allocation_failures"],
                                          memory["zone_verdicts"])] + extra
    elif inp.target is not None or inp.log_given:
        ev.log_why = errors.get("log", "the dump's log could not be read")
    if log.text_scan is not None:
        ev.text_hits = log.text_scan.hits
    if mev is not None:
        ev.dump_codes = set(mev["codes"])
    elif inp.target is not None:
        ev.dump_why = f"memcg analysis failed: {memory['errors'].get('memcg', '?')}"
    else:
        ev.dump_why = "no dump: dump predicate unknown"
    return ev


def _explains_panic(r: Dict[str, Any]) -> bool:
    """A match one of whose panic string, RIP or frame elements matched."""
    return any(e["group"] in ("panic", "backtrace") and e["status"] == STATUS_MATCHED
               for e in r["elements"])


def _verdict_section(entries: List["kb.Entry"], ev: Evidence,
                     pan: Optional[Dict[str, Any]], memory: Dict[str, Any],
                     log: _Log) -> Dict[str, Any]:
    """Every entry evaluated: matches (first those that explain the panic,
    then bugs before conditions, then by score), the entries whose precursor
    the evidence shows, the diagnosis class, and the headline."""
    results = [evaluate(e, ev) for e in entries]
    results.sort(key=lambda r: (not r["matched"], not _explains_panic(r), r["kind"] == "condition",
                                -r["score"], -r["matched_weight"], r["id"]))
    matches = [r for r in results if r["matched"]]
    # precursors: the state that leads to an entry's bug, when the bug itself did not match
    at_risk = []
    for e, r in zip(sorted(entries, key=lambda e: e.id), sorted(results, key=lambda r: r["id"])):
        pre = None if r["matched"] else evaluate_precursor(e, ev)
        if pre and pre["matched"]:
            at_risk.append(dict(r, precursor=pre))
    rep = log.rep
    diag = diagnosis.diagnose(pan, memory, rep, log.scan.hits if rep is not None else None,
                              _page_kb(rep))
    return {"headline": _headline(matches, at_risk, diag), "matches": matches,
            "at_risk": at_risk, "diagnosis": diag,
            "not_matched": [r for r in results if not r["matched"]],
            "deliberate": bool(matches) and matches[0]["kind"] == "deliberate",
            "kb_entries": len(entries)}


def _headline(matches: List[Dict[str, Any]], at_risk: List[Dict[str, Any]],
              diag: Dict[str, Any]) -> str:
    """The verdict's first line.  A warning of a known bug outranks known
    conditions: the RHEL7 idr-bug log's order-6 failure before its BUG is AT RISK for that
    bug even though the same failure also shows a condition (its DMA32 zone
    held back by lowmem_reserve)."""
    conditions_only = bool(matches) and all(m["kind"] == "condition" for m in matches)
    if matches and not (conditions_only and at_risk):
        top = matches[0]
        kind = {"deliberate": "deliberate panic", "condition": "known condition"}
        # what the match rests on: unchecked required elements, release caveats
        return f"{kind.get(top['kind'], 'known bug')}: {top['title']}" + conditions(top)
    if at_risk:
        top = at_risk[0]
        return (f"AT RISK: {top['title']}: this log shows {top['precursor']['shows']}"
                + "".join(f" -- but {c}" for c in top["precursor"]["caveats"]))
    # no entry: the class of the event from the evidence
    return diag["headline"]


def _page_kb(rep: Optional["allocreport.AllocReport"]) -> int:
    """The page size in KiB: the order-0 block of a buddy line the log printed, else 4."""
    for r in (log_evidence.showmem_records(rep) if rep is not None else ()):
        kb = log_evidence.page_kb_of(r)
        if kb:
            return kb
    return 4


def _fmt_uptime(secs: float) -> str:
    secs = int(secs)
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d} days, " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"
