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
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import kb as kbmod
from ..errors import CrashextError, InputError
from ..kernel.target import LogRecord, Target
from . import panic as panicmod

__all__ = ["triage", "read_log_file", "parse_log_text", "log_allocation_failures",
           "log_oops", "log_system", "zone_verdicts", "evaluate", "Evidence",
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


# ---------------------------------------------------------------------------
# The kernel log as text.
#
# Adapters: the shared log parser (crashext/sources/, crashext/analysis/
# allocfail.py) is being written; until it lands these small functions read
# what triage needs.  Formats: printk's "[seconds.micro] text" prefix
# (kernel/printk/printk.c), syslog lines "Mon DD HH:MM:SS host kernel: ..."
# ---------------------------------------------------------------------------

_TS = re.compile(r"^\s*\[\s*(?P<ts>\d+\.\d+)\]\s?(?P<text>.*)$")
_SYSLOG = re.compile(r"^[A-Z][a-z]{2}\s+\d+\s+\d\d:\d\d:\d\d\s+\S+\s+kernel:\s?(?P<text>.*)$")
_KMSG_PRI = re.compile(r"^<\d+>")


def parse_log_text(text: str) -> List[LogRecord]:
    """Kernel log lines as (seconds or None, text)."""
    out: List[LogRecord] = []
    for raw in text.splitlines():
        line = _KMSG_PRI.sub("", raw.rstrip("\r\n"))
        m = _SYSLOG.match(line)
        if m:
            line = m.group("text")
        m = _TS.match(line)
        if m:
            out.append((float(m.group("ts")), m.group("text")))
        elif line.strip():
            out.append((None, line))
    return out


def read_log_file(path: str) -> List[LogRecord]:
    """Read a dmesg / vmcore-dmesg.txt / syslog file; InputError with one line if unusable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a kernel log") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise InputError(f"{path}: empty file, not a kernel log")
    if b"\0" in data[:4096]:
        raise InputError(f"{path}: binary data, not a kernel log (a vmcore? use -c VMCORE -s VMLINUX)")
    records = parse_log_text(data.decode("utf-8", "replace"))
    if not any(ts is not None for ts, _ in records):
        raise InputError(f"{path}: no kernel log lines ('[seconds] text' or syslog "
                         "'... kernel: text') found")
    return records


_FUNC_SUFFIX = re.compile(r"\.(?:isra|constprop|part|cold|lto_priv|llvm)(?:\.\d+)*$")


def _norm_func(name: Optional[str]) -> Optional[str]:
    """Compiler clones (``online_css.isra.9``, ``foo.cold``) are the function itself."""
    return _FUNC_SUFFIX.sub("", name) if name else name


# "[<ffffffff811f0654>] __mem_cgroup_free+0x224/0x240" (3.10) or
# " ? __mem_cgroup_free+0x224/0x240 [mod]" (4.x+ without addresses)
_FRAME = re.compile(r"^\s*(?:\[<(?P<pc>[0-9a-f]+)>\]\s*)?(?P<unrel>\?\s+)?"
                    r"(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
                    r"(?:\s+\[(?P<mod>[^\]]+)\])?\s*$")
_CPU_LINE = re.compile(r"CPU:\s*(?P<cpu>\d+)\s+PID:\s*(?P<pid>\d+)\s+Comm:\s*(?P<comm>.+?)\s+"
                       r"(?:Tainted|Not tainted)(?:.*?\s(?P<rel>\d+\.\d+\.\d+\S*)\s+#)?")
# 3.10: "RIP: 0010:[<ffffffff81324031>]  [<ffffffff81324031>] ida_simple_remove+0x41/0x50"
# 4.x+: "RIP: 0010:ida_simple_remove+0x41/0x50"
_RIP = re.compile(r"RIP:\s*(?:[0-9a-f]{4}:)?(?:\[<(?P<pc>[0-9a-f]+)>\]\s*(?:\[<[0-9a-f]+>\]\s*)?)?"
                  r"(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)")
_ALLOCFAIL = re.compile(r"^(?P<comm>.+?): page allocation failure: order:(?P<order>\d+), "
                        r"mode:(?P<mode>0x[0-9a-f]+)(?:\((?P<flags>[^)]*)\))?")
_ZONE = re.compile(r"^Node (?P<node>\d+) (?P<zone>\w+) free:(?P<free>\d+)kB min:(?P<min>\d+)kB "
                   r"low:(?P<low>\d+)kB high:(?P<high>\d+)kB")
_RESERVE = re.compile(r"^lowmem_reserve\[\]:(?P<vals>(?:\s+\d+)+)\s*$")
_BUDDY = re.compile(r"^Node (?P<node>\d+) (?P<zone>\w+): (?P<body>.*?)= (?P<total>\d+)kB\s*$")
_BUDDY_ITEM = re.compile(r"(\d+)\*(\d+)kB")
_PAGES_RAM = re.compile(r"^(?P<n>\d+) pages RAM\s*$")
_BANNER = re.compile(r"Linux version (?P<rel>\S+)")
_MACHINE = re.compile(r"^Hardware name: (?P<hw>.+)$")


def _frames_after(records: Sequence[LogRecord], start: int, limit: int = 80
                  ) -> Tuple[List[Dict[str, Any]], int]:
    """Call Trace frames after index ``start``; returns (frames, index after)."""
    frames: List[Dict[str, Any]] = []
    i = start
    in_trace = False
    while i < len(records) and i < start + limit:
        text = records[i][1]
        if "Call Trace:" in text:
            if in_trace and frames:
                break
            in_trace = True
        elif in_trace:
            m = _FRAME.match(text)
            if m:
                frames.append({"function": m.group("func"), "offset": int(m.group("off"), 16),
                               "size": int(m.group("size"), 16),
                               "pc": int(m.group("pc"), 16) if m.group("pc") else None,
                               "module": m.group("mod"), "reliable": not m.group("unrel"),
                               "file": None, "line": None, "exception": False})
            elif text.strip() in ("<IRQ>", "</IRQ>", "<TASK>", "</TASK>", "<NMI>", "</NMI>", "<EOI>"):
                pass
            elif frames:
                break
        i += 1
    return frames, i


def log_allocation_failures(records: Sequence[LogRecord]) -> List[Dict[str, Any]]:
    """Every "page allocation failure" report: who, order, mode, frames, zones.

    ``zones`` has per zone (in the order Mem-Info prints them, i.e. zone
    index order) free/min/low/high in kB, ``lowmem_reserve`` in pages and
    ``nr_free`` (free blocks per order) with ``block_kb`` per order.
    """
    out = []
    idx = [i for i, (_ts, t) in enumerate(records) if _ALLOCFAIL.search(t)]
    for n, i in enumerate(idx):
        ts, text = records[i]
        m = _ALLOCFAIL.search(text)
        end = idx[n + 1] if n + 1 < len(idx) else len(records)
        fail: Dict[str, Any] = {"time": ts, "comm": m.group("comm").strip(),
                                "order": int(m.group("order")), "mode": m.group("mode"),
                                "flags": m.group("flags"), "pid": None, "cpu": None,
                                "frames": [], "zones": [], "line": text}
        for j in range(i + 1, min(end, i + 4)):
            c = _CPU_LINE.search(records[j][1])
            if c:
                fail.update(pid=int(c.group("pid")), cpu=int(c.group("cpu")))
                break
        fail["frames"], after = _frames_after(records, i + 1)
        zones: Dict[Tuple[int, str], Dict[str, Any]] = {}
        last = None
        for j in range(after, min(end, after + 200)):
            t = records[j][1].strip()
            z = _ZONE.match(t)
            if z:
                key = (int(z.group("node")), z.group("zone"))
                last = zones.setdefault(key, {"node": key[0], "zone": key[1]})
                last.update({k: int(z.group(k)) for k in ("free", "min", "low", "high")})
                continue
            r = _RESERVE.match(t)
            if r and last is not None and "lowmem_reserve" not in last:
                last["lowmem_reserve"] = [int(v) for v in r.group("vals").split()]
                continue
            b = _BUDDY.match(t)
            if b:
                key = (int(b.group("node")), b.group("zone"))
                items = _BUDDY_ITEM.findall(b.group("body"))
                zz = zones.setdefault(key, {"node": key[0], "zone": key[1]})
                zz["nr_free"] = [int(cnt) for cnt, _kb in items]
                zz["block_kb"] = [int(kb) for _cnt, kb in items]
                zz["buddy_total_kb"] = int(b.group("total"))
                continue
            if "cut here" in t or _ALLOCFAIL.search(t):
                break
        fail["zones"] = list(zones.values())
        out.append(fail)
    return out


def log_oops(records: Sequence[LogRecord]) -> Optional[Dict[str, Any]]:
    """The first oops/BUG of the log: its task line, RIP and call trace."""
    start = None
    for i, (_ts, text) in enumerate(records):
        if re.search(r"kernel BUG at |BUG: unable to handle|BUG: kernel NULL pointer|"
                     r"general protection fault|Oops: |Kernel panic - not syncing", text):
            start = i
            break
    if start is None:
        return None
    oops: Dict[str, Any] = {"time": records[start][0], "pid": None, "comm": None, "cpu": None,
                            "rip_function": None, "rip_offset": None, "rip_size": None,
                            "rip_pc": None, "frames": [], "release": None}
    for i in range(start, min(len(records), start + 60)):
        text = records[i][1]
        c = _CPU_LINE.search(text)
        if c and oops["pid"] is None:
            oops.update(pid=int(c.group("pid")), cpu=int(c.group("cpu")),
                        comm=c.group("comm").strip(), release=c.group("rel"))
        r = _RIP.search(text)
        if r and oops["rip_function"] is None:
            oops.update(rip_function=r.group("func"), rip_offset=int(r.group("off"), 16),
                        rip_size=int(r.group("size"), 16),
                        rip_pc=int(r.group("pc"), 16) if r.group("pc") else None)
        if "Call Trace:" in text and not oops["frames"]:
            oops["frames"], _ = _frames_after(records, i)
            break
    return oops


def log_system(records: Sequence[LogRecord]) -> Dict[str, Any]:
    """What the log says about the machine: release, hardware, RAM, last timestamp."""
    out: Dict[str, Any] = {"release": None, "machine": None, "memory_bytes": None,
                           "uptime_seconds": None}
    for ts, text in records:
        if ts is not None:
            out["uptime_seconds"] = ts
        if out["release"] is None:
            m = _BANNER.search(text) or _CPU_LINE.search(text)
            if m and m.groupdict().get("rel"):
                out["release"] = m.group("rel")
        m = _MACHINE.match(text.strip())
        if m and out["machine"] is None:
            out["machine"] = m.group("hw")
        m = _PAGES_RAM.match(text.strip())
        if m:
            # "N pages RAM" (lib/show_mem.c) counts pages of PAGE_SIZE; x86_64: 4 KiB
            out["memory_bytes"] = int(m.group("n")) * 4096
    return out


# ---------------------------------------------------------------------------
# Zone verdicts of a logged allocation failure, by the watermark emulation.
# ---------------------------------------------------------------------------

# Zone modifier bits of the gfp mask, the same from 2.6 through 6.x
# (include/linux/gfp.h: ___GFP_DMA 0x01, ___GFP_HIGHMEM 0x02, ___GFP_DMA32
# 0x04, ___GFP_MOVABLE 0x08) and __GFP_HIGH 0x20.
_GFP_DMA, _GFP_HIGHMEM, _GFP_DMA32, _GFP_MOVABLE, _GFP_HIGH = 0x01, 0x02, 0x04, 0x08, 0x20


def _highest_zone(mode: int, names: List[str]) -> Optional[str]:
    if mode & _GFP_DMA:
        want = "DMA"
    elif mode & _GFP_DMA32:
        want = "DMA32"
    elif mode & _GFP_MOVABLE and mode & _GFP_HIGHMEM:
        want = "Movable"
    elif mode & _GFP_HIGHMEM:
        want = "HighMem"
    else:
        want = "Normal"
    if want in names:
        return want
    # a zone the machine lacks: the highest one below it that exists
    order = ["DMA", "DMA32", "Normal", "HighMem", "Movable"]
    for z in reversed(order[:order.index(want) + 1]):
        if z in names:
            return z
    return None


def zone_verdicts(fail: Dict[str, Any], release: Optional[str]) -> Dict[str, Any]:
    """Would each zone the failed request may use pass its min watermark?

    Uses :mod:`crashext.analysis.watermark` (the kernel generation's
    ``__zone_watermark_ok``) on the numbers the failure report printed.
    """
    from . import watermark as wm
    out: Dict[str, Any] = {"order": fail["order"], "zones": [], "conclusion": None, "rule": None}
    zones = [z for z in fail["zones"] if {"free", "min", "nr_free", "lowmem_reserve"} <= set(z)]
    if not zones:
        raise InputError("the failure report has no complete zone and buddy lines")
    rule = wm.rule_for_release(release) if release else "4.4"
    out["rule"] = rule
    if not release:
        out["rule_note"] = "kernel release unknown; the 4.4+ rule was assumed"
    mode = int(fail["mode"], 16)
    names = [z["zone"] for z in zones]
    top = _highest_zone(mode, names)
    top_idx = names.index(top) if top else len(names) - 1
    failing = []
    for idx, z in enumerate(zones):
        if idx > top_idx:
            continue
        kb = z["block_kb"][0] if z.get("block_kb") else 4
        pages = lambda v: v // kb  # noqa: E731  (kB -> pages of this zone's page size)
        st = wm.ZoneState(node=z["node"], name=z["zone"], free_pages=pages(z["free"]),
                          min=pages(z["min"]), low=pages(z["low"]), high=pages(z["high"]),
                          lowmem_reserve=z["lowmem_reserve"], nr_free=z["nr_free"], index=idx)
        cz = min(top_idx, len(z["lowmem_reserve"]) - 1)
        v = wm.watermark_ok(st, fail["order"], "min", cz, rule, high=bool(mode & _GFP_HIGH))
        largest = max((o for o, n in enumerate(z["nr_free"]) if n), default=None)
        row = {"node": z["node"], "zone": z["zone"], "ok": v.ok, "check": v.check,
               "failed_order": v.failed_order, "reason": v.reason,
               "free_kb": z["free"], "min_kb": z["min"], "largest_free_order": largest}
        out["zones"].append(row)
        if not v.ok:
            failing.append(row)
    usable = len(out["zones"])
    for r in failing:
        # order-0 test failed with free memory above min: the zone is held
        # back for requests of higher zones by lowmem_reserve[] (not short)
        r["reserved"] = r["check"] == "watermark" and r["free_kb"] > r["min_kb"]
    frag = [r["zone"] for r in failing if r["failed_order"] not in (0, None)]
    held = [r["zone"] for r in failing if r.get("reserved")]
    short = [r["zone"] for r in failing if r["zone"] not in frag and r["zone"] not in held]
    if usable and len(failing) == usable:
        parts = []
        if frag:
            parts.append(f"{', '.join(frag)}: free memory above min but too little of it in "
                         f"blocks of order >= {fail['order']} (fragmentation)")
        if held:
            parts.append(f"{', '.join(held)}: held back by lowmem_reserve for this request's zone")
        if short:
            parts.append(f"{', '.join(short)}: free memory below the min watermark")
        out["conclusion"] = (f"order-{fail['order']} request fails the min watermark in all "
                             f"{usable} zones it may use; " + "; ".join(parts))
        out["fragmentation"] = bool(frag) and not short
    elif usable:
        out["conclusion"] = (f"{usable - len(failing)} of {usable} usable zones pass the min "
                             f"watermark for order {fail['order']} now; the failure was transient "
                             "or limited by the allocation context")
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
        self.log_lines: Optional[List[str]] = None
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
        if ev.log_lines is None:
            els.append(_el(label, STATUS_UNKNOWN, ev.log_why, lp.weight, lp.required, "log"))
            continue
        if lp.kind == "regex":
            hit = next((ln for ln in ev.log_lines if re.search(lp.pattern, ln)), None)
            els.append(_el(label, STATUS_MATCHED if hit else STATUS_UNMATCHED,
                           hit.strip()[:160] if hit else f"no line matches /{lp.pattern}/",
                           lp.weight, lp.required, "log"))
        else:  # allocfail
            found = None
            for f in ev.allocfails or []:
                if lp.min_order is not None and f["order"] < lp.min_order:
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


def triage(target: Optional[Target] = None, log_records: Optional[List[LogRecord]] = None,
           crash_text: Optional[str] = None, crash_name: str = "crash log",
           kb_dirs: Optional[Sequence[str]] = None,
           entries: Optional[List["kbmod.Entry"]] = None) -> Dict[str, Any]:
    """The triage report of whatever is given (at least one source)."""
    if target is None and log_records is None and crash_text is None:
        raise InputError("nothing to triage: give a dump (-c VMCORE -s VMLINUX), --log FILE "
                         "or --crash-log FILE")
    if entries is None:
        entries = kbmod.load_kb(kb_dirs)
    errors: Dict[str, str] = {}
    sources = []
    if target is not None:
        sources.append(target.source)
    if log_records is not None:
        sources.append("kernel log")
    if crash_text is not None:
        sources.append(crash_name)

    # the kernel log: the given text, else the dump's own
    records = log_records
    if records is None and target is not None and not target.is_live:
        records, why = _section(lambda: list(target.log_records()))
        if why:
            errors["log"] = f"cannot read the dump's kernel log: {why}"

    session = None
    if crash_text is not None:
        session = panicmod.parse_crash_session(crash_text, crash_name)

    # -- system ------------------------------------------------------------
    system: Dict[str, Any] = {"release": None, "machine": None, "cpus": None,
                              "memory_bytes": None, "uptime": None, "panic_time": None,
                              "panic": None, "nodename": None, "sources": {}}
    if records is not None:
        ls, why = _section(log_system, records)
        if ls:
            for k in ("release", "machine", "memory_bytes"):
                if ls[k] is not None:
                    system[k] = ls[k]
                    system["sources"][k] = "log"
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
    pan = None
    oops = None
    if records is not None:
        oops, why = _section(log_oops, records)
        if why:
            errors["panic.log"] = why
    if target is not None and not target.is_live:
        pan, why = _section(panicmod.panic_from_target, target, records)
        if why:
            errors["panic"] = why
    if pan is None and session is not None:
        pan = panicmod.panic_from_crash_session(session)
    elif pan is not None and session is not None:
        extra = panicmod.panic_from_crash_session(session)
        pan["crash_log"] = {k: extra[k] for k in ("panic", "pid", "comm", "cpu", "rip")}
        if pan.get("rip") and extra.get("rip") and not pan["rip"].get("file"):
            pan["rip"]["file"], pan["rip"]["line"] = extra["rip"]["file"], extra["rip"]["line"]
    if pan is None and records is not None:
        pmsg = panicmod.panic_message(records)
        pan = panicmod.panic_from_oops(oops, pmsg)
    if pan is not None and session is not None and pan["source"] == "crash-log" and oops:
        pan["log"] = {"pid": oops["pid"], "comm": oops["comm"], "cpu": oops["cpu"],
                      "rip_function": oops["rip_function"]}
    if pan is not None:
        if pan.get("panic") is None and records is not None:
            pan["panic"] = panicmod.panic_message(records)
        if pan.get("time") is None and oops and oops.get("time") is not None:
            pan["time"] = oops["time"]
        system["panic"] = pan.get("panic")
        if system["panic_time"] is None and pan.get("time") is not None:
            system["panic_time"] = f"{pan['time']:.6f} s after boot"
            system["sources"]["panic_time"] = "log"

    # -- memory ---------------------------------------------------------------
    memory: Dict[str, Any] = {"allocation_failures": [], "zone_verdicts": [], "memcg": None,
                              "errors": {}}
    fails = None
    if records is not None:
        fails, why = _section(log_allocation_failures, records)
        if why:
            memory["errors"]["allocation_failures"] = why
        for f in fails or []:
            memory["allocation_failures"].append({k: f[k] for k in (
                "time", "comm", "pid", "cpu", "order", "mode", "flags", "frames")})
            zv, why = _section(zone_verdicts, f, system["release"])
            if why:
                memory["errors"][f"zone_verdicts[{len(memory['zone_verdicts'])}]"] = why
                zv = {"order": f["order"], "zones": [], "conclusion": None, "error": why}
            zv["comm"] = f["comm"]
            zv["time"] = f["time"]
            memory["zone_verdicts"].append(zv)
    else:
        memory["errors"]["allocation_failures"] = "no kernel log"
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
        ev.panic_known = ev.panic is not None or records is not None
        if pan.get("rip") and pan["rip"].get("function"):
            ev.rip_function = pan["rip"]["function"]
            ev.rip_known = True
        elif pan.get("frames"):
            ev.rip_known = True  # a backtrace without an exception frame: no exception RIP
        if pan.get("frames"):
            ev.frames = [f["function"] for f in pan["frames"] if f.get("function")]
    if records is not None:
        ev.log_lines = [t for _ts, t in records]
        ev.allocfails = fails or []
    elif target is not None:
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


def _fmt_uptime(secs: float) -> str:
    secs = int(secs)
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d} days, " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"
