"""Write into the physical memory a vmcore file holds, to break kernel structures on purpose.

A fault case starts from a clean real dump (tests/vmcore/ fixtures, which are
makedumpfile ``-l`` kdump-compressed files) and its debug vmlinux:

1. drgn on the clean dump finds the object to break and its kernel virtual
   address; :func:`phys_of` turns that into a physical address by walking the
   kernel page tables (``follow_phys`` on ``init_mm``), which covers the direct
   map, vmemmap (``struct page``) and kernel text/data alike;
2. :class:`Corrupter` collects byte writes at physical addresses, starting each
   touched page from its clean contents (read through drgn, so compressed pages
   need no decompressor here);
3. :meth:`Corrupter.commit` writes every touched page back into the copy.

How a page is written back (the choice the fixture format forces):

- **kdump-compressed** (``KDUMP   `` signature; layout from makedumpfile's
  ``diskdump_mod.h``: a ``struct disk_dump_header`` block, ``sub_hdr_size``
  blocks of ``struct kdump_sub_header``, two bitmaps of ``bitmap_blocks / 2``
  blocks each, then one 24-byte ``struct page_desc {off_t offset; u32 size;
  u32 flags; u64 page_flags}`` per page set in bitmap 2, in pfn order).  The
  fixture pages are lzo-compressed, so a page cannot be patched in place:
  the patched page is **appended raw** at the end of the file and its
  descriptor is rewritten to point there with ``size = page size`` and
  ``flags = 0`` (uncompressed).  A page that is already stored raw (a dump
  re-filtered without ``-l``/``-c``) is patched in place, except when its
  descriptor points at the one zero page every zero page shares.
- **ELF** (``PT_LOAD`` segments): patched in place at
  ``p_offset + (phys - p_paddr)``.  The fixture builder does not keep QEMU's
  ELF (``keep_elf`` is off), and makedumpfile refuses ``-E`` on a kdump input,
  so the matrix uses kdump files; ELF support is here for dumps made with
  ``keep_elf=True``.

A page the dump excluded (bit clear in bitmap 2, or no ``PT_LOAD`` covers
it) cannot be corrupted: :class:`NotInDump`.
"""

import os
import shutil
import struct
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["DumpLayout", "Corrupter", "NotInDump", "phys_of", "open_clean", "truncate"]

_KDUMP_SIG = b"KDUMP   "
_ELF_MAGIC = b"\x7fELF"
DESC = struct.Struct("<qIIQ")  # struct page_desc (diskdump_mod.h)
_PT_LOAD = 1


class NotInDump(Exception):
    """The physical page is not in the dump file (excluded or beyond its memory)."""


