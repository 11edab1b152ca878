"""The kernel's ``show_mem()`` block and the parts of an OOM-kill report
around it, parsed line by line.

The same Mem-Info block is printed by ``warn_alloc()`` (allocation
failures), ``dump_header()`` (OOM kills, global and cpuset; a memcg OOM
prints the memcg's counters instead), SysRq-m (``sysrq_handle_showmem``)
and other ``show_mem()`` callers.  :func:`feed_line` takes one line into any
record with the show_mem fields (``meminfo``, ``node_lines``, ``zones``,
``buddy``, ``extra``, ``problems``); :mod:`crashext.sources.kmsg` decides
which record a line belongs to.

Formats (lib/show_mem.c, mm/page_alloc.c ``show_free_areas()`` /
mm/show_mem.c since v6.5, mm/oom_kill.c, mm/memcontrol.c of each version):

- ``Mem-Info:``, the global counters (``key:value`` over several lines),
  per node ``Node %d active_anon:%lukB ...``, per zone ``Node %d %s
  free:%lukB boost:%lukB min:%lukB low:%lukB high:%lukB ...`` each followed
  by ``lowmem_reserve[]: ...`` (pages), then per zone ``Node %d %s: N*4kB
  (UME) ... = %lukB`` (migrate-type letters of show_migration_types(): U
  unmovable, M movable, E reclaimable, H high-atomic (R "reserve" before
  v4.4), C CMA, I isolate), hugepages, swap, ``N pages RAM``, ``N pages
  reserved``.
- OOM, dump_header(): ``oom-kill:constraint=%s,nodemask=%*pbl,cpuset=...,
  mems_allowed=...,oom_memcg=...|global_oom,task_memcg=...,task=%s,pid=%d,
  uid=%d`` (since Linux kernel commit ef8444ea01d7 ("mm, oom: reorganize
  the oom report in dump_header") (in v4.19)); the task table ``Tasks state (memory values in
  pages):`` / ``[ pid ]   uid  tgid total_vm      rss ...`` with one
  ``[%7d] %5d %5d %8lu %8lu ...`` row per task (columns per version, read
  from the header line); ``Out of memory: Killed process %d (%s)
  total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB ...``
  (``Memory cgroup out of memory:`` for a memcg OOM; before v4.19 ``Kill
  process %d (%s) score %u or sacrifice child`` then ``Killed process``).
- memcg OOM, mem_cgroup_print_oom_meminfo(): ``memory: usage %llukB, limit
  %llukB, failcnt %lu``, the same for ``memory+swap``/``swap``/``kmem``, then
  ``Memory cgroup stats for %s:`` and its counters.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["ZoneLine", "BuddyLine", "MemInfo", "ShowMem", "Task", "parse_zone_line",
           "parse_buddy_line", "buddy_parts", "parse_constraint", "MIGRATE_LETTERS", "feed_line",
           "feed_oom_line", "finish_showmem", "is_showmem_line", "largest_order_of",
           "TASKS_KEPT"]

#: show_migration_types() letters -> enum migratetype names (mm/page_alloc.c).
MIGRATE_LETTERS = {"U": "MIGRATE_UNMOVABLE", "M": "MIGRATE_MOVABLE",
                   "E": "MIGRATE_RECLAIMABLE", "H": "MIGRATE_HIGHATOMIC",
                   "R": "MIGRATE_RESERVE", "C": "MIGRATE_CMA", "I": "MIGRATE_ISOLATE"}

#: Largest tasks (by rss) kept from an OOM report's task table.
TASKS_KEPT = 10


class Unparsed:
    """The text a :class:`ParsedOnRead` field is parsed from, until read."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class ParsedOnRead:
    """A dataclass field given either its value or :class:`Unparsed` text,
    which ``parse`` turns into the value the first time the field is read.
    Reads, ``==``, ``repr`` and ``asdict`` all see the parsed value; a log
    scan that keeps a record but shows little of it never pays the parse."""

    def __init__(self, parse) -> None:
        self.parse = parse
        self.slot = ""

    def __set_name__(self, owner, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError(self.slot)   # the field has no default
        v = obj.__dict__[self.slot]
        if type(v) is Unparsed:
            v = obj.__dict__[self.slot] = self.parse(v.text)
        return v

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class ZoneLine:
    node: int
    zone: str
    # kB values in kB, counts as counts; parsed from the line when first read
    fields: Dict[str, Union[int, str]] = ParsedOnRead(lambda text: _kv(text))  # type: ignore[assignment]
    lowmem_reserve: Optional[List[int]] = None  # pages
    line: int = 0

    def kb(self, key: str) -> Optional[int]:
        v = self.fields.get(key)
        return v if isinstance(v, int) else None


@dataclass
class BuddyLine:
    node: int
    zone: str
    counts: List[int]              # free blocks per order
    block_kb: List[int]            # block size per order as printed
    types: List[str]               # migrate-type letters per order ("" if none printed)
    total_kb: Optional[int]        # the printed "= NkB"
    computed_kb: int               # sum of counts * size
    total_ok: Optional[bool]       # None when the total was not printed (truncated)
    line: int = 0
    problems: List[str] = field(default_factory=list)


@dataclass
class MemInfo:
    counters: Dict[str, int] = field(default_factory=dict)
    line: int = 0


@dataclass
class Task:
    """One row of an OOM report's task table (memory values in pages)."""

    pid: int
    uid: Optional[int]
    tgid: Optional[int]
    total_vm: Optional[int]
    rss: Optional[int]
    swapents: Optional[int]
    oom_score_adj: Optional[int]
    name: str
    line: int = 0


@dataclass
class ShowMem:
    """A show_mem() dump with no allocation failure or OOM around it
    (SysRq-m, or another caller): the record :mod:`kmsg` returns for it."""

    trigger: str                   # "sysrq" | "show_mem"
    header: str = ""
    ts: Optional[float] = None
    stamp: Optional[str] = None
    meminfo: Optional[MemInfo] = None
    node_lines: List[Dict[str, Any]] = field(default_factory=list)
    zones: List[ZoneLine] = field(default_factory=list)
    buddy: List[BuddyLine] = field(default_factory=list)
    extra: Dict[str, int] = field(default_factory=dict)
    lines: tuple = (0, 0)
    partial: bool = False
    problems: List[str] = field(default_factory=list)


_ZONE = re.compile(r"^\s*(?:Node (?P<node>\d+) )?(?P<zone>DMA32|DMA|Normal|HighMem|Movable|Device)"
                   r" free:(?P<free>\d+)kB")
_NODE_STATS = re.compile(r"^\s*Node (?P<node>\d+) (?:active_anon|inactive_anon):")
_RESERVE = re.compile(r"^\s*lowmem_reserve\[\]:((?:\s+\d+)*)\s*$")
# A buddy line is ``^\s*(?:Node N )?ZONE: (?P<body>(?:\d+\*\d+kB.*?)?)\s*(?:= (?P<total>\d+)kB)?\s*$``;
# as one regex its lazy body costs ~10 us a line, so :func:`buddy_parts` finds
# the same body and total from the head, the first term and the line's end
# (tests/test_meminfo_blocks.py holds the one-regex form and checks they agree).
_BUDDY_HEAD = re.compile(r"^\s*(?:Node (?P<node>\d+) )?(?P<zone>DMA32|DMA|Normal|HighMem|Movable|Device): ")
_BUDDY_FIRST = re.compile(r"\d+\*\d+kB")
_BUDDY_END_TOTAL = re.compile(r".*= (\d+)kB\Z", re.S)
_BUDDY_ONLY_TOTAL = re.compile(r"\s*(?:= (?P<total>\d+)kB)?\s*$")
_BUDDY_TERM = re.compile(r"(\d+)\*(\d+)kB(?:\s+\(([A-Z]+)\))?")
# show_mem prints lowmem_reserve[] and the buddy lines piece by piece
# (pr_cont); a kernel whose continuations were not joined (seen on 4.19 with
# a timestamp on each piece) logs the head alone, then one piece a line
_BUDDY_HEAD_ALONE = re.compile(r"^\s*(?:Node \d+ )?"
                               r"(?:DMA32|DMA|Normal|HighMem|Movable|Device):\s*$")
_BUDDY_PIECE = re.compile(r"^(?:\d+\*\d+kB|\([A-Z]+\)|= \d+kB)$")
_UNRECLAIMABLE = re.compile(r"all_unreclaimable\? (yes|no)")
_KV = re.compile(r"([A-Za-z_][\w()]*):(\d+)(kB)?")
_EXTRA = re.compile(r"^\s*(\d+) (pages RAM|pages HighMem/MovableOnly|pages reserved|"
                    r"pages cma reserved|pages hwpoisoned|total pagecache pages|"
                    r"pages in swap cache|pages shared|pages non-shared)\s*$")
# (2.6's show_free_areas() printed "DMA per-cpu:", "cpu 0 hot: high 0, batch 1
# used:0", "HighMem per-cpu: empty", "Free pages: ..." and "Swap cache: add
# ..."; a hugepages line wraps before "hugepages_size=")
_MISC = re.compile(r"^\s*(?:Node \d+ hugepages_|hugepages_size=|Swap cache|Free swap|Total swap|"
                   r"Free pages:|(?:Normal|DMA32|DMA|HighMem|Movable) per-cpu:|CPU\s+\d+: hi:|"
                   r"cpu \d+ (?:hot|cold): )")
_SHOWMEM_START = re.compile(r"^\s*Mem-[Ii]nfo:")
_ZONE_FIRST = frozenset("NDHM")   # Node, DMA(32), Normal, HighMem, Movable, Device
_MISC_FIRST = frozenset("NhSFTDHMCc")  # the first letters of _MISC's alternatives
# 2.6's global counters: "Active:78861 inactive:3016 dirty:0 ..." (no Mem-Info: line)
_OLD_COUNTERS = re.compile(r"^\s*Active:\d+ inactive:\d+ ")
# a line holding only key:value pairs: the rest of a wrapped zone or node line
_KV_ONLY = re.compile(r"^\s*(?:(?:[A-Za-z_][\w()]*:\s?\d+(?:[kK]B)?|all_unreclaimable\? (?:yes|no))"
                      r"(?:\s+|\Z))+\Z")
# several buddy terms, the rest of a wrapped buddy line
_BUDDY_PIECES = re.compile(r"^(?:(?:\d+\*\d+kB|\([A-Z]+\)|= \d+kB)(?:\s+|\Z))+\Z")
# an unpopulated zone's buddy line: "DMA32: empty" (show_free_areas())
_BUDDY_EMPTY = re.compile(r"^\s*(?:Node \d+ )?(?:DMA32|DMA|Normal|HighMem|Movable|Device): "
                          r"empty\s*$")
_MEMCG_COUNTER = re.compile(r"^\s*(?P<what>memory|memory\+swap|swap|kmem): usage (?P<usage>\d+)kB, "
                            r"limit (?P<limit>\d+)kB, failcnt (?P<failcnt>\d+)")
_MEMCG_STATS = re.compile(r"^\s*Memory cgroup stats for (?P<path>\S+?):?(?:\s+(?P<rest>.*))?$")
_CONSTRAINT = re.compile(r"^\s*oom-kill:(?P<body>constraint=.*)$")
_TASKS_HEAD = re.compile(r"^\s*\[\s*pid\s*\]\s+(?P<cols>.*\bname)\s*$")
_TASK_ROW = re.compile(r"^\s*\[\s*(?P<pid>\d+)\]\s+(?P<rest>.*)$")
_KILLED = re.compile(r"(?:Kill(?:ed)? process|Killed process) (?P<pid>\d+) \((?P<comm>[^)]*)\)"
                     r"(?P<rest>.*)$")


def parse_zone_line(text: str, lineno: int = 0) -> Optional[ZoneLine]:
    m = _ZONE.match(text)
    if not m:
        return None
    return ZoneLine(int(m.group("node") or 0), m.group("zone"),
                    Unparsed(text[m.start("zone"):]), None, lineno)


def _kv(text: str) -> Dict[str, Union[int, str]]:
    out: Dict[str, Union[int, str]] = {}
    for k, v, _unit in _KV.findall(text):
        out[k] = int(v)
    m = _UNRECLAIMABLE.search(text) if "all_unreclaimable" in text else None
    if m:
        out["all_unreclaimable"] = m.group(1)
    return out


def parse_buddy_line(text: str, lineno: int = 0) -> Optional[BuddyLine]:
    """``Node 0 DMA32: 1501*4kB (UEM) ... = 64532kB`` as counts per order.

    The order of a term is log2(its block size / the first block size); a
    total that does not equal the sum of the terms is flagged, a missing one
    (a truncated line) leaves ``total_ok`` None.
    """
    parts = buddy_parts(text)
    if parts is None or (not parts[2] and parts[3] is None):
        return None
    node, zone, body, total_s = parts
    terms = _BUDDY_TERM.findall(body)
    problems: List[str] = []
    counts: List[int] = []
    sizes: List[int] = []
    types: List[str] = []
    base = int(terms[0][1]) if terms else 4
    block = [int(t[1]) for t in terms]
    if 0 < base and len(terms) <= 65 and block == [base << o for o in range(len(terms))]:
        # the usual line: one term per order from 0 up (what the loop below gives)
        counts = [int(t[0]) for t in terms]
        sizes = block
        types = [t[2] for t in terms]
        terms = []
    for cnt, size, letters in terms:
        size_i = int(size)
        ratio = size_i // base if base else 0
        if base <= 0 or ratio <= 0 or ratio * base != size_i or ratio & (ratio - 1):
            problems.append(f"block size {size_i}kB is not a power-of-two multiple of {base}kB")
            continue
        order = ratio.bit_length() - 1   # log2 of a power of two
        if order > 64:
            problems.append(f"block size {size_i}kB: order {order} is not plausible")
            continue
        while len(counts) <= order:
            counts.append(0)
            sizes.append(base << len(sizes))
            types.append("")
        counts[order] = int(cnt)
        types[order] = letters or ""
    computed = sum(c * s for c, s in zip(counts, sizes))
    total = int(total_s) if total_s is not None else None
    if total is None:
        problems.append("no printed total (truncated line?)")
        ok = None
    else:
        ok = total == computed
        if not ok:
            problems.append(f"printed total {total}kB != sum of blocks {computed}kB")
    return BuddyLine(int(node or 0), zone, counts, sizes, types,
                     total, computed, ok, lineno, problems)


def buddy_parts(text: str) -> Optional[Tuple[Optional[str], str, str, Optional[str]]]:
    """(node, zone, body, total) of a buddy line, as the one-regex form in the
    comment above gives them, or None when it does not match: the lazy body
    ends where only whitespace and an optional ``= NkB`` are left, and it is
    empty when the line has no first term."""
    m = _BUDDY_HEAD.match(text)
    if not m:
        return None
    start = m.end()
    first = _BUDDY_FIRST.match(text, start)
    if first is None:
        t = _BUDDY_ONLY_TOTAL.match(text, start)
        return None if t is None else (m.group("node"), m.group("zone"), "", t.group("total"))
    stripped = text.rstrip()
    e = _BUDDY_END_TOTAL.match(stripped, first.end())
    if e is None:
        end, total = max(len(stripped), first.end()), None
    else:
        end, total = max(len(text[:e.start(1) - 2].rstrip()), first.end()), e.group(1)
    return m.group("node"), m.group("zone"), text[start:end], total


def largest_order_of(b: BuddyLine) -> Optional[int]:
    """The highest order with a free block on a buddy line (None: none free)."""
    top = [o for o, n in enumerate(b.counts) if n]
    return top[-1] if top else None


def parse_constraint(text: str) -> Optional[Dict[str, str]]:
    """``oom-kill:constraint=CONSTRAINT_MEMCG,...`` as a dict (``global_oom``
    -> ``{"global_oom": ""}``); nodemask ``(null)`` and cpuset paths kept as
    printed.  None for another line."""
    m = _CONSTRAINT.match(text)
    if not m:
        return None
    out: Dict[str, str] = {}
    # values do not contain commas except a nodemask/mems_allowed list like 0-1,3
    key = None
    for part in m.group("body").split(","):
        if "=" in part:
            key, _, val = part.partition("=")
            out[key.strip()] = val.strip()
        elif key in ("nodemask", "mems_allowed") and re.match(r"^\d", part):
            out[key] += "," + part.strip()
        else:
            key = part.strip()
            out[key] = ""
    return out


def is_showmem_line(text: str) -> bool:
    """Whether ``text`` starts a show_mem() block (``Mem-Info:``)."""
    return bool(_SHOWMEM_START.match(text))


class _TaskTable:
    __slots__ = ("cols",)

    def __init__(self, cols: List[str]) -> None:
        self.cols = cols


def feed_line(rec, section: Any, text: str, lineno: int, cont: bool) -> Any:
    """Take ``text`` into ``rec``'s show_mem fields if it belongs there.

    ``section`` is where the record is ("meminfo", "zones", "buddy" or
    anything else); returns the new section, or None if the line is not
    part of a show_mem block.  ``"end"`` after the block's last line
    (``pages reserved`` / ``pages cma reserved`` / ``pages hwpoisoned``).
    Inside a show_mem line logged one piece a line, or wrapped, the section
    is ``"reserve-split"``, or a tuple (``("buddy-split", head line number,
    pieces so far)``, ``("buddy-wrap", ...)``): the caller keeps it and
    passes it back unchanged.
    """
    stripped = text.strip()
    if section == "reserve-split" or isinstance(section, tuple):
        got, section = _feed_split(rec, section, stripped)
        if got is not None:
            return got
    # each pattern below starts with ^\s* and a fixed letter (or a zone name):
    # one that cannot match this line's first letter is not tried
    c = stripped[:1]
    got = _feed_counters(rec, section, text, stripped, c, lineno)
    if got is None:
        got = _feed_zones(rec, section, text, stripped, c, lineno)
    if got is None:
        got = _feed_rest(rec, section, text, c, lineno, cont)
    return got


def _feed_split(rec, section: Any, stripped: str) -> Tuple[Any, Any]:
    """A line inside a show_mem line that came in pieces: (the section to
    return, or None to read the line as any other; the section to read it in)."""
    if section == "reserve-split":
        if stripped.isdigit():
            rec.zones[-1].lowmem_reserve.append(int(stripped))
            return section, section
        return None, "zones"
    kind, head_no, pieces = section
    # one piece a line ("buddy-split"), or several a line (a wrapped line)
    if (_BUDDY_PIECE if kind == "buddy-split" else _BUDDY_PIECES).match(stripped):
        pieces.append(stripped)
        if kind == "buddy-wrap":
            b = parse_buddy_line(" ".join(pieces), head_no)
            if b is not None:
                rec.buddy[-1] = b
        if "= " not in stripped:
            return section, section
        if kind == "buddy-wrap":
            return "buddy", "buddy"
    if kind == "buddy-wrap":
        return None, "buddy"
    # the total ends the line; anything else ends it too, unfinished
    b = parse_buddy_line(" ".join(pieces), head_no)
    if b is not None:
        rec.buddy.append(b)
    else:
        rec.problems.append(f"line {head_no}: buddy line in pieces: "
                            f"{' '.join(pieces)[:80]!r} not read")
    if stripped.startswith("=") and _BUDDY_PIECE.match(stripped):
        return "buddy", "buddy"
    return None, "buddy"


def _feed_counters(rec, section: Any, text: str, stripped: str, c: str, lineno: int) -> Any:
    """``Mem-Info:`` and the global counters after it; 2.6's ``Active:%lu
    inactive:%lu ...`` line, printed without a ``Mem-Info:`` line before it."""
    if c == "M" and _SHOWMEM_START.match(text):
        rec.meminfo = MemInfo({}, lineno)
        return "meminfo"
    if c == "A" and rec.meminfo is None and _OLD_COUNTERS.match(text):
        rec.meminfo = MemInfo({}, lineno)
        section = "meminfo"
    if section == "meminfo" and not stripped.startswith("Node ") and not _ZONE.match(text) \
            and _KV.match(stripped):
        for k, v, _u in _KV.findall(stripped):
            rec.meminfo.counters[k] = int(v)
        return "meminfo"
    m = _NODE_STATS.match(text) if c == "N" else None
    if m:
        d = _kv(text)
        d["node"] = int(m.group("node"))
        rec.node_lines.append(d)
        return "zones"
    return None


def _feed_zones(rec, section: Any, text: str, stripped: str, c: str, lineno: int) -> Any:
    """Zone lines, their ``lowmem_reserve[]``, and the lines a mail or a
    terminal wrapped them (or a node line) onto: ``key:value`` pairs alone."""
    zoneish = c in _ZONE_FIRST
    z = parse_zone_line(text, lineno) if zoneish else None
    if z is not None:
        rec.zones.append(z)
        return "zones"
    m = _RESERVE.match(text) if c == "l" else None
    if m:
        vals = [int(x) for x in m.group(1).split()]
        if rec.zones and rec.zones[-1].lowmem_reserve is None:
            rec.zones[-1].lowmem_reserve = vals
            if not vals:    # the values follow, one a line
                return "reserve-split"
        else:
            rec.problems.append(f"line {lineno}: lowmem_reserve[] without its zone line")
        return section if section in ("zones", "buddy") else "zones"
    if section == "zones" and (rec.zones or rec.node_lines) and _KV_ONLY.match(text):
        _extend_zone_or_node(rec, stripped)
        return section
    return None


def _feed_rest(rec, section: Any, text: str, c: str, lineno: int, cont: bool) -> Any:
    """Buddy lines, the counts after them, and the lines read but not kept."""
    zoneish = c in _ZONE_FIRST
    if zoneish and section in ("zones", "buddy") and _BUDDY_HEAD_ALONE.match(text):
        return ("buddy-split", lineno, [text.strip()])
    if zoneish and "kB" in text and ":" in text:
        b = parse_buddy_line(text, lineno)
        if b is not None:
            rec.buddy.append(b)
            if b.total_kb is None and b.counts:     # cut, or wrapped onto the next line
                return ("buddy-wrap", lineno, [text.strip()])
            return "buddy"
    if zoneish and _BUDDY_EMPTY.match(text):
        return "buddy"      # an unpopulated zone (no present pages): no free lists
    m = _EXTRA.match(text)
    if m:
        rec.extra[m.group(2)] = int(m.group(1))
        if m.group(2) in ("pages reserved", "pages cma reserved", "pages hwpoisoned"):
            return "end"
        return section
    if c in _MISC_FIRST and _MISC.match(text):
        return section
    if cont and section == "meminfo":
        return section
    return None


def _extend_zone_or_node(rec, text: str) -> None:
    """``key:value`` pairs wrapped off the last zone line (while its
    ``lowmem_reserve[]`` has not come) or, before any zone line, off the
    last node line."""
    if rec.zones and rec.zones[-1].lowmem_reserve is None:
        z = rec.zones[-1]
        v = z.__dict__.get("_fields")
        if type(v) is Unparsed:
            z.fields = Unparsed(v.text + " " + text)
        else:
            z.fields.update(_kv(text))
    elif rec.node_lines and not rec.zones:
        rec.node_lines[-1].update(_kv(text))
    else:
        rec.problems.append(f"key:value line {text[:60]!r} after a complete zone line")


def feed_oom_line(rec, section: str, text: str, lineno: int) -> Optional[str]:
    """Take an OOM report's own lines (constraint, memcg counters and stats,
    the task table, the kill) into ``rec`` (:class:`kmsg.OomReport`); the
    new section, or None if the line is not one of them.  ``"killed"`` after
    the kill line."""
    m = _KILLED.search(text)
    if m:
        pid = int(m.group("pid"))
        # "Kill process %d (%s) score %u or sacrifice child" names the task
        # chosen; "Killed process" the one killed: a child of it, or itself
        if rec.killed_pid is None or rec.killed_pid == pid or (
                "Killed process" in text and rec.killed_kb == {}):
            rec.killed_pid, rec.killed_comm = pid, m.group("comm")
            for k, v in re.findall(r"([a-z-]+):(\d+)kB", m.group("rest")):
                rec.killed_kb[k] = int(v)
            if "Memory cgroup out of memory" in text:
                rec.memcg = True
            if "Killed process" in text:
                return "killed"
            return section
    c = parse_constraint(text)
    if c is not None:
        rec.constraint = c
        if c.get("constraint") == "CONSTRAINT_MEMCG":
            rec.memcg = True
        return "constraint"
    m = _MEMCG_COUNTER.match(text)
    if m:
        rec.memcg = True
        rec.memcg_counters[m.group("what")] = {
            "usage_kb": int(m.group("usage")), "limit_kb": int(m.group("limit")),
            "failcnt": int(m.group("failcnt"))}
        return "memcg"
    m = _MEMCG_STATS.match(text)
    if m and "Memory cgroup stats for" in text:
        rec.memcg = True
        rec.memcg_path = m.group("path").rstrip(":") or "/"
        return "memcg_stats"
    if section == "memcg_stats" and re.match(r"^\s*[a-z_]+[ :]\s*\d+\s*$", text):
        return section   # v2 "anon 33476608" / v1 "cache:0KB ..." counters: consumed
    if "Memory cgroup out of memory" in text:
        rec.memcg = True
        return section
    if "Tasks state" in text:
        return "tasks"
    m = _TASKS_HEAD.match(text)
    if m:
        rec.task_columns = m.group("cols").split()
        return "tasks"
    m = _TASK_ROW.match(text)
    if m and (section == "tasks" or rec.task_columns):
        task = _task(rec.task_columns, int(m.group("pid")), m.group("rest"), lineno)
        if task is not None:
            rec.tasks_seen += 1
            rec.tasks.append(task)
            if len(rec.tasks) > TASKS_KEPT * 4:
                rec.tasks.sort(key=lambda t: -(t.rss or 0))
                del rec.tasks[TASKS_KEPT:]
            return "tasks"
    return None


def _task(cols: List[str], pid: int, rest: str, lineno: int) -> Optional[Task]:
    """A task row by the columns of its header (``uid tgid total_vm rss ...
    name``); without a header, the v4.x-6.x order."""
    names = cols[1:] if cols and cols[0] == "[" else cols
    names = [c for c in names if c not in ("[", "pid", "]")]
    if not names:
        names = ["uid", "tgid", "total_vm", "rss", "pgtables_bytes", "swapents",
                 "oom_score_adj", "name"]
    parts = rest.split(None, len(names) - 1)
    if len(parts) < len(names):
        return None
    vals = dict(zip(names, parts))

    def num(k):
        v = vals.get(k)
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None
    return Task(pid, num("uid"), num("tgid"), num("total_vm"), num("rss"), num("swapents"),
                num("oom_score_adj"), (vals.get("name") or "").strip(), lineno)


def finish_showmem(rec) -> None:
    """Problems of a show_mem block: missing lowmem_reserve, buddy lines,
    totals that do not add up."""
    if rec.meminfo is None and not rec.zones and not rec.buddy:
        return
    for z in rec.zones:
        if z.lowmem_reserve is None:
            rec.problems.append(f"zone {z.zone}: no lowmem_reserve[] line")
    for b in rec.buddy:
        for p in b.problems:
            rec.problems.append(f"buddy {b.zone}: {p}")
    # an unpopulated zone (present 0) has no free lists: its buddy line
    # says "empty" (show_free_areas()), or is not printed
    zones = {(z.node, z.zone) for z in rec.zones if z.kb("present") != 0}
    buddies = {(b.node, b.zone) for b in rec.buddy}
    for key in sorted(zones - buddies):
        rec.problems.append(f"zone {key[1]}: no buddy line")
