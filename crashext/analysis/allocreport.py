"""Why each allocation failed: GFP decoding, the caller, and the watermark
check re-run on the numbers the kernel printed with the failure.

:func:`analyze` takes normalised log lines (from a file, stdin or a dump)
and returns an :class:`AllocReport` of plain data; nothing here prints.

For a failure whose report carries zone lines (``Node 0 Normal free:...``,
``lowmem_reserve[]``) and buddy lines, every zone the request could use is
checked with :func:`crashext.analysis.watermark.watermark_ok` at the MIN
watermark -- the last check ``__alloc_pages_slowpath()`` makes before it
gives up and calls ``warn_alloc()`` -- using the rule of the kernel's
generation.  The zones a request may use follow from its zone modifiers
(``gfp_zone()``, include/linux/gfp.h): no modifier -> Normal, then the
zonelist falls back to DMA32 and DMA, each checked against
``lowmem_reserve[classzone]`` of the request's class zone.  The zone
line's ``free`` (NR_FREE_PAGES) and the buddy line's per-order counts were
printed a few microseconds apart and can disagree slightly; both are used as
printed.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import gfp
from ..sources.kmsg import (AllocFailure, record_when, OomReport, OopsHeader, ShowMem,
                            SlubFailure, extract)
from ..sources.logs import CountingLines, Gate, LogLine
from ..sources.logscan import gated_file
from . import meminfo_blocks
from .zonecheck import ZoneVerdict, explain

__all__ = ["AllocReport", "FailureView", "analyze", "analyze_file", "caller_of",
           "KNOWN_FRAMES", "ALLOCATOR_FRAMES"]

#: Frames of the allocator itself and of the report: skipped when naming the caller.
ALLOCATOR_FRAMES = re.compile(
    r"^(?:dump_stack(?:_lvl)?|__dump_stack|show_stack|dump_backtrace|warn_alloc(?:_failed)?"
    r"(?:\.cold.*)?|warn_alloc_show_mem|__alloc_pages\w*|alloc_pages\w*|__alloc_frozen_pages\w*"
    r"|__get_free_pages|get_zeroed_page|__get_free_page|alloc_page_interleave|__folio_alloc\w*"
    r"|folio_alloc\w*|kmalloc_order\w*|kmalloc_large\w*|__kmalloc_large\w*|___kmalloc_large\w*"
    r"|__kmalloc\w*|kmalloc\w*|kzalloc\w*|kmem_cache_alloc\w*|__kmem_cache_alloc\w*"
    r"|slab_alloc\w*|__slab_alloc\w*|___slab_alloc\w*|new_slab|allocate_slab|alloc_slab_page"
    r"|cache_grow\w*|cache_alloc_refill|fallback_alloc|____cache_alloc\w*|kmem_getpages"
    r"|get_page_from_freelist|__alloc_pages_slowpath\w*|__alloc_pages_direct_\w+"
    r"|__vmalloc\w*|vmalloc\w*|vzalloc\w*|__vmalloc_node\w*|__vmalloc_area_node|vm_area_alloc_pages"
    r"|kvmalloc\w*|__kvmalloc\w*|alloc_pages_current|alloc_pages_vma|alloc_pages_mpol\w*"
    r"|alloc_pages_node|__alloc_pages_node|_alloc_pages)(?:\.\w+.*)?$")

#: Well-known callers: (function-name pattern, what the allocation was for).
KNOWN_FRAMES: Sequence[Tuple[str, str]] = (
    (r"memcg_update_cache_size|memcg_update_all_caches|memcg_update_cache_sizes|"
     r"memcg_alloc_cache_params|memcg_update_array_size",
     "memcg kmem cache array resize during cgroup creation (3.10-era kmem accounting: "
     "one pointer per kmem-limited memcg in every kmem_cache)"),
    (r"memcg_online_kmem|memcg_alloc_cache_id", "memcg kmem id allocation during cgroup creation"),
    (r"mem_cgroup_css_alloc|mem_cgroup_alloc|alloc_mem_cgroup_per_node_info",
     "struct mem_cgroup (per-node info) for a new cgroup"),
    (r"cgroup_mkdir|cgroup_create", "cgroup creation (mkdir in a cgroup hierarchy)"),
    (r"__alloc_skb|__netdev_alloc_skb|__napi_alloc_skb|page_frag_alloc\w*|alloc_skb\w*|"
     r"skb_page_frag_refill|sk_page_frag_refill|napi_alloc_frag|netdev_alloc_frag",
     "network buffer (skb / page fragment), often in softirq with GFP_ATOMIC"),
    (r"tcp_sendmsg\w*|sock_alloc_send_\w+|alloc_skb_with_frags", "socket send buffer"),
    (r"copy_process|dup_task_struct|alloc_thread_stack_node|alloc_thread_info_node",
     "kernel stack / task for fork()"),
    (r"seq_read\w*|seq_buf_alloc|single_open_size", "seq_file buffer for a large /proc or sysfs read"),
    (r"pcpu_\w+", "per-CPU memory chunk"),
    (r"do_huge_pmd_\w+|khugepaged\w*|collapse_huge_page|alloc_hugepage\w*|vma_alloc_folio\w*",
     "transparent huge page"),
    (r"__page_cache_alloc|pagecache_get_page|filemap_\w+|page_cache_ra_\w+|"
     r"__filemap_get_folio", "page cache page (file read or fault)"),
    (r"do_anonymous_page|handle_mm_fault|__handle_mm_fault|do_page_fault|do_user_addr_fault",
     "anonymous memory for a user page fault"),
    (r"xfs_\w+|ext4_\w+|btrfs_\w+|nfs_\w+", "filesystem metadata or buffers"),
    (r"nvme_\w+|blk_mq_\w+|scsi_\w+", "block layer / driver request memory"),
    (r"bpf_\w+", "BPF map or program memory"),
    (r"kvm_\w+", "KVM memory"),
    (r"module_alloc|load_module|layout_and_allocate", "module loading"),
)
_KNOWN = [(re.compile(r"^(?:%s)(?:\.\w+.*)?$" % pat), why) for pat, why in KNOWN_FRAMES]

@dataclass
class FailureView:
    """One allocation failure with everything derived from it.

    The GFP names are decoded when the view is made (grouping and the
    names check need them for every failure).  The caller and the
    watermark verdicts are worked out the first time they are read: a
    table of groups reads them for the last failure of each group only,
    ``--json`` for every failure.  Same values either way.
    """

    record: AllocFailure
    release: Optional[str]
    gfp_table: str
    gfp_table_how: str
    decoded: Optional[List[str]]
    printed_names: Optional[List[str]]
    names_agree: Optional[bool]
    names_source: str
    table: gfp.GfpTable = field(repr=False, compare=False)
    _caller: Optional[Tuple[Optional[str], Optional[str], List[Dict[str, str]]]] = field(
        default=None, repr=False, compare=False)
    uts_version: Optional[str] = field(default=None, repr=False, compare=False)
    _explained: Optional[Tuple[Optional[str], List[ZoneVerdict], List[str],
                               Optional[Dict[str, Any]]]] = field(
        default=None, repr=False, compare=False)

    def _callers(self):
        if self._caller is None:
            caller, known = caller_of(self.record.trace)
            self._caller = (caller, _caller_why(caller), known)
        return self._caller

    def _explain(self):
        if self._explained is None:
            self._explained = explain(self.record, self.table, self.release, self.uts_version)
        return self._explained

    caller = property(lambda self: self._callers()[0])
    caller_why = property(lambda self: self._callers()[1])
    known_frames = property(lambda self: self._callers()[2])
    watermark_rule = property(lambda self: self._explain()[0])
    zone_verdicts = property(lambda self: self._explain()[1])
    explanation = property(lambda self: self._explain()[2])
    #: allocflags' generation and ALLOC_* names (None if not derived)
    alloc_flags = property(lambda self: self._explain()[3])

    def to_json(self) -> Dict[str, Any]:
        r = self.record
        return {
            "comm": r.comm, "kind": r.kind, "pid": r.pid, "cpu": r.cpu,
            "order": r.order, "mode": None if r.mode is None else f"{r.mode:#x}",
            "size": r.size, "allocated": r.allocated, "time": r.ts, "stamp": r.stamp,
            "lines": list(r.lines), "partial": r.partial, "problems": r.problems,
            "release": self.release, "tainted": r.tainted, "hardware": r.hardware,
            "nodemask": r.nodemask, "cpuset": r.cpuset, "mems_allowed": r.mems_allowed,
            "gfp": {"table": self.gfp_table, "table_how": self.gfp_table_how,
                    "names": self.decoded, "printed": self.printed_names,
                    "agree": self.names_agree, "names_from": self.names_source},
            "caller": self.caller, "caller_why": self.caller_why,
            "known_frames": self.known_frames,
            "trace": [{"func": f.func, "offset": f.offset, "size": f.size,
                       "module": f.module, "unreliable": f.unreliable} for f in r.trace],
            "meminfo": r.meminfo.counters if r.meminfo else None,
            "zones": [{"node": z.node, "zone": z.zone, "fields": z.fields,
                       "lowmem_reserve": z.lowmem_reserve, "line": z.line} for z in r.zones],
            "buddy": [{"node": b.node, "zone": b.zone, "counts": b.counts,
                       "types": b.types, "total_kb": b.total_kb, "computed_kb": b.computed_kb,
                       "total_ok": b.total_ok, "line": b.line} for b in r.buddy],
            "watermark_rule": self.watermark_rule,
            "alloc_flags": self.alloc_flags,
            "verdicts": [{"node": v.node, "zone": v.zone, "index": v.index,
                          "classzone_idx": v.classzone_idx, "free_pages": v.free_pages,
                          "min": v.min, "low": v.low, "high": v.high, "reserve": v.reserve,
                          "verdict": v.verdict, "notes": v.notes}
                         for v in self.zone_verdicts],
            "explanation": self.explanation,
        }


@dataclass
class Group:
    comm: str
    order: Optional[int]
    mode: Optional[int]
    names: str
    count: int = 0
    first: str = "-"
    last: str = "-"
    last_view: Optional["FailureView"] = None

    def to_json(self) -> Dict[str, Any]:
        return {"comm": self.comm, "order": self.order,
                "mode": None if self.mode is None else f"{self.mode:#x}",
                "names": self.names, "count": self.count, "first": self.first,
                "last": self.last}


@dataclass
class AllocReport:
    source: str
    lines: int = 0
    failures: List[FailureView] = field(default_factory=list)
    groups: List[Group] = field(default_factory=list)
    ooms: List[OomReport] = field(default_factory=list)
    slub: List[SlubFailure] = field(default_factory=list)
    oops: List[OopsHeader] = field(default_factory=list)
    showmem: List[ShowMem] = field(default_factory=list)
    oom_views: List[Dict[str, Any]] = field(default_factory=list)      # meminfo_blocks.oom_view
    showmem_views: List[Dict[str, Any]] = field(default_factory=list)  # .showmem_view
    releases: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    dropped: int = 0   # failures counted in groups but not kept (keep=)

    def to_json(self) -> Dict[str, Any]:
        def rec(o):
            d = dict(o.__dict__)
            for k in ("trace",):
                if k in d:
                    d[k] = [str(f) for f in d[k]]
            if "lines" in d:
                d["lines"] = list(d["lines"])
            return d
        return {"source": self.source, "lines": self.lines,
                "failures": [f.to_json() for f in self.failures],
                "summary": [g.to_json() for g in self.groups],
                "oom": [rec(o) for o in self.ooms], "slub": [rec(s) for s in self.slub],
                "oops": [rec(o) for o in self.oops], "releases": self.releases,
                "oom_analysis": self.oom_views, "show_mem": self.showmem_views,
                "failures_not_kept": self.dropped,
                "warnings": self.warnings}


def caller_of(trace) -> Tuple[Optional[str], List[Dict[str, str]]]:
    """The first reliable frame outside the allocator, and the known frames."""
    caller = None
    known: List[Dict[str, str]] = []
    for fr in trace:
        if fr.unreliable:
            continue
        if caller is None and not ALLOCATOR_FRAMES.match(fr.func):
            caller = fr.func
        for pat, why in _KNOWN:
            if pat.match(fr.func):
                if not any(k["why"] == why for k in known):
                    known.append({"frame": fr.func, "why": why})
                break
    return caller, known


#: OOM, SLUB and oops records kept per report (``keep`` limits failures only).
_OTHER_CAP = 10000


def analyze_file(path: str, source: Optional[str] = None,
                 kernel_version: Optional[str] = None, keep: int = 100000) -> AllocReport:
    """:func:`analyze` of a log file (``-``: stdin), skipping the lines between
    records without decoding them (:func:`crashext.sources.logscan.gated_file`)."""
    gate = Gate()
    return analyze(gated_file(path, gate), source or path, kernel_version,
                   None, keep, gate)


def analyze(lines: Iterable[LogLine], source: str, kernel_version: Optional[str] = None,
            gfp_names: Optional[List[Tuple[str, int]]] = None,
            keep: int = 100000, gate: Optional[Gate] = None,
            uts_version: Optional[str] = None) -> AllocReport:
    """Everything :mod:`allocfail` reports about a log, in one streaming pass.

    ``uts_version`` goes with ``kernel_version`` (a dump's ``uname -v``): it
    can name the stable sublevel a distribution release hides
    (:func:`crashext.analysis.allocflags.kernel_version`)."""
    rep = AllocReport(source=source)
    groups: Dict[Tuple[str, Optional[int], Optional[int]], Group] = {}
    last_release: Optional[str] = None
    last_uts: Optional[str] = None
    # a gated source counts its own lines (gate.lines); others are counted here
    counted = CountingLines(lines) if gate is None else None
    for rec in extract(counted if counted is not None else lines, gate):
        if isinstance(rec, AllocFailure):
            if rec.release:
                last_release, last_uts = rec.release, rec.uts_version
            release = kernel_version or rec.release or last_release
            view = _view(rec, release, gfp_names, uts_version if kernel_version else last_uts)
            if view.names_agree is False and len(rep.warnings) < 20:
                rep.warnings.append(
                    f"line {rec.lines[0]}: the kernel printed {'|'.join(rec.mode_names or [])} "
                    f"but the {view.gfp_table} table gives {'|'.join(view.decoded or [])}")
            key = (rec.comm, rec.order, rec.mode)
            g = groups.get(key)
            if g is None:
                g = groups[key] = Group(rec.comm, rec.order, rec.mode,
                                        "|".join(view.decoded or []))
            g.count += 1
            when = record_when(rec)
            if g.count == 1:
                g.first = when
            g.last = when
            g.last_view = view
            if len(rep.failures) < keep:
                rep.failures.append(view)
            else:
                rep.dropped += 1
            _note_release(rep, rec.release)
        elif isinstance(rec, OomReport):
            if rec.release:
                last_release, last_uts = rec.release, rec.uts_version
            _note_release(rep, rec.release)
            if len(rep.ooms) < _OTHER_CAP:
                rep.ooms.append(rec)
                rep.oom_views.append(meminfo_blocks.oom_view(rec, kernel_version or rec.release
                                                             or last_release))
        elif isinstance(rec, ShowMem):
            if len(rep.showmem) < _OTHER_CAP:
                rep.showmem.append(rec)
                rep.showmem_views.append(meminfo_blocks.showmem_view(
                    rec, kernel_version or last_release,
                    uts_version if kernel_version else last_uts))
        elif isinstance(rec, SlubFailure):
            if len(rep.slub) < _OTHER_CAP:
                rep.slub.append(rec)
        elif isinstance(rec, OopsHeader):
            _note_release(rep, rec.release)
            if len(rep.oops) < _OTHER_CAP:
                rep.oops.append(rec)
    rep.lines = gate.lines if counted is None else counted.n
    rep.groups = sorted(groups.values(), key=lambda g: (-g.count, g.comm))
    return rep


def _note_release(rep: AllocReport, rel: Optional[str]) -> None:
    if rel and rel not in rep.releases:
        rep.releases.append(rel)


def _choose_table(rec: AllocFailure, release: Optional[str]):
    """The GFP table for a failure; without a release, infer from the report.

    A report without names comes from a kernel before v4.5 (the 3.10 table
    is assumed); one with names is matched against every table and the
    newest that reproduces them is taken.
    """
    if release or rec.mode is None:
        return gfp.table_for_release(release)
    if rec.mode_names is None:
        return gfp.T310, ("kernel version unknown; no names printed, so a kernel before "
                          "v4.5: assumed the 3.10 table (give --kernel-version)")
    fits = [t for t in gfp.TABLES if gfp.decode(rec.mode, t) == rec.mode_names]
    if fits:
        t = fits[-1]
        return t, (f"kernel version unknown: the {t.key} table is the newest that reproduces "
                   f"the printed names (also: {', '.join(x.key for x in fits[:-1]) or 'none'})")
    return gfp.table_for_release(None)


def _view(rec: AllocFailure, release: Optional[str],
          gfp_names: Optional[List[Tuple[str, int]]],
          uts_version: Optional[str] = None) -> FailureView:
    table, how = _choose_table(rec, release)
    decoded = None
    names_source = "table"
    if rec.mode is not None:
        if gfp_names is not None:
            decoded = gfp.decode(rec.mode, table, gfp_names)
            names_source = "dump (gfpflag_names)"
        else:
            decoded = gfp.decode(rec.mode, table)
    agree = None
    if rec.mode_names is not None and decoded is not None:
        agree = decoded == rec.mode_names
    return FailureView(rec, release, table.key, how, decoded, rec.mode_names, agree,
                       names_source, table, uts_version=uts_version)


def _caller_why(caller: Optional[str]) -> Optional[str]:
    """What the last known pattern matching ``caller`` says of it."""
    why = None
    for pat, w in _KNOWN:
        if caller and pat.match(caller):
            why = w
    return why
