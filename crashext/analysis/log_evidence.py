"""triage's evidence from a kernel log: what it adds to the shared log
analysis (:mod:`crashext.analysis.allocreport`): the knowledge-base regexes'
first hits, the boot banner and the last timestamp (:class:`LogScan`), the
machine facts a log tells, the event that caused a panic, and the summary of
each allocation failure's watermark verdicts."""

import dataclasses
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..sources import kmsg, logs
from ..sources.oops import NOT_FATAL
from ..sources.logs import LogLine
from . import allocreport
from . import panic


__all__ = ["LogScan", "BANNER", "analyze", "log_system", "cause_header", "allocation_failure",
           "zone_summary", "machine_of_release", "KEEP_FAILURES", "showmem_records", "page_kb_of"]


# ---------------------------------------------------------------------------
# The kernel log, read by the shared log analysis: crashext.sources.kmsg
# extracts the records (allocation failures with their zone and buddy
# lines, oops headers with RIP, task line and call trace) and
# crashext.analysis.allocreport decodes each failure and re-runs the
# watermark check on the numbers it printed.  What triage adds here is the
# summary of those verdicts and a few facts of the machine.
# ---------------------------------------------------------------------------

# init/version.c: "Linux version %s (%s@%s) ..." (linux_banner, printed at boot)
BANNER = re.compile(r"Linux version (?P<rel>\S+)")


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
        self.patterns = list(patterns)
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
                m = BANNER.search(text)
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


def analyze(lines: Iterable[LogLine], scan: LogScan, release: Optional[str] = None,
            gfp_names: Optional[List[Tuple[str, int]]] = None,
            source: str = "kernel log",
            keep: int = KEEP_FAILURES, gate: Optional[logs.Gate] = None
            ) -> "allocreport.AllocReport":
    """The shared log analysis of ``lines``, watched by ``scan`` (``gate``:
    that of a gated line source, see :func:`allocfail.analyze`)."""
    return allocreport.analyze(scan.watch(lines), source, release, gfp_names, keep, gate)


# The architecture a release string names: RHEL/Fedora end in ".<arch>"
# (3.10.0-693.2.2.el7.x86_64), Debian/Ubuntu flavours in "-<debian arch>"
# (6.1.0-56-cloud-amd64); crash's MACHINE shows the kernel's uname machine.
_ARCH_SUFFIX = re.compile(r"[.-](x86_64|aarch64|ppc64le|s390x|i686|amd64|arm64)$")
_DEBIAN_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def machine_of_release(release: Optional[str]) -> Optional[str]:
    """``uname -m`` as far as the release string tells it (None if it does not)."""
    m = _ARCH_SUFFIX.search(release or "")
    return _DEBIAN_ARCH.get(m.group(1), m.group(1)) if m else None


def log_system(scan: LogScan, rep: "allocreport.AllocReport") -> Dict[str, Any]:
    """What the log says about the machine: release, hardware, RAM, last timestamp."""
    release = rep.releases[0] if rep.releases else scan.banner_release
    out: Dict[str, Any] = {"release": release, "machine": machine_of_release(release),
                           "hardware": None, "memory_bytes": None,
                           "uptime_seconds": scan.last_ts}
    for r in showmem_records(rep):
        if out["hardware"] is None and getattr(r, "hardware", None):
            out["hardware"] = r.hardware
        if out["memory_bytes"] is None and "pages RAM" in r.extra:
            # show_mem()'s "N pages RAM" counts pages; the buddy line's order-0
            # block size is the page size the kernel printed with it
            kb = page_kb_of(r)
            out["memory_bytes"] = r.extra["pages RAM"] * (kb or 4) * 1024
    return out


def showmem_records(rep: "allocreport.AllocReport") -> Iterator[Any]:
    """Every record of a log that carries a show_mem block: allocation
    failures, OOM reports and SysRq-m / show_mem dumps."""
    yield from (f.record for f in rep.failures)
    yield from rep.ooms
    yield from rep.showmem


