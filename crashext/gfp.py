"""GFP flag masks decoded the way the kernel prints them, per kernel generation.

The kernel prints a gfp mask with ``%pGg`` (lib/vsprintf.c ``format_flags``
over ``gfpflag_names``, v4.6+): walk a table of (mask, name) pairs in order;
an entry whose mask is wholly set in the remaining flags prints its name and
clears its bits; names are joined by ``|``; bits left over print once as
``0x%lx``.  The table (``__def_gfpflag_names``, include/trace/events/
mmflags.h) lists composites such as ``GFP_KERNEL`` first, then single
``__GFP_*`` bits.  :func:`decode` repeats that walk.

Before v4.6 the allocation-failure report printed only the hex mask; the
kernel's own name table then was the tracepoint's ``show_gfp_flags``
(include/trace/events/gfpflags.h).  For those generations (3.10, 4.4) we
walk that table with the gfp.h macro spellings (``__GFP_COMP``, where the
tracepoint wrote ``GFP_COMP``) and then name any bit the tracepoint left out
(``__GFP_FS``, ``__GFP_DMA``...) before falling back to hex.

Where a dump is at hand, :func:`names_from_target` reads the kernel's own
``gfpflag_names[]`` (v4.6+) instead of any table here.

Every table below was transcribed from the kernel source named in its
``source``; a kernel between two verified versions gets the nearest earlier
table and :func:`table_for_release` says it was assumed.
"""

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import CrashextError, InputError

__all__ = ["GfpTable", "TABLES", "table_for_release", "table_by_key", "decode",
           "decode_str", "names_from_target", "zone_bits", "parse_version"]


@dataclass(frozen=True)
class GfpTable:
    """One generation's GFP bits and print order.

    ``bits`` maps ``__GFP_*`` names to values (include/linux/gfp.h, or
    gfp_types.h since v6.0); ``names`` is the ordered (name, mask) list the
    kernel prints with; ``printed`` says whether the allocation-failure and
    OOM reports of this generation carry names themselves (v4.6+).
    """

    key: str
    since: Tuple[int, int]
    source: str
    verified: Tuple[str, ...]
    bits: Dict[str, int]
    names: Tuple[Tuple[str, int], ...]
    printed: bool
    zero: str = ""
    notes: str = ""

    def bit(self, name: str) -> int:
        return self.bits.get(name, 0)


def _table(key, since, source, verified, bits, composites, order, printed,
           zero="", notes=""):
    """Build a table: ``composites`` are (name, [parts]) evaluated in order
    (a part is a bit name, a composite defined earlier, or ``"~NAME"`` to
    clear); ``order`` is the kernel's print order of names."""
    val: Dict[str, int] = dict(bits)
    for name, parts in composites:
        v = 0
        for p in parts:
            if p.startswith("~"):
                v &= ~val[p[1:]]
            else:
                v |= val[p]
        val[name] = v
    names = tuple((n, val[n]) for n in order)
    return GfpTable(key, since, source, tuple(verified), dict(bits), names, printed,
                    zero, notes)


def _bits(spec: str) -> Dict[str, int]:
    out = {}
    for tok in spec.split():
        name, value = tok.split("=")
        out["__GFP_" + name] = int(value, 16)
    return out


# -- 3.10: mainline v3.10 and RHEL7 3.10.0 ------------------------------------
# Bits: include/linux/gfp.h of v3.10 (linux-3.10.20 tree), identical in RHEL7
# kernel-3.10.0-514.el7 (checked).  RHEL7 3.10.0-1127.el7 names bit 0x100000
# __GFP_ACCOUNT instead of __GFP_KMEMCG (same value); we print the 3.10 name.
# 3.10's kmalloc_order() (include/linux/slub_def.h, same in RHEL7 -514) adds
# __GFP_COMP | __GFP_KMEMCG to a large kmalloc, which is why the RHEL7 idr-bug log's
# kzalloc(GFP_KERNEL) of memcg_update_cache_size() failed with 0x10c0d0.
_B310 = _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 WAIT=10 HIGH=20 IO=40 FS=80 COLD=100 "
              "NOWARN=200 REPEAT=400 NOFAIL=800 NORETRY=1000 MEMALLOC=2000 COMP=4000 "
              "ZERO=8000 NOMEMALLOC=10000 HARDWALL=20000 THISNODE=40000 RECLAIMABLE=80000 "
              "KMEMCG=100000 NOTRACK=200000 NO_KSWAPD=400000 OTHER_NODE=800000 "
              "WRITE=1000000")
