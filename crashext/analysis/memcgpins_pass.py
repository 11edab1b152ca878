"""The page pass of memcgpins: every struct page, what it is and whom it is charged to.

One pass over the page array (:class:`crashext.kernel.pages.PageArray`)
reads, for every page frame, the few members that say what the page is and
which memcg it is charged to, and counts pages and folios per (memcg word,
kind), plus pages per (memcg word, file) for the words the caller wants
files of.  Decoding is done a chunk (2 MiB of struct pages) at a time: with
numpy as whole-array operations, without it in a plain loop over the charged
pages only.

What a page is, from its head page (a tail page of a compound page counts
with its head: the memcg word lives in the head, ``folio->memcg_data``):

- ``slab``: bit 0 of the memcg word (a vector of obj_cgroups / slabobj_ext,
  v5.9+), or ``PG_slab`` (up to v6.9; since Linux kernel commit
  46df8e73a4a3 ("mm: free up PG_slab") (in v6.10) the page type
  ``PAGE_SLAB_MAPCOUNT_VALUE`` in ``_mapcount``/``page_type``, from
  VMCOREINFO);
- ``kmem``: bit 1 of the memcg word (``MEMCG_DATA_KMEM``, v5.11+), or a
  charged page that is none of the others (pages charged with
  ``__GFP_ACCOUNT``: pipe buffers, page tables, kernel stacks);
- ``anon``: bit 0 of ``page->mapping`` (``PAGE_MAPPING_ANON``, renamed
  ``FOLIO_MAPPING_ANON`` in v7.x with the same value);
- ``shmem``: ``PG_swapbacked`` without an anonymous mapping (tmpfs and shmem,
  in the page cache or the swap cache);
- ``file``: any other page with a mapping (the page cache of a file).

The memcg word is ``page_cgroup.mem_cgroup`` when ``PCG_USED`` is set (up to
v3.18), ``page->mem_cgroup`` (v3.19-v5.10) or ``page->memcg_data`` (v5.11+),
with its flag bits (the low three) cleared to give the key.  Tail pages: the
low bit of ``compound_head`` (``compound_info`` since v7.1) since Linux
kernel commit 1d798ca3f164 ("mm: make compound_head() robust") (in v4.4),
``PG_tail`` before.  A page whose key is zero is not charged and is skipped.
"""

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..errors import MissingSymbolError
from ..kernel.pages import DEFAULT_CHUNK, PageArray, PageChunk, column, have_numpy
from ..kernel.target import Target
from ..kernel.vmcoreinfo import vmcoreinfo_number

__all__ = ["PageLayout", "PassResult", "page_pass", "KIND_CODES"]

#: kind -> code stored in the low bits of a key (keys are 8-aligned pointers)
KIND_CODES = {"file": 0, "shmem": 1, "anon": 2, "slab": 3, "kmem": 4}
_KIND_NAMES = {v: k for k, v in KIND_CODES.items()}
_LOW = 7
_ALL = 2**64 - 1


@dataclass
class PageLayout:
    """Offsets and bits the pass reads, from the kernel's debug info."""

    size: int
    flags: int
    tail_member: Optional[int]        # compound_head / compound_info
    tail_flag: int                    # 1 << PG_tail where the kernel has no such member
    mapping: int
    memcg: Optional[int]              # page->mem_cgroup / memcg_data (None: page_cgroup)
    slab_flag: int                    # 1 << PG_slab, 0 where slab is a page type
    slab_type: Optional[int]          # PAGE_SLAB_MAPCOUNT_VALUE & 0xffffffff
    type_off: Optional[int]           # _mapcount / page_type offset
    swapbacked: int
    slab_cache: Optional[int]         # page->slab_cache (slab pages charged by cache)
    pc_flags: Optional[int] = None    # struct page_cgroup, v3.10-v3.18
    pc_memcg: Optional[int] = None
    pc_used: int = 0
    pc_size: int = 0

    @classmethod
    def of(cls, t: Target) -> "PageLayout":
        flags = _page_flags(t)
        tail_member = None
        for m in ("compound_info", "compound_head"):
            tail_member = _off(t, "struct page", m)
            if tail_member is not None:
                break
        memcg = _off(t, "struct page", "memcg_data")
        if memcg is None:
            memcg = _off(t, "struct page", "mem_cgroup")
        slab_type = vmcoreinfo_number(t, "PAGE_SLAB_MAPCOUNT_VALUE")
        lay = cls(size=t.type_size("struct page"),
                  flags=_flags_offset(t),
                  tail_member=tail_member,
                  tail_flag=(1 << flags["PG_tail"]) if tail_member is None and "PG_tail" in flags
                  else 0,
                  mapping=t.member_offset("struct page", "mapping"),
                  memcg=memcg,
                  slab_flag=(1 << flags["PG_slab"]) if "PG_slab" in flags else 0,
                  slab_type=(slab_type & 0xFFFFFFFF) if slab_type is not None else None,
                  type_off=_off(t, "struct page", "page_type") or _off(t, "struct page",
                                                                        "_mapcount"),
                  swapbacked=1 << flags["PG_swapbacked"],
                  slab_cache=_off(t, "struct page", "slab_cache"))
        if memcg is None and t.has_type("struct page_cgroup"):
            lay.pc_flags = t.member_offset("struct page_cgroup", "flags")
            lay.pc_memcg = t.member_offset("struct page_cgroup", "mem_cgroup")
            lay.pc_used = 1 << t.constant("PCG_USED")
            lay.pc_size = t.type_size("struct page_cgroup")
        if memcg is None and lay.pc_memcg is None:
            raise MissingSymbolError("struct page has no memcg word and there is no "
                                     "page_cgroup: memory cgroups are not configured")
        return lay