def page_kb_of(rec: Any) -> Optional[int]:
    """The page size in KiB a show_mem block printed: the order-0 block size
    of its buddy lines (64 on a ppc64 kernel with 64 KiB pages)."""
    for b in rec.buddy:
        if b.block_kb:
            return b.block_kb[0]
    return None


def cause_header(rep: "allocreport.AllocReport") -> Optional[kmsg.OopsHeader]:
    """The oops/BUG/panic header that names the cause: the first one that is
    not a WARNING or a SLUB report (the same choice as
    :func:`~crashext.analysis.system.panic_string`).

    x86 page faults print two headers for one event: ``BUG: unable to handle
    kernel NULL pointer dereference`` and, a few lines on, ``Oops: 0000 [#1]``
    (arch/x86/mm/fault.c show_fault_oops() then die()); the task, RIP and call
    trace follow the second.  When the first has no RIP, those of the next
    header within a few lines complete it."""
    idx = next((i for i, h in enumerate(rep.oops) if h.kind not in NOT_FATAL), None)
    if idx is None:
        return None
    h = rep.oops[idx]
    if h.rip_func is None and idx + 1 < len(rep.oops):
        nxt = rep.oops[idx + 1]
        if nxt.kind == "oops" and nxt.rip_func and 0 <= nxt.line - h.line <= _SAME_EVENT_LINES:
            h = dataclasses.replace(h, rip=nxt.rip, rip_func=nxt.rip_func, comm=nxt.comm,
                                    pid=nxt.pid, release=nxt.release or h.release, cpu=nxt.cpu,
                                    rip_pc=nxt.rip_pc, trace=nxt.trace or h.trace)
    return h


#: lines between "BUG: unable to handle ..." and its "Oops:" line (PGD/P4D/PUD/PMD
#: lines and a blank one in between on 4.13)
_SAME_EVENT_LINES = 12


def allocation_failure(view: "allocreport.FailureView") -> Dict[str, Any]:
    """One failure of the shared analysis as triage shows and matches it."""
    r = view.record
    return {"time": r.ts, "comm": r.comm, "pid": r.pid, "cpu": r.cpu, "kind": r.kind,
            "order": r.order, "size": r.size, "allocated": r.allocated,
            "mode": None if r.mode is None else f"{r.mode:#x}",
            "flags": "|".join(view.decoded) if view.decoded else None,
            "gfp_table": view.gfp_table, "caller": view.caller, "caller_why": view.caller_why,
            "frames": [panic.frame_from_log(fr) for fr in r.trace]}


def zone_summary(view: "allocreport.FailureView") -> Dict[str, Any]:
    """The allocfail watermark verdicts of one failure, per zone, and what they add up to.

    A zone is held back by lowmem_reserve[] for this request's class zone
    when its check fails with the reserve and passes without it (the exact
    rule: :func:`crashext.analysis.watermark.held_back_by_reserve`, the
    verdict's ``lowmem_reserve_held``); one that fails at a higher order --
    or, without the reserve, still fails at a higher order -- has the
    memory but not in large enough blocks (fragmentation); the rest are
    short of memory.  ``held_back`` names the zones held back.
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
            bare = d.get("without_reserve") or {}
            row["reserved"] = bool(d.get("lowmem_reserve_held"))
            # the order the check fails at once the reserve is out of the way
            row["failed_order_without_reserve"] = (
                None if row["reserved"] else bare.get("failed_order", d["failed_order"]))
            failing.append(row)
        out["zones"].append(row)
    usable = len(out["zones"])
    frag = [x["zone"] for x in failing
            if x["failed_order_without_reserve"] not in (0, None)]
    held = [x["zone"] for x in failing if x["reserved"]]
    out["held_back"] = held
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
        # the class the knowledge base and the diagnosis use (kb.ZONE_VERDICTS)
        out["class"] = ("fragmentation" if out["fragmentation"] else
                        "lowmem_reserve" if held and not short and not frag else "short")
    else:
        out["conclusion"] = (f"{usable - len(failing)} of {usable} usable zones pass the min "
                             f"watermark for order {r.order} as printed; the failure was "
                             "transient or limited by the allocation context")
        out["fragmentation"] = False
        out["class"] = "transient"
    return out