@dataclass
class DumpLayout:
    """Where the parts of a dump file start and end (byte offsets)."""

    path: str
    format: str                 # "kdump" or "elf"
    size: int
    page_size: int = 4096
    # kdump
    block_size: int = 0
    header_end: int = 0         # end of disk_dump_header block
    bitmap_start: int = 0
    bitmap_end: int = 0
    desc_start: int = 0
    desc_end: int = 0
    data_start: int = 0         # the shared zero page is written here first
    data_end: int = 0
    max_mapnr: int = 0
    dumped: int = 0
    # elf: (p_offset, p_paddr, p_filesz) of every PT_LOAD
    loads: Tuple[Tuple[int, int, int], ...] = ()
    _bitmap2: bytes = field(default=b"", repr=False)

    @classmethod
    def read(cls, path: str) -> "DumpLayout":
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4096)
            if head[:8] == _KDUMP_SIG:
                return cls._kdump(path, f, head, size)
            if head[:4] == _ELF_MAGIC:
                return cls._elf(path, f, head, size)
        raise ValueError(f"{path}: neither kdump-compressed nor ELF")

    @classmethod
    def _kdump(cls, path, f, head, size) -> "DumpLayout":
        # struct disk_dump_header: signature[8], header_version (int) at 8,
        # new_utsname (6 x 65 bytes) at 12, timestamp at 408 (struct timeval,
        # 16 bytes), then status, block_size, sub_hdr_size, bitmap_blocks,
        # max_mapnr (u32 each) at 424.
        version = struct.unpack_from("<i", head, 8)[0]
        _status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr = struct.unpack_from("<IiiII", head, 424)
        lay = cls(path, "kdump", size, page_size=block_size, block_size=block_size)
        lay.header_end = block_size
        f.seek(block_size)
        sub = f.read(104)
        # kdump_sub_header.max_mapnr_64 (header_version >= 6) at offset 96
        if version >= 6 and len(sub) >= 104:
            max_mapnr = struct.unpack_from("<Q", sub, 96)[0]
        lay.max_mapnr = max_mapnr
        lay.bitmap_start = (1 + sub_hdr_size) * block_size
        lay.bitmap_end = lay.bitmap_start + bitmap_blocks * block_size
        lay.desc_start = lay.bitmap_end
        f.seek(lay.bitmap_start + (lay.bitmap_end - lay.bitmap_start) // 2)
        lay._bitmap2 = f.read((lay.bitmap_end - lay.bitmap_start) // 2)
        lay.dumped = int.from_bytes(lay._bitmap2, "little").bit_count()
        lay.desc_end = lay.desc_start + lay.dumped * DESC.size
        lay.data_start = lay.desc_end
        lay.data_end = size
        return lay

    @classmethod
    def _elf(cls, path, f, head, size) -> "DumpLayout":
        phoff = struct.unpack_from("<Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        loads = []
        for i in range(phnum):
            p_type, _fl, p_offset, _va, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
            if p_type == _PT_LOAD:
                loads.append((p_offset, p_paddr, p_filesz))
        lay = cls(path, "elf", size, loads=tuple(loads))
        lay.header_end = phoff + phentsize * phnum
        lay.data_start = min((o for o, _, _ in loads), default=size)
        lay.data_end = max((o + n for o, _, n in loads), default=size)
        return lay

    # -- kdump page lookup -------------------------------------------------
    def desc_index(self, pfn: int) -> int:
        """Index of ``pfn``'s page_desc: the number of dumped pages before it."""
        byte, bit = divmod(pfn, 8)
        if pfn >= self.max_mapnr or byte >= len(self._bitmap2) or not (self._bitmap2[byte] >> bit) & 1:
            raise NotInDump(f"pfn {pfn:#x} is not in {self.path} (excluded by the dump level?)")
        before = int.from_bytes(self._bitmap2[:byte], "little").bit_count()
        return before + bin(self._bitmap2[byte] & ((1 << bit) - 1)).count("1")

    def page_desc(self, f, pfn: int) -> Tuple[int, int, int, int, int]:
        """(descriptor file offset, data offset, size, flags, page_flags) of ``pfn``."""
        at = self.desc_start + self.desc_index(pfn) * DESC.size
        f.seek(at)
        raw = f.read(DESC.size)
        if len(raw) < DESC.size:
            raise NotInDump(f"pfn {pfn:#x}: its page descriptor is beyond the end of the file")
        return (at,) + DESC.unpack(raw)

    def elf_offset(self, phys: int) -> int:
        for off, paddr, filesz in self.loads:
            if paddr <= phys < paddr + filesz:
                return off + phys - paddr
        raise NotInDump(f"physical address {phys:#x} is in no PT_LOAD of {self.path}")


def open_clean(vmcore: str, vmlinux: str):
    """A drgn Program on a dump (test helper; analyses never import drgn)."""
    import drgn
    prog = drgn.Program()
    prog.set_enabled_debug_info_finders([])
    prog.set_core_dump(vmcore)
    prog.load_debug_info([vmlinux])
    return prog


def phys_of(prog, vaddr: int) -> int:
    """Physical address of the kernel virtual address ``vaddr`` (page-table walk)."""
    from drgn.helpers.linux.mm import follow_phys
    return int(follow_phys(prog["init_mm"].address_of_(), vaddr))


class Corrupter:
    """Collect writes to physical (or kernel virtual) addresses; commit them into ``path``.

    ``clean_page(phys_page) -> bytes`` gives a page's clean contents; by
    default read through ``prog`` (the clean dump).
    """

    def __init__(self, path: str, prog=None,
                 clean_page: Optional[Callable[[int], bytes]] = None) -> None:
        self.path = path
        self.prog = prog
        self.layout = DumpLayout.read(path)
        self.page_size = self.layout.page_size
        self._clean_page = clean_page or (lambda pa: bytes(prog.read(pa, self.page_size, True)))
        self.pages: Dict[int, bytearray] = {}
        self.log: List[str] = []

    def write_phys(self, phys: int, data: bytes) -> None:
        ps = self.page_size
        while data:
            page = phys - phys % ps
            n = min(len(data), page + ps - phys)
            buf = self.pages.get(page)
            if buf is None:
                buf = self.pages[page] = bytearray(self._clean_page(page))
            buf[phys - page:phys - page + n] = data[:n]
            phys += n
            data = data[n:]

    def write_virt(self, vaddr: int, data: bytes) -> None:
        self.log.append(f"{len(data)} bytes at {vaddr:#x}")
        self.write_phys(phys_of(self.prog, vaddr), data)

    def write_u64(self, vaddr: int, value: int) -> None:
        self.write_virt(vaddr, struct.pack("<Q", value & (2**64 - 1)))

    def write_u32(self, vaddr: int, value: int) -> None:
        self.write_virt(vaddr, struct.pack("<I", value & (2**32 - 1)))

    def commit(self) -> int:
        """Write every touched page into the file; returns how many."""
        lay = self.layout
        with open(self.path, "r+b") as f:
            for page, buf in sorted(self.pages.items()):
                if lay.format == "elf":
                    f.seek(lay.elf_offset(page))
                    f.write(buf)
                    continue
                at, off, size, flags, pflags = lay.page_desc(f, page // self.page_size)
                if flags == 0 and size == self.page_size and off != lay.data_start:
                    f.seek(off)  # stored raw and not the shared zero page
                    f.write(buf)
                    continue
                f.seek(0, os.SEEK_END)
                new_off = f.tell()
                f.write(buf)
                f.seek(at)
                f.write(DESC.pack(new_off, self.page_size, 0, pflags))
        n = len(self.pages)
        self.pages = {}
        return n

    def garble_stored_page(self, phys: int, pattern: bytes = b"\xa5") -> None:
        """Overwrite the *stored* (e.g. lzo-compressed) bytes of a page in place.

        The descriptor is left alone, so a reader finds a compressed page
        that does not decompress.
        """
        lay = self.layout
        if lay.format != "kdump":
            raise ValueError("only kdump files store compressed pages")
        with open(self.path, "r+b") as f:
            _at, off, size, flags, _pf = lay.page_desc(f, phys // self.page_size)
            if off == lay.data_start:
                raise NotInDump(f"{phys:#x} is the shared zero page")
            f.seek(off)
            f.write((pattern * size)[:size])


def truncate(src: str, dst: str, keep: int) -> None:
    """Copy the first ``keep`` bytes of ``src`` to ``dst``."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = keep
        while left > 0:
            chunk = fi.read(min(left, 1 << 20))
            if not chunk:
                break
            fo.write(chunk)
            left -= len(chunk)


def copy(src: str, dst: str) -> None:
    shutil.copyfile(src, dst)