def _off(t: Target, type_name: str, member: str) -> Optional[int]:
    try:
        return t.member_offset(type_name, member)
    except MissingSymbolError:
        return None


def _flags_offset(t: Target) -> int:
    # Since v6.18 page->flags is a memdesc_flags_t whose .f is the word; the
    # offset is the same (the word is its only member)
    return t.member_offset("struct page", "flags")


def _page_flags(t: Target) -> Dict[str, int]:
    try:
        return t.enum_constants("enum pageflags")
    except MissingSymbolError:
        out = {}
        for name in ("PG_slab", "PG_swapbacked", "PG_tail", "PG_head"):
            try:
                out[name] = t.constant(name)
            except MissingSymbolError:
                pass
        if "PG_swapbacked" not in out:
            raise
        return out


@dataclass
class PassResult:
    """What the pass counted."""

    #: (key, kind) -> pages, and -> folios (head pages: one css reference
    #: each since v5.9)
    pages: Dict[Tuple[int, str], int] = field(default_factory=dict)
    folios: Dict[Tuple[int, str], int] = field(default_factory=dict)
    #: (key, mapping) -> pages, for the keys asked for
    files: Dict[Tuple[int, int], int] = field(default_factory=dict)
    #: file/shmem kind of each mapping seen in files
    file_kind: Dict[int, str] = field(default_factory=dict)
    #: slab pages with an object vector (v5.9+): charged per object, to no memcg
    slab_vectors: int = 0
    #: pages read
    scanned: int = 0
    #: slab caches whose memcg was read for slab pages without a memcg word
    slab_caches: Dict[int, int] = field(default_factory=dict)


def page_pass(t: Target, pa: PageArray, lay: PageLayout, want_files: Optional[Set[int]],
              slab_cache_memcg=None, progress=None, chunk: int = DEFAULT_CHUNK) -> PassResult:
    """Count every charged page of ``pa`` by (key, kind), ``chunk`` struct
    pages at a time.  ``want_files``: keys whose file pages are counted per
    mapping (None: every key).  ``slab_cache_memcg(cache)``,
    if given, names the memcg of a slab page that has no memcg word (per-memcg
    caches of v3.19-v5.8 whose pages do not record it)."""
    res = PassResult()
    state = _Carry()
    want = want_files
    if have_numpy():
        fn = _chunk_numpy
        if want_files is not None:
            import numpy as np
            # one sorted array for the binary searches, made once
            want = np.unique(np.fromiter(want_files, dtype=np.uint64, count=len(want_files)))
    else:
        fn = _chunk_python
    for block in pa.chunks(chunk, progress=progress):
        res.scanned += block.count
        fn(block, lay, res, state, want, slab_cache_memcg)
    return res


class _Carry:
    """The head page's decoded values, for tail pages that start a chunk."""

    __slots__ = ("key", "kind", "mapping", "vector")

    def __init__(self) -> None:
        self.key = 0
        self.kind = 0
        self.mapping = 0
        self.vector = False


