"""memcgpins on a SYNTHETIC RHEL7 / 3.10 kernel (no 3.10 kernel can be booted here).

The memcg structures are those of tests/test_memcg_rhel7.py (upstream v3.10).
What memcgpins reads besides them is stated from the v3.10 sources as RHEL
7 keeps them (read in RHEL 7's 3.10.0-514 tree, a public mirror):

- include/linux/mm_types.h: ``struct page`` of 64 bytes (x86_64, aligned to
  two words): ``flags`` at 0, ``mapping`` at 8, ``slab_cache`` (a union with
  ``private``) at 48; no ``compound_head`` (tail pages carry ``PG_tail``).
- include/linux/page-flags.h ``enum pageflags`` with CONFIG_PAGEFLAGS_EXTENDED:
  PG_slab 7, PG_head 14, PG_tail 15, PG_swapcache 16, PG_swapbacked 19.
- include/linux/page_cgroup.h: ``struct page_cgroup { unsigned long flags;
  struct mem_cgroup *mem_cgroup; }`` and the anonymous enum ``PCG_LOCK,
  PCG_USED, PCG_MIGRATION``; mm/page_cgroup.c: a section's ``page_cgroup``
  is ``base - section start pfn`` (so ``page_cgroup + pfn`` is the entry),
  ``swap_cgroup_ctrl[MAX_SWAPFILES]`` of ``{ struct page **map; unsigned
  long length; spinlock_t lock; }``, each map page an array of ``struct
  swap_cgroup { unsigned short id; }`` (the css id).
- include/linux/mmzone.h: ``struct mem_section { unsigned long
  section_mem_map; unsigned long *pageblock_flags; struct page_cgroup
  *page_cgroup; unsigned long pad; }`` (CONFIG_MEMCG), SECTION_MARKED_PRESENT
  1 << 0, SECTION_HAS_MEM_MAP 1 << 1, SPARSEMEM_EXTREME ``struct mem_section
  *mem_section[NR_SECTION_ROOTS]``; arch/x86/include/asm/sparsemem.h
  SECTION_SIZE_BITS 27 (not in v3.10's VMCOREINFO); __PAGE_OFFSET
  0xffff880000000000 (arch/x86/include/asm/page_64_types.h).
- mm/memcontrol.c: ``atomic_t refcnt`` in ``struct mem_cgroup``, the count
  that frees the memcg (``__mem_cgroup_put()``), taken by each swapped-out
  page (``mem_cgroup_get()`` in __mem_cgroup_commit_charge() for SWAPOUT),
  each per-memcg cache (memcg_create_kmem_cache()), an active kmem limit
  until its charges are gone (memcg_update_kmem_limit(), dropped by
  memcg_uncharge_kmem() once KMEM_ACCOUNTED_DEAD), and each child.
- include/linux/slub_def.h ``struct kmem_cache { ...; const char *name; ...;
  struct memcg_cache_params *memcg_params; }``; include/linux/slab.h
  ``struct memcg_cache_params`` (memcg, list, root_cache, dead, nr_pages).

The situation built: /docker online with kmem accounting; /docker/gone
removed, its LRU pages moved to /docker at removal
(mem_cgroup_reparent_charges()), left with slab pages of two per-memcg
caches, a kernel stack and three swapped-out pages, and one reference
nothing accounts for.
"""

import struct

import pytest

drgn = pytest.importorskip("drgn")

from crashext.analysis.memcgpins import memcg_pins  # noqa: E402
from crashext.analysis.memcgpins_rules import generation  # noqa: E402
from test_memcg_rhel7 import ACTIVE, DEAD, Rhel7  # noqa: E402

PAGE = 4096
PG = {"PG_locked": 0, "PG_error": 1, "PG_referenced": 2, "PG_uptodate": 3, "PG_dirty": 4,
      "PG_lru": 5, "PG_active": 6, "PG_slab": 7, "PG_owner_priv_1": 8, "PG_arch_1": 9,
      "PG_reserved": 10, "PG_private": 11, "PG_private_2": 12, "PG_writeback": 13,
      "PG_head": 14, "PG_tail": 15, "PG_swapcache": 16, "PG_mappedtodisk": 17,
      "PG_reclaim": 18, "PG_swapbacked": 19, "PG_unevictable": 20, "PG_mlocked": 21,
      "__NR_PAGEFLAGS": 22}
SECTION_PAGES = 1 << (27 - 12)
PAGE_OFFSET = 0xFFFF880000000000