T310 = _table(
    "3.10", (3, 0),
    "include/linux/gfp.h and include/trace/events/gfpflags.h (show_gfp_flags) of "
    "v3.10 / RHEL7 kernel-3.10.0-514.el7",
    ("3.10", "3.10.0-514.el7", "3.10.0-1127.el7 (bits)"),
    _B310,
    [("GFP_ATOMIC", ["__GFP_HIGH"]),
     ("GFP_NOIO", ["__GFP_WAIT"]),
     ("GFP_NOFS", ["__GFP_WAIT", "__GFP_IO"]),
     ("GFP_KERNEL", ["__GFP_WAIT", "__GFP_IO", "__GFP_FS"]),
     ("GFP_TEMPORARY", ["GFP_KERNEL", "__GFP_RECLAIMABLE"]),
     ("GFP_USER", ["GFP_KERNEL", "__GFP_HARDWALL"]),
     ("GFP_HIGHUSER", ["GFP_USER", "__GFP_HIGHMEM"]),
     ("GFP_HIGHUSER_MOVABLE", ["GFP_HIGHUSER", "__GFP_MOVABLE"]),
     ("GFP_TRANSHUGE", ["GFP_HIGHUSER_MOVABLE", "__GFP_COMP", "__GFP_NOMEMALLOC",
                        "__GFP_NORETRY", "__GFP_NOWARN", "__GFP_NO_KSWAPD"])],
    ["GFP_TRANSHUGE", "GFP_HIGHUSER_MOVABLE", "GFP_HIGHUSER", "GFP_USER", "GFP_TEMPORARY",
     "GFP_KERNEL", "GFP_NOFS", "GFP_ATOMIC", "GFP_NOIO", "__GFP_HIGH", "__GFP_WAIT",
     "__GFP_IO", "__GFP_COLD", "__GFP_NOWARN", "__GFP_REPEAT", "__GFP_NOFAIL",
     "__GFP_NORETRY", "__GFP_COMP", "__GFP_ZERO", "__GFP_NOMEMALLOC", "__GFP_MEMALLOC",
     "__GFP_HARDWALL", "__GFP_THISNODE", "__GFP_RECLAIMABLE", "__GFP_KMEMCG",
     "__GFP_MOVABLE", "__GFP_NOTRACK", "__GFP_NO_KSWAPD", "__GFP_OTHER_NODE"],
    printed=False, zero="GFP_NOWAIT",
    notes="the kernel printed no names; order of the tracepoint's show_gfp_flags")

# -- 4.4: __GFP_WAIT split into DIRECT/KSWAPD_RECLAIM since Linux kernel commit
# d0164adc89f6 ("mm, page_alloc: distinguish between being unable to sleep,
# unwilling to sleep and avoiding waking kswapd") (in v4.4) ---------------------
_B44 = _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 RECLAIMABLE=10 HIGH=20 IO=40 FS=80 "
             "COLD=100 NOWARN=200 REPEAT=400 NOFAIL=800 NORETRY=1000 MEMALLOC=2000 "
             "COMP=4000 ZERO=8000 NOMEMALLOC=10000 HARDWALL=20000 THISNODE=40000 "
             "ATOMIC=80000 NOACCOUNT=100000 NOTRACK=200000 DIRECT_RECLAIM=400000 "
             "OTHER_NODE=800000 WRITE=1000000 KSWAPD_RECLAIM=2000000")