def _memcg_words(chunk: PageChunk, lay: PageLayout):
    """Per page: the memcg word (0 when not charged)."""
    if lay.memcg is not None:
        return column(chunk.data, chunk.count, lay.size, lay.memcg)
    if chunk.pc_data is None:
        return None
    pcs = lay.pc_size
    flags = column(chunk.pc_data, chunk.count, pcs, lay.pc_flags)
    words = column(chunk.pc_data, chunk.count, pcs, lay.pc_memcg)
    if have_numpy():
        return words * ((flags & lay.pc_used) != 0)
    from array import array
    return array("Q", (w if f & lay.pc_used else 0 for w, f in zip(words, flags)))


# -- numpy ------------------------------------------------------------------------------

def _chunk_numpy(chunk: PageChunk, lay: PageLayout, res: PassResult, st: _Carry,
                 want, slab_cache_memcg) -> None:
    """``want``: a sorted numpy array of the keys whose files are counted,
    or None for every key.  Only the charged head pages are decoded; each
    counts for itself and the tail pages after it (its span)."""
    import numpy as np
    if slab_cache_memcg is not None and lay.slab_cache is not None:
        # v3.19-v5.8: slab pages without a memcg word are looked at too
        return _chunk_numpy_every_page(chunk, lay, res, st, want, slab_cache_memcg)
    n = chunk.count
    md = _memcg_words(chunk, lay)
    if md is None:
        return
    data, size = chunk.data, lay.size
    tail = _tail_mask(np, chunk, lay)
    # the head pages, and where each one's span ends (the next head, or
    # the end of the chunk: a compound page running on is carried over)
    if tail is None or not tail.any():
        heads = None
        lead = 0
    else:
        heads = np.flatnonzero(~tail)
        lead = int(heads[0]) if heads.size else n
    if lead:  # tail pages before the chunk's first head: the carried head's
        _carried(res, st, lead, want)
    if heads is not None and not heads.size:
        return
    hc, span = _charged_heads(np, md, heads, n)
    last = n - 1 if heads is None else int(heads[-1])
    if not hc.size:
        st.key, st.kind, st.mapping, st.vector = 0, KIND_CODES["kmem"], 0, False
        return
    w = md[hc]
    flags = column(data, n, size, lay.flags)[hc]
    mapping = column(data, n, size, lay.mapping)[hc]
    kind = _kind_codes(np, w, flags, mapping, lay,
                       lambda: column(data, n, size, lay.type_off, 4)[hc])
    vector = (w & 1) != 0
    key = w & np.uint64(_ALL ^ _LOW)
    # the carry: the chunk's last head, charged or not
    if int(hc[-1]) == last:
        st.key, st.kind = int(key[-1]), int(kind[-1])
        st.mapping, st.vector = int(mapping[-1]), bool(vector[-1])
    else:
        st.key, st.kind, st.mapping, st.vector = 0, KIND_CODES["kmem"], 0, False
    if span is None:
        span = np.ones(hc.size, dtype=np.int64)
    if vector.any():
        res.slab_vectors += int(span[vector].sum())
        keep = ~vector
        key, kind, mapping, span = key[keep], kind[keep], mapping[keep], span[keep]
        if not key.size:
            return
    _count_heads(np, res, key, kind, mapping, span, want)


def _tail_mask(np, chunk: PageChunk, lay: PageLayout, flags=None):
    """Per page: whether it is a tail page of a compound page, or None where
    the layout tells no tails apart.  ``flags``: the flags column, if read."""
    n, size = chunk.count, lay.size
    if lay.tail_member is not None:
        return (column(chunk.data, n, size, lay.tail_member) & 1).astype(bool)
    if lay.tail_flag:
        if flags is None:
            flags = column(chunk.data, n, size, lay.flags)
        return (flags & lay.tail_flag) != 0
    return None


def _charged_heads(np, md, heads, n: int):
    """The charged head pages (indices into the chunk) and the span of each
    (pages up to the next head or the chunk's end; None where there are no
    tail pages, every span being 1).  ``heads``: the head pages' indices, or
    None when every page is one."""
    if heads is None:
        return np.flatnonzero(md), None
    nz = np.flatnonzero(md[heads])
    ends = np.empty(heads.size, dtype=np.int64)
    ends[:-1] = heads[1:]
    ends[-1] = n
    return heads[nz], (ends - heads)[nz]


