"""Triage: the whole investigation of a crash in one report, and its verdict.

:func:`triage` gathers four sections from whatever is at hand -- a dump (a
:class:`~crashext.kernel.target.Target`), the kernel log as text, a saved
crash session transcript -- each section failing alone with a one-line
reason:

``system``   release, machine, CPUs, memory, uptime, panic time and string;
``panic``    the panicking task, its backtrace, the exception RIP (+ file:line);
``memory``   allocation failures from the log, the watermark verdict of each
             failure's zones, the memcg summary and anomalies of a dump;
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

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import gfp as gfpmod
from .. import kb as kbmod
from ..errors import CrashextError, InputError
from ..kernel.target import Target
from ..sources import logs, logscan
from ..sources.logs import LogLine
from . import allocfail as allocmod
from . import diagnosis as diagmod
from .meminfo import report_timeline as meminfo_timeline
from . import panic as panicmod
from .kbmatch import (STATUS_MATCHED, STATUS_UNKNOWN, STATUS_UNMATCHED, Evidence,  # noqa: F401
                      conditions, evaluate, evaluate_precursor)
from .system import panic_string

# the kernel log's evidence lives in triage_log.py (re-exported here)
from .triage_log import (KEEP_FAILURES, LogScan, _BANNER, allocation_failure,  # noqa: F401
                         cause_header, log_evidence, log_system, machine_of_release,
                         page_kb_of, showmem_records, zone_summary)

__all__ = ["triage", "log_source", "LogScan", "log_evidence", "log_system", "cause_header", "allocation_failure",
           "zone_summary", "memcg_evidence", "evaluate", "Evidence",
           "STATUS_MATCHED", "STATUS_UNMATCHED", "STATUS_UNKNOWN"]


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
    from . import memcg as memcgmod
    # the rows in a temporary file, read back once for both lists: memory
    # stays flat
    flagged: List[Dict[str, Any]] = []

    def rows():
        for m in scan.rows():
            if m.anomalies and len(flagged) < 20:
                flagged.append(m.to_json())
            yield m
    with memcgmod.memcg_scan(t, spool=True) as scan:
        summary = dict(scan.summary)
        dying_parents = memcgmod.dying_by_parent(rows())
    codes = set(summary.get("anomalies", {}).keys())
    total = summary.get("total") or 0
    if total >= _NEAR_LIMIT * _MEMCG_ID_MAX:
        codes.add("memcg-ids-near-limit")
    if summary.get("dying", 0) > max(summary.get("online", 0), 100):
        codes.add("many-dying-memcgs")
    return {"summary": summary, "codes": sorted(codes), "flagged": flagged,
            "dying_parents": dying_parents,
            "explanations": {c: memcgmod.ANOMALIES.get(c, "") for c in codes}}


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


def triage(target: Optional[Target] = None, log_lines: Optional[Iterable[LogLine]] = None,
           crash_text: Optional[str] = None, crash_name: str = "crash log",
           kb_dirs: Optional[Sequence[str]] = None,
           entries: Optional[List["kbmod.Entry"]] = None,
           log_sink: Optional[List["allocmod.AllocReport"]] = None,
           texts: Optional[Iterable[str]] = None,
           log_path: Optional[str] = None) -> Dict[str, Any]:
    """The triage report of whatever is given (at least one source).

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
    """
    log_given = log_lines is not None or log_path is not None
    if target is None and not log_given and crash_text is None and texts is None:
        raise InputError("nothing to triage: give a dump (-c VMCORE -s VMLINUX), --log FILE, "
                         "--crash-log FILE or --text FILE")
    errors: Dict[str, str] = {}
    if entries is None:
        problems: List[str] = []
        entries = kbmod.load_kb(kb_dirs, problems=problems)
        if problems:
            errors["kb"] = "; ".join(problems)
    sources = []
    if target is not None:
        sources.append(target.source)
    if log_given:
        sources.append("kernel log")
    if crash_text is not None:
        sources.append(crash_name)
    if texts is not None:
        sources.append("user-space text")

    # the kernel log: the given text, else the dump's own
    lines = log_lines
    if lines is None and target is not None and not target.is_live:
        lines, why = _section(lambda: list(logs.from_records(target.log_records())))
        if why:
            errors["log"] = f"cannot read the dump's kernel log: {why}"
    release_hint = gfp_names = None
    if target is not None:
        release_hint = _section(lambda: target.release)[0]
        gfp_names = _section(gfpmod.names_from_target, target)[0]
    rep = None
    regexes = [lp for e in entries for lp in e.signature.log + (e.precursor.log if e.precursor
                                                                  else []) if lp.kind == "regex"]
    scan = LogScan(sorted({lp.pattern for lp in regexes if lp.source == "kernel"}
                          | set(diagmod.SCAN_PATTERNS)))
    gate = facts = None
    if lines is None and log_path is not None:
        # not in _section: an unusable log file (InputError) stops triage
        gate, facts = logs.Gate(), logscan.ScanFacts()
        lines = logscan.gated_kernel_log(log_path, gate, scan.patterns + [_BANNER.pattern],
                                         facts)
        if lines is None:   # a regex without a literal to search for: every line
            gate = facts = None
            lines = logs.kernel_log(log_path)
    if lines is not None:
        # not in _section: an unusable log file (InputError) stops triage
        rep = log_evidence(lines, scan, release_hint, gfp_names, keep=KEEP_FAILURES, gate=gate)
        if facts is not None:
            scan.last_ts = facts.last_ts   # the skipped lines' too
        if log_sink is not None:
            log_sink.append(rep)
        if log_given and release_hint and rep.releases \
                and release_hint not in rep.releases:
            raise InputError(f"the log is of kernel {', '.join(rep.releases)} but the dump runs "
                             f"{release_hint}: give the dump's own log (vmcore-dmesg.txt) or "
                             "leave --log out to read the log inside the dump")

    text_scan = None
    if texts is not None:
        # not in _section: an unreadable text file (InputError) stops triage
        text_scan = LogScan(sorted({lp.pattern for lp in regexes if lp.source == "text"}))
        for _ in text_scan.watch(LogLine(None, t, n, None, False)
                                 for n, t in enumerate(texts, 1)):
            pass

    session = None
    if crash_text is not None:
        session = panicmod.parse_crash_session(crash_text, crash_name)

    # -- system ------------------------------------------------------------
    system: Dict[str, Any] = {"release": None, "machine": None, "hardware": None, "cpus": None,
                              "memory_bytes": None, "uptime": None, "panic_time": None,
                              "panic": None, "nodename": None, "sources": {}}
    if rep is not None:
        ls, why = _section(log_system, scan, rep)
        if ls:
            for k in ("release", "machine", "hardware", "memory_bytes"):
                if ls[k] is not None:
                    system[k] = ls[k]
                    system["sources"][k] = "log" if k != "machine" else "log (release string)"
            if ls["uptime_seconds"] is not None:
                system["uptime"] = _fmt_uptime(ls["uptime_seconds"])
                system["sources"]["uptime"] = "log (last timestamp)"
    if target is not None:
        from .system import system_info
        si, why = _section(system_info, target)
        if why:
            errors["system"] = why
        else:
            for k in ("release", "machine", "cpus", "memory_bytes", "nodename"):
                if si.get(k) is not None:
                    system[k] = si[k]
                    system["sources"][k] = "dump"
            if si.get("uptime_seconds") is not None:
                system["uptime"] = _fmt_uptime(si["uptime_seconds"])
                system["sources"]["uptime"] = "dump"
            for k, v in si.get("errors", {}).items():
                errors[f"system.{k}"] = v
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

    # -- panic --------------------------------------------------------------
    # one panic string for every source: crash's sys PANIC if a transcript
    # says it, else the log's headers (system.panic_string)
    oops = cause_header(rep) if rep is not None else None
    log_panic = panic_string(rep.oops) if rep is not None else None
    pan = None
    if target is not None and not target.is_live:
        pan, why = _section(panicmod.panic_from_target, target, log_panic)
        if why:
            errors["panic"] = why
    if pan is None and session is not None:
        pan = panicmod.panic_from_crash_session(session)
    elif pan is not None and session is not None:
        extra = panicmod.panic_from_crash_session(session)
        pan["crash_log"] = {k: extra[k] for k in ("panic", "pid", "comm", "cpu", "rip")}
        if pan.get("rip") and extra.get("rip") and not pan["rip"].get("file"):
            pan["rip"]["file"], pan["rip"]["line"] = extra["rip"]["file"], extra["rip"]["line"]
    if pan is None and rep is not None:
        pan = panicmod.panic_from_oops(oops, log_panic)
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
            system["panic_time"] = f"{_fmt_ts(pan['time'])} s after boot"
            system["sources"]["panic_time"] = "log"

    # -- memory ---------------------------------------------------------------
    memory: Dict[str, Any] = {"allocation_failures": [], "zone_verdicts": [], "memcg": None,
                              "errors": {}}
    if rep is not None:
        for view in rep.failures:
            memory["allocation_failures"].append(allocation_failure(view))
            zv, why = _section(zone_summary, view)
            if why:
                memory["errors"][f"zone_verdicts[{len(memory['zone_verdicts'])}]"] = why
                zv = {"order": view.record.order, "zones": [], "conclusion": None, "error": why}
            zv["comm"] = view.record.comm
            zv["time"] = view.record.ts
            memory["zone_verdicts"].append(zv)
        if rep.warnings:
            memory["log_warnings"] = list(rep.warnings)
        # every other Mem-Info block of the log (analysis/meminfo.py, issue 16)
        memory["oom_reports"] = rep.oom_views
        memory["show_mem"] = rep.showmem_views
        memory["mem_info_timeline"] = meminfo_timeline(rep)
        memory["failures_not_kept"] = rep.dropped
        # beyond the kept ones, the last failure of each group still counts as evidence
        kept = {id(v) for v in rep.failures}
        extra = []
        for g in rep.groups:
            if g.last_view is not None and id(g.last_view) not in kept:
                f = allocation_failure(g.last_view)
                zs = _section(zone_summary, g.last_view)[0] or {}
                f["zones"], f["held_back"] = zs.get("class"), zs.get("held_back")
                extra.append(f)
    else:
        extra = []
        memory["errors"]["allocation_failures"] = errors.get("log", "no kernel log")
    mev = None
    if target is not None:
        mev, why = _section(memcg_evidence, target)
        if why:
            memory["errors"]["memcg"] = why
        memory["memcg"] = mev
    else:
        memory["errors"]["memcg"] = "no dump: memcg state is not in a log"

    # -- verdict ------------------------------------------------------------------
    ev = Evidence()
    ev.release = system["release"]
    if pan is not None:
        ev.panic = pan.get("panic")
        ev.panic_known = ev.panic is not None or rep is not None
        if pan.get("rip") and pan["rip"].get("function"):
            ev.rip_function = pan["rip"]["function"]
            ev.rip_known = True
        elif pan.get("frames"):
            ev.rip_known = True  # a backtrace without an exception frame: no exception RIP
        if pan.get("frames"):
            ev.frames = [f["function"] for f in pan["frames"] if f.get("function")]
    if rep is not None:
        ev.log_hits = scan.hits
        ev.allocfails = [dict(f, zones=zv.get("class"), held_back=zv.get("held_back"))
                         for f, zv in zip(memory["allocation_failures"],
                                          memory["zone_verdicts"])] + extra
    elif target is not None or log_given:
        ev.log_why = errors.get("log", "the dump's log could not be read")
    if text_scan is not None:
        ev.text_hits = text_scan.hits
    if mev is not None:
        ev.dump_codes = set(mev["codes"])
    elif target is not None:
        ev.dump_why = f"memcg analysis failed: {memory['errors'].get('memcg', '?')}"
    else:
        ev.dump_why = "no dump: dump predicate unknown"
    results = [evaluate(e, ev) for e in entries]
    # first the matches that explain the panic (a panic string, RIP or frame of
    # theirs matched), then bugs before conditions, then by score
    def _explains_panic(r):
        return any(e["group"] in ("panic", "backtrace") and e["status"] == STATUS_MATCHED
                   for e in r["elements"])
    results.sort(key=lambda r: (not r["matched"], not _explains_panic(r), r["kind"] == "condition",
                                -r["score"], -r["matched_weight"], r["id"]))
    matches = [r for r in results if r["matched"]]
    # precursors: the state that leads to an entry's bug, when the bug itself did not match
    at_risk = []
    for e, r in zip(sorted(entries, key=lambda e: e.id), sorted(results, key=lambda r: r["id"])):
        pre = None if r["matched"] else evaluate_precursor(e, ev)
        if pre and pre["matched"]:
            at_risk.append(dict(r, precursor=pre))
    diag = diagmod.diagnose(pan, memory, rep, scan.hits if rep is not None else None,
                            _page_kb(rep))
    # a warning of a known bug outranks known conditions: the seed's order-6
    # failure before its BUG is AT RISK for that bug even though the same
    # failure also shows a condition (its DMA32 zone held back by lowmem_reserve)
    conditions_only = bool(matches) and all(m["kind"] == "condition" for m in matches)
    if matches and not (conditions_only and at_risk):
        top = matches[0]
        if top["kind"] == "deliberate":
            headline = f"deliberate panic: {top['title']}"
        elif top["kind"] == "condition":
            headline = f"known condition: {top['title']}"
        else:
            headline = f"known bug: {top['title']}"
        # what the match rests on: unchecked required elements, release caveats
        headline += conditions(top)
    elif at_risk:
        top = at_risk[0]
        headline = (f"AT RISK: {top['title']}: this log shows {top['precursor']['shows']}"
                    + "".join(f" -- but {c}" for c in top["precursor"]["caveats"]))
    else:
        # no entry: the class of the event from the evidence
        headline = diag["headline"]
    verdict = {"headline": headline, "matches": matches, "at_risk": at_risk,
               "diagnosis": diag,
               "not_matched": [r for r in results if not r["matched"]],
               "deliberate": bool(matches) and matches[0]["kind"] == "deliberate",
               "kb_entries": len(entries)}
    return {"sources": sources, "system": system, "panic": pan, "memory": memory,
            "verdict": verdict, "errors": errors}


def _page_kb(rep: Optional["allocmod.AllocReport"]) -> int:
    """The page size in KiB: the order-0 block of a buddy line the log printed, else 4."""
    for r in (showmem_records(rep) if rep is not None else ()):
        kb = page_kb_of(r)
        if kb:
            return kb
    return 4


def _fmt_ts(secs: float) -> str:
    """printk's "%5lu.%06lu": microseconds truncated, not rounded
    (kernel/printk/printk.c print_time(); a float from the nanosecond
    timestamp is rounded to the nanosecond first)."""
    ns = int(round(secs * 1e9))
    return f"{ns // 1000000000}.{ns // 1000 % 1000000:06d}"


def _fmt_uptime(secs: float) -> str:
    secs = int(secs)
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d} days, " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"
