"""A diagnosis when no knowledge-base entry matches: the class of the event.

Triage's verdict names a known bug when one matches.  When none does, the
first line of the verdict still says what happened, from the same parsed
facts the PANIC and MEMORY sections print:

- a panic or oops: its kind (kernel NULL pointer dereference, kernel BUG,
  general protection fault, ...), the function of the exception RIP and the
  kernel subsystem it belongs to (from its source file when crash's
  ``dis -l`` gave one, else from the function's name);
- an OOM kill: global or memcg (with the memcg path), the constraint, the
  victim, its pid and anon-rss, and the order of the request;
- an allocation failure: order and size, task, caller, and the watermark
  verdict of its zones (fragmentation, lowmem_reserve, short of memory);
- a SLUB failure to grow a cache.

The OOM report's lines (mm/oom_kill.c) read here:

- ``oom-kill:constraint=%s,nodemask=%*pbl,cpuset=%s,mems_allowed=%*pbl,
  [oom_memcg=%s,]task_memcg=%s,task=%s,pid=%d,uid=%d`` (v4.19+,
  dump_oom_summary / ef8444ea01d7's reorganised report);
- ``Memory cgroup out of memory: Kill[ed] process %d (%s)`` and
  ``Out of memory: Kill[ed] process %d (%s)`` (``Killed`` since v5.0);
- ``Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB``;
- ``Task in %s killed as a result of limit of %s`` (memcg OOMs before v4.19).
"""

import re
from typing import Any, Dict, List, Optional

from ..sources.oops import NOT_FATAL

__all__ = ["diagnose", "subsystem_of", "SCAN_PATTERNS", "OOM_SUMMARY", "OOM_KILL",
           "OOM_VICTIM", "OOM_TASK_IN", "OOM_NOTHING",
           "VMALLOC_PARTIAL"]

OOM_SUMMARY = (r"oom-kill:constraint=(?P<constraint>\w+)"
               r"(?:.*?,oom_memcg=(?P<oom_memcg>[^,]*))?(?:.*?,task_memcg=(?P<task_memcg>[^,]*))?"
               r"(?:.*?,task=(?P<task>[^,]*),pid=(?P<pid>\d+))?")
OOM_KILL = r"(?P<memcg>Memory cgroup out of memory|Out of memory)(?: \([^)]*\))?: Kill(?:ed)? process (?P<pid>\d+) \((?P<comm>[^)]*)\)"
OOM_VICTIM = (r"Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)(?: total-vm:(?P<vm>\d+)kB,"
              r" anon-rss:(?P<anon>\d+)kB)?")
OOM_TASK_IN = r"Task in (?P<task_memcg>\S+) killed as a result of limit of (?P<oom_memcg>\S+)"
#: mm/oom_kill.c out_of_memory(): nothing could be killed; the kernel panics next
OOM_NOTHING = r"Out of memory and no killable processes"
#: mm/vmalloc.c __vmalloc_area_node(): pages for a vmalloc area could not all be
#: allocated.  crashext.sources.kmsg parses the v4.10+ line (task name first) as
#: an allocation failure; this scan is the fallback for the line alone (before
#: v4.10, and lines without the task name)
VMALLOC_PARTIAL = (r"vmalloc: allocation failure, allocated (?P<got>\d+) of (?P<want>\d+) bytes"
                   r"(?:, mode:0x(?P<mode>[0-9a-fA-F]+)(?:\((?P<names>[^)]*)\))?)?")
# (it starts with the literal message, so the scan is linear; the task name is
# the text before it: "iptables-restor: vmalloc: ...")
#: the regexes triage's log scan records for the diagnosis (first line each)
SCAN_PATTERNS = (OOM_SUMMARY, OOM_KILL, OOM_VICTIM, OOM_TASK_IN, OOM_NOTHING, VMALLOC_PARTIAL)

