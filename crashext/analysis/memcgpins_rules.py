"""What can keep a removed ("dying") memory cgroup alive, per kernel generation.

One table, :data:`GENERATIONS`, says for each generation how a page records
its memory cgroup and which kinds of charged memory pin a dying one (hold a
reference that keeps its ``struct mem_cgroup`` allocated); :func:`generation`
picks the row for a kernel from its debug info, and :data:`CURES` says what
releases each kind.  Every split names the commit that made it:

- Up to v3.18 each page frame has a ``struct page_cgroup`` (flags and a
  ``mem_cgroup`` pointer) beside the page array, and removing a cgroup moves
  its LRU pages to the parent (``mem_cgroup_reparent_charges()`` from
  ``mem_cgroup_css_offline()``, mm/memcontrol.c v3.10 and RHEL 7's
  3.10.0-514): only kernel memory and swap keep it.  Kernel memory there
  is slab in per-memcg copies of the caches (``memcg->memcg_slab_caches``,
  ``memcg_cache_params.nr_pages`` pages each) and pages allocated with
  ``__GFP_KMEMCG``; the memcg's lifetime is its own ``refcnt`` (taken per
  swapped-out page, per per-memcg cache, by an active kmem counter, by each
  child), not the css's.
- Since Linux kernel commit 1306a85aed3e ("mm: embed the memcg pointer
  directly into struct page") (in v3.19) ``page->mem_cgroup``; since Linux
  kernel commit b2052564e66d ("mm: memcontrol: continue cache reclaim from
  offlined groups") (in v3.19) LRU pages stay charged to the removed cgroup:
  page cache, tmpfs and anonymous memory pin it, one css reference per
  charged page.
- Since Linux kernel commit 73f576c04b94 ("mm: memcontrol: fix cgroup
  creation failure after many small jobs") (in v4.8) a swapped-out page is
  recorded by the memcg id (``swap_cgroup``), and the id, while any record
  holds it, holds one css reference.
- Since Linux kernel commit bf4f059954dc ("mm: memcg/slab: obj_cgroup API")
  (in v5.9) slab objects are charged through an ``obj_cgroup`` that is
  handed to the parent when the cgroup goes offline
  (``memcg_reparent_objcgs()``): slab no longer pins.  Slab pages carry a
  vector of obj_cgroup pointers instead, flagged by bit 0 of the memcg word.
  Since Linux kernel commit 1a3e1f40962c ("mm: memcontrol: decouple
  reference counting from page accounting") (in v5.9) a charged page holds
  one css reference per (compound) page, not per 4 KiB page.
- Since Linux kernel commit 18b2db3b0385 ("mm: Convert page kmemcg type to a
  page memcg flag") (in v5.11) the word is ``page->memcg_data`` with
  ``MEMCG_DATA_OBJCGS`` (bit 0) and ``MEMCG_DATA_KMEM`` (bit 1).
- Since Linux kernel commit b4e0b68fbd9d ("mm: memcontrol: use obj_cgroup
  APIs to charge kmem pages") (in v5.13) kernel pages charged with
  ``__GFP_ACCOUNT`` point to an obj_cgroup too: they no longer pin.
- Since Linux kernel commit 21c690a349ba ("mm: introduce slabobj_ext to
  support slab object extensions") (in v6.10) a slab's vector is of
  ``struct slabobj_ext`` (``MEMCG_DATA_OBJEXTS``, the same bit 0).
- Since Linux kernel commit f1cf8d2f36dc ("mm: memcontrol: eliminate the
  problem of dying memory cgroup for LRU folios") (in v7.1) LRU folios are
  charged through a per-node obj_cgroup as well and are moved to the parent
  with it when the cgroup goes offline (``lru_reparent_memcg()``): page
  cache, tmpfs and anonymous memory no longer pin.  Swapped-out pages still
  do (``mem_cgroup_private_id_get_online()`` in
  ``__mem_cgroup_try_charge_swap()``, mm/memcontrol.c v7.2).

The page pass itself does not depend on this table for what a page is
charged to: it resolves each page's memcg word the way the kernel does
(a memcg pointer, or an obj_cgroup whose ``memcg`` is followed), so a page
of a reparented obj_cgroup is counted for the parent, where it pins.  The
table says what to expect, explains the verdicts, and decides how many css
references the counted pages account for.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

from ..kernel.pages import page_has_memcg
from ..kernel.target import Target

__all__ = ["KINDS", "Generation", "GENERATIONS", "CURES", "generation"]

#: pin kinds, in the order tables show them
KINDS: Tuple[str, ...] = ("file", "shmem", "anon", "swap", "slab", "kmem")


@dataclass(frozen=True)
class Generation:
    """One row of the table."""

    #: releases it covers, e.g. "v5.13-v7.0"
    releases: str
    #: where a page records its memcg
    record: str
    #: kind -> whether memory of that kind, charged before the cgroup was
    #: removed, keeps it allocated afterwards
    pins: Dict[str, bool]
    #: what one css (3.10: memcg) reference is held by: "page" (each charged
    #: 4 KiB page), "folio" (each charged page or compound page) or "refcnt"
    #: (v3.10's own memcg->refcnt, see the module docstring)
    refs_per: str
    #: swap records name the memcg by "css id" (v3.10-v4.7) or "memcg id"
    swap_id: str
    #: slab is counted from "per-memcg caches" or not at all ("obj_cgroup")
    slab: str


_ALL = {k: True for k in KINDS}

GENERATIONS: Dict[str, Generation] = {
    "3.10": Generation("v3.10-v3.18 (RHEL 7)", "struct page_cgroup",
                       dict(_ALL, file=False, shmem=False, anon=False),
                       "refcnt", "css id", "per-memcg caches"),
    "3.19": Generation("v3.19-v5.8", "page->mem_cgroup", dict(_ALL), "page",
                       "memcg id (v4.8+; css id before)", "per-memcg caches"),
    "5.9": Generation("v5.9-v5.12", "page->mem_cgroup / page->memcg_data (v5.11+)",
                      dict(_ALL, slab=False), "folio", "memcg id", "obj_cgroup"),
    "5.13": Generation("v5.13-v7.0", "page->memcg_data / folio->memcg_data",
                       dict(_ALL, slab=False, kmem=False), "folio", "memcg id", "obj_cgroup"),
    "7.1": Generation("v7.1+", "folio->memcg_data (an obj_cgroup for every folio)",
                      dict(_ALL, slab=False, kmem=False, file=False, shmem=False, anon=False),
                      "folio", "memcg id", "obj_cgroup"),
}

#: what releases memory of each kind, for the verdicts
CURES: Dict[str, str] = {
    "file": "page cache: drop_caches (echo 1 > /proc/sys/vm/drop_caches) frees it once clean "
            "and unmapped; a file still written stays",
    "shmem": "tmpfs/shmem: delete the files (drop_caches does not free tmpfs)",
    "anon": "anonymous memory: the process that has it exits (it was moved out of the "
            "removed cgroup)",
    "swap": "swap entries: swapoff, or the owning process exits",
    "slab": "per-memcg slab caches: cgroup.memory=nokmem at boot avoids them; a kernel "
            "with obj_cgroup (v5.9+) reparents slab",
    "kmem": "kernel pages charged with __GFP_ACCOUNT (pipe buffers, page tables, stacks): "
            "freed with their owner; a kernel with obj_cgroup kmem (v5.13+) reparents them",
    "writeback": "writeback contexts: released when the inodes attached to them move to the "
                 "parent's context (v5.14+ does it after removal, once they are clean) or are "
                 "evicted",
    "refs": "references no page accounts for (sockets, in-flight I/O, a leaked css_get): "
            "only a kernel fix or a reboot releases a leaked one",
}


def generation(t: Target) -> Tuple[str, Generation]:
    """``(key, row)`` of :data:`GENERATIONS` for ``t``, from its debug info."""
    if not page_has_memcg(t) and t.has_type("struct page_cgroup"):
        return "3.10", GENERATIONS["3.10"]
    if t.has_member("struct kmem_cache", "memcg_params"):
        return "3.19", GENERATIONS["3.19"]
    # lru_reparent_memcg() (mm/swap.c) came with commit f1cf8d2f36dc's series
    if t.has_symbol("lru_reparent_memcg"):
        return "7.1", GENERATIONS["7.1"]
    # Commit f1286fae5406 ("mm: memcontrol: inline __memcg_kmem_{un}charge()
    # into obj_cgroup_{un}charge_pages()"), in v5.13 with b4e0b68fbd9d: the
    # function that charged a kmem page to a memcg directly is gone
    if t.has_type("struct obj_cgroup") and not t.has_symbol("__memcg_kmem_charge"):
        return "5.13", GENERATIONS["5.13"]
    return "5.9", GENERATIONS["5.9"]