_C44 = [("__GFP_RECLAIM", ["__GFP_DIRECT_RECLAIM", "__GFP_KSWAPD_RECLAIM"]),
        ("GFP_ATOMIC", ["__GFP_HIGH", "__GFP_ATOMIC", "__GFP_KSWAPD_RECLAIM"]),
        ("GFP_KERNEL", ["__GFP_RECLAIM", "__GFP_IO", "__GFP_FS"]),
        ("GFP_NOWAIT", ["__GFP_KSWAPD_RECLAIM"]),
        ("GFP_NOIO", ["__GFP_RECLAIM"]),
        ("GFP_NOFS", ["__GFP_RECLAIM", "__GFP_IO"]),
        ("GFP_TEMPORARY", ["GFP_KERNEL", "__GFP_RECLAIMABLE"]),
        ("GFP_USER", ["GFP_KERNEL", "__GFP_HARDWALL"]),
        ("GFP_HIGHUSER", ["GFP_USER", "__GFP_HIGHMEM"]),
        ("GFP_HIGHUSER_MOVABLE", ["GFP_HIGHUSER", "__GFP_MOVABLE"]),
        ("GFP_TRANSHUGE", ["GFP_HIGHUSER_MOVABLE", "__GFP_COMP", "__GFP_NOMEMALLOC",
                           "__GFP_NORETRY", "__GFP_NOWARN", "~__GFP_KSWAPD_RECLAIM"])]
T44 = _table(
    "4.4", (4, 4),
    "include/linux/gfp.h and include/trace/events/gfpflags.h of v4.4",
    ("4.4",), _B44, _C44,
    ["GFP_TRANSHUGE", "GFP_HIGHUSER_MOVABLE", "GFP_HIGHUSER", "GFP_USER", "GFP_TEMPORARY",
     "GFP_KERNEL", "GFP_NOFS", "GFP_ATOMIC", "GFP_NOIO", "__GFP_HIGH", "__GFP_ATOMIC",
     "__GFP_IO", "__GFP_COLD", "__GFP_NOWARN", "__GFP_REPEAT", "__GFP_NOFAIL",
     "__GFP_NORETRY", "__GFP_COMP", "__GFP_ZERO", "__GFP_NOMEMALLOC", "__GFP_MEMALLOC",
     "__GFP_HARDWALL", "__GFP_THISNODE", "__GFP_RECLAIMABLE", "__GFP_MOVABLE",
     "__GFP_NOTRACK", "__GFP_DIRECT_RECLAIM", "__GFP_KSWAPD_RECLAIM", "__GFP_OTHER_NODE"],
    printed=False, zero="GFP_NOWAIT",
    notes="the kernel printed no names; order of the tracepoint's show_gfp_flags")

# Composites common to v4.5+ (include/linux/gfp.h of v4.9 .. v5.10)
_C49 = [("__GFP_RECLAIM", ["__GFP_DIRECT_RECLAIM", "__GFP_KSWAPD_RECLAIM"]),
        ("GFP_ATOMIC", ["__GFP_HIGH", "__GFP_ATOMIC", "__GFP_KSWAPD_RECLAIM"]),
        ("GFP_KERNEL", ["__GFP_RECLAIM", "__GFP_IO", "__GFP_FS"]),
        ("GFP_KERNEL_ACCOUNT", ["GFP_KERNEL", "__GFP_ACCOUNT"]),
        ("GFP_NOWAIT", ["__GFP_KSWAPD_RECLAIM"]),
        ("GFP_NOIO", ["__GFP_RECLAIM"]),
        ("GFP_NOFS", ["__GFP_RECLAIM", "__GFP_IO"]),
        ("GFP_USER", ["GFP_KERNEL", "__GFP_HARDWALL"]),
        ("GFP_DMA", ["__GFP_DMA"]),
        ("GFP_DMA32", ["__GFP_DMA32"]),
        ("GFP_HIGHUSER", ["GFP_USER", "__GFP_HIGHMEM"]),
        ("GFP_HIGHUSER_MOVABLE", ["GFP_HIGHUSER", "__GFP_MOVABLE"]),
        ("GFP_TRANSHUGE_LIGHT", ["GFP_HIGHUSER_MOVABLE", "__GFP_COMP", "__GFP_NOMEMALLOC",
                                 "__GFP_NOWARN", "~__GFP_RECLAIM"]),
        ("GFP_TRANSHUGE", ["GFP_TRANSHUGE_LIGHT", "__GFP_DIRECT_RECLAIM"])]