def pins_types(k) -> None:
    """The v3.10 structures memcgpins reads beyond the memcg walk's."""
    k.struct("page", [("unsigned long", "flags"), ("void *", "mapping"),
                      ("unsigned long", "index"), ("int", "_mapcount"), ("int", "_count"),
                      ("struct list_head", "lru"), ("struct kmem_cache *", "slab_cache")],
             size=64)
    k.struct("page_cgroup", [("unsigned long", "flags"), ("struct mem_cgroup *", "mem_cgroup")])
    k.struct("mem_section", [("unsigned long", "section_mem_map"),
                             ("unsigned long *", "pageblock_flags"),
                             ("struct page_cgroup *", "page_cgroup"), ("unsigned long", "pad")])
    k.struct("kmem_cache", [("unsigned long", "flags"), ("int", "size"), ("char *", "name"),
                            ("struct memcg_cache_params *", "memcg_params")])
    # union { struct kmem_cache *memcg_caches[0]; struct { memcg, list, ... }; }
    child = k.struct("", [("struct mem_cgroup *", "memcg"), ("struct list_head", "list"),
                          ("struct kmem_cache *", "root_cache"), ("bool", "dead"),
                          ("atomic_t", "nr_pages"), ("struct work_struct", "destroy")],
                     register=False)
    either = k.struct("", [("struct kmem_cache *[0]", "memcg_caches"), (child, None)],
                      register=False, union=True)
    k.struct("memcg_cache_params", [("bool", "is_root_cache"), (either, None)])
    k.struct("swap_cgroup_ctrl", [("struct page **", "map"), ("unsigned long", "length"),
                                  ("unsigned int", "lock")])
    k.struct("mem_cgroup", [("struct cgroup_subsys_state", "css"), ("struct res_counter", "res"),
                            ("struct res_counter", "memsw"), ("struct res_counter", "kmem"),
                            ("bool", "use_hierarchy"), ("unsigned long", "kmem_account_flags"),
                            ("atomic_t", "refcnt"), ("struct list_head", "memcg_slab_caches"),
                            ("int", "kmemcg_id")])
    k.enum("pageflags", PG)
    k.enum(None, {"PCG_LOCK": 0, "PCG_USED": 1, "PCG_MIGRATION": 2})


class Rhel7Pages:
    """A v3.10 kernel with one memory section of page frames."""

    def __init__(self) -> None:
        self.h = h = Rhel7(size=8 << 20, more_types=pins_types)
        k = self.k = h.k
        # the struct pages and page_cgroups of section 0 (pfns 0..32767)
        self.pages = k.alloc(SECTION_PAGES * 64, 64)
        self.pcs = k.alloc(SECTION_PAGES * 16, 16)
        # one root of PAGE_SIZE / sizeof(struct mem_section) sections; section
        # 0 present with its mem_map (PRESENT | HAS_MEM_MAP) and page_cgroups
        root = k.alloc(PAGE, PAGE)
        k.write_u64(root, self.pages | 0b11)
        k.write_u64(root + 16, self.pcs)
        table = k.variable("mem_section", "struct mem_section *[2]")
        k.write_u64(table.address_, root)

    def page(self, pfn, flags=0, mapping=0, slab_cache=0, memcg=0):
        addr = self.pages + pfn * 64
        self.k.write(addr, struct.pack("<QQ", flags, mapping))
        self.k.write_u64(addr + 48, slab_cache)
        if memcg:
            self.k.write(self.pcs + pfn * 16, struct.pack("<QQ", 1 << 1, memcg))

    def cache(self, memcg, root_name, name, kmemcg_id, nr_pages, dead=False):
        k = self.k
        root = k.new("struct kmem_cache")
        rn = k.alloc(len(root_name) + 1)
        k.set_string(rn, root_name)
        k.set(root, "name", rn)
        rparams = k.alloc(16 + 8 * 8, 8)   # is_root_cache + memcg_caches[]
        k.write(rparams, b"\1")
        k.set(root, "memcg_params", rparams)
        cache = k.new("struct kmem_cache")
        nm = k.alloc(len(name) + 1)
        k.set_string(nm, name)
        k.set(cache, "name", nm)
        params = k.new("struct memcg_cache_params", memcg=memcg["memcg"],
                       root_cache=root.address_, dead=int(dead))
        k.set(params, "nr_pages.counter", nr_pages)
        k.set(cache, "memcg_params", params.address_)
        # root->memcg_params->memcg_caches[kmemcg_id] (after is_root_cache, 8-aligned)
        k.write_u64(rparams + 8 + 8 * kmemcg_id, cache.address_)
        m = drgn.Object(k.prog, k.types["struct mem_cgroup"], address=memcg["memcg"])
        self.h._list_add_tail(m.memcg_slab_caches.address_, params.list.address_)
        return cache.address_