# Kernel subsystems by source path (longest prefix first), for a RIP whose
# file crash's "dis -l" named.
_BY_PATH = [
    ("mm/memcontrol.c", "memory cgroups"), ("mm/page_counter.c", "memory cgroups (page counters)"),
    ("mm/slub.c", "slab allocator (SLUB)"), ("mm/slab.c", "slab allocator (SLAB)"),
    ("mm/slab_common.c", "slab allocator"), ("mm/page_alloc.c", "page allocator"),
    ("mm/compaction.c", "memory compaction"), ("mm/vmscan.c", "page reclaim"),
    ("mm/oom_kill.c", "OOM killer"), ("mm/vmalloc.c", "vmalloc"), ("mm/", "memory management"),
    ("kernel/cgroup", "cgroup core"), ("lib/idr.c", "ID allocator"),
    ("lib/list_debug.c", "list debugging"), ("lib/", "kernel library"),
    ("drivers/tty/sysrq.c", "SysRq"), ("kernel/sched/", "scheduler"),
    ("kernel/", "core kernel"), ("net/", "networking"), ("block/", "block layer"),
]
# ... and by function name when no file is known: prefixes of the functions
# of those files (mm/memcontrol.c's mem_cgroup_*/memcg_*, ...)
_BY_NAME = [
    (("mem_cgroup_", "memcg_", "__mem_cgroup_", "mem_cgroup", "obj_cgroup_", "__memcg_",
      "drain_stock", "refill_stock", "try_charge", "uncharge_", "commit_charge"),
     "memory cgroups", "mm/memcontrol.c"),
    (("page_counter_",), "memory cgroups (page counters)", "mm/page_counter.c"),
    (("kmem_cache_", "kmalloc", "__kmalloc", "kfree", "___slab_alloc", "__slab_", "slab_",
      "new_slab", "allocate_slab", "cache_grow", "cache_alloc"), "slab allocator", "mm/slub.c or mm/slab.c"),
    (("__alloc_pages", "get_page_from_freelist", "__free_pages", "free_pages", "__rmqueue",
      "rmqueue", "free_pcppages_bulk", "free_one_page", "prepare_alloc_pages",
      "alloc_pages"), "page allocator", "mm/page_alloc.c"),
    (("pcpu_",), "per-CPU allocator", "mm/percpu.c"),
    (("mod_node_page_state", "__mod_node_page_state", "mod_zone_page_state",
      "__mod_zone_page_state", "inc_node_page_state", "dec_node_page_state",
      "refresh_cpu_vm_stats"), "VM statistics", "mm/vmstat.c"),
    (("compact_", "isolate_migratepages", "isolate_freepages", "kcompactd"), "memory compaction",
     "mm/compaction.c"),
    (("shrink_", "kswapd", "try_to_free_"), "page reclaim", "mm/vmscan.c"),
    (("oom_", "out_of_memory"), "OOM killer", "mm/oom_kill.c"),
    (("test_clear_page_writeback", "test_set_page_writeback", "end_page_writeback",
      "__set_page_dirty", "clear_page_dirty", "balance_dirty_pages"), "page writeback",
     "mm/page-writeback.c"),
    (("cgroup_", "css_", "cgroup1_", "cgroup2_", "kernfs_"), "cgroup core", "kernel/cgroup"),
    (("ida_", "idr_"), "ID allocator", "lib/idr.c"),
    (("__list_add", "__list_del", "list_del"), "list debugging", "lib/list_debug.c"),
    (("sysrq_",), "SysRq", "drivers/tty/sysrq.c"),
    (("ext4_", "jbd2_"), "ext4 filesystem", "fs/ext4"), (("xfs_",), "XFS filesystem", "fs/xfs"),
    (("nfs_", "nfs4_"), "NFS client", "fs/nfs"), (("btrfs_",), "btrfs filesystem", "fs/btrfs"),
    (("ovl_",), "overlayfs", "fs/overlayfs"),
    (("tcp_", "udp_", "ip_", "ipv6_", "skb_", "__skb", "sk_", "sock_", "dev_", "netif_",
      "napi_", "nf_", "br_"), "networking", "net/"),
    (("blk_", "bio_", "submit_bio"), "block layer", "block/"),
]