_C49T = _C49 + [("GFP_TEMPORARY", ["GFP_KERNEL", "__GFP_RECLAIMABLE"])]

_HEAD_T = ["GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT", "GFP_HIGHUSER_MOVABLE", "GFP_HIGHUSER",
           "GFP_USER", "GFP_TEMPORARY", "GFP_KERNEL_ACCOUNT", "GFP_KERNEL", "GFP_NOFS",
           "GFP_ATOMIC", "GFP_NOIO", "GFP_NOWAIT", "GFP_DMA", "__GFP_HIGHMEM", "GFP_DMA32",
           "__GFP_HIGH", "__GFP_ATOMIC", "__GFP_IO", "__GFP_FS"]
_HEAD = [n for n in _HEAD_T if n != "GFP_TEMPORARY"]
_MID = ["__GFP_NOFAIL", "__GFP_NORETRY", "__GFP_COMP", "__GFP_ZERO", "__GFP_NOMEMALLOC",
        "__GFP_MEMALLOC", "__GFP_HARDWALL", "__GFP_THISNODE", "__GFP_RECLAIMABLE",
        "__GFP_MOVABLE", "__GFP_ACCOUNT"]
_TAIL = ["__GFP_WRITE", "__GFP_RECLAIM", "__GFP_DIRECT_RECLAIM", "__GFP_KSWAPD_RECLAIM"]

# -- 4.5 .. 4.9: __GFP_NOACCOUNT became __GFP_ACCOUNT (v4.5); %pGg in reports -----
T49 = _table(
    "4.9", (4, 5),
    "include/linux/gfp.h and include/trace/events/mmflags.h of v4.9",
    ("4.9",),
    _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 RECLAIMABLE=10 HIGH=20 IO=40 FS=80 "
          "COLD=100 NOWARN=200 REPEAT=400 NOFAIL=800 NORETRY=1000 MEMALLOC=2000 "
          "COMP=4000 ZERO=8000 NOMEMALLOC=10000 HARDWALL=20000 THISNODE=40000 "
          "ATOMIC=80000 ACCOUNT=100000 NOTRACK=200000 DIRECT_RECLAIM=400000 "
          "OTHER_NODE=800000 WRITE=1000000 KSWAPD_RECLAIM=2000000"),
    _C49T,
    _HEAD_T + ["__GFP_COLD", "__GFP_NOWARN", "__GFP_REPEAT"] + _MID + ["__GFP_NOTRACK"]
    + _TAIL + ["__GFP_OTHER_NODE"],
    printed=True)

# -- 4.10 .. 4.14: __GFP_OTHER_NODE removed, WRITE/KSWAPD_RECLAIM moved down ------
T410 = _table(
    "4.10", (4, 10),
    "include/linux/gfp.h and include/trace/events/mmflags.h of v4.10.17",
    ("4.10",),
    _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 RECLAIMABLE=10 HIGH=20 IO=40 FS=80 "
          "COLD=100 NOWARN=200 REPEAT=400 NOFAIL=800 NORETRY=1000 MEMALLOC=2000 "
          "COMP=4000 ZERO=8000 NOMEMALLOC=10000 HARDWALL=20000 THISNODE=40000 "
          "ATOMIC=80000 ACCOUNT=100000 NOTRACK=200000 DIRECT_RECLAIM=400000 "
          "WRITE=800000 KSWAPD_RECLAIM=1000000"),
    _C49T,
    _HEAD_T + ["__GFP_COLD", "__GFP_NOWARN", "__GFP_REPEAT"] + _MID + ["__GFP_NOTRACK"]
    + _TAIL,
    printed=True)

