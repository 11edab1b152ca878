"""Real logs of tests/data/logs whose shapes the log parsers do not read yet.

Each name maps to what its shape needs.  Tests that run over every log mark
these ``xfail(strict=True)``: when a parser learns the shape the test passes,
strict xfail turns that pass into a failure, and the name is removed here.
What an engineer reads in each log is in tests/data/logs/SOURCES.md.
"""

from typing import Dict, Iterable, List

import pytest

__all__ = ["UNREAD", "UNCLASSIFIED", "params"]

#: not taken for a kernel log at all (triage stops with "no kernel log lines")
UNREAD: Dict[str, str] = {
    "lkml-2.6.16-oom-showmem.log":
        "a 2.6-era OOM report without timestamps ('oom-killer: gfp_mask=0x201d2, order=0', "
        "buddy lines without 'Node N') is not taken for a kernel log",
}

#: read, but the headline does not name the event's class
UNCLASSIFIED: Dict[str, str] = {
    "lkml-5.8-arm64-memcg-swap-null.log":
        "arm64 oops ('Unable to handle kernel NULL pointer dereference at' wrapped, "
        "'Internal error: Oops:', 'pc : mem_cgroup_get_nr_swap_pages+0x2c/0x60') not recognised",
    "linuxmm-2.6.28-ppc64-memcg-charge-oops.log":
        "ppc64 oops ('Unable to handle kernel paging request for data at address 0x00000020', "
        "'NIP [...] .mem_cgroup_charge_common+0x26c/0x330') not recognised",
    "linuxmm-3.19-ppc64-memcg-init-slab-oops.log":
        "ppc64 oops without NIP line (__slab_alloc called from mem_cgroup_init) not recognised",
    "lkml-5.14-ppc64-memcg-pcpu-alloc-null.log":
        "ppc64 'BUG: Kernel NULL pointer dereference on read at 0x00001508' in "
        "prepare_alloc_pages, called from mem_cgroup_alloc, not recognised",
    "linuxmm-4.12-s390-vmstat-addressing-exception.log":
        "s390 'addressing exception' with 'Krnl PSW' (mod_node_page_state+0x62/0x158) "
        "not recognised",
    "linuxmm-4.18-memcg-try-charge-panic-on-warn.log":
        "without a knowledge base: the headline is 'WARNING turned into a panic', not the "
        "WARNING at mm/memcontrol.c:1710 try_charge",
}


def params(names: Iterable[str], *pending: Dict[str, str]) -> List:
    """``names`` as test parameters, those in any of the ``pending`` maps
    marked xfail(strict=True) with the map's reason."""
    out = []
    for n in names:
        why = next((p[n] for p in pending if n in p), None)
        out.append(n if why is None else
                   pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=why)))
    return out