def _kind_codes(np, w, flags, mapping, lay: PageLayout, page_type):
    """The kind code (:data:`KIND_CODES`) of each head page, from its memcg
    word, flags and mapping (the module docstring's order); ``page_type()``
    gives their page types where slab pages are told by type (read only
    then)."""
    anon = (mapping & 1) != 0
    kind = np.full(w.size, KIND_CODES["kmem"], dtype=np.uint64)
    kind[(mapping != 0) & ~anon] = KIND_CODES["file"]
    kind[((flags & lay.swapbacked) != 0) & ~anon] = KIND_CODES["shmem"]
    kind[anon] = KIND_CODES["anon"]
    kind[(w & 2) != 0] = KIND_CODES["kmem"]
    slab = (w & 1) != 0
    if lay.slab_flag:
        slab |= (flags & lay.slab_flag) != 0
    elif lay.slab_type is not None and lay.type_off is not None:
        slab |= page_type() == lay.slab_type
    kind[slab] = KIND_CODES["slab"]
    return kind


def _count_heads(np, res: PassResult, key, kind, mapping, span, want) -> None:
    """Pages (a head's span), folios (one a head) and, for the keys in
    ``want``, file pages per mapping, of charged head pages."""
    packed = key | kind
    if int(span.max()) == 1:  # order-0 pages only: each page is a folio
        vals, folios = np.unique(packed, return_counts=True)
        vals_l, folios_l = vals.tolist(), folios.tolist()
        _add(res.pages, vals_l, folios_l)
    else:
        vals, inv, folios = np.unique(packed, return_inverse=True, return_counts=True)
        pages = np.bincount(inv.ravel(), weights=span, minlength=vals.size)
        vals_l, folios_l = vals.tolist(), folios.tolist()
        _add(res.pages, vals_l, pages.astype(np.int64).tolist())
    _add(res.folios, vals_l, folios_l)
    if want is None or want.size:
        fsel = np.flatnonzero(kind <= KIND_CODES["shmem"])
        if fsel.size and want is not None:
            fsel = fsel[_in_want(np, key[fsel], want)]
        if fsel.size:
            _add_files(res, key[fsel], mapping[fsel], kind[fsel], span[fsel])


def _carried(res: PassResult, st: _Carry, n: int, want) -> None:
    """``n`` tail pages of the compound page the last chunk ended in."""
    if not st.key:
        return
    if st.vector:
        res.slab_vectors += n
        return
    k = (st.key, _KIND_NAMES[st.kind])
    res.pages[k] = res.pages.get(k, 0) + n
    if st.kind <= KIND_CODES["shmem"] and (want is None or _in_sorted(want, st.key)):
        fk = (st.key, st.mapping)
        res.files[fk] = res.files.get(fk, 0) + n
        res.file_kind[st.mapping] = _KIND_NAMES[st.kind]


def _in_want(np, keys, want):
    """Which of ``keys`` are in the sorted array ``want`` (a binary search
    each: np.isin would sort ``want`` again for every chunk)."""
    i = np.searchsorted(want, keys)
    i[i >= want.size] = 0
    return want[i] == keys


def _in_sorted(want, key: int) -> bool:
    import numpy as np
    i = int(np.searchsorted(want, np.uint64(key)))
    return i < want.size and int(want[i]) == key


def _add_files(res: PassResult, keys, mappings, kinds, span) -> None:
    """Pages per (key, mapping), grouped in numpy (one sort)."""
    import numpy as np
    order = np.lexsort((mappings, keys))
    keys, mappings, kinds, span = keys[order], mappings[order], kinds[order], span[order]
    start = np.ones(keys.size, dtype=bool)
    start[1:] = (keys[1:] != keys[:-1]) | (mappings[1:] != mappings[:-1])
    starts = np.flatnonzero(start)
    sums = np.add.reduceat(span, starts)
    files, file_kind = res.files, res.file_kind
    for k, m, kd, c in zip(keys[starts].tolist(), mappings[starts].tolist(),
                           kinds[starts].tolist(), sums.tolist()):
        files[(k, m)] = files.get((k, m), 0) + c
        file_kind[m] = _KIND_NAMES[kd]


