"""The ALLOC_* rights a request gets from its GFP mask and order, per kernel.

``gfp_to_alloc_flags()`` (mm/page_alloc.c) turns the GFP mask of a request
that reached ``__alloc_pages_slowpath()`` into ``alloc_flags``; the
watermark check (:mod:`crashext.analysis.watermark`) takes the bits of it
that change ``__zone_watermark_ok()``.  This module is the one place that
knows how that derivation changed, mainline and stable:

``"3.10"`` -- v2.6.x .. v4.3 and RHEL7's 3.10.0::

        ALLOC_HIGH   = __GFP_HIGH
        ALLOC_HARDER = atomic and not __GFP_NOMEMALLOC
        atomic       = no __GFP_WAIT and no __GFP_NO_KSWAPD

    (``atomic`` was ``!__GFP_WAIT`` until Linux kernel commit b104a35d3202
    ("mm, thp: do not allow thp faults to avoid cpuset restrictions") (in
    v3.16 by its date, the release unconfirmed; marked for stable); the two
    differ only for THP faults with defrag off.  The later form is used
    throughout.)

``"4.4"`` -- v4.4 .. v6.2, since Linux kernel commit d0164adc89f6 ("mm,
    page_alloc: distinguish between being unable to sleep, unwilling to
    sleep and avoiding waking kswapd") (in v4.4)::

        ALLOC_HARDER = __GFP_ATOMIC and not __GFP_NOMEMALLOC

    ALLOC_HARDER also opens the MIGRATE_HIGHATOMIC lists and spares the
    request the high-atomic reserve subtraction (rule "4.4" of the
    watermark module).

``"6.3"`` -- since Mel Gorman's series (in v6.3): Linux kernel commits
    eb2e2b425c69 ("mm/page_alloc: explicitly record high-order atomic
    allocations in alloc_flags"), ab3508854353 ("mm/page_alloc: explicitly
    define what alloc flags deplete min reserves") and 1ebbb21811b7
    ("mm/page_alloc: explicitly define how __GFP_HIGH non-blocking
    allocations accesses reserves").  Backported to stable 6.1.116 and
    5.15.171 (Nov 2024, as dependencies of Linux kernel commit 281dd25c1a01
    ("mm/page_alloc: let GFP_ATOMIC order-0 allocs access highatomic
    reserves"))::

        ALLOC_MIN_RESERVE = __GFP_HIGH
        ALLOC_NON_BLOCK   = no __GFP_DIRECT_RECLAIM and not __GFP_NOMEMALLOC
        ALLOC_HIGHATOMIC  = ALLOC_NON_BLOCK and order > 0

``"6.18"`` -- since Linux kernel commit 6a204d4b14c9 ("mm/page_alloc: only
    set ALLOC_HIGHATOMIC for __GPF_HIGH allocations") (in v6.18: mainline
    after v6.17, it was backported to 6.17.4; the tag itself is unconfirmed
    here), also in stable 6.12.54, 6.1.157 and 5.15.195 (Oct 2025)::

        ALLOC_HIGHATOMIC  = ALLOC_NON_BLOCK and ALLOC_MIN_RESERVE and order > 0

    A 6.6.y backport is unconfirmed: 6.6 kernels are taken as "6.3".

Every generation: ALLOC_CMA for requests of migrate type MOVABLE
(``__GFP_MOVABLE`` without ``__GFP_RECLAIMABLE``; gfp_migratetype()).  Not
modelled: real-time tasks (ALLOC_HARDER / ALLOC_MIN_RESERVE for blocking
requests), PF_MEMALLOC and OOM victims (ALLOC_NO_WATERMARKS, ALLOC_OOM),
PF_MEMALLOC_PIN (no ALLOC_CMA, v5.9+).

Which generation a kernel runs needs its stable sublevel where a branch got
a backport: ``6.1.192`` says it, Debian's ``6.1.0-57-cloud-amd64`` does not,
but Debian's version string (``#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3``,
printed after the release on dump_stack()'s ``CPU:`` line) does.  Without
it the branch's own mainline generation is assumed and the answer says so;
so it is for RHEL 8/9 kernels (4.18, 5.14), whose backports of the v6.3
series were not checked.
"""

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .. import gfp

__all__ = ["GENERATIONS", "WATERMARK_RULE", "NEWEST_KNOWN", "KernelGen", "AllocFlags",
           "kernel_version", "generation", "alloc_flags", "watermark_rule"]

