"""Compaction and reclaim counters: did the kernel try to defragment, and
did reclaim keep up?

Sources: ``/proc/vmstat`` text (live, a saved copy, a sosreport) or a dump,
where the event counters are the per-CPU ``vm_event_states.event[]``
(``struct vm_event_state``, include/linux/vmstat.h) summed over the possible
CPUs, as ``all_vm_events()`` does (mm/vmstat.c; an offline CPU's counts are
folded into another by ``vm_events_fold_cpu()``).  Indices come from the
``enum vm_event_item`` enumerators of the dump's debug info; their
``/proc/vmstat`` names are the enumerator lower-cased, except the
compaction ones listed in :data:`EVENT_NAMES` (``vmstat_text[]``,
mm/vmstat.c: ``[I(COMPACTSTALL)] = "compact_stall"``...).

All counters are cumulative since boot.
"""

from typing import Any, Dict, List, Optional

__all__ = ["parse_vmstat", "from_target", "summary", "WATCHED", "EVENT_NAMES"]

#: enum vm_event_item names whose vmstat_text[] name is not the lower-cased
#: enumerator (mm/vmstat.c, CONFIG_COMPACTION block).
EVENT_NAMES = {
    "COMPACTMIGRATE_SCANNED": "compact_migrate_scanned",
    "COMPACTFREE_SCANNED": "compact_free_scanned",
    "COMPACTISOLATED": "compact_isolated",
    "COMPACTSTALL": "compact_stall",
    "COMPACTFAIL": "compact_fail",
    "COMPACTSUCCESS": "compact_success",
    "KCOMPACTD_WAKE": "compact_daemon_wake",
    "KCOMPACTD_MIGRATE_SCANNED": "compact_daemon_migrate_scanned",
    "KCOMPACTD_FREE_SCANNED": "compact_daemon_free_scanned",
}

#: The counters shown, in order.  A name ending in ``*`` sums its per-zone
#: variants (``allocstall_normal``... since v4.8; ``pgscan_kswapd_dma``... on
#: 3.10) or takes the plain counter where the kernel has one.
WATCHED = ("compact_stall", "compact_success", "compact_fail", "compact_migrate_scanned",
           "compact_free_scanned", "compact_isolated", "compact_daemon_wake",
           "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
           "pageoutrun", "pgscan_kswapd*", "pgsteal_kswapd*", "kswapd_low_wmark_hit_quickly",
           "kswapd_high_wmark_hit_quickly", "allocstall*", "pgscan_direct*",
           "pgsteal_direct*", "oom_kill", "drop_pagecache", "drop_slab")


def parse_vmstat(text: str) -> Dict[str, int]:
    """``/proc/vmstat`` as ``{name: value}`` (lines that are not ``name
    number`` are skipped)."""
    out: Dict[str, int] = {}
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def from_target(t) -> Dict[str, int]:
    """The event counters of a kernel (dump or live), by their /proc/vmstat names.

    Empty when the kernel has no ``vm_event_states`` (CONFIG_VM_EVENT_COUNTERS off)."""
    if not t.has_symbol("vm_event_states"):
        return {}
    items = t.enum_constants("enum vm_event_item")
    if not items:
        return {}
    wanted = {}
    for name, idx in items.items():
        if name.startswith("NR_VM_EVENT_ITEMS"):
            continue
        text = EVENT_NAMES.get(name, name.lower())
        if _watched(text):
            wanted[idx] = text
    sym = t.symbol("vm_event_states")
    out = {v: 0 for v in wanted.values()}
    for cpu in t.possible_cpus():
        ev = t.per_cpu(sym, cpu).event
        for idx, text in wanted.items():
            out[text] += int(ev[idx])
    return out


def _watched(name: str) -> bool:
    for w in WATCHED:
        if w.endswith("*"):
            if name == w[:-1] or name.startswith(w[:-1] + "_"):
                return True
        elif name == w:
            return True
    return False


def _get(c: Dict[str, int], name: str) -> Optional[int]:
    if not name.endswith("*"):
        return c.get(name)
    base = name[:-1]
    if base in c:
        return c[base]
    parts = [v for k, v in c.items() if k.startswith(base + "_")
             and not k[len(base) + 1:].startswith("throttle")]
    return sum(parts) if parts else None


def summary(counters: Dict[str, int], source: str) -> Dict[str, Any]:
    """The watched counters and what they say, in plain sentences."""
    vals = {w.rstrip("*"): _get(counters, w) for w in WATCHED}
    say: List[str] = []
    stall, ok, fail = vals["compact_stall"], vals["compact_success"], vals["compact_fail"]
    if stall is None:
        say.append("no compaction counters: a kernel without CONFIG_COMPACTION, so "
                   "high-order blocks form only as memory is freed")
    elif stall == 0:
        say.append("compact_stall 0: no allocation has had to stop and compact memory "
                   "itself since boot")
    else:
        pct = round(100.0 * (fail or 0) / stall, 1)
        say.append(f"{stall} allocations stopped to compact memory themselves (direct "
                   f"compaction): {ok} succeeded, {fail} failed ({pct}% failed)")
        if fail and fail * 2 > stall:
            say.append("most direct compaction failed: the free memory is split by pages "
                       "compaction cannot move, so high-order requests keep failing or "
                       "stalling")
    wake = vals["compact_daemon_wake"]
    if wake is not None:
        say.append(f"kcompactd, the background compaction thread, was woken {wake} times"
                   + ("" if wake else ": nothing asked for background defragmentation"))
    run, scan, steal = vals["pageoutrun"], vals["pgscan_kswapd"], vals["pgsteal_kswapd"]
    if run is not None:
        say.append(f"kswapd ran {run} reclaim passes"
                   + (f", scanned {scan} pages and reclaimed {steal}" if scan is not None
                      and steal is not None else "")
                   + (": free memory never dropped to the low watermark" if run == 0 else ""))
    st = vals["allocstall"]
    if st is not None:
        say.append(f"{st} allocations stopped to reclaim memory themselves (direct reclaim)"
                   if st else "allocstall 0: no allocation has had to reclaim memory itself")
    oom = vals["oom_kill"]
    if oom is not None:
        say.append(f"{oom} OOM kills")
    return {"source": source, "counters": vals, "cumulative_since_boot": True,
            "statements": say}