def _chunk_numpy_every_page(chunk: PageChunk, lay: PageLayout, res: PassResult, st: _Carry,
                            want, slab_cache_memcg) -> None:
    """Every page decoded, for slab pages whose memcg is their cache's."""
    import numpy as np
    n = chunk.count
    md = _memcg_words(chunk, lay)
    if md is None:
        return
    flags = column(chunk.data, n, lay.size, lay.flags)
    mapping = column(chunk.data, n, lay.size, lay.mapping)
    tail = _tail_mask(np, chunk, lay, flags)
    if tail is None:
        tail = np.zeros(n, dtype=bool)
    head = ~tail
    # per head: kind and key
    kind = _kind_codes(np, md, flags, mapping, lay,
                       lambda: column(chunk.data, n, lay.size, lay.type_off, 4))
    slab = kind == KIND_CODES["slab"]
    key = md & np.uint64(_ALL ^ _LOW)
    vector = (md & 1) != 0
    if slab_cache_memcg is not None and lay.slab_cache is not None:
        orphan = slab & head & (md == 0)
        if orphan.any():
            caches = column(chunk.data, n, lay.size, lay.slab_cache)[orphan]
            key[orphan] = np.array([slab_cache_memcg(int(c)) for c in caches.tolist()],
                                   dtype=np.uint64)
            for c in caches.tolist():
                res.slab_caches[c] = res.slab_caches.get(c, 0) + 1
    # tails take their head's values: the last head before them, or the carry
    pos = np.where(head, np.arange(n), -1)
    np.maximum.accumulate(pos, out=pos)
    first = pos < 0
    pos[first] = 0
    hkey, hkind, hmap, hvec = key[pos], kind[pos], mapping[pos], vector[pos]
    if first.any():
        hkey[first] = st.key
        hkind[first] = st.kind
        hmap[first] = st.mapping
        hvec[first] = st.vector
    last = n - 1
    st.key, st.kind, st.mapping, st.vector = (int(hkey[last]), int(hkind[last]),
                                              int(hmap[last]), bool(hvec[last]))
    charged = hkey != 0
    res.slab_vectors += int((hvec & charged).sum())
    charged &= ~hvec
    if not charged.any():
        return
    packed = hkey[charged] | hkind[charged]
    vals, counts = np.unique(packed, return_counts=True)
    _add(res.pages, vals.tolist(), counts.tolist())
    if not tail.any():  # no compound page here: each page is its folio
        _add(res.folios, vals.tolist(), counts.tolist())
    else:
        hpacked = (key | kind)[head & charged]
        if hpacked.size:
            vals, counts = np.unique(hpacked, return_counts=True)
            _add(res.folios, vals.tolist(), counts.tolist())
    if want is None or want.size:
        fmask = charged & (hkind <= KIND_CODES["shmem"])
        if fmask.any():
            _add_files_every_page(np, res, hkey[fmask], hmap[fmask], hkind[fmask], want)


def _add_files_every_page(np, res: PassResult, keys, mappings, kinds, want) -> None:
    """Pages per (key, mapping) of charged file and shmem pages, one each,
    for the keys in ``want`` (None: every key)."""
    if want is None:
        sel = np.ones(keys.size, dtype=bool)
    else:
        sel = _in_want(np, keys, want)
    if sel.any():
        pairs = np.stack([keys[sel], mappings[sel], kinds[sel]], axis=1)
        vals, counts = np.unique(pairs, axis=0, return_counts=True)
        for (k, m, kd), c in zip(vals.tolist(), counts.tolist()):
            res.files[(k, m)] = res.files.get((k, m), 0) + c
            res.file_kind[m] = _KIND_NAMES[kd]


def _add(target: Dict[Tuple[int, str], int], packed: Iterable[int],
         counts: Iterable[int]) -> None:
    for p, c in zip(packed, counts):
        k = (p & ~_LOW, _KIND_NAMES[p & _LOW])
        target[k] = target.get(k, 0) + c


# -- plain Python ------------------------------------------------------------------------

def _kind(w: int, flags: int, mapping: int, slab: bool, swapbacked: int) -> str:
    """What a head page is, from its memcg word, flags and mapping (the
    module docstring's order); ``slab``: a slab page by flag or page type."""
    if slab or w & 1:
        return "slab"
    if w & 2:
        return "kmem"
    if mapping & 1:
        return "anon"
    if flags & swapbacked:
        return "shmem"
    return "file" if mapping else "kmem"


