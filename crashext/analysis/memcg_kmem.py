"""How big the next growth of the per-kmemcg_id arrays is (used by :mod:`.memcg`).

On kernels that index per-cache (and per-list_lru) arrays by ``kmemcg_id``
(3.10 to 5.17), creating a memcg whose id is beyond the arrays' size makes
the kernel allocate bigger arrays; the RHEL7 idr-bug crash was that allocation
failing at order 6.  :func:`next_array_resize` says what the next one will
be and :func:`kmalloc_order` which page order it takes from the buddy
allocator.
"""

import re
from typing import Any, Dict, Optional, Tuple

from ..errors import CrashextError, MissingSymbolError
from ..kernel.target import Target

__all__ = ["kmalloc_order", "next_array_resize", "largest_free_order_or_why"]

_PTR = 8

# include/linux/slab.h (SLUB, v3.10-v6.x): KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1,
# so kmalloc() of more than 2 pages goes straight to the page allocator
# (kmalloc_large / kmalloc_order) with get_order(size).
_SLUB_KMALLOC_MAX_CACHE_PAGES = 2


def kmalloc_order(t: Target, size: int) -> Optional[int]:
    """Page order of the pages a ``kmalloc(size)`` takes from the buddy allocator.

    None when the object comes from a kmalloc-N slab cache (SLUB, size up to
    two pages).  For SLAB, a kmalloc-N cache's slab holds at least one
    object of the power-of-two size N, so the order is that of N.
    """
    page = t.page_size
    slub = t.has_type("struct kmem_cache_cpu")
    if slub:
        if size <= _SLUB_KMALLOC_MAX_CACHE_PAGES * page:
            return None
        return _get_order(size, page)
    n = 1
    while n < size:
        n <<= 1
    return _get_order(n, page) if n > page else 0


def _get_order(size: int, page: int) -> int:
    pages = (size + page - 1) // page
    return max(0, (pages - 1).bit_length())


# mm/memcontrol.c v3.10 (and v4.x-v5.17): MEMCG_CACHES_MIN_SIZE 4; the
# maximum is MEMCG_CACHES_MAX_SIZE 65535 on 3.10, MEM_CGROUP_ID_MAX + 1 =
# 65536 from v4.x (include/linux/memcontrol.h MEM_CGROUP_ID_MAX USHRT_MAX).
_CACHES_MIN = 4


def next_array_resize(t: Target, capacity: int) -> Optional[Dict[str, Any]]:
    """The allocation the next kmem id array growth will make, or None.

    The rule (memcg_caches_array_size / memcg_alloc_cache_id, mm/memcontrol.c
    v3.10 and v4.x-v5.17): the next id needing growth is ``capacity``; the new
    size is ``2 * (id + 1)`` clamped to [4, max].  What is allocated per size:

    - v3.10 (``memcg_limited_groups_array_size``): ``memcg_update_cache_size``
      kzallocs ``size * sizeof(void *) + sizeof(struct memcg_cache_params)``
      for every root kmem cache — plain kmalloc, no fallback.
    - v4.x-v5.8 (``struct memcg_cache_array``): ``update_memcg_params``
      (mm/slab_common.c) allocates ``sizeof(struct memcg_cache_array) +
      size * sizeof(void *)`` per root cache, and ``memcg_update_list_lru``
      a ``struct list_lru_memcg`` array per list_lru node; both kvzalloc
      (vmalloc fallback) since Linux kernel commit f80c7dab95a1 ("mm:
      memcontrol: use vmalloc fallback for large kmem memcg arrays") (in
      v4.13), kzalloc before.
    - v5.9-v5.17: only the list_lru arrays remain (kvmalloc).
    - v5.18+: no ``memcg_nr_cache_ids``; nothing to grow (None).
    """
    if t.has_symbol("memcg_limited_groups_array_size"):
        maximum = 65535
        header_type = "struct memcg_cache_params"
        what = "per-cache memcg_params (kzalloc in memcg_update_cache_size)"
        fallback = False
    elif t.has_symbol("memcg_nr_cache_ids"):
        maximum = 65536
        if t.has_type("struct memcg_cache_array"):
            header_type = "struct memcg_cache_array"
            what = "per-cache memcg_caches array (update_memcg_params)"
        else:
            header_type = "struct list_lru_memcg"
            what = "per-list_lru memcg_lrus array (memcg_update_list_lru)"
        fallback = _release_at_least(t.release, (4, 13))
    else:
        return None
    new_size = 2 * (capacity + 1)
    new_size = max(_CACHES_MIN, min(new_size, maximum))
    if new_size <= capacity:
        return {"size": capacity, "bytes": None, "order": None, "what": what,
                "vmalloc_fallback": fallback, "at_maximum": True}
    try:
        header = t.type_size(header_type)
    except MissingSymbolError:
        header = 0
    nbytes = new_size * _PTR + header
    return {"size": new_size, "bytes": nbytes, "order": kmalloc_order(t, nbytes),
            "what": what, "vmalloc_fallback": fallback, "at_maximum": False}


def _release_at_least(release: str, want: Tuple[int, int]) -> bool:
    m = re.match(r"(\d+)\.(\d+)", release or "")
    if not m:
        return True
    return (int(m.group(1)), int(m.group(2))) >= want


def largest_free_order_or_why(t: Target) -> Tuple[Optional[int], Optional[str]]:
    """:func:`crashext.analysis.buddy_read.largest_free_order`: (order, why not)."""
    from . import buddy_read
    try:
        return buddy_read.largest_free_order(t), None
    except CrashextError as exc:
        return None, exc.one_line()
