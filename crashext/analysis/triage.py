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
of the elements that could be checked; what could not be checked (no dump,
no log) is reported as unknown and does not count either way.

Everything returned is plain data; the ``triage`` command renders it.
"""

import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .. import gfp as gfpmod
from .. import kb as kbmod
from ..errors import CrashextError, InputError
from ..kernel.target import Target
from ..sources import kmsg, logs
from ..sources.logs import LogLine
from . import allocfail as allocmod
from . import panic as panicmod
from .system import panic_string

__all__ = ["triage", "LogScan", "log_evidence", "log_system", "cause_header", "allocation_failure",
           "zone_summary", "memcg_evidence", "evaluate", "Evidence",
           "STATUS_MATCHED", "STATUS_UNMATCHED", "STATUS_UNKNOWN"]

STATUS_MATCHED = "matched"
STATUS_UNMATCHED = "unmatched"
STATUS_UNKNOWN = "unknown"

# Weights of the signature elements that are not weighted in the entry itself.
_W_PANIC = 3.0
_W_RIP = 2.0
_W_FRAME_REQUIRED = 1.0
_W_FRAME_OPTIONAL = 0.5
_W_KERNEL = 1.0


_FUNC_SUFFIX = re.compile(r"\.(?:isra|constprop|part|cold|lto_priv|llvm)(?:\.\d+)*$")


def _norm_func(name: Optional[str]) -> Optional[str]:
    """Compiler clones (``online_css.isra.9``, ``foo.cold``) are the function itself."""
    return _FUNC_SUFFIX.sub("", name) if name else name


# ---------------------------------------------------------------------------
# The kernel log, read by the shared log analysis: crashext.sources.kmsg
# extracts the records (allocation failures with their zone and buddy
# lines, oops headers with RIP, task line and call trace) and
# crashext.analysis.allocfail decodes each failure and re-runs the
# watermark check on the numbers it printed.  What triage adds here is the
# summary of those verdicts and a few facts of the machine.
# ---------------------------------------------------------------------------

# init/version.c: "Linux version %s (%s@%s) ..." (linux_banner, printed at boot)
_BANNER = re.compile(r"Linux version (?P<rel>\S+)")


class LogScan:
    """One streaming pass over a kernel log for what triage needs beyond the
    shared analysis: the first line matching each knowledge-base regex, the
    last timestamp and the boot banner.  :meth:`watch` passes every line on,
    so the log is read once and never held in memory.

    The regexes run over blocks of lines joined by newlines (with
    ``re.MULTILINE``, so ``^``/``$`` still mean a line's ends), one search
    per block instead of one per line; a block that matches is searched
    line by line for the first matching line, so a match that only exists
    across a line break is not taken.
    """

    BLOCK = 512

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self._pending = {p: re.compile(p, re.MULTILINE) for p in patterns}
        self.hits: Dict[str, Optional[str]] = {p: None for p in patterns}
        self.last_ts: Optional[float] = None
        self.banner_release: Optional[str] = None
        self.lines = 0
        self._block: List[str] = []

    def _search(self) -> None:
        block, self._block = self._block, []
        if not self._pending:
            return
        joined = "\n".join(block)
        for p, rx in list(self._pending.items()):
            if rx.search(joined):
                hit = next((t for t in block if rx.search(t)), None)
                if hit is not None:
                    self.hits[p] = hit
                    del self._pending[p]

    def watch(self, lines: Iterable[LogLine]) -> Iterator[LogLine]:
        block = self._block
        for ln in lines:
            self.lines += 1
            text = ln.text
            if ln.ts is not None:
                self.last_ts = ln.ts
            if self.banner_release is None and "Linux version" in text:
                m = _BANNER.search(text)
                if m:
                    self.banner_release = m.group("rel")
            if self._pending:
                block.append(text)
                if len(block) >= self.BLOCK:
                    self._search()
                    block = self._block
            yield ln
        self._search()


#: Allocation failures kept in full; beyond them allocfail counts each
#: (task, order, mode) group and keeps its last failure, so memory stays
#: bounded however many failures a log repeats.
KEEP_FAILURES = 1000


def log_evidence(lines: Iterable[LogLine], scan: LogScan, release: Optional[str] = None,
                 gfp_names: Optional[List[Tuple[str, int]]] = None,
                 source: str = "kernel log",
                 keep: int = KEEP_FAILURES) -> "allocmod.AllocReport":
    """The shared log analysis of ``lines``, watched by ``scan``."""
    return allocmod.analyze(scan.watch(lines), source, release, gfp_names, keep)


# The architecture a release string names: RHEL/Fedora end in ".<arch>"
# (3.10.0-693.2.2.el7.x86_64), Debian/Ubuntu flavours in "-<debian arch>"
# (6.1.0-56-cloud-amd64); crash's MACHINE shows the kernel's uname machine.
_ARCH_SUFFIX = re.compile(r"[.-](x86_64|aarch64|ppc64le|s390x|i686|amd64|arm64)$")
_DEBIAN_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def machine_of_release(release: Optional[str]) -> Optional[str]:
    """``uname -m`` as far as the release string tells it (None if it does not)."""
    m = _ARCH_SUFFIX.search(release or "")
    return _DEBIAN_ARCH.get(m.group(1), m.group(1)) if m else None


def log_system(scan: LogScan, rep: "allocmod.AllocReport") -> Dict[str, Any]:
    """What the log says about the machine: release, hardware, RAM, last timestamp."""
    release = rep.releases[0] if rep.releases else scan.banner_release
    out: Dict[str, Any] = {"release": release, "machine": machine_of_release(release),
                           "hardware": None, "memory_bytes": None,
                           "uptime_seconds": scan.last_ts}
    for f in rep.failures:
        r = f.record
        if out["hardware"] is None and r.hardware:
            out["hardware"] = r.hardware
        if out["memory_bytes"] is None and "pages RAM" in r.extra:
            # show_mem()'s "N pages RAM" counts pages; the buddy line's order-0
            # block size is the page size the kernel printed with it
            kb = r.buddy[0].block_kb[0] if r.buddy and r.buddy[0].block_kb else 4
            out["memory_bytes"] = r.extra["pages RAM"] * kb * 1024
    return out


def cause_header(rep: "allocmod.AllocReport") -> Optional[kmsg.OopsHeader]:
    """The oops/BUG/panic header that names the cause: the first one that is
    not a WARNING (the same choice as :func:`~crashext.analysis.system.panic_string`)."""
    return next((h for h in rep.oops if h.kind != "warning"), None)


def allocation_failure(view: "allocmod.FailureView") -> Dict[str, Any]:
    """One failure of the shared analysis as triage shows and matches it."""
    r = view.record
    return {"time": r.ts, "comm": r.comm, "pid": r.pid, "cpu": r.cpu, "kind": r.kind,
            "order": r.order, "size": r.size,
            "mode": None if r.mode is None else f"{r.mode:#x}",
            "flags": "|".join(view.decoded) if view.decoded else None,
            "gfp_table": view.gfp_table, "caller": view.caller, "caller_why": view.caller_why,
            "frames": [panicmod.frame_from_log(fr) for fr in r.trace]}


def zone_summary(view: "allocmod.FailureView") -> Dict[str, Any]:
    """The allocfail watermark verdicts of one failure, per zone, and what they add up to.

    A zone that fails the order-0 test although its free memory is above
    min is held back by lowmem_reserve[] for this request's class zone; one
    that fails at a higher order has the memory but not in large enough
    blocks (fragmentation); the rest are short of memory.
    """
    r = view.record
    out: Dict[str, Any] = {"order": r.order, "rule": view.watermark_rule, "zones": [],
                           "conclusion": None, "notes": list(view.explanation)}
    if not view.zone_verdicts:
        out["error"] = view.explanation[0] if view.explanation else "no zone verdict"
        return out
    zlines = {(z.node, z.zone): z for z in r.zones}
    blines = {(b.node, b.zone): b for b in r.buddy}
    failing = []
    for v in sorted(view.zone_verdicts, key=lambda v: (v.node, v.index)):
        d = v.verdict
        z, b = zlines[(v.node, v.zone)], blines.get((v.node, v.zone))
        row = {"node": v.node, "zone": v.zone, "ok": d["ok"], "check": d["check"],
               "failed_order": d["failed_order"], "reason": d["reason"],
               "free_kb": z.kb("free"), "min_kb": z.kb("min"),
               "largest_free_order": max((o for o, n in enumerate(b.counts) if n), default=None)
               if b else None}
        if not d["ok"]:
            row["reserved"] = (d["check"] == "watermark" and row["free_kb"] is not None
                               and row["min_kb"] is not None and row["free_kb"] > row["min_kb"])
            failing.append(row)
        out["zones"].append(row)
    usable = len(out["zones"])
    frag = [x["zone"] for x in failing if x["failed_order"] not in (0, None)]
    held = [x["zone"] for x in failing if x["reserved"]]
    short = [x["zone"] for x in failing if x["zone"] not in frag and x["zone"] not in held]
    if len(failing) == usable:
        parts = []
        if frag:
            parts.append(f"{', '.join(frag)}: free memory above min but too little of it in "
                         f"blocks of order >= {r.order} (fragmentation)")
        if held:
            parts.append(f"{', '.join(held)}: held back by lowmem_reserve for this request's zone")
        if short:
            parts.append(f"{', '.join(short)}: free memory below the min watermark")
        out["conclusion"] = (f"order-{r.order} request fails the min watermark in all "
                             f"{usable} zones it may use; " + "; ".join(parts))
        out["fragmentation"] = bool(frag) and not short
    else:
        out["conclusion"] = (f"{usable - len(failing)} of {usable} usable zones pass the min "
                             f"watermark for order {r.order} as printed; the failure was "
                             "transient or limited by the allocation context")
        out["fragmentation"] = False
    return out


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
    report = memcgmod.memcg_report(t)
    summary = dict(report.summary)
    codes = set(summary.get("anomalies", {}).keys())
    total = summary.get("total") or 0
    if total >= _NEAR_LIMIT * _MEMCG_ID_MAX:
        codes.add("memcg-ids-near-limit")
    if summary.get("dying", 0) > max(summary.get("online", 0), 100):
        codes.add("many-dying-memcgs")
    flagged = [m.to_json() for m in report.memcgs if m.anomalies][:20]
    return {"summary": summary, "codes": sorted(codes), "flagged": flagged,
            "dying_parents": memcgmod.dying_by_parent(report.memcgs),
            "explanations": {c: memcgmod.ANOMALIES.get(c, "") for c in codes}}


# ---------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------

class Evidence:
    """What the matcher may look at; None means "not known" (not "absent")."""

    def __init__(self) -> None:
        self.release: Optional[str] = None
        self.panic: Optional[str] = None
        self.panic_known = False           # some source could tell the panic string
        self.rip_function: Optional[str] = None
        self.rip_known = False             # some source could tell whether there was an exception
        self.frames: Optional[List[str]] = None
        self.log_hits: Optional[Dict[str, Optional[str]]] = None  # regex -> first line
        self.allocfails: Optional[List[Dict[str, Any]]] = None
        self.dump_codes: Optional[set] = None
        self.dump_why = "no dump given"
        self.log_why = "no kernel log"


def _el(name: str, status: str, detail: str, weight: float, required: bool, group: str
        ) -> Dict[str, Any]:
    return {"element": name, "status": status, "detail": detail, "weight": weight,
            "required": required, "group": group}


def evaluate(entry: "kbmod.Entry", ev: Evidence) -> Dict[str, Any]:
    """Each signature element of ``entry`` against ``ev``, and the score."""
    sig = entry.signature
    els: List[Dict[str, Any]] = []
    if sig.panic:
        if not ev.panic_known:
            els.append(_el("panic string", STATUS_UNKNOWN, "no panic string available",
                           _W_PANIC, sig.panic_required, "panic"))
        else:
            hit = next((p for p in sig.panic if ev.panic and re.search(p, ev.panic)), None)
            els.append(_el("panic string", STATUS_MATCHED if hit else STATUS_UNMATCHED,
                           f"{ev.panic!r} ~ /{hit}/" if hit else
                           f"{ev.panic!r} matches none of {sig.panic}" if ev.panic else
                           "no panic message found", _W_PANIC, sig.panic_required, "panic"))
    if sig.rip_function:
        if not ev.rip_known:
            els.append(_el("exception RIP function", STATUS_UNKNOWN, "no backtrace or RIP line",
                           _W_RIP, sig.rip_required, "panic"))
        else:
            ok = _norm_func(ev.rip_function) in sig.rip_function
            els.append(_el("exception RIP function", STATUS_MATCHED if ok else STATUS_UNMATCHED,
                           f"RIP in {ev.rip_function}" if ev.rip_function else
                           "no exception RIP (the panic was not an exception)",
                           _W_RIP, sig.rip_required, "panic"))
    names = set(_norm_func(f) for f in ev.frames) if ev.frames is not None else None
    for fr, w, req in ([(f, _W_FRAME_REQUIRED, True) for f in sig.frames_required]
                       + [(f, _W_FRAME_OPTIONAL, False) for f in sig.frames_optional]):
        if names is None:
            els.append(_el(f"frame {fr}", STATUS_UNKNOWN, "no backtrace of the panicking task",
                           w, req, "backtrace"))
        else:
            ok = fr in names
            els.append(_el(f"frame {fr}", STATUS_MATCHED if ok else STATUS_UNMATCHED,
                           "in the panicking task's backtrace" if ok else "not in the backtrace",
                           w, req, "backtrace"))
    for lp in sig.log:
        label = f"log: {lp.name}"
        if ev.log_hits is None or (lp.kind == "regex" and lp.pattern not in ev.log_hits):
            why = ev.log_why if ev.log_hits is None else "the log was not searched for it"
            els.append(_el(label, STATUS_UNKNOWN, why, lp.weight, lp.required, "log"))
            continue
        if lp.kind == "regex":
            hit = ev.log_hits.get(lp.pattern)
            els.append(_el(label, STATUS_MATCHED if hit else STATUS_UNMATCHED,
                           hit.strip()[:160] if hit else f"no line matches /{lp.pattern}/",
                           lp.weight, lp.required, "log"))
        else:  # allocfail
            found = None
            for f in ev.allocfails or []:
                if lp.min_order is not None and (f["order"] is None or f["order"] < lp.min_order):
                    continue
                fnames = set(_norm_func(x["function"]) for x in f["frames"])
                if lp.frames_any and not fnames & set(lp.frames_any):
                    continue
                found = f
                break
            if found:
                via = sorted(set(_norm_func(x["function"]) for x in found["frames"]) & set(lp.frames_any))
                detail = (f"{found['comm']}: order-{found['order']} allocation failure, mode "
                          f"{found['mode']}" + (f", via {', '.join(via)}" if via else ""))
            else:
                detail = (f"{len(ev.allocfails or [])} allocation failure(s) in the log, none "
                          f"of order >= {lp.min_order or 0}"
                          + (f" through {', '.join(lp.frames_any)}" if lp.frames_any else ""))
            els.append(_el(label, STATUS_MATCHED if found else STATUS_UNMATCHED, detail,
                           lp.weight, lp.required, "log"))
    for dp in sig.dump:
        label = f"dump: {dp.name}"
        if ev.dump_codes is None:
            els.append(_el(label, STATUS_UNKNOWN, ev.dump_why, dp.weight, dp.required, "dump"))
        else:
            ok = dp.code in ev.dump_codes
            els.append(_el(label, STATUS_MATCHED if ok else STATUS_UNMATCHED,
                           f"memcg analysis reports {dp.code}" if ok else
                           f"memcg analysis does not report {dp.code}", dp.weight, dp.required,
                           "dump"))
    if entry.affected:
        status, why = kbmod.release_affected(ev.release, entry.affected)
        els.append(_el("kernel release", status, why, _W_KERNEL, True, "kernel"))
    checked = [e for e in els if e["status"] != STATUS_UNKNOWN]
    got = sum(e["weight"] for e in checked if e["status"] == STATUS_MATCHED)
    possible = sum(e["weight"] for e in checked)
    score = got / possible if possible else 0.0
    blockers = [e for e in els if e["required"] and e["status"] == STATUS_UNMATCHED]
    evidence = [e for e in els if e["group"] != "kernel" and e["status"] == STATUS_MATCHED]
    matched = bool(evidence) and not blockers and score >= entry.min_score
    if matched:
        why_not = None
    elif blockers:
        why_not = "required element unmatched: " + ", ".join(e["element"] for e in blockers)
    elif not evidence:
        why_not = "no signature element matched" + (
            "" if checked else " (nothing could be checked)")
    else:
        why_not = f"score {score:.2f} below {entry.min_score:.2f}"
    return {
        "id": entry.id, "title": entry.title, "kind": entry.kind, "matched": matched,
        "score": round(score, 3), "checked_weight": possible, "matched_weight": got,
        "total_weight": sum(e["weight"] for e in els),
        "unknown": sum(1 for e in els if e["status"] == STATUS_UNKNOWN),
        "why_not": why_not, "elements": els, "summary": entry.summary,
        "meaning": " ".join(entry.meaning.split()), "fixed_in": entry.fixed_in,
        "workarounds": entry.workarounds,
        "references": [{"title": r.title, "url": r.url, "note": r.note} for r in entry.references],
        "kb_file": entry.source,
    }


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
           log_sink: Optional[List["allocmod.AllocReport"]] = None) -> Dict[str, Any]:
    """The triage report of whatever is given (at least one source).

    ``log_lines``: the kernel log as text, normalised (``logs.kernel_log``,
    read once, streaming); without it a dump's own log is read.
    ``log_sink``: a list that receives the log's :class:`AllocReport` (OOM
    kills, oops headers, Mem-Info blocks) for a caller that shows more of
    the log than triage does (the HTML report), without a second pass.
    """
    if target is None and log_lines is None and crash_text is None:
        raise InputError("nothing to triage: give a dump (-c VMCORE -s VMLINUX), --log FILE "
                         "or --crash-log FILE")
    if entries is None:
        entries = kbmod.load_kb(kb_dirs)
    errors: Dict[str, str] = {}
    sources = []
    if target is not None:
        sources.append(target.source)
    if log_lines is not None:
        sources.append("kernel log")
    if crash_text is not None:
        sources.append(crash_name)

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
    scan = LogScan(sorted({lp.pattern for e in entries for lp in e.signature.log
                           if lp.kind == "regex"}))
    if lines is not None:
        # not in _section: an unusable log file (InputError) stops triage
        rep = log_evidence(lines, scan, release_hint, gfp_names, keep=KEEP_FAILURES)
        if log_sink is not None:
            log_sink.append(rep)
        if log_lines is not None and release_hint and rep.releases \
                and release_hint not in rep.releases:
            raise InputError(f"the log is of kernel {', '.join(rep.releases)} but the dump runs "
                             f"{release_hint}: give the dump's own log (vmcore-dmesg.txt) or "
                             "leave --log out to read the log inside the dump")

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
        memory["failures_not_kept"] = rep.dropped
        # beyond the kept ones, the last failure of each group still counts as evidence
        kept = {id(v) for v in rep.failures}
        extra = [allocation_failure(g.last_view) for g in rep.groups
                 if g.last_view is not None and id(g.last_view) not in kept]
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
        ev.allocfails = memory["allocation_failures"] + extra
    elif target is not None or log_lines is not None:
        ev.log_why = errors.get("log", "the dump's log could not be read")
    if mev is not None:
        ev.dump_codes = set(mev["codes"])
    elif target is not None:
        ev.dump_why = f"memcg analysis failed: {memory['errors'].get('memcg', '?')}"
    else:
        ev.dump_why = "no dump: dump predicate unknown"
    results = [evaluate(e, ev) for e in entries]
    results.sort(key=lambda r: (not r["matched"], -r["score"], -r["matched_weight"], r["id"]))
    matches = [r for r in results if r["matched"]]
    if matches:
        top = matches[0]
        if top["kind"] == "deliberate":
            headline = f"deliberate panic: {top['title']}"
        else:
            headline = f"known bug: {top['title']}"
    elif pan is not None and pan.get("panic"):
        headline = f"no known bug matched the panic {pan['panic']!r}"
    else:
        headline = "no known bug matched"
    verdict = {"headline": headline, "matches": matches,
               "not_matched": [r for r in results if not r["matched"]],
               "deliberate": bool(matches) and matches[0]["kind"] == "deliberate",
               "kb_entries": len(entries)}
    return {"sources": sources, "system": system, "panic": pan, "memory": memory,
            "verdict": verdict, "errors": errors}


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