def _chunk_python(chunk: PageChunk, lay: PageLayout, res: PassResult, st: _Carry,
                  want: Optional[Set[int]], slab_cache_memcg) -> None:
    """Without numpy: Python looks only at the charged head pages (found by a
    filter over the memcg words) and the tail pages that follow them."""
    n = chunk.count
    md = _memcg_words(chunk, lay)
    if md is None:
        return
    if slab_cache_memcg is not None and lay.slab_cache is not None:
        # v3.19-v5.8: slab pages without a memcg word must be looked at too
        return _chunk_python_every_page(chunk, lay, res, st, want, slab_cache_memcg, md)
    flags = column(chunk.data, n, lay.size, lay.flags)
    mapping = column(chunk.data, n, lay.size, lay.mapping)
    if lay.tail_member is not None:
        words = column(chunk.data, n, lay.size, lay.tail_member)

        def is_tail(i: int) -> bool:
            return bool(words[i] & 1)
    else:
        tail_flag = lay.tail_flag

        def is_tail(i: int) -> bool:
            return bool(flags[i] & tail_flag)
    ptype = column(chunk.data, n, lay.size, lay.type_off, 4) \
        if not lay.slab_flag and lay.slab_type is not None and lay.type_off is not None else None
    pages, folios, files, file_kind = res.pages, res.folios, res.files, res.file_kind
    sb, slab_flag = lay.swapbacked, lay.slab_flag

    def count(key: int, kind: str, mp: int, vec: bool, nr: int) -> None:
        if vec:
            res.slab_vectors += nr
            return
        k = (key, kind)
        pages[k] = pages.get(k, 0) + nr
        if kind in ("file", "shmem") and (want is None or key in want):
            fk = (key, mp)
            files[fk] = files.get(fk, 0) + nr
            file_kind[mp] = kind

    # tail pages that start the chunk belong to the last head of the one before
    i = 0
    while i < n and is_tail(i):
        i += 1
    if i and st.key:
        count(st.key, _KIND_NAMES[st.kind], st.mapping, st.vector, i)
    st.key = 0
    first = i
    for i in [i for i, w in enumerate(md) if w]:
        if i < first or is_tail(i):
            continue
        w, f, m = md[i], flags[i], mapping[i]
        vec = bool(w & 1)
        kind = _kind(w, f, m, bool(f & slab_flag)
                     or (ptype is not None and ptype[i] == lay.slab_type), sb)
        key = w & ~_LOW
        j = i + 1
        while j < n and is_tail(j):
            j += 1
        if not vec:
            k = (key, kind)
            folios[k] = folios.get(k, 0) + 1
        count(key, kind, m, vec, j - i)
        if j == n:
            st.key, st.kind, st.mapping, st.vector = key, KIND_CODES[kind], m, vec


def _chunk_python_every_page(chunk: PageChunk, lay: PageLayout, res: PassResult, st: _Carry,
                             want: Optional[Set[int]], slab_cache_memcg, md) -> None:
    n = chunk.count
    flags = column(chunk.data, n, lay.size, lay.flags)
    mapping = column(chunk.data, n, lay.size, lay.mapping)
    tails = column(chunk.data, n, lay.size, lay.tail_member) \
        if lay.tail_member is not None else None
    caches = column(chunk.data, n, lay.size, lay.slab_cache)
    pages, folios, files, file_kind = res.pages, res.folios, res.files, res.file_kind
    tail_flag, sb, slab_flag = lay.tail_flag, lay.swapbacked, lay.slab_flag
    key, kind, mp, vec = st.key, _KIND_NAMES[st.kind], st.mapping, st.vector
    for i in range(n):
        is_tail = (tails[i] & 1) if tails is not None else (flags[i] & tail_flag)
        if not is_tail:
            w = md[i]
            f = flags[i]
            m = mapping[i]
            vec = bool(w & 1)
            kind = _kind(w, f, m, bool(f & slab_flag), sb)
            key = w & ~_LOW
            if kind == "slab" and not w:
                c = caches[i]
                key = slab_cache_memcg(c)
                res.slab_caches[c] = res.slab_caches.get(c, 0) + 1
            mp = m
            if key and not vec:
                k = (key, kind)
                folios[k] = folios.get(k, 0) + 1
        if not key:
            continue
        if vec:
            res.slab_vectors += 1
            continue
        k = (key, kind)
        pages[k] = pages.get(k, 0) + 1
        if kind in ("file", "shmem") and (want is None or key in want):
            fk = (key, mp)
            files[fk] = files.get(fk, 0) + 1
            file_kind[mp] = kind
    st.key, st.kind, st.mapping, st.vector = key, KIND_CODES[kind], mp, vec


def kinds_of(d: Dict[Tuple[int, str], int], key: int) -> Dict[str, int]:
    """``{kind: count}`` of one key."""
    return {kind: c for (k, kind), c in d.items() if k == key}