_PANIC_CLASS = [
    (re.compile(r"NULL pointer dereference"), "kernel NULL pointer dereference"),
    (re.compile(r"KASAN: (?:slab-)?use-after-free"), "use-after-free (KASAN)"),
    (re.compile(r"KASAN: "), "KASAN report"),
    (re.compile(r"kernel BUG at"), "kernel BUG"),
    (re.compile(r"general protection fault"), "general protection fault"),
    (re.compile(r"(?i:unable to handle (?:kernel )?(?:paging request|data access|instruction "
                r"fetch|unaligned access)|unable to handle (?:page|unknown paging) fault)"),
     "kernel paging request fault"),
    # s390 die() of a program check: "addressing exception: 0005 ilc:3 [#1]"
    (re.compile(r"^(?:[a-z][a-z -]*): [0-9a-f]{4} ilc:"), "program check (s390)"),
    (re.compile(r"soft lockup"), "soft lockup"),
    (re.compile(r"hung_task|blocked for more than"), "hung task"),
    (re.compile(r"Out of memory and no killable processes|System is deadlocked on memory"),
     "OOM panic (nothing left to kill)"),
    (re.compile(r"panic_on_oom|Out of memory: (?:system-wide|compulsory) panic"), "OOM panic"),
    (re.compile(r"panic_on_warn"), "WARNING turned into a panic (panic_on_warn)"),
    (re.compile(r"Fatal exception"), "fatal exception"),
    (re.compile(r"WARNING"), "kernel WARNING"),
    (re.compile(r"invalid opcode"), "invalid opcode (BUG or UD2)"),
    (re.compile(r"Kernel panic|not syncing"), "kernel panic"),
]


_NO_FIX = "; no known fix in the knowledge base"


def subsystem_of(function: Optional[str], file: Optional[str] = None) -> Optional[str]:
    """The kernel subsystem of a function: by its source file when known, else by name."""
    if file:
        # the kernel tree path inside a build path (/usr/src/debug/.../lib/idr.c)
        m = re.search(r"(?:^|/)((?:mm|kernel|lib|drivers|net|fs|block|arch|include)/.*)$", file)
        path = m.group(1) if m else file
        for prefix, name in _BY_PATH:
            if path.startswith(prefix):
                return f"{name}, {path}"
        m = re.match(r"(fs|drivers)/([^/]+)/", path)
        if m:
            return f"{'filesystem' if m.group(1) == 'fs' else 'driver'} {m.group(2)}, {path}"
        return path
    if not function:
        return None
    for prefixes, name, where in _BY_NAME:
        if function.startswith(prefixes):
            return f"{name}, {where}"
    return None


def _kib(n: Optional[int]) -> str:
    if n is None:
        return "?"
    return f"{n} KiB" if n < 1024 else (f"{n // 1024} MiB" if n % 1024 == 0 else f"{n / 1024:.1f} MiB")


def _order_size(order: Optional[int], page_kb: int) -> str:
    # order -1: no request (a manual OOM kill); an order is never negative otherwise
    return "" if order is None or order < 0 else f" ({_kib(page_kb << order)})"


# GCC's clones of a function ("prepare_alloc_pages.constprop.0", "__slab_alloc.isra.44"):
# the function an engineer names is the one before the suffix
_CLONE = re.compile(r"\.(?:constprop|isra|part|cold|clone|llvm|lto_priv)(?:\.\w+)*$")


def base_name(function: str) -> str:
    """``function`` without the suffix of a compiler clone."""
    return _CLONE.sub("", function)


def _subsystem(function: Optional[str], file: Optional[str] = None) -> Optional[str]:
    return subsystem_of(base_name(function) if function else None, file)


def _where(function: Optional[str], file: Optional[str] = None, path: bool = True) -> str:
    """`` in func (subsystem, file)`` as far as known (without the file when
    ``path`` is False: the caller printed it)."""
    if not function:
        return ""
    sub = _subsystem(function, file)
    if sub and file and not path:
        sub = sub.rsplit(", ", 1)[0]
    return f" in {base_name(function)}" + (f" ({sub})" if sub else "")


def _is_memcg(function: str) -> bool:
    return (_subsystem(function) or "").startswith("memory cgroups")