#: generation -> what it covers
GENERATIONS = {
    "3.10": "v2.6.x .. v4.3, RHEL7 3.10.0: ALLOC_HARDER for requests that can neither "
            "sleep nor skip kswapd",
    "4.4": "v4.4 .. v6.2: ALLOC_HARDER for __GFP_ATOMIC",
    "6.3": "v6.3+, 6.1.116+, 5.15.171+: ALLOC_NON_BLOCK for no __GFP_DIRECT_RECLAIM, "
           "ALLOC_HIGHATOMIC for those of order > 0",
    "6.18": "v6.18+, 6.12.54+, 6.1.157+, 5.15.195+: ALLOC_HIGHATOMIC only with __GFP_HIGH too",
}

# The first release of each generation on mainline, and the first sublevel
# of the stable branches that got it by backport (see the module docstring).
_MAINLINE = (((6, 18), "6.18"), ((6, 3), "6.3"), ((4, 4), "4.4"), ((0, 0), "3.10"))
_BACKPORTS: Dict[Tuple[int, int], Tuple[Tuple[int, str], ...]] = {
    (5, 15): ((195, "6.18"), (171, "6.3")),
    (6, 1): ((157, "6.18"), (116, "6.3")),
    (6, 12): ((54, "6.18"),),
    (6, 17): ((4, "6.18"),),
}

#: The newest kernel series whose dumps the tests read (Debian's 7.3 in
#: tests/vmcore, suite trixie-backports).  A newer kernel gets the newest
#: generation and rule, and :func:`generation` says that was assumed.
NEWEST_KNOWN = (7, 3)

#: generation -> rule of crashext.analysis.watermark (``__zone_watermark_ok``)
WATERMARK_RULE = {"3.10": "3.10", "4.4": "4.4", "6.3": "6.3", "6.18": "6.3"}

_REL = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?(\S*)")
# RHEL-family releases ("4.18.0-553.el8_10.x86_64", "5.14.0-427.el9.x86_64")
_ENTERPRISE = re.compile(r"\.el\d+")
# Debian's (and Ubuntu mainline builds') version string names the upstream sublevel
_DEBIAN = re.compile(r"\bDebian (\d+)\.(\d+)\.(\d+)")


def kernel_version(release: str, uts_version: Optional[str] = None
                   ) -> Optional[Tuple[int, int, Optional[int]]]:
    """``(major, minor, sublevel)`` of a kernel; sublevel None when unknown.

    ``"6.1.116"`` -> ``(6, 1, 116)``; ``"6.12.9+deb13-amd64"`` -> ``(6, 12,
    9)``; ``"6.1.0-57-cloud-amd64"`` -> ``(6, 1, None)`` (a distribution's
    ".0-ABI" release), or ``(6, 1, 192)`` with ``uts_version`` ``"#1 SMP
    Debian 6.1.192-3 (...)"``.  ``release`` may carry the version string
    after it (``"6.1.0-57-cloud-amd64 #1 Debian 6.1.192-3"``).  None if
    ``release`` starts with no version.
    """
    m = _REL.match(release or "")
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    d = _DEBIAN.search(f"{release} {uts_version or ''}")
    if d and (int(d.group(1)), int(d.group(2))) == (major, minor):
        return major, minor, int(d.group(3))
    sub = m.group(3)
    if sub is None:
        return major, minor, None
    if int(sub) == 0 and m.group(4).startswith("-"):
        return major, minor, None  # "X.Y.0-N...": a distribution ABI number, not a sublevel
    return major, minor, int(sub)


@dataclass(frozen=True)
class KernelGen:
    """A kernel's ``gfp_to_alloc_flags()`` generation and how sure that is."""

    name: str              # a key of GENERATIONS
    rule: str              # the watermark rule it goes with
    assumed: Optional[str] = None   # why it is a guess, None when known
    #: the release is newer than :data:`NEWEST_KNOWN` (``assumed`` says so)
    newer: bool = False