def build():
    r = Rhel7Pages()
    h, k = r.h, r.k
    on = 1 << ACTIVE
    docker = h.add(h.root, "docker", kmemcg_id=0, flags=on)
    gone = h.add(docker, "gone", kmemcg_id=1, flags=on | (1 << DEAD), css_flags=0,
                 linked=False, refcnt=1)
    for m in (docker, gone):
        obj = drgn.Object(k.prog, k.types["struct mem_cgroup"], address=m["memcg"])
        h._list_init(obj.memcg_slab_caches.address_)
    dentry = r.cache(gone, "dentry", "dentry(1:gone)", 1, 5)
    kmalloc = r.cache(gone, "kmalloc-64", "kmalloc-64(1:gone)", 1, 2, dead=True)
    slab = 1 << PG["PG_slab"]
    pfn = 100
    # 5 + 2 slab pages of gone's caches (their page_cgroups name gone)
    for cache, n in ((dentry, 5), (kmalloc, 2)):
        for _ in range(n):
            r.page(pfn, flags=slab, slab_cache=cache, memcg=gone["memcg"])
            pfn += 1
    # a 4-page kernel stack (__GFP_KMEMCG): head and three tails
    r.page(pfn, flags=1 << PG["PG_head"], memcg=gone["memcg"])
    for i in range(1, 4):
        r.page(pfn + i, flags=1 << PG["PG_tail"])
    pfn += 4
    # page cache moved to /docker at removal: 10 pages
    mapping = k.alloc(64, 8)
    for _ in range(10):
        r.page(pfn, flags=1 << PG["PG_lru"], mapping=mapping, memcg=docker["memcg"])
        pfn += 1
    # swap records: one map page (pfn 7 in the direct map) of css ids
    swap_pfn = 7
    swap_page = PAGE_OFFSET + swap_pfn * PAGE
    ids = bytearray(PAGE)
    for slot, cid in ((3, gone["css_id"]), (4, gone["css_id"]), (9, gone["css_id"]),
                      (10, docker["css_id"])):
        struct.pack_into("<H", ids, slot * 2, cid)
    k.prog.add_memory_segment(swap_page, PAGE, lambda a, n, off, phys: bytes(ids[off:off + n]))
    mapv = k.alloc(8, 8)
    k.write_u64(mapv, r.pages + swap_pfn * 64)
    ctrl = k.variable("swap_cgroup_ctrl", "struct swap_cgroup_ctrl [32]")
    k.set(ctrl[0], "map", mapv)
    k.set(ctrl[0], "length", 1)
    nr = k.variable("nr_swapfiles", "unsigned int")
    k.write_u32(nr.address_, 1)
    # refcnt of gone: 3 swap records + 2 caches + the kmem charge still
    # there (DEAD) + 1 that nothing accounts for
    obj = drgn.Object(k.prog, k.types["struct mem_cgroup"], address=gone["memcg"])
    k.set(obj, "refcnt.counter", 3 + 2 + 1 + 1)
    return h.finish(), docker, gone


def test_v310_rules_are_picked_from_the_layout():
    t, _docker, _gone = build()
    key, gen = generation(t)
    assert key == "3.10"
    assert gen.pins["slab"] and gen.pins["swap"] and gen.pins["kmem"]
    assert not gen.pins["file"] and not gen.pins["anon"]   # reparented at removal


def test_dying_memcg_held_by_its_kmem_caches_swap_and_a_leak(page_decoder):
    t, docker, gone = build()
    rep = memcg_pins(t)
    assert [p.memcg.path for p in rep.memcgs] == ["/docker/gone"]
    p = rep.memcgs[0]
    assert p.memcg.address == gone["memcg"]
    # page_cgroup: 7 slab pages and a compound kernel stack of 4
    assert p.pages == {"slab": 7, "kmem": 4}
    assert p.swap == 3
    assert [(c["cache"], c["pages"], c["dead"]) for c in p.caches] == [
        ("dentry(1:gone)", 5, False), ("kmalloc-64(1:gone)", 2, True)]
    assert p.refs["total"] == 7
    assert p.refs["unexplained"] == 1
    assert p.held_by == ["slab", "kmem", "swap", "refs"]
    assert "leak candidate" in p.verdict
    assert rep.summary["dying"] == 1
    assert rep.summary["page_array"]["pages"] == SECTION_PAGES
    assert rep.summary["page_array"]["unreadable"] == 0


def test_online_memcg_keeps_the_reparented_page_cache(page_decoder):
    t, docker, _gone = build()
    rep = memcg_pins(t, all_memcgs=True)
    d = {p.memcg.path: p for p in rep.memcgs}["/docker"]
    assert d.pages == {"file": 10}
    assert d.swap == 1