def _caller(function: Optional[str], frames: List[Dict[str, Any]]) -> str:
    """``, called from ...``: the memory-cgroup function down the call trace
    when the trapping ``function`` is not one (a generic allocator called
    from memcg code), with the frame it called; else the first caller.  The
    trapping function's own frames and unreliable ones ("?", ppc64's
    "(unreliable)") are passed over."""
    if not function:
        return ""
    own = base_name(function)
    # a dump's or crash's backtrace: the callers are the frames after the
    # exception frame (those before it handled the exception)
    exc = [i for i, f in enumerate(frames) if f.get("exception")]
    if exc:
        frames = frames[exc[-1] + 1:]
    names = [base_name(f["function"]) for f in frames
             if f.get("function") and f.get("reliable", True) is not False]
    names = [n for n in names if n != own]
    if not names or _is_memcg(own):
        return ""
    i = next((i for i, n in enumerate(names) if _is_memcg(n)), None)
    if i is None:
        return f", called from {names[0]}"
    sub = _subsystem(names[i])
    via = f" through {names[i - 1]}" if i > 0 else ""
    return f", called from {names[i]}" + (f" ({sub})" if sub else "") + via


# lib/bug.c report_bug(): "kernel BUG at %s:%u!"
_BUG_AT = re.compile(r"kernel BUG at (\S+?):(\d+)")

#: below the smallest page size every architecture calls a faulting data
#: address a NULL pointer dereference (arm64/x86 "addr < PAGE_SIZE", newer
#: ppc64 "regs->dar < PAGE_SIZE"); older ppc64 said "paging request"
_NULL_BELOW = 4096


def _panic_diag(pan: Dict[str, Any], cause=None, warning=None) -> Optional[Dict[str, Any]]:
    """The panic's class, where it trapped and from where; ``cause``: the
    log's oops header of it (its fault address), ``warning``: the last
    WARNING before it (where panic_on_warn turned it into the panic)."""
    text = pan.get("panic")
    if not text:
        return None
    cls = next((name for rx, name in _PANIC_CLASS if rx.search(text)), "kernel panic")
    addr = getattr(cause, "address", None)
    if cls == "kernel paging request fault" and addr is not None and addr < _NULL_BELOW:
        cls = "kernel NULL pointer dereference"
    if cls == "program check (s390)":
        cls = "s390 " + text.split(":", 1)[0]
    rip = pan.get("rip") or {}
    func = rip.get("function")
    file = rip.get("file")
    bug = _BUG_AT.search(text)
    if cls.startswith("WARNING turned into a panic") and warning is not None:
        func, file, line = _warning_at(warning)
        where = (f" at {file}:{line}" if file else "") + _where(func, file, path=False)
    elif bug:
        where = f" at {bug.group(1)}:{bug.group(2)}" + _where(func, file or bug.group(1),
                                                              path=False)
    else:
        where = _where(func, file)
    where += _caller(func, pan.get("frames") or [])
    if addr is not None and cls != "kernel BUG":
        where += f"; address {addr:#x}"
    return {"class": cls, "headline": f"{cls}{where}{_NO_FIX}",
            "facts": {"panic": text, "function": func, "subsystem": _subsystem(func, file),
                      "address": addr}}


def _hit(hits: Dict[str, Optional[str]], pattern: str) -> Optional["re.Match"]:
    line = hits.get(pattern)
    return re.search(pattern, line) if line else None