def generation(release: Optional[str], uts_version: Optional[str] = None) -> KernelGen:
    """The generation a kernel release runs (module docstring).

    Raises ValueError when ``release`` is not a kernel release."""
    ver = kernel_version(release or "", uts_version)
    if ver is None:
        raise ValueError(f"cannot read a kernel version from {release!r}")
    major, minor, sub = ver
    base = next(g for v, g in _MAINLINE if (major, minor) >= v)
    ports = _BACKPORTS.get((major, minor), ())
    if not ports and _ENTERPRISE.search(release or "") and (4, 4) <= (major, minor) < (6, 3):
        # RHEL 8/9 (4.18, 5.14) carry many mm backports; whether the v6.3 series is
        # among them was not checked
        return KernelGen(base, WATERMARK_RULE[base],
                         f"{release}: whether this enterprise kernel carries the v6.3 "
                         f"gfp_to_alloc_flags() series is unconfirmed: generation {base} assumed")
    if not ports and (major, minor) > NEWEST_KNOWN:
        return KernelGen(base, WATERMARK_RULE[base],
                         f"kernel {release} is newer than any this tool knows "
                         f"({'.'.join(map(str, NEWEST_KNOWN))}): the newest rules assumed, "
                         f"gfp_to_alloc_flags() generation {base} and watermark rule "
                         f"{WATERMARK_RULE[base]}", newer=True)
    if not ports:
        return KernelGen(base, WATERMARK_RULE[base])
    if sub is None:
        newest = ports[0][1]
        return KernelGen(base, WATERMARK_RULE[base],
                         f"stable sublevel of {release} unknown: generation {base} assumed "
                         f"({major}.{minor}.{ports[-1][0]}+ runs {ports[-1][1]}"
                         + (f", {major}.{minor}.{ports[0][0]}+ {newest}" if len(ports) > 1
                            else "") + "; give the release as e.g. "
                         f"{major}.{minor}.{ports[0][0]})")
    for first, gen in ports:
        if sub >= first:
            return KernelGen(gen, WATERMARK_RULE[gen])
    return KernelGen(base, WATERMARK_RULE[base])


def watermark_rule(release: str, uts_version: Optional[str] = None) -> str:
    """The :mod:`~crashext.analysis.watermark` rule of a release."""
    return generation(release, uts_version).rule


@dataclass(frozen=True)
class AllocFlags:
    """The ALLOC_* bits :func:`~crashext.analysis.watermark.watermark_ok` takes.

    ``high``: ALLOC_HIGH / ALLOC_MIN_RESERVE; ``harder``: ALLOC_HARDER /
    ALLOC_NON_BLOCK (v6.3+); ``highatomic``: ALLOC_HIGHATOMIC (v6.3+);
    ``cma``: ALLOC_CMA."""

    high: bool
    harder: bool
    highatomic: bool
    cma: bool

    def kwargs(self) -> Dict[str, bool]:
        """Keyword arguments of ``watermark_ok()``."""
        return {"high": self.high, "harder": self.harder, "highatomic": self.highatomic,
                "cma": self.cma}

    def names(self, gen: str) -> list:
        """The kernel's names of the bits set, in ``gen``'s spelling."""
        new = gen in ("6.3", "6.18")
        out = []
        if self.high:
            out.append("ALLOC_MIN_RESERVE" if new else "ALLOC_HIGH")
        if self.harder:
            out.append("ALLOC_NON_BLOCK" if new else "ALLOC_HARDER")
        if self.highatomic:
            out.append("ALLOC_HIGHATOMIC")
        if self.cma:
            out.append("ALLOC_CMA")
        return out


def alloc_flags(mask: int, order: int, table: gfp.GfpTable, gen: str) -> AllocFlags:
    """``gfp_to_alloc_flags(mask, order)`` of generation ``gen``, the bits
    the watermark check uses; ``table`` gives the bit values of ``mask``."""
    if gen not in GENERATIONS:
        raise ValueError(f"unknown alloc-flags generation {gen!r} "
                         f"(one of {', '.join(GENERATIONS)})")
    b = table.bit
    high = bool(mask & b("__GFP_HIGH"))
    nomemalloc = bool(mask & b("__GFP_NOMEMALLOC"))
    highatomic = False
    if gen == "3.10":
        harder = not mask & (b("__GFP_WAIT") | b("__GFP_NO_KSWAPD")) and not nomemalloc
    elif gen == "4.4":
        harder = bool(mask & b("__GFP_ATOMIC")) and not nomemalloc
    else:
        harder = not mask & b("__GFP_DIRECT_RECLAIM") and not nomemalloc
        highatomic = harder and order > 0 and (high or gen == "6.3")
    # gfp_migratetype() == MIGRATE_MOVABLE: __GFP_MOVABLE without __GFP_RECLAIMABLE
    cma = bool(mask & b("__GFP_MOVABLE")) and not mask & b("__GFP_RECLAIMABLE")
    return AllocFlags(high=high, harder=bool(harder), highatomic=highatomic, cma=cma)
