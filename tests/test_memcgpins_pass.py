"""The page pass on SYNTHETIC page arrays: what the real dumps do not show.

The fixtures run with transparent huge pages off and on kernels whose slab
pages carry an object vector, so two paths of the pass are checked here on
a page array laid out by hand:

- compound pages whose tail pages run past the end of a block (the pass
  reads 2 MiB blocks; here blocks of 64 struct pages): the tails count with
  their head, in the numpy decoder and the plain-Python one alike;
- slab pages with no memcg word, whose memcg is that of their per-memcg
  cache (``page->slab_cache->memcg_params.memcg``): v5.3-v5.8, where
  Linux kernel commit 4d96ba353075 ("mm: memcg/slab: stop setting
  page->mem_cgroup pointer for slab pages") left ``page->mem_cgroup`` NULL
  on slab pages.

Layout, stated from include/linux/mm_types.h of v5.4-v5.10 (x86_64, 64
bytes): ``flags`` at 0; in the first union, ``compound_head`` at 8 for a
tail page (bit 0 set since v4.4), ``mapping`` at 24 for a page cache or
anonymous page and ``slab_cache`` at 24 for a slab page; ``_mapcount`` at
48; ``mem_cgroup`` at 56.  Memory sections as in
tests/test_memcgpins_rhel7.py (one root of 128 sections, SECTION_SIZE_BITS
27), without page_cgroups.
"""

import struct

import pytest

drgn = pytest.importorskip("drgn")

from crashext.analysis.memcgpins_pass import PageLayout, kinds_of, page_pass  # noqa: E402
from crashext.kernel.pages import PageArray  # noqa: E402
from synth import SynthKernel  # noqa: E402

PAGE = 4096
SECTION_PAGES = 1 << (27 - 12)
PG = {"PG_locked": 0, "PG_referenced": 1, "PG_uptodate": 2, "PG_dirty": 3, "PG_lru": 4,
      "PG_active": 5, "PG_workingset": 6, "PG_waiters": 7, "PG_error": 8, "PG_slab": 9,
      "PG_owner_priv_1": 10, "PG_arch_1": 11, "PG_reserved": 12, "PG_private": 13,
      "PG_private_2": 14, "PG_writeback": 15, "PG_head": 16, "PG_mappedtodisk": 17,
      "PG_reclaim": 18, "PG_swapbacked": 19, "PG_unevictable": 20, "PG_mlocked": 21,
      "__NR_PAGEFLAGS": 22}
MEMCG_A = 0xFFFF888000100000
MEMCG_B = 0xFFFF888000200000


def kernel():
    k = SynthKernel(release="5.4.0-synthetic", size=4 << 20)
    at24 = k.struct("", [("void *", "mapping"), ("struct kmem_cache *", "slab_cache")],
                    register=False, union=True)
    k.struct("page", [("unsigned long", "flags"), ("unsigned long", "compound_head"),
                      ("unsigned long", "lru_prev"), (at24, None),
                      ("unsigned long", "index"), ("unsigned long", "private"),
                      ("int", "_mapcount"), ("int", "_refcount"),
                      ("struct mem_cgroup *", "mem_cgroup")])
    k.struct("mem_section", [("unsigned long", "section_mem_map"),
                             ("unsigned long *", "pageblock_flags")])
    k.enum("pageflags", PG)
    pages = k.alloc(SECTION_PAGES * 64, 64)
    root = k.alloc(PAGE, PAGE)
    k.write_u64(root, pages | 0b11)
    table = k.variable("mem_section", "struct mem_section *[1]")
    k.write_u64(table.address_, root)
    return k, pages


def put(k, pages, pfn, flags=0, head=0, slab_cache=0, mapping=0, memcg=0):
    addr = pages + pfn * 64
    k.write(addr, struct.pack("<QQQQ", flags, head, 0, slab_cache or mapping))
    k.write_u64(addr + 56, memcg)


def test_compound_tails_across_blocks_and_slab_by_cache(page_decoder):
    k, pages = kernel()
    lru, head, slab = 1 << PG["PG_lru"], 1 << PG["PG_head"], 1 << PG["PG_slab"]
    anon_map = 0xFFFF888000300000 | 1          # PAGE_MAPPING_ANON
    # an order-4 anonymous compound page at pfns 60..75: 4 of its tails
    # are in the first block of 64, 11 in the next
    put(k, pages, 60, flags=lru | head, mapping=anon_map, memcg=MEMCG_A)
    for pfn in range(61, 76):
        put(k, pages, pfn, head=(pages + 60 * 64) | 1)
    # an uncharged compound page right after: its tails must not count
    put(k, pages, 76, flags=head)
    for pfn in range(77, 80):
        put(k, pages, pfn, head=(pages + 76 * 64) | 1)
    # three slab pages of B's per-memcg cache, no memcg word; one of a root cache
    cache_b, root_cache = 0xFFFF888000400000, 0xFFFF888000500000
    for pfn in (200, 201, 202):
        put(k, pages, pfn, flags=slab, slab_cache=cache_b)
    put(k, pages, 203, flags=slab, slab_cache=root_cache)
    # a slab page with an object vector (bit 0), a kmem page (bit 1), a file page
    put(k, pages, 300, flags=slab, memcg=0xFFFF888000600000 | 1)
    put(k, pages, 301, memcg=MEMCG_B | 2)
    put(k, pages, 302, flags=lru, mapping=0xFFFF888000700000, memcg=MEMCG_B)
    t = k.target()
    asked = []

    def cache_memcg(c):
        asked.append(c)
        return {cache_b: MEMCG_B}.get(c, 0)
    res = page_pass(t, PageArray.of(t), PageLayout.of(t), {MEMCG_B}, cache_memcg, chunk=64)
    assert res.scanned == SECTION_PAGES
    assert kinds_of(res.pages, MEMCG_A) == {"anon": 16}
    assert kinds_of(res.folios, MEMCG_A) == {"anon": 1}
    assert kinds_of(res.pages, MEMCG_B) == {"slab": 3, "kmem": 1, "file": 1}
    assert kinds_of(res.folios, MEMCG_B) == {"slab": 3, "kmem": 1, "file": 1}
    assert res.slab_vectors == 1
    assert sorted(set(asked)) == sorted({cache_b, root_cache})
    assert res.files == {(MEMCG_B, 0xFFFF888000700000): 1}
    assert sum(res.pages.values()) == 16 + 5