def _oom_diag(rep, hits: Dict[str, Optional[str]], page_kb: int) -> Optional[Dict[str, Any]]:
    ooms = list(getattr(rep, "ooms", []) or [])
    summ, kill = _hit(hits, OOM_SUMMARY), _hit(hits, OOM_KILL)
    victim, task_in = _hit(hits, OOM_VICTIM), _hit(hits, OOM_TASK_IN)
    nothing = _hit(hits, OOM_NOTHING)
    if not (ooms or summ or kill or victim or nothing):
        return None
    first = ooms[0] if ooms else None
    memcg_path = None
    if summ and summ.group("oom_memcg"):
        memcg_path = summ.group("oom_memcg")
    elif task_in:
        memcg_path = task_in.group("oom_memcg")
    is_memcg = bool(memcg_path) or (kill is not None and kill.group("memcg").startswith("Memory")) \
        or (summ is not None and summ.group("constraint") == "CONSTRAINT_MEMCG") \
        or bool(first and first.memcg)
    constraint = summ.group("constraint") if summ else None
    scope = ("memcg " + memcg_path if memcg_path else "memcg") if is_memcg else "global"
    if constraint and constraint not in ("CONSTRAINT_NONE", "CONSTRAINT_MEMCG"):
        scope += f", {constraint}"
    pid = comm = anon = None
    if victim:
        pid, comm = int(victim.group("pid")), victim.group("comm")
        anon = int(victim.group("anon")) if victim.group("anon") else None
    elif kill:
        pid, comm = int(kill.group("pid")), kill.group("comm")
    elif summ and summ.group("pid"):
        pid, comm = int(summ.group("pid")), summ.group("task")
    elif first and first.killed_pid is not None:
        pid, comm = first.killed_pid, first.killed_comm
    if not (summ or kill or victim or task_in or nothing):
        # only the "invoked oom-killer" header: the excerpt ends before the kill
        head = (f"OOM killer invoked ({'memcg' if is_memcg else 'scope not in the log'})"
                f"{_request(first, page_kb)}; the log ends before the kill")
        return {"class": "OOM kill", "headline": head,
                "facts": {"memcg": is_memcg, "memcg_path": None, "constraint": None,
                          "victim_pid": None, "victim_comm": None, "anon_rss_kb": None,
                          "order": first.order, "invoked_by": first.comm, "count": len(ooms)}}
    head = f"OOM kill ({scope}): "
    if comm or pid is not None:
        head += (f"{comm or '?'} pid {pid if pid is not None else '?'}"
                 + (f", anon-rss {_kib(anon)}" if anon is not None else ""))
    elif nothing:
        head += ("no killable process (a global OOM then panics: \"System is deadlocked on "
                 "memory\", mm/oom_kill.c out_of_memory())")
    else:
        head += "victim not in the log"
    if first is not None:
        head += "; invoked" + _request(first, page_kb) + _manual(ooms)
    return {"class": "OOM kill", "headline": head,
            "facts": {"memcg": is_memcg, "memcg_path": memcg_path, "constraint": constraint,
                      "victim_pid": pid, "victim_comm": comm, "anon_rss_kb": anon,
                      "order": first.order if first else None, "invoked_by": first.comm if first else None,
                      "count": len(ooms)}}


def _request(first, page_kb: int) -> str:
    """`` by TASK for order N (SIZE)``: what asked for the memory of an OOM
    report (``first``, :class:`crashext.sources.kmsg.OomReport`); `` manually
    (SysRq-f)`` for a manual OOM kill, which asked for none."""
    if first.sysrq:
        return " manually (SysRq-f), not by an allocation"
    by = f" by {first.comm}" if first.comm else ""
    high = " (a high-order request)" if first.order is not None and first.order > 0 else ""
    return f"{by} for order {first.order}{_order_size(first.order, page_kb)}{high}"


def _manual(ooms: List[Any]) -> str:
    """How many of several OOM reports were manual (SysRq-f), and whom they
    killed when it was the same task each time (a victim that does not exit)."""
    manual = [o for o in ooms if o.sysrq]
    if not manual or len(ooms) == 1:
        return ""
    out = f"; {len(manual)} of the {len(ooms)} OOM reports manual (SysRq-f)"
    killed = [o for o in manual if o.killed_pid is not None]
    if len(killed) > 1 and len({o.killed_pid for o in killed}) == 1:
        k = killed[0]
        out += f", {len(killed)} of them killed pid {k.killed_pid} ({k.killed_comm})"
    return out


