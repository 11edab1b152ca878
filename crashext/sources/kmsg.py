"""Records in a kernel log: allocation failures, Mem-Info, zones, buddy lines,
OOM-killer reports, SLUB failures, oops/BUG headers.

Input is :class:`~crashext.sources.logs.LogLine` from any source; output is
plain dataclasses, each with the input line range it came from.  One pass,
streaming: :func:`extract` yields a record once the lines after it show it
has ended.  Real logs are messy -- wrapped, truncated, interleaved with other
messages -- so a record missing parts is returned with ``partial`` set and
``problems`` saying what is missing, never an exception.

Formats (mm/page_alloc.c, lib/show_mem.c, mm/oom_kill.c, mm/slub.c,
lib/dump_stack.c of each version):

- ``warn_alloc_failed()`` (<= v4.9): ``%s: page allocation failure: order:%d,
  mode:0x%x`` (3.10), ``mode:%#x(%pGg)`` (v4.5+);
  ``warn_alloc()`` (v4.10+): ``%s: %pV, mode:%#x(%pGg), nodemask=%*pbl``
  with ``%pV`` "page allocation failure: order:%u" or "vmalloc:
  allocation failure: %lu bytes" / "vmalloc: allocation failure, allocated
  %ld of %ld bytes" / "vmalloc error: size %lu, ..." (v5.x+),
  and since v4.16 ``,cpuset=%s,mems_allowed=%*pbl`` on the same line.
- ``dump_stack()``: ``CPU: %d PID: %d Comm: %.20s %s %s %.*s`` (taint,
  release, version), ``Hardware name:``, ``Call Trace:`` then one frame per
  line, ``[<addr>] ? func+0x1/0x2`` (<= 4.x) or `` ? func+0x1/0x2 [mod]``.
- ``show_mem()`` / ``show_free_areas()``: ``Mem-Info:``, the global counters
  (``key:value`` over several lines), per node and per zone lines ``Node %d
  %s free:%lukB min:%lukB ...`` each followed by ``lowmem_reserve[]: ...``,
  then per zone ``Node %d %s: N*4kB (UME) ... = %lukB`` (the migrate-type
  letters of show_migration_types(): U unmovable, M movable, E reclaimable,
  H high-atomic (R "reserve" before v4.4), C CMA, I isolate), hugepages,
  swap and ``N pages RAM`` / ``N pages reserved``.
- ``dump_header()`` (OOM): ``%s invoked oom-killer: gfp_mask=%#x(%pGg),
  [nodemask=..., ]order=%d, oom_score_adj=%hd``; ``Killed process %d (%s)``.
- ``slab_out_of_memory()``: ``SLUB: Unable to allocate memory on node %d,
  gfp=%#x(%pGg)`` (``(gfp=0x%x)`` in 3.10), then ``  cache: %s, object
  size: %u, buffer size: %u, default order: %u, min order: %u`` and ``  node
  %d: slabs: %ld, objs: %ld, free: %ld``.

Oops/BUG/WARNING/panic headers and the frame format are read by
:mod:`crashext.sources.oops`; :func:`extract` yields its headers too.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from .logs import LogLine
from . import showmem
# oops headers and the frame format live in oops.py (re-exported here)
from .oops import CPU_LINE, NOT_FATAL, Frame, OopsHeader, OopsTracker, iter_oops, parse_frame
from .showmem import (MIGRATE_LETTERS, BuddyLine, MemInfo, ShowMem, Task, ZoneLine,
                      parse_buddy_line, parse_zone_line)

__all__ = ["Frame", "ZoneLine", "BuddyLine", "MemInfo", "AllocFailure", "OomReport",
           "ShowMem", "Task", "SlubFailure", "OopsHeader", "extract", "iter_oops", "parse_frame",
           "parse_zone_line", "parse_buddy_line", "record_when", "MIGRATE_LETTERS",
           "vmalloc_size_text", "unwrap", "NOT_FATAL"]


def vmalloc_size_text(size: Optional[int], allocated: Optional[int]) -> str:
    """What a vmalloc failure's header says of its size, in words: ``20480
    bytes``, ``8192 of 20480 bytes``, or, where the kernel printed only what
    it had allocated (``vmalloc error: size N, ... failed to allocate
    pages``), ``0 bytes allocated, size not printed``."""
    if allocated is None:
        return "size not printed" if size is None else f"{size} bytes"
    if size is None:
        return f"{allocated} bytes allocated, size not printed"
    return f"{allocated} of {size} bytes"


@dataclass
class AllocFailure:
    kind: str                      # "page" | "vmalloc"
    comm: str
    order: Optional[int]
    mode: Optional[int]
    mode_names: Optional[List[str]]  # as printed by the kernel, None if not printed
    nodemask: Optional[str] = None
    cpuset: Optional[str] = None
    mems_allowed: Optional[str] = None
    size: Optional[int] = None     # vmalloc bytes
    allocated: Optional[int] = None  # vmalloc bytes the area got before a page failed
    header: str = ""
    ts: Optional[float] = None
    stamp: Optional[str] = None
    cpu: Optional[int] = None
    pid: Optional[int] = None
    task_comm: Optional[str] = None
    release: Optional[str] = None
    uts_version: Optional[str] = None  # after the release on the CPU: line ("#1 Debian 6.1.192-3")
    tainted: Optional[str] = None
    hardware: Optional[str] = None
    trace: List[Frame] = field(default_factory=list)
    meminfo: Optional[MemInfo] = None
    node_lines: List[Dict[str, Any]] = field(default_factory=list)
    zones: List[ZoneLine] = field(default_factory=list)
    buddy: List[BuddyLine] = field(default_factory=list)
    extra: Dict[str, int] = field(default_factory=dict)   # pages RAM, pages reserved...
    lines: Tuple[int, int] = (0, 0)
    foreign: int = 0               # unrelated lines seen inside the record
    partial: bool = False
    problems: List[str] = field(default_factory=list)


@dataclass
class OomReport:
    comm: Optional[str]            # None: the header printed no task name (2.6.16)
    gfp: Optional[int]
    gfp_names: Optional[List[str]]
    order: Optional[int]
    oom_score_adj: Optional[int]
    header: str = ""
    ts: Optional[float] = None
    stamp: Optional[str] = None
    release: Optional[str] = None
    uts_version: Optional[str] = None
    pid: Optional[int] = None
    memcg: bool = False
    killed_pid: Optional[int] = None
    killed_comm: Optional[str] = None
    trace: List[Frame] = field(default_factory=list)
    lines: Tuple[int, int] = (0, 0)
    partial: bool = False
    problems: List[str] = field(default_factory=list)
    nodemask: Optional[str] = None
    cpu: Optional[int] = None
    task_comm: Optional[str] = None
    hardware: Optional[str] = None
    # the kill: "total-vm", "anon-rss", "file-rss", "shmem-rss", "pgtables" in kB
    killed_kb: Dict[str, int] = field(default_factory=dict)
    constraint: Optional[Dict[str, str]] = None   # oom-kill:constraint=... (v4.19+)
    # a manual OOM kill (SysRq-f, drivers/tty/sysrq.c moom_callback()): no
    # allocation asked for memory, so there is no request to check.  Since the
    # patch "mm, oom: pass an oom order of -1 when triggered by sysrq" (David
    # Rientjes; in the mm tree's since-4.2 branch, its commit id and first
    # release not confirmed here) its header says "order=-1" (mm/oom_kill.c
    # is_sysrq_oom()); before, "order=0" after "SysRq : Manual OOM execution"
    sysrq: bool = False
    memcg_counters: Dict[str, Dict[str, int]] = field(default_factory=dict)
    memcg_path: Optional[str] = None
    task_columns: List[str] = field(default_factory=list)
    tasks: List[Task] = field(default_factory=list)   # the largest by rss (showmem.TASKS_KEPT)
    tasks_seen: int = 0
    # show_mem() of a global or cpuset OOM (a memcg OOM prints none)
    meminfo: Optional[MemInfo] = None
    node_lines: List[Dict[str, Any]] = field(default_factory=list)
    zones: List[ZoneLine] = field(default_factory=list)
    buddy: List[BuddyLine] = field(default_factory=list)
    extra: Dict[str, int] = field(default_factory=dict)


@dataclass
class SlubFailure:
    node: int
    gfp: int
    gfp_names: Optional[List[str]]
    cache: Optional[str] = None
    object_size: Optional[int] = None
    buffer_size: Optional[int] = None
    default_order: Optional[int] = None
    min_order: Optional[int] = None
    nodes: List[Dict[str, int]] = field(default_factory=list)
    ts: Optional[float] = None
    stamp: Optional[str] = None
    lines: Tuple[int, int] = (0, 0)
    partial: bool = False
    problems: List[str] = field(default_factory=list)


Record = Union[AllocFailure, OomReport, ShowMem, SlubFailure, OopsHeader]

# -- line patterns -------------------------------------------------------------
_ALLOC = re.compile(
    r"^\s*(?P<comm>.{1,40}?): (?P<what>page allocation failure[.:] order:(?P<order>\d+)"
    r"|vmalloc: allocation failure: (?P<vsize>\d+) bytes"
    r"|vmalloc error: size (?P<vsize2>\d+)[^,]*(?:, page order (?P<vorder>\d+))?[^,]*(?:,[^,]*)*?)"
    r"(?:, mode:?0x(?P<mode>[0-9a-fA-F]+)(?:\((?P<names>[^)]*)\))?)?"
    r"(?:, nodemask=(?P<nodemask>\([^)]*\)|[^,\s]*))?"
    r"(?:,\s*cpuset=(?P<cpuset>[^,]*))?(?:,\s*mems_allowed=(?P<mems>\S*))?\s*$")
# mm/vmalloc.c __vmalloc_area_node(): the area's pages could not all be
# allocated.  warn_alloc() (v4.10+) prints it on one line after the task name;
# the area was being filled one order-0 page at a time (alloc_page() /
# alloc_pages_node(node, mask, 0)), and "of %ld" is area->size, which counts
# the guard page (one page, unless VM_NO_GUARD).  Before v4.10
# warn_alloc_failed() printed it alone, then "page allocation failure:
# order:0" (that line is the record there).  Later kernels print "vmalloc
# error: size ..." instead (_ALLOC above).
_VMALLOC_PARTIAL = re.compile(
    r"^\s*(?P<comm>.{1,40}?): vmalloc: allocation failure, allocated (?P<got>\d+) of "
    r"(?P<size>\d+) bytes(?:, mode:0x(?P<mode>[0-9a-fA-F]+)(?:\((?P<names>[^)]*)\))?)?"
    r"(?:, nodemask=(?P<nodemask>\([^)]*\)|[^,\s]*))?"
    r"(?:,\s*cpuset=(?P<cpuset>[^,]*))?(?:,\s*mems_allowed=(?P<mems>\S*))?\s*$")
# 2.6.16's out_of_memory() printed no task name: "oom-killer: gfp_mask=0x201d2,
# order=0" (lkml-2.6.16-oom-showmem.log); "order=-1" is a manual OOM kill
# (see OomReport.sysrq)
_OOM = re.compile(
    r"^\s*(?:(?P<comm>.{1,40}?) invoked )?oom-killer: gfp_mask=0x(?P<gfp>[0-9a-fA-F]+)"
    r"(?:\((?P<names>[^)]*)\))?(?:, nodemask=(?P<nodemask>[^,]*))?"
    r"(?:, order=(?P<order>-?\d+))?(?:, oom_adj=-?\d+)?(?:, oom_score_adj=(?P<adj>-?\d+))?")
_SLUB = re.compile(r"^\s*SLUB: Unable to allocate memory on node (?P<node>-?\d+)"
                   r"(?:,| \()\s*gfp=0x(?P<gfp>[0-9a-fA-F]+)(?:\((?P<names>[^)]*)\))?")
_SLUB_CACHE = re.compile(r"^\s*cache: (?P<cache>[^,]+), object size: (?P<osz>\d+), "
                         r"buffer size: (?P<bsz>\d+), default order: (?P<dord>\d+), "
                         r"min order: (?P<mord>\d+)")
_SLUB_NODE = re.compile(r"^\s*node (?P<node>-?\d+): slabs: (?P<slabs>-?\d+), "
                        r"objs: (?P<objs>-?\d+), free: (?P<free>-?\d+)")
_PID_OLD = re.compile(r"^\s*Pid: (?P<pid>\d+), comm: (?P<comm>.*?) (?P<taint>Not tainted|Tainted: .*?) "
                      r"(?P<rel>\d+\.\d+\S*) #")
_BODY_MISC = re.compile(
    r"^\s*(?:Hardware name:|Workqueue:|Call Trace:|Call trace:|Backtrace:|Stack:|"
    r"<(?:/?IRQ|/?TASK|/?NMI|/?EOI|/?SOFTIRQ)>|Mem-[Ii]nfo:|Node \d+ hugepages_|"
    r"Swap cache stats:|Free swap|Total swap|\S+ cpuset=|cpuset=|mems_allowed=|"
    r"warn_alloc_show_mem|Exception stack|task: |RIP:|RSP:|RAX:|RDX:|RBP:|R\d+:|FS:|CS:|"
    r"DR\d:|CR2:|Code:|ORIG_RAX|Tasks state|active_anon:|active_file:|unevictable:|"
    r"slab_reclaimable:|mapped:|free:|\d+ pages|"
    r"(?:[0-9a-f]{16} ){2,}|(?:[0-9a-f]{8} ){3,}|Function entered at|r\d+:|Pid: |"
    r"Showing busy workqueues|Normal per-cpu:|DMA32? per-cpu:|CPU\s+\d+: hi:)")
_RELEASE = re.compile(r"\s(\d+\.\d+\.\d+\S*)\s+#\d+")
# drivers/tty/sysrq.c: sysrq_handle_showmem's action_msg "Show Memory", printed
# as "SysRq : Show Memory" by older kernels, "sysrq: SysRq : Show Memory" once
# pr_fmt added its prefix, "sysrq: Show Memory" since (the fixture's 6.1)
_SYSRQ_SHOWMEM = re.compile(r"(?:sysrq|SysRq)\s*:\s*Show Memory")



def record_when(rec) -> str:
    """When a record was logged, for tables: seconds since boot, else the
    wall-clock stamp as written, else its line number in the input."""
    if rec.ts is not None:
        return f"{rec.ts:.3f}"
    return rec.stamp or f"line {rec.lines[0]}"


class _Open:
    """The record being read and which part of it we are in."""

    def __init__(self, rec, first: int) -> None:
        self.rec = rec
        self.first = first
        self.last = first
        self.section = "head"      # head, trace, meminfo, zones, buddy, tail
        self.foreign_run = 0
        self.done_tail = False


#: Unrelated lines tolerated inside a record before it is closed.
FOREIGN_LIMIT = 12


def extract(lines: Iterable[LogLine], gate=None) -> Iterator[Record]:
    """All records in ``lines``, in log order, as they end.

    ``gate`` (a :class:`~crashext.sources.logs.Gate`), when given, is kept
    up to date with whether a record is open, so a gated line source can
    skip the lines in between without normalising them.
    """
    cur: Optional[_Open] = None
    oops = OopsTracker()
    moom = -10    # line number of the last "Manual OOM execution" (SysRq-f)

    def close(o: _Open):
        rec = o.rec
        rec.lines = (o.first, o.last)
        if hasattr(rec, "foreign"):
            rec.foreign -= o.foreign_run  # unrelated lines after its last line
        _finish(rec)
        return rec

    for ln in unwrap(lines, gate):
        if gate is not None:
            gate.open = True
        text = ln.text
        # oops headers are independent of the allocation records
        for h in oops.feed(ln):
            yield h

        new = _header(ln)
        if "Manual OOM execution" in text:
            moom = ln.lineno
        elif isinstance(new, OomReport):
            new.sysrq = new.order == -1 or 0 < ln.lineno - moom <= _MOOM_LINES
        if new is not None:
            if cur is not None:
                yield close(cur)
            cur = _Open(new, ln.lineno)
            continue
        if cur is None:
            if showmem.is_showmem_line(text):
                # show_mem() with no failure or OOM header before it
                sm = ShowMem("show_mem", header=text.strip(), ts=ln.ts, stamp=ln.stamp)
                sm.meminfo = MemInfo({}, ln.lineno)
                cur = _Open(sm, ln.lineno)
                cur.section = "meminfo"
                continue
            if gate is not None:
                gate.open = oops.pending is not None
            continue
        if _body(cur, ln):
            cur.last = ln.lineno
            cur.foreign_run = 0
            continue
        if cur.done_tail:
            yield close(cur)
            cur = None
            if gate is not None:
                gate.open = oops.pending is not None
            continue
        cur.foreign_run += 1
        if hasattr(cur.rec, "foreign"):
            cur.rec.foreign += 1
        if cur.foreign_run > FOREIGN_LIMIT:
            yield close(cur)
            cur = None
            if gate is not None:
                gate.open = oops.pending is not None
    if cur is not None:
        yield close(cur)
    yield from oops.flush()


#: lines from "SysRq : Manual OOM execution" to the OOM header it starts
_MOOM_LINES = 3

# A record's first line that a mail, a terminal or a web page wrapped: it
# ends where the kernel's line goes on (after a comma, "allocated", "at",
# "for" or "on": "...: vmalloc: allocation failure, allocated" then "1027440640
# of 1879052288 bytes, mode:0x6000c0(GFP_KERNEL)," then "nodemask=(null)";
# "Unable to handle kernel NULL pointer dereference at" then "virtual address
# 0000000000000188"), and the lines after it, without a prefix of their own,
# hold the rest.  The kernel never ends these lines so.
_WRAP_HEADS = ("allocation failure", "vmalloc error", "oom-killer: gfp_mask",
               "nable to handle kernel", "NULL pointer dereference")
_WRAP_END = re.compile(r"(?:,|\b(?:allocated|of|at|for|on))\s*\Z")
#: continuation lines joined to one record's first line at most
WRAP_LINES = 4


def _wrapped(text: str) -> bool:
    end = text[-12:].rstrip()
    return end[-1:] in _WRAP_LAST and _WRAP_END.search(end) is not None \
        and any(h in text for h in _WRAP_HEADS)


_WRAP_LAST = frozenset(",dftrn")   # the last letters _WRAP_END can match


def unwrap(lines: Iterable[LogLine], gate=None) -> Iterator[LogLine]:
    """``lines`` with each wrapped record header (see :data:`_WRAP_HEADS`)
    joined to the continuation lines that finish it (lines without a
    prefix of their own, :attr:`LogLine.cont`), with one space between; the
    joined line keeps the first line's number and time.  While a header is
    held, ``gate`` (if any) is opened, so a gated source passes the next
    line on."""
    held: Optional[LogLine] = None
    joined = 0
    for ln in lines:
        if held is not None:
            if ln.cont and ln.text.strip():
                held = LogLine(held.ts, held.text.rstrip() + " " + ln.text.strip(),
                               held.lineno, held.stamp, held.cont)
                joined += 1
                if joined < WRAP_LINES and _wrapped(held.text):
                    continue
                yield held
                held = None
                continue
            yield held
            held = None
        if _wrapped(ln.text):
            held, joined = ln, 0
            if gate is not None:
                gate.open = True
            continue
        yield ln
    if held is not None:
        yield held


def _header(ln: LogLine):
    text = ln.text
    if "allocation failure" in text or "vmalloc error" in text:
        m = _ALLOC.match(text)
        if m:
            names = m.group("names")
            vsize = m.group("vsize") or m.group("vsize2")
            order = m.group("order") or m.group("vorder")
            allocated = None
            if m.group("vsize2") is not None and "failed to allocate pages" in text:
                # mm/vmalloc.c __vmalloc_area_node ("vmalloc error: size %lu,
                # page order %u, failed to allocate pages", the page order
                # later dropped by "mm/vmalloc: do not output a spurious
                # warning when huge vmalloc() fails"): the size printed is
                # area->nr_pages * PAGE_SIZE, what was allocated before the
                # failure; the size asked for is not printed.  The other
                # "vmalloc error: size" forms (vm_struct allocation, page
                # array, map pages) print the area's size.
                allocated, vsize = int(vsize), None
            return AllocFailure(
                kind="vmalloc" if vsize is not None or allocated is not None else "page",
                comm=m.group("comm").strip(),
                order=int(order) if order is not None else None,
                mode=int(m.group("mode"), 16) if m.group("mode") else None,
                mode_names=(names.split("|") if names else []) if names is not None else None,
                nodemask=m.group("nodemask"), cpuset=m.group("cpuset"),
                mems_allowed=m.group("mems"),
                size=int(vsize) if vsize is not None else None, allocated=allocated,
                header=text.strip(), ts=ln.ts, stamp=ln.stamp)
        v = _vmalloc_partial(ln)
        if v is not None:
            return v
    if "oom-killer: gfp_mask" in text:
        m = _OOM.match(text)
        if m:
            names = m.group("names")
            comm = m.group("comm")
            return OomReport(
                comm=comm.strip() if comm is not None else None, gfp=int(m.group("gfp"), 16),
                gfp_names=(names.split("|") if names else []) if names is not None else None,
                order=int(m.group("order")) if m.group("order") else None,
                oom_score_adj=int(m.group("adj")) if m.group("adj") else None,
                header=text.strip(), ts=ln.ts, stamp=ln.stamp, nodemask=m.group("nodemask"))
    if "Show Memory" in text and _SYSRQ_SHOWMEM.search(text):
        return ShowMem("sysrq", header=text.strip(), ts=ln.ts, stamp=ln.stamp)
    if "SLUB: Unable" in text:
        m = _SLUB.match(text)
        if m:
            names = m.group("names")
            return SlubFailure(int(m.group("node")), int(m.group("gfp"), 16),
                               (names.split("|") if names else []) if names is not None else None,
                               ts=ln.ts, stamp=ln.stamp)
    return None


def _vmalloc_partial(ln: LogLine) -> Optional[AllocFailure]:
    """``comm: vmalloc: allocation failure, allocated X of Y bytes, mode:...``
    as a vmalloc failure of order 0 (see _VMALLOC_PARTIAL)."""
    m = _VMALLOC_PARTIAL.match(ln.text)
    if not m:
        return None
    names = m.group("names")
    return AllocFailure(
        kind="vmalloc", comm=m.group("comm").strip(), order=0,
        mode=int(m.group("mode"), 16) if m.group("mode") else None,
        mode_names=(names.split("|") if names else []) if names is not None else None,
        nodemask=m.group("nodemask"), cpuset=m.group("cpuset"), mems_allowed=m.group("mems"),
        size=int(m.group("size")), allocated=int(m.group("got")),
        header=ln.text.strip(), ts=ln.ts, stamp=ln.stamp)


def _body(o: _Open, ln: LogLine) -> bool:
    """Take ``ln`` into the open record if it belongs there."""
    rec = o.rec
    text = ln.text
    if isinstance(rec, SlubFailure):
        m = _SLUB_CACHE.match(text)
        if m:
            rec.cache = m.group("cache").strip()
            rec.object_size, rec.buffer_size = int(m.group("osz")), int(m.group("bsz"))
            rec.default_order, rec.min_order = int(m.group("dord")), int(m.group("mord"))
            return True
        m = _SLUB_NODE.match(text)
        if m:
            rec.nodes.append({k: int(m.group(k)) for k in ("node", "slabs", "objs", "free")})
            return True
        o.done_tail = True  # anything else ends the SLUB block
        return False
    if isinstance(rec, ShowMem):
        sec = showmem.feed_line(rec, o.section, text, ln.lineno, ln.cont)
        if sec is None:
            if rec.meminfo is not None:
                o.done_tail = True
            return False
        o.section = sec
        if sec == "end":
            o.done_tail = True
        return True
    # both allocation failures and OOM reports carry dump_stack + show_mem
    if "PID:" in text or "Pid:" in text:
        m = CPU_LINE.match(text) or _PID_OLD.match(text)
        if m and getattr(rec, "pid", None) is None:
            rec.pid = int(m.group("pid"))
            rec.cpu = int(m.group("cpu")) if "cpu" in m.groupdict() else None
            rec.task_comm = m.group("comm")
            if isinstance(rec, AllocFailure):
                rec.tainted = m.group("taint")
            rel = m.group("rel")
            if rel is None:
                r = _RELEASE.search(text)
                rel = r.group(1) if r else None
            rec.release = rel
            rec.uts_version = text[m.end() - 1:].strip() or None
            return True
    if text.lstrip().startswith("Hardware name:"):
        rec.hardware = text.split("Hardware name:", 1)[1].strip()
        return True
    if isinstance(rec, OomReport):
        sec = showmem.feed_oom_line(rec, o.section, text, ln.lineno)
        if sec is not None:
            o.section = sec
            if sec == "killed":
                o.done_tail = True
            return True
    fr = parse_frame(text) if "+0x" in text else None
    if fr is not None and o.section in ("head", "trace"):
        o.section = "trace"
        rec.trace.append(fr)
        return True
    sec = showmem.feed_line(rec, o.section, text, ln.lineno, ln.cont)
    if sec is not None:
        if sec == "end":
            if isinstance(rec, AllocFailure):
                o.done_tail = True
            sec = "tail"
        o.section = sec
        return True
    if isinstance(rec, OomReport):
        # the rest of an OOM report: registers, code bytes, continuation lines
        if _BODY_MISC.match(text) or ln.cont or "oom" in text or "rss:" in text:
            return True
        return False
    if _BODY_MISC.match(text):
        return True
    return False


def _finish(rec) -> None:
    """Mark what a record lacks."""
    if isinstance(rec, AllocFailure):
        if rec.mode is None and rec.kind == "page":
            rec.problems.append("no mode printed (truncated header?)")
        if rec.order is None and rec.kind == "page":
            rec.problems.append("no order printed")
        if not rec.trace:
            rec.problems.append("no call trace")
        if rec.release is None:
            rec.problems.append("no CPU/PID/release line")
        showmem.finish_showmem(rec)
        rec.partial = bool(rec.mode is None or not rec.trace or rec.release is None
                           or (rec.meminfo is not None and (not rec.zones or not rec.buddy))
                           or any(b.total_ok is None for b in rec.buddy)
                           or any(z.lowmem_reserve is None for z in rec.zones))
    elif isinstance(rec, OomReport):
        if rec.killed_pid is None:
            rec.problems.append("no 'Killed process' line")
        showmem.finish_showmem(rec)
        rec.tasks.sort(key=lambda t: -(t.rss or 0))
        del rec.tasks[showmem.TASKS_KEPT:]
        rec.partial = rec.killed_pid is None or (
            rec.meminfo is not None and (not rec.zones or not rec.buddy))
    elif isinstance(rec, ShowMem):
        showmem.finish_showmem(rec)
        if rec.meminfo is None:
            rec.problems.append("no Mem-Info block after the trigger")
        rec.partial = rec.meminfo is None or not rec.zones or not rec.buddy \
            or any(b.total_ok is None for b in rec.buddy) \
            or any(z.lowmem_reserve is None for z in rec.zones)
    elif isinstance(rec, SlubFailure):
        if rec.cache is None:
            rec.problems.append("no cache line")
        rec.partial = rec.cache is None
