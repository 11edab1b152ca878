"""The kernel's page array: every ``struct page``, read in large blocks.

:class:`PageArray` finds where the struct pages of every valid page frame
live, the way the kernel's ``pfn_valid()`` and ``pfn_to_page()`` do, and
:meth:`PageArray.chunks` reads them thousands at a time with
:meth:`Target.read_bytes`; :func:`column` decodes one member of every
struct page of a chunk at once (a numpy view when numpy is installed, an
``array`` slice otherwise), so a pass over millions of pages makes no Python
object per page.  Struct pages the dump lacks are counted
(:attr:`PageArray.unreadable`), never raised.

Where the struct pages are, by memory model (include/linux/mmzone.h):

- SPARSEMEM (every x86_64 kernel, 3.10 through 7.x): ``mem_section`` holds
  one ``struct mem_section`` per section of ``1 << SECTION_SIZE_BITS``
  bytes, in roots of ``PAGE_SIZE / sizeof(struct mem_section)`` sections
  (SPARSEMEM_EXTREME: ``mem_section`` is an array of root pointers, and a
  pointer to it since v4.15) or one static two-dimensional array.
  ``section_mem_map`` encodes ``mem_map - section_nr_to_pfn(nr)`` with flag
  bits in its low bits (``sparse_encode_mem_map()``), so the struct page of
  pfn ``p`` is at ``(section_mem_map & SECTION_MAP_MASK) + p * sizeof(struct
  page)`` with or without VMEMMAP.  A section is valid when
  ``SECTION_HAS_MEM_MAP`` is set; since v5.3 a section that is not
  ``SECTION_IS_EARLY`` is valid only in the 2 MiB subsections its
  ``usage->subsection_map`` marks (``pfn_section_valid()``).  Sections that
  are present but offline (``SECTION_IS_ONLINE`` clear, v4.13+) have struct
  pages the kernel never initialised and are skipped, as
  ``pfn_to_online_page()`` skips them.
- FLATMEM: ``mem_map`` from ``ARCH_PFN_OFFSET`` for ``max_mapnr`` pages.

Up to v3.18 the memory controller kept a ``struct page_cgroup`` per page
frame beside the page array, in SPARSEMEM as ``mem_section.page_cgroup``
encoded like ``section_mem_map`` (``base - section start pfn``, mm/page_cgroup.c
v3.10); :class:`PageRange` carries that base too, and chunks bring the
matching page_cgroup bytes.  Since Linux kernel commit 1306a85aed3e ("mm:
embed the memcg pointer directly into struct page") (in v3.19) there is no
such array.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import MissingSymbolError, ReadError, TargetError
from .target import Target
from .vmcoreinfo import vmcoreinfo_number

__all__ = ["PageArray", "PageRange", "PageChunk", "column", "have_numpy"]

_PTR = 8
#: reads are split down to this granularity when a block fails
_BLOCK = 4096
#: struct pages read at a time: 2 MiB of 64-byte struct pages (one 128 MiB
#: section of x86_64)
DEFAULT_CHUNK = 32768

# Section flags.  Since Linux kernel commit ed7802dd48f7 ("mm:
# memory_hotplug: enumerate all supported section flags") (in v6.0) they are
# enumerators (SECTION_*_BIT) in debug info; before, macros with these
# values: PRESENT and HAS_MEM_MAP since v2.6.13 (include/linux/mmzone.h),
# IS_ONLINE since commit 2d070eab2e82 ("mm: consider zone which is not fully
# populated to have holes") (in v4.13), IS_EARLY since commit 326e1b8f83a4
# ("mm/sparsemem: introduce a SECTION_IS_EARLY flag") (in v5.3).  Before
# v6.0 the mask clears five bits: the encoded pointer is at least 2 MiB
# aligned (a page-aligned mem_map minus a multiple of PAGES_PER_SECTION
# struct pages), so no real address bit is lost on kernels with fewer flags.
_OLD_SECTION_FLAGS = {"SECTION_MARKED_PRESENT": 0x1, "SECTION_HAS_MEM_MAP": 0x2,
                      "SECTION_IS_ONLINE": 0x4, "SECTION_IS_EARLY": 0x8}
_OLD_SECTION_MAP_MASK = ~0x1F & (2**64 - 1)
#: x86_64's section size (arch/x86/include/asm/sparsemem.h, the same from
#: v3.10 to v7.x), for kernels whose VMCOREINFO does not export it
_X86_64_SECTION_SIZE_BITS = 27
#: subsections are 2 MiB (SUBSECTION_SHIFT, include/linux/mmzone.h v5.3+)
_SUBSECTION_SHIFT = 21


def have_numpy() -> bool:
    """Whether columns come back as numpy arrays."""
    return _np() is not None


_NP: List[Any] = []


def _np():
    if not _NP:
        try:
            import numpy  # optional: pip install crashext[fast]
            _NP.append(numpy)
        except ImportError:
            _NP.append(None)
    return _NP[0]


def page_has_memcg(t: Target) -> bool:
    """Whether struct page carries the memcg word itself: ``mem_cgroup``
    since commit 1306a85aed3e ("mm: embed the memcg pointer directly into
    struct page") (in v3.19), ``memcg_data`` since v5.11.  Before, it is in
    a page_cgroup beside the page."""
    return (t.has_member("struct page", "memcg_data")
            or t.has_member("struct page", "mem_cgroup"))


@dataclass(frozen=True)
class PageRange:
    """Page frames ``[start_pfn, end_pfn)`` whose struct pages are at
    ``base + pfn * struct_size`` (and their page_cgroups, where the kernel
    has them, at ``pc_base + pfn * pc_size``)."""

    start_pfn: int
    end_pfn: int
    base: int
    pc_base: Optional[int] = None


@dataclass
class PageChunk:
    """``count`` struct pages from ``start_pfn``, read as one block
    (``data``), and their page_cgroups (``pc_data``) where the kernel has
    them; ``pc_data`` is None on newer kernels or when it could not be read."""

    start_pfn: int
    count: int
    data: bytes
    pc_data: Optional[bytes] = None


@dataclass
class PageArray:
    """Where the struct pages are; :meth:`chunks` reads them."""

    t: Target
    struct_size: int
    ranges: List[PageRange]
    model: str
    pc_size: int = 0
    #: one line per thing that made the array incomplete (a section root
    #: that could not be read, ...), for the caller to report
    problems: List[str] = field(default_factory=list)
    #: struct pages (and page_cgroups) that could not be read, counted by chunks()
    unreadable: int = 0
    #: the first few unreadable pfn ranges, [start, end)
    unreadable_ranges: List[Tuple[int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, t: Target) -> "PageArray":
        """The page array of ``t``; TargetError when the kernel's memory
        model cannot be told (no mem_section and no mem_map)."""
        size = t.type_size("struct page")
        pc_size = 0
        # looked for only where struct page has no memcg word (up to v3.18): a
        # type the debug info lacks is the slowest lookup inside crash
        if not page_has_memcg(t) and t.has_type("struct page_cgroup"):
            pc_size = t.type_size("struct page_cgroup")
        if t.has_symbol("mem_section"):
            ranges, problems = _sparse_ranges(t, size, pc_size)
            return cls(t, size, ranges, "sparsemem", pc_size, problems)
        if t.has_symbol("mem_map"):
            ranges, problems = _flat_ranges(t, pc_size)
            return cls(t, size, ranges, "flatmem", pc_size, problems)
        raise TargetError("cannot find the page array: the kernel has neither mem_section "
                          "nor mem_map")

    @property
    def nr_pages(self) -> int:
        return sum(r.end_pfn - r.start_pfn for r in self.ranges)

    def chunks(self, pages: int = DEFAULT_CHUNK, progress=None) -> Iterator[PageChunk]:
        """Every readable struct page, ``pages`` at a time, in pfn order.
        Blocks the dump lacks are skipped and counted in :attr:`unreadable`;
        ``progress.step(n)``, if given, gets the pages done."""
        for r in self.ranges:
            pfn = r.start_pfn
            while pfn < r.end_pfn:
                n = min(pages, r.end_pfn - pfn)
                for chunk in self._read(r, pfn, n):
                    yield chunk
                if progress is not None:
                    progress.step(n)
                pfn += n

    # -- reading ---------------------------------------------------------------
    def _read(self, r: PageRange, pfn: int, n: int) -> Iterator[PageChunk]:
        size = self.struct_size
        addr = r.base + pfn * size
        try:
            data = self.t.read_bytes(addr, n * size)
        except ReadError:
            data = None
        if data is not None:
            yield PageChunk(pfn, n, data, self._pc(r, pfn, n))
            return
        # some of it is missing: find the readable runs block by block
        good = _readable_pages(self.t, addr, n, size)
        i = 0
        while i < n:
            ok, j = good[i], i
            while j < n and good[j] == ok:
                j += 1
            if not ok:
                self._lost(pfn + i, j - i)
            else:
                try:
                    data = self.t.read_bytes(r.base + (pfn + i) * size, (j - i) * size)
                except ReadError:  # pragma: no cover - it was readable a moment ago
                    self._lost(pfn + i, j - i)
                else:
                    yield PageChunk(pfn + i, j - i, data, self._pc(r, pfn + i, j - i))
            i = j

    def _pc(self, r: PageRange, pfn: int, n: int) -> Optional[bytes]:
        if r.pc_base is None or not self.pc_size:
            return None
        try:
            return self.t.read_bytes(r.pc_base + pfn * self.pc_size, n * self.pc_size)
        except ReadError:
            self.problems.append(f"page_cgroup of pfn {pfn:#x}-{pfn + n - 1:#x} unreadable")
            return None

    def _lost(self, pfn: int, count: int) -> None:
        self.unreadable += count
        if len(self.unreadable_ranges) < 8:
            self.unreadable_ranges.append((pfn, pfn + count))


def _readable_pages(t: Target, addr: int, n: int, size: int) -> bytearray:
    """Per struct page, 1 if every byte of it can be read."""
    end = addr + n * size
    bad: List[Tuple[int, int]] = []

    def probe(lo: int, hi: int) -> None:
        try:
            t.read_bytes(lo, hi - lo)
        except ReadError:
            if hi - lo <= _BLOCK:
                bad.append((lo, hi))
                return
            mid = ((lo + hi) // 2) & ~(_BLOCK - 1)
            if mid <= lo:
                mid = lo + _BLOCK
            probe(lo, mid)
            probe(mid, hi)

    # split at block boundaries first so halves stay aligned
    first = min(end, (addr | (_BLOCK - 1)) + 1)
    if first > addr:
        probe(addr, first)
    if end > first:
        probe(first, end)
    good = bytearray(b"\1" * n)
    for lo, hi in bad:
        i0 = max(0, (lo - addr) // size)
        i1 = min(n, (hi - addr + size - 1) // size)
        for i in range(i0, i1):
            good[i] = 0
    return good


# -- where the struct pages are --------------------------------------------------------

def _section_flags(t: Target) -> Tuple[Dict[str, int], int]:
    """Section flag masks by name and SECTION_MAP_MASK."""
    try:
        last = t.constant("SECTION_MAP_LAST_BIT")
    except MissingSymbolError:
        return dict(_OLD_SECTION_FLAGS), _OLD_SECTION_MAP_MASK
    flags = {}
    for name in ("SECTION_MARKED_PRESENT", "SECTION_HAS_MEM_MAP", "SECTION_IS_ONLINE",
                 "SECTION_IS_EARLY"):
        try:
            flags[name] = 1 << t.constant(name + "_BIT")
        except MissingSymbolError:
            pass
    return flags, ~((1 << last) - 1) & (2**64 - 1)


def _section_size_bits(t: Target) -> int:
    v = vmcoreinfo_number(t, "SECTION_SIZE_BITS")
    if v is not None:
        return v
    uts = ""
    try:
        uts = t.uts().get("machine", "")
    except (MissingSymbolError, ReadError):
        pass
    if uts in ("", "x86_64"):
        return _X86_64_SECTION_SIZE_BITS
    raise TargetError(f"cannot tell SECTION_SIZE_BITS of this {uts} kernel "
                      "(not in its VMCOREINFO)")


def _roots(t: Target, sec_size: int) -> Tuple[List[Optional[int]], int, List[str]]:
    """Addresses of the section roots (None for an empty one) and sections per root."""
    ms = t.symbol("mem_section")
    name = ms.type_name
    problems: List[str] = []
    nr_roots = vmcoreinfo_number(t, "mem_section")  # LENGTH(mem_section) = NR_SECTION_ROOTS
    if name.endswith("]") and "*" not in name.split("[", 1)[0]:
        # struct mem_section mem_section[NR_SECTION_ROOTS][SECTIONS_PER_ROOT]
        n_roots = ms.length()
        per_root = ms[0].length()
        return [ms.address + i * per_root * sec_size for i in range(n_roots)], per_root, problems
    per_root = t.page_size // sec_size
    if name.endswith("]"):
        # struct mem_section *mem_section[NR_SECTION_ROOTS]
        n_roots = ms.length()
        table = ms.address
    else:
        # Since Linux kernel commit 83e3c48729d9 ("mm/sparsemem: Allocate
        # mem_section at runtime for CONFIG_SPARSEMEM_EXTREME=y") (in v4.15)
        # a pointer to the table of roots, allocated at boot.
        table = int(ms)
        if table == 0:
            raise TargetError("mem_section is NULL: the page array was never set up")
        if nr_roots is None:
            max_physmem = vmcoreinfo_number(t, "MAX_PHYSMEM_BITS") or 46
            sections = 1 << (max_physmem - _section_size_bits(t))
            nr_roots = (sections + per_root - 1) // per_root
        n_roots = nr_roots
    highest = None
    if t.has_symbol("__highest_present_section_nr"):
        try:
            highest = int(t.symbol("__highest_present_section_nr"))
        except ReadError:
            highest = None
    if highest is not None:
        n_roots = min(n_roots, highest // per_root + 1)
    try:
        raw = t.read_bytes(table, n_roots * _PTR)
    except ReadError as exc:
        raise TargetError(f"the table of memory section roots cannot be read: "
                          f"{exc.one_line()}") from exc
    roots = [int.from_bytes(raw[i * _PTR:(i + 1) * _PTR], "little") or None
             for i in range(n_roots)]
    return roots, per_root, problems


def _sparse_ranges(t: Target, size: int, pc_size: int) -> Tuple[List[PageRange], List[str]]:
    sec_size = t.type_size("struct mem_section")
    map_off = t.member_offset("struct mem_section", "section_mem_map")
    usage_off = _opt_offset(t, "struct mem_section", "usage")
    pc_off = _opt_offset(t, "struct mem_section", "page_cgroup") if pc_size else None
    flags, mask = _section_flags(t)
    has_map = flags["SECTION_HAS_MEM_MAP"]
    online = flags.get("SECTION_IS_ONLINE", 0)
    early = flags.get("SECTION_IS_EARLY", 0)
    pages_per_section = 1 << (_section_size_bits(t) - (t.page_size.bit_length() - 1))
    sub_pages = 1 << (_SUBSECTION_SHIFT - (t.page_size.bit_length() - 1))
    roots, per_root, problems = _roots(t, sec_size)
    sections: List[Tuple[int, int, int, Optional[int], int]] = []
    any_online = False
    for ri, root in enumerate(roots):
        if root is None:
            continue
        try:
            raw = t.read_bytes(root, per_root * sec_size)
        except ReadError as exc:
            problems.append(f"memory section root {ri} unreadable ({exc.one_line()}): "
                            f"{per_root} sections skipped")
            continue
        for si in range(per_root):
            o = si * sec_size
            smm = int.from_bytes(raw[o + map_off:o + map_off + _PTR], "little")
            if not smm & has_map:
                continue
            nr = ri * per_root + si
            usage = int.from_bytes(raw[o + usage_off:o + usage_off + _PTR], "little") \
                if usage_off is not None else 0
            pc = int.from_bytes(raw[o + pc_off:o + pc_off + _PTR], "little") \
                if pc_off is not None else None
            any_online = any_online or bool(smm & online)
            sections.append((nr, smm, usage, pc or None, smm & early))
    ranges: List[PageRange] = []
    skipped_offline = 0
    for nr, smm, usage, pc, is_early in sections:
        if online and any_online and not smm & online:
            skipped_offline += 1
            continue
        base = smm & mask
        start = nr * pages_per_section
        spans = [(start, start + pages_per_section)]
        if usage and not is_early:
            spans = _subsections(t, usage, start, pages_per_section, sub_pages, problems) or spans
        for lo, hi in spans:
            last = ranges[-1] if ranges else None
            if last is not None and last.end_pfn == lo and last.base == base \
                    and last.pc_base == pc:
                ranges[-1] = PageRange(last.start_pfn, hi, base, pc)
            else:
                ranges.append(PageRange(lo, hi, base, pc))
    if skipped_offline:
        problems.append(f"{skipped_offline} present but offline memory sections skipped "
                        "(their struct pages are not initialised)")
    return ranges, problems


def _subsections(t: Target, usage: int, start: int, per_section: int, sub_pages: int,
                 problems: List[str]) -> List[Tuple[int, int]]:
    """The valid 2 MiB subsections of a hot-added section, as pfn spans."""
    try:
        off = t.member_offset("struct mem_section_usage", "subsection_map")
    except MissingSymbolError:
        return []
    n = per_section // sub_pages
    try:
        raw = t.read_bytes(usage + off, (n + 7) // 8)
    except ReadError:
        problems.append(f"subsection map of the section at pfn {start:#x} unreadable: "
                        "the whole section is read")
        return []
    bits = int.from_bytes(raw, "little")
    spans: List[Tuple[int, int]] = []
    for i in range(n):
        if bits >> i & 1:
            lo = start + i * sub_pages
            if spans and spans[-1][1] == lo:
                spans[-1] = (spans[-1][0], lo + sub_pages)
            else:
                spans.append((lo, lo + sub_pages))
    return spans


def _flat_ranges(t: Target, pc_size: int) -> Tuple[List[PageRange], List[str]]:
    mem_map = int(t.symbol("mem_map"))
    nr = int(t.symbol("max_mapnr"))
    # ARCH_PFN_OFFSET is 0 where FLATMEM is used on x86; other architectures
    # export PHYS_OFFSET through VMCOREINFO
    offset = vmcoreinfo_number(t, "ARCH_PFN_OFFSET") or 0
    size = t.type_size("struct page")
    return [PageRange(offset, offset + nr, mem_map - offset * size)], []


def _opt_offset(t: Target, type_name: str, member: str) -> Optional[int]:
    try:
        return t.member_offset(type_name, member)
    except MissingSymbolError:
        return None


# -- decoding ----------------------------------------------------------------------

def column(data: bytes, count: int, stride: int, offset: int, size: int = 8):
    """Member at ``offset`` (``size`` bytes, little-endian unsigned) of each
    of ``count`` structs of ``stride`` bytes in ``data``: a numpy array when
    numpy is installed, else an ``array('Q')`` / ``array('I')``."""
    np = _np()
    if np is not None and stride % size == 0 and offset % size == 0:
        dt = np.dtype("<u8" if size == 8 else "<u4" if size == 4 else "<u2")
        a = np.frombuffer(data, dtype=dt, count=count * stride // size)
        return a[offset // size::stride // size]
    from array import array
    code = {8: "Q", 4: "I", 2: "H"}[size]
    if stride % size == 0 and offset % size == 0:
        a = array(code)
        a.frombytes(data[:count * stride])
        return a[offset // size::stride // size]
    import struct
    fmt = "<" + code
    return array(code, (struct.unpack_from(fmt, data, i * stride + offset)[0]
                        for i in range(count)))