def _alloc_diag(memory: Dict[str, Any], page_kb: int) -> Optional[Dict[str, Any]]:
    fails = memory.get("allocation_failures") or []
    if not fails:
        return None
    zvs = memory.get("zone_verdicts") or []
    pairs = list(zip(fails, zvs + [{}] * (len(fails) - len(zvs))))
    # the highest order is the most telling (order-0 failures are often only atomic noise)
    f, zv = max(pairs, key=lambda p: (p[0].get("order") or 0))
    partial = f.get("kind") == "vmalloc" and f.get("allocated") is not None
    if partial:
        cls = "vmalloc failure"
        of = "" if f.get("size") is None else f" of {_kib(f['size'] // 1024)}"
        what = f"got {_kib(f['allocated'] // 1024)}{of} before a page allocation failed"
    elif f.get("kind") == "vmalloc":
        cls = "vmalloc failure"
        what = f"{f.get('size')} bytes" if f.get("size") is not None else "size not printed"
    else:
        order = f.get("order")
        cls = "high-order allocation failure" if order else "allocation failure"
        what = f"order {order}{_order_size(order, page_kb)}"
    head = (f"{cls}: {f.get('comm') or '?'} {what}" if partial
            else f"{cls}: {what} for {f.get('comm') or '?'}")
    if f.get("caller"):
        head += f" in {f['caller']}"
    if f.get("flags"):
        head += f", {f['flags']}"
    zclass = zv.get("class")
    tail = {"fragmentation": "fragmentation: the zones have free memory above min but nothing "
                             f"at order >= {f.get('order')}",
            "lowmem_reserve": "held back by lowmem_reserve: the zones' free memory is reserved "
                              "for allocations that cannot use higher zones",
            "short": "short of memory: free memory below the min watermark",
            "transient": "a zone passes the watermark as printed: transient or limited by the "
                         "allocation context"}.get(zclass)
    if tail:
        head += f"; {tail}"
    elif zv.get("error"):
        head += f"; zone verdict unavailable ({zv['error']})"
    return {"class": cls, "headline": head,
            "facts": {"comm": f.get("comm"), "order": f.get("order"), "size": f.get("size"),
                      "allocated": f.get("allocated"),
                      "caller": f.get("caller"), "flags": f.get("flags"), "zones": zclass,
                      "count": len(fails)}}


def _vmalloc_diag(hits: Dict[str, Optional[str]]) -> Optional[Dict[str, Any]]:
    line = hits.get(VMALLOC_PARTIAL)
    m = re.search(VMALLOC_PARTIAL, line) if line else None
    if not m:
        return None
    comm = line[:m.start()].strip().rstrip(":").strip() or "?"
    got, want = int(m.group("got")), int(m.group("want"))
    names = m.group("names") or (f"0x{m.group('mode')}" if m.group("mode") else None)
    return {"class": "vmalloc failure",
            "headline": f"vmalloc failure: {comm} got {_kib(got // 1024)} of "
                        f"{_kib(want // 1024)} before a page allocation failed"
                        + (f", {names}" if names else ""),
            "facts": {"comm": comm, "allocated": got, "size": want, "flags": names}}


# "WARNING: CPU: 1 PID: 23767 at mm/memcontrol.c:1710 try_charge+0x734/0x1680"
# (since v4.16 the function follows the file and line on the same line)
_WARN_AT = re.compile(r"WARNING: (?:CPU: \d+ PID: \d+ )?at (?P<file>\S+?):(?P<line>\d+)"
                      r"(?: \.?(?P<func>[A-Za-z_][\w.]*)\+0x)?")


def _warning_at(warn) -> tuple:
    """(function, file, line) of a WARNING header: the file and line it
    printed, the function of its RIP line or, without one, of the header."""
    m = _WARN_AT.search(warn.message)
    if not m:
        return warn.rip_func, None, None
    return warn.rip_func or m.group("func"), m.group("file"), int(m.group("line"))


def _warning_diag(rep) -> Optional[Dict[str, Any]]:
    """A WARNING when nothing worse happened (with panic_on_warn it is a panic)."""
    warn = next((h for h in getattr(rep, "oops", []) or [] if h.kind == "warning"), None)
    if warn is None:
        return None
    func, file, line = _warning_at(warn)
    sub = _subsystem(func, file)
    where = (f" at {file}:{line}" if file else "") + _where(func, file, path=False)
    return {"class": "kernel WARNING",
            "headline": f"kernel WARNING{where}; the kernel continued (a panic only with "
                        f"panic_on_warn){_NO_FIX}",
            "facts": {"warning": warn.message, "function": func, "file": file,
                      "line": line, "subsystem": sub}}