# -- 4.15: __GFP_COLD, __GFP_NOTRACK, GFP_TEMPORARY gone; __GFP_REPEAT became
#    __GFP_RETRY_MAYFAIL (v4.13) ----------------------------------------------------
T415 = _table(
    "4.15", (4, 15),
    "include/linux/gfp.h and include/trace/events/mmflags.h of v4.15.18",
    ("4.15",),
    _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 RECLAIMABLE=10 HIGH=20 IO=40 FS=80 "
          "NOWARN=200 RETRY_MAYFAIL=400 NOFAIL=800 NORETRY=1000 MEMALLOC=2000 "
          "COMP=4000 ZERO=8000 NOMEMALLOC=10000 HARDWALL=20000 THISNODE=40000 "
          "ATOMIC=80000 ACCOUNT=100000 DIRECT_RECLAIM=400000 WRITE=800000 "
          "KSWAPD_RECLAIM=1000000 NOLOCKDEP=2000000"),
    _C49,
    _HEAD + ["__GFP_NOWARN", "__GFP_RETRY_MAYFAIL"] + _MID + _TAIL,
    printed=True, notes="__GFP_NOLOCKDEP exists only with CONFIG_LOCKDEP and has no name")

# -- 4.18 .. 4.20: bits renumbered to close the holes ------------------------------
T418 = _table(
    "4.18", (4, 18),
    "include/linux/gfp.h and include/trace/events/mmflags.h of v4.20 and of RHEL8 "
    "kernel-4.18.0-147 (identical)",
    ("4.18.0-147.el8", "4.20"),
    _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 RECLAIMABLE=10 HIGH=20 IO=40 FS=80 "
          "WRITE=100 NOWARN=200 RETRY_MAYFAIL=400 NOFAIL=800 NORETRY=1000 "
          "MEMALLOC=2000 COMP=4000 ZERO=8000 NOMEMALLOC=10000 HARDWALL=20000 "
          "THISNODE=40000 ATOMIC=80000 ACCOUNT=100000 DIRECT_RECLAIM=200000 "
          "KSWAPD_RECLAIM=400000 NOLOCKDEP=800000"),
    _C49,
    _HEAD + ["__GFP_NOWARN", "__GFP_RETRY_MAYFAIL"] + _MID + _TAIL,
    printed=True, notes="__GFP_NOLOCKDEP exists only with CONFIG_LOCKDEP and has no name")

# -- 5.x: renumbered again (GFP_KERNEL 0xcc0).  Seen in 5.4 reports (tests/data/
#    logs) and read in v5.10.89; 5.0 .. 5.3 assumed. --------------------------------
_B510 = _bits("DMA=1 HIGHMEM=2 DMA32=4 MOVABLE=8 RECLAIMABLE=10 HIGH=20 IO=40 FS=80 "
              "ZERO=100 ATOMIC=200 DIRECT_RECLAIM=400 KSWAPD_RECLAIM=800 WRITE=1000 "
              "NOWARN=2000 RETRY_MAYFAIL=4000 NOFAIL=8000 NORETRY=10000 MEMALLOC=20000 "
              "COMP=40000 NOMEMALLOC=80000 HARDWALL=100000 THISNODE=200000 "
              "ACCOUNT=400000")
T510 = _table(
    "5.10", (5, 0),
    "include/linux/gfp.h and include/trace/events/mmflags.h of v5.10.89 (and v5.12)",
    ("5.4 (reports)", "5.10", "5.12"),
    _B510, _C49,
    _HEAD + ["__GFP_NOWARN", "__GFP_RETRY_MAYFAIL"] + _MID + _TAIL,
    printed=True, notes="__GFP_NOLOCKDEP (0x800000) exists only with CONFIG_LOCKDEP")

# -- 5.13 .. 5.19: __GFP_ZEROTAGS and an unconditional __GFP_SKIP_KASAN_POISON,
#    which GFP_HIGHUSER_MOVABLE includes (so user pages print 0x1100cca).  Read in
#    v5.15; 5.13/5.14/5.16+ assumed. -------------------------------------------------
_C515 = [c if c[0] != "GFP_HIGHUSER_MOVABLE"
         else ("GFP_HIGHUSER_MOVABLE", ["GFP_HIGHUSER", "__GFP_MOVABLE",
                                        "__GFP_SKIP_KASAN_POISON"]) for c in _C49]