def _slub_diag(rep) -> Optional[Dict[str, Any]]:
    slub = list(getattr(rep, "slub", []) or [])
    if not slub:
        return None
    s = slub[0]
    names = "|".join(s.gfp_names) if s.gfp_names else f"{s.gfp:#x}"
    cache = s.cache or "cache not printed"
    per_memcg = bool(s.cache and re.search(r"\(\d+:[^)]*\)$", s.cache))
    return {"class": "slab cache growth failure",
            "headline": f"slab cache growth failure: SLUB could not allocate for {cache}"
                        + (" (a per-memcg cache)" if per_memcg else "")
                        + f", gfp {names}, {len(slub)} time(s)",
            "facts": {"cache": s.cache, "per_memcg": per_memcg, "count": len(slub)}}


def _snapshot_diag(rep, page_kb: int) -> Optional[Dict[str, Any]]:
    """A show_mem dump (SysRq-m) and nothing else: what memory looked like,
    from its last block: free memory of its zones, RAM (``pages RAM`` of
    ``page_kb`` KiB pages) and the largest free block."""
    blocks = [b for b in getattr(rep, "showmem", []) or [] if b.zones or b.buddy]
    if not blocks:
        return None
    sm = blocks[-1]
    what = "SysRq-m" if sm.trigger == "sysrq" else "show_mem"
    free = [z.kb("free") for z in sm.zones if z.kb("free") is not None]
    head = f"memory snapshot ({what}), no event: "
    head += f"{_kib(sum(free))} free" if free else "free memory not printed"
    if free and sm.partial:
        head += f" (in {', '.join(z.zone for z in sm.zones)}: the block is cut)"
    pages = sm.extra.get("pages RAM")
    if pages is not None:
        head += f" of {_kib(pages * page_kb)} RAM ({pages} pages of {page_kb} KiB)"
    top = [(max(o for o, n in enumerate(b.counts) if n), b) for b in sm.buddy if any(b.counts)]
    if top:
        o, b = max(top, key=lambda t: t[0])
        head += (f"; largest free block {_kib(b.block_kb[o])} (order {o}) in Node {b.node} "
                 f"{b.zone}")
    return {"class": "memory snapshot", "headline": head,
            "facts": {"trigger": sm.trigger, "free_kb": sum(free) if free else None,
                      "ram_pages": pages, "page_kb": page_kb}}


def diagnose(pan: Optional[Dict[str, Any]], memory: Dict[str, Any], rep,
             hits: Optional[Dict[str, Optional[str]]], page_kb: int = 4) -> Dict[str, Any]:
    """The class of the event and its key numbers; first line of a verdict
    when no knowledge-base entry matched.  ``others`` lists the headlines of
    the other kinds of evidence (panic first, then OOM, allocation, SLUB).
    ``page_kb``: the page size for sizes of orders (the buddy lines' order-0
    block when the log printed one)."""
    found: List[Dict[str, Any]] = []
    alloc = _alloc_diag(memory, page_kb)
    oops = list(getattr(rep, "oops", []) or [])
    cause = next((h for h in oops if h.kind not in NOT_FATAL and h.kind != "panic"), None)
    if cause is not None and pan and pan.get("source") != "log" and \
            (pan.get("rip") or {}).get("function") != cause.rip_func:
        cause = None    # the log's oops is not the dump's panic
    warns = [h for h in oops if h.kind == "warning"]
    for d in (_panic_diag(pan, cause, warns[-1] if warns else None) if pan else None,
              _oom_diag(rep, hits or {}, page_kb) if rep is not None else None,
              alloc,
              # the kernel log's own "allocated X of Y" line when the parser kept no
              # record of it (before v4.10 it is not the record's header line)
              None if alloc and alloc["facts"].get("allocated") is not None
              else _vmalloc_diag(hits or {}),
              _slub_diag(rep) if rep is not None else None,
              _warning_diag(rep) if rep is not None else None):
        if d:
            found.append(d)
    if not found:
        snap = _snapshot_diag(rep, page_kb) if rep is not None else None
        if snap is not None:
            snap.update(event=snap["headline"], others=[])
            return snap
        none = "no panic, OOM kill or allocation failure in the evidence"
        return {"class": "no event", "headline": none, "event": none, "facts": {}, "others": []}
    top = dict(found[0])
    top["others"] = [d["headline"] for d in found[1:]]
    # the class alone, for an EVENT line next to a knowledge-base match
    top["event"] = top["headline"].split(_NO_FIX)[0]
    return top