T515 = _table(
    "5.15", (5, 13),
    "include/linux/gfp.h and include/trace/events/mmflags.h of v5.15",
    ("5.15",),
    dict(_B510, __GFP_ZEROTAGS=0x800000, __GFP_SKIP_KASAN_POISON=0x1000000), _C515,
    _HEAD + ["__GFP_NOWARN", "__GFP_RETRY_MAYFAIL"] + _MID + _TAIL
    + ["__GFP_ZEROTAGS", "__GFP_SKIP_KASAN_POISON"],
    printed=True, notes="__GFP_NOLOCKDEP (0x2000000) only with CONFIG_LOCKDEP")

# -- 6.0 .. 6.2: gfp_types.h (v6.0); __GFP_SKIP_ZERO / __GFP_SKIP_KASAN_* are 0
# without CONFIG_KASAN_HW_TAGS (arm64 MTE only), so x86 tables leave them out, as
# the kernel's own list does there.
_B61 = dict(_B510, __GFP_ZEROTAGS=0x800000)
T61 = _table(
    "6.1", (6, 0),
    "include/linux/gfp_types.h and include/trace/events/mmflags.h of v6.1.129",
    ("6.1",),
    _B61, _C49,
    _HEAD + ["__GFP_NOWARN", "__GFP_RETRY_MAYFAIL"] + _MID + _TAIL + ["__GFP_ZEROTAGS"],
    printed=True,
    notes="without CONFIG_KASAN_HW_TAGS; __GFP_NOLOCKDEP (0x8000000) only with LOCKDEP")

# -- 6.3+: __GFP_ATOMIC removed (Mel Gorman's series), bit 0x200 unused; bits are
#    enum ___GFP_*_BIT since v6.10.  Read in v6.12.19. -------------------------------
_B612 = {k: v for k, v in _B61.items() if k != "__GFP_ATOMIC"}
_C612 = [c for c in _C49 if c[0] not in ("GFP_ATOMIC", "GFP_NOWAIT")]
_C612.insert(1, ("GFP_ATOMIC", ["__GFP_HIGH", "__GFP_KSWAPD_RECLAIM"]))
_C612.insert(4, ("GFP_NOWAIT", ["__GFP_KSWAPD_RECLAIM", "__GFP_NOWARN"]))
T612 = _table(
    "6.12", (6, 3),
    "include/linux/gfp_types.h and include/trace/events/mmflags.h of v6.12.19",
    ("6.12",),
    _B612, _C612,
    [n for n in _HEAD if n != "__GFP_ATOMIC"] + ["__GFP_NOWARN", "__GFP_RETRY_MAYFAIL"]
    + _MID + _TAIL + ["__GFP_ZEROTAGS"],
    printed=True,
    notes="6.3 .. 6.11 assumed; GFP_NOWAIT includes __GFP_NOWARN as in 6.12.19; "
          "___GFP_NO_OBJ_EXT (bit 24 with CONFIG_SLAB_OBJ_EXT) has no name")

# -- 6.14+ (assumed from 6.14): the bit names are generated from the ___GFP_*_BIT
#    enum in bit order after the composites and __GFP_RECLAIM (TRACE_GFP_FLAGS in
#    include/trace/events/mmflags.h of torvalds/linux at 01c69ef56dfa); bits as
#    6.12.  Agrees with a 6.16.9 report in tests/data/logs. ----------------------------
_BITORDER = [n for n, _v in sorted(_B612.items(), key=lambda kv: kv[1])]
T614 = _table(
    "6.14", (6, 14),
    "include/trace/events/mmflags.h of torvalds/linux 01c69ef56dfa (TRACE_GFP_FLAGS), "
    "include/linux/gfp_types.h of v6.12.19",
    ("6.16 (reports)",),
    _B612, _C612,
    ["GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT", "GFP_HIGHUSER_MOVABLE", "GFP_HIGHUSER",
     "GFP_USER", "GFP_KERNEL_ACCOUNT", "GFP_KERNEL", "GFP_NOFS", "GFP_ATOMIC", "GFP_NOIO",
     "GFP_NOWAIT", "GFP_DMA", "GFP_DMA32", "__GFP_RECLAIM"] + _BITORDER,
    printed=True,
    notes="first release with this order not pinned down: 6.13 .. 6.15 assumed")

#: All tables, oldest first.
TABLES: Tuple[GfpTable, ...] = (T310, T44, T49, T410, T415, T418, T510, T515, T61, T612, T614)

_VER = re.compile(r"(\d+)\.(\d+)")


def parse_version(release: str) -> Optional[Tuple[int, int]]:
    """``"3.10.0-693.2.2.el7.x86_64"`` -> ``(3, 10)``; None if unreadable."""
    m = _VER.search(release or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


def table_by_key(key: str) -> GfpTable:
    for t in TABLES:
        if t.key == key:
            return t
    raise InputError(f"no GFP table {key!r} (have {', '.join(t.key for t in TABLES)})")


def table_for_release(release: Optional[str]) -> Tuple[GfpTable, str]:
    """The table for a kernel release, and one phrase saying how it was chosen.

    The phrase says "assumed" when the release is unknown or falls between
    verified versions.
    """
    ver = parse_version(release) if release else None
    if ver is None:
        t = T510
        return t, (f"kernel version unknown: assumed the {t.key} table "
                   "(give --kernel-version)")
    chosen = TABLES[0]
    for t in TABLES:
        if ver >= t.since:
            chosen = t
    exact = ver in {parse_version(v) for v in chosen.verified}
    if ver < (3, 0):
        return chosen, f"kernel {release}: older than any table, assumed the {chosen.key} table"
    how = "verified" if exact else "assumed: nearest earlier verified table"
    return chosen, f"{chosen.key} table ({how}; {chosen.source})"


def decode(mask: int, table: GfpTable,
           names: Optional[Sequence[Tuple[str, int]]] = None) -> List[str]:
    """The names the kernel prints for ``mask``, in its order.

    ``names`` overrides the table's list (e.g. read from a dump).  Leftover
    bits: on tables the kernel printed with (``printed``) they become one
    hex number, as format_flags() does; on older tables named single bits
    are named first.
    """
    if mask < 0:
        raise ValueError("negative gfp mask")
    order = list(names) if names is not None else list(table.names)
    if mask == 0:
        return [table.zero] if table.zero and names is None else []
    flags = mask
    out: List[str] = []
    for name, m in order:
        if not flags:
            break
        if (flags & m) != m:
            continue
        out.append(name)
        flags &= ~m
    if flags and names is None and not table.printed:
        for name, m in sorted(table.bits.items(), key=lambda kv: kv[1]):
            if m and flags & m == m:
                out.append(name)
                flags &= ~m
    if flags:
        out.append(f"{flags:#x}")
    return out


def decode_str(mask: int, table: GfpTable,
               names: Optional[Sequence[Tuple[str, int]]] = None) -> str:
    return "|".join(decode(mask, table, names))


def names_from_target(t, limit: int = 128) -> Optional[List[Tuple[str, int]]]:
    """The kernel's own ``gfpflag_names[]`` (mm/debug.c, v4.6+), or None.

    An array of ``struct trace_print_flags {unsigned long mask; const char
    *name;}`` ended by a NULL name.
    """
    try:
        if not t.has_symbol("gfpflag_names"):
            return None
        arr = t.symbol("gfpflag_names")
        out = []
        for i in range(limit):
            ent = arr[i]
            name_ptr = ent.member("name")
            if int(name_ptr) == 0:
                return out
            out.append((name_ptr.string(64), int(ent.member("mask"))))
        return None  # no terminator within limit: not the table we expect
    except CrashextError:
        return None


def zone_bits(mask: int, table: GfpTable) -> Dict[str, bool]:
    """The zone modifiers of ``mask`` (GFP_ZONEMASK, include/linux/gfp.h)."""
    return {z: bool(mask & table.bit("__GFP_" + z))
            for z in ("DMA", "HIGHMEM", "DMA32", "MOVABLE")}
