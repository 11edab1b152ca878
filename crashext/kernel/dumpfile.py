"""Check a vmcore and a vmlinux before a backend opens them.

Reads only headers with the standard library: which format the dump is in
(ELF as written by kdump or QEMU's ``dump-guest-memory``, or makedumpfile's
compressed "KDUMP" format), its VMCOREINFO note (release, build-id, page
size), and whether the file holds everything its headers promise.  For the
vmlinux: whether it is ELF, whether it has DWARF, its build-id and the
release in its ``linux_banner``.  :func:`check_pair` turns the mismatches
crash warns about ("kernel version inconsistency") into one clear error.

Formats:
- ELF64: the ELF specification; VMCOREINFO is a note named ``VMCOREINFO``
  (kernel/crash_core.c).
- makedumpfile's compressed format: ``struct disk_dump_header`` and
  ``struct kdump_sub_header`` in makedumpfile's diskdump_mod.h (also
  crash's diskdump.h): signature ``"KDUMP   "``, a header block, sub-header
  blocks, two bitmaps, 24-byte ``struct page_desc`` entries (one per dumped
  page, in the order of bitmap 2) and the page data.
"""

import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import TargetError

__all__ = ["DumpInfo", "VmlinuxInfo", "read_dump_info", "read_vmlinux_info",
           "check_pair", "check_vmlinux_file", "parse_vmcoreinfo"]

_ELF_MAGIC = b"\x7fELF"
_KDUMP_SIG = b"KDUMP   "
_PT_LOAD, _PT_NOTE = 1, 4
_SHT_NOTE = 7
_NT_GNU_BUILD_ID = 3
# status bit makedumpfile sets when it could not finish writing
# (DUMP_DH_COMPRESSED_INCOMPLETE in diskdump_mod.h)
_DH_INCOMPLETE = 0x8


@dataclass
class DumpInfo:
    path: str
    format: str                      # "elf" or "kdump"
    size: int
    vmcoreinfo: Dict[str, str] = field(default_factory=dict)
    release: Optional[str] = None
    build_id: Optional[str] = None
    warnings: List[str] = field(default_factory=list)


@dataclass
class VmlinuxInfo:
    path: str
    build_id: Optional[str]
    release: Optional[str]
    has_debug_info: bool


def parse_vmcoreinfo(text: str) -> Dict[str, str]:
    """``KEY=value`` lines of a VMCOREINFO note as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def _notes(data: bytes):
    """Yield (name, type, desc) of the ELF notes in ``data``."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        name = data[pos:pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if len(desc) < descsz:
            return
        yield name, ntype, desc


def _open_error(path: str, exc: OSError, what: str) -> TargetError:
    """One line for a file that cannot be read as a ``what``."""
    if isinstance(exc, FileNotFoundError):
        return TargetError(f"{path}: no such file")
    if isinstance(exc, IsADirectoryError):
        return TargetError(f"{path}: is a directory, not a {what}")
    if isinstance(exc, PermissionError):
        return TargetError(f"{path}: permission denied")
    return TargetError(f"{path}: cannot read the {what}: {exc.strerror or exc}")


def _read_at(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _elf_dump(path: str, f, size: int) -> DumpInfo:
    info = DumpInfo(path, "elf", size)
    hdr = _read_at(f, 0, 64)
    if len(hdr) < 64 or hdr[4] != 2:
        raise TargetError(f"{path}: truncated or 32-bit ELF header; not a vmcore crashext can read")
    e_type = struct.unpack_from("<H", hdr, 16)[0]
    if e_type != 4:  # ET_CORE
        raise TargetError(f"{path}: an ELF file but not a core dump (is it a vmlinux? put it after -s)")
    phoff = struct.unpack_from("<Q", hdr, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
    table = _read_at(f, phoff, phentsize * phnum)
    if len(table) < phentsize * phnum:
        raise TargetError(f"{path}: truncated vmcore: the program header table is cut off")
    end = 0
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
        end = max(end, p_offset + p_filesz)
        if p_type == _PT_NOTE:
            for name, _t, desc in _notes(_read_at(f, p_offset, p_filesz)):
                if name == b"VMCOREINFO":
                    info.vmcoreinfo = parse_vmcoreinfo(desc.decode("utf-8", "replace"))
    if end > size:
        info.warnings.append(f"truncated vmcore: {size} of {end} bytes present; "
                             "objects in the missing part will be reported unreadable")
    return info


def _kdump_dump(path: str, f, size: int) -> DumpInfo:
    info = DumpInfo(path, "kdump", size)
    hdr = _read_at(f, 0, 464)
    if len(hdr) < 464:
        raise TargetError(f"{path}: truncated vmcore: the kdump header is cut off")
    version = struct.unpack_from("<i", hdr, 8)[0]
    release = hdr[142:207].split(b"\0")[0].decode("ascii", "replace")
    status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr = struct.unpack_from("<IiiII", hdr, 424)
    info.release = release or None
    if block_size <= 0 or sub_hdr_size < 0 or block_size > (1 << 20):
        raise TargetError(f"{path}: corrupt kdump header (block size {block_size})")
    if status & _DH_INCOMPLETE:
        info.warnings.append("makedumpfile marked this dump incomplete (it ran out of space)")
    sub = _read_at(f, block_size, 104)
    if version >= 3 and len(sub) >= 48:
        off, sz = struct.unpack_from("<qQ", sub, 32)
        if 0 < sz < (1 << 20) and off + sz <= size:
            info.vmcoreinfo = parse_vmcoreinfo(_read_at(f, off, sz).decode("utf-8", "replace"))
    if version >= 6 and len(sub) >= 104:
        max_mapnr = struct.unpack_from("<Q", sub, 96)[0]
    bitmap_start = (1 + sub_hdr_size) * block_size
    bitmap_len = bitmap_blocks * block_size
    if bitmap_start + bitmap_len > size:
        raise TargetError(f"{path}: truncated vmcore: the page bitmaps are cut off "
                          f"({size} bytes, bitmaps end at {bitmap_start + bitmap_len})")
    # bitmap 2 (pages dumped) is the second half of the bitmap area
    half = bitmap_len // 2
    bitmap2 = _read_at(f, bitmap_start + half, min(half, (max_mapnr + 7) // 8 or half))
    dumped = bin(int.from_bytes(bitmap2, "little")).count("1")  # int.bit_count is 3.10+
    desc_start = bitmap_start + bitmap_len
    if dumped:
        end = _kdump_data_end(f, desc_start, dumped)
        if end is None:
            info.warnings.append(f"truncated vmcore: {size} bytes, its page table alone needs "
                                 f"{desc_start + dumped * 24}; most pages are missing")
        elif end > size:
            info.warnings.append(f"truncated vmcore: {size} of {end} bytes present; "
                                 "objects in the missing part will be reported unreadable")
    return info


def _kdump_data_end(f, desc_start: int, dumped: int) -> Optional[int]:
    """Where the page data of a kdump file ends, from its page descriptors.

    Page data follows the descriptors in page order, except that every zero
    page shares one copy written first; so the last descriptor that does not
    point at that shared copy ends the data.  Read from the end, a chunk at
    a time.  None if the descriptor table itself is cut off.
    """
    zero_page_at = desc_start + dumped * 24
    chunk = 4096
    hi = dumped
    while hi > 0:
        lo = max(0, hi - chunk)
        raw = _read_at(f, desc_start + lo * 24, (hi - lo) * 24)
        if len(raw) < (hi - lo) * 24:
            return None
        for i in range(hi - lo - 1, -1, -1):
            off, psize = struct.unpack_from("<qI", raw, i * 24)
            if off != zero_page_at:
                return off + psize
        hi = lo
    return zero_page_at + 4096


def read_dump_info(path: str) -> DumpInfo:
    """Identify the dump at ``path``; TargetError if it is not a readable vmcore."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            magic = f.read(8)
            if len(magic) < 4:
                raise TargetError(f"{path}: empty or too short to be a vmcore ({size} bytes)")
            if magic[:4] == _ELF_MAGIC:
                info = _elf_dump(path, f, size)
            elif magic == _KDUMP_SIG:
                info = _kdump_dump(path, f, size)
            elif magic.startswith(b"makedump"):
                raise TargetError(f"{path}: a flattened makedumpfile stream; "
                                  "convert it first with makedumpfile -R")
            else:
                raise TargetError(f"{path}: not a vmcore (neither ELF nor kdump format)")
    except OSError as exc:
        raise _open_error(path, exc, "vmcore") from exc
    info.release = info.vmcoreinfo.get("OSRELEASE") or info.release
    info.build_id = info.vmcoreinfo.get("BUILD-ID") or None
    return info


_BANNER = re.compile(rb"Linux version (\S+) \(")


def read_vmlinux_info(path: str) -> VmlinuxInfo:
    """Build-id, banner release and presence of DWARF of the vmlinux at ``path``."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if len(hdr) < 64 or hdr[:4] != _ELF_MAGIC:
                raise TargetError(f"{path}: not an ELF file, so not a vmlinux")
            if hdr[4] != 2:
                raise TargetError(f"{path}: a 32-bit ELF file; crashext reads 64-bit kernels")
            e_type = struct.unpack_from("<H", hdr, 16)[0]
            if e_type == 4:
                raise TargetError(f"{path}: a core dump, not a vmlinux (swap -c and -s?)")
            shoff = struct.unpack_from("<Q", hdr, 40)[0]
            shentsize, shnum, shstrndx = struct.unpack_from("<HHH", hdr, 58)
            table = _read_at(f, shoff, shentsize * shnum)
            if len(table) < shentsize * shnum or shstrndx >= max(shnum, 1):
                raise TargetError(f"{path}: truncated ELF file (section table cut off)")
            sections = []
            for i in range(shnum):
                name, stype, _fl, _addr, off, size = struct.unpack_from("<IIQQQQ", table, i * shentsize)
                sections.append((name, stype, off, size))
            strtab = sections[shstrndx]
            names = _read_at(f, strtab[2], strtab[3])
            build_id = None
            has_debug = False
            for name_off, stype, off, size in sections:
                name = names[name_off:names.index(b"\0", name_off)] if name_off < len(names) else b""
                if name == b".debug_info" and size > 0:
                    has_debug = True
                if stype == _SHT_NOTE and build_id is None:
                    for nname, ntype, desc in _notes(_read_at(f, off, size)):
                        if nname == b"GNU" and ntype == _NT_GNU_BUILD_ID:
                            build_id = desc.hex()
            release = None
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                m = _BANNER.search(mm)
                if m:
                    release = m.group(1).decode("ascii", "replace")
    except OSError as exc:
        raise _open_error(path, exc, "vmlinux") from exc
    except (ValueError, struct.error) as exc:
        raise TargetError(f"{path}: not a readable vmlinux ({exc})") from exc
    return VmlinuxInfo(path, build_id, release, has_debug)


def check_vmlinux_file(path: str) -> VmlinuxInfo:
    """TargetError unless ``path`` is a vmlinux with debug info."""
    info = read_vmlinux_info(path)
    if not info.has_debug_info:
        raise TargetError(f"{path}: has no debug info (a stripped vmlinux?); "
                          "use the debug vmlinux, e.g. from linux-image-*-dbg or kernel-debuginfo")
    return info


def check_pair(core: str, vmlinux: str) -> DumpInfo:
    """Check that ``vmlinux`` is the kernel that wrote ``core``.

    Compares build-ids where VMCOREINFO has one (since Linux kernel commit
    0935288c6e00 ("kdump: append kernel build-id string to VMCOREINFO") (in
    v5.9)), and the release strings otherwise.
    """
    dump = read_dump_info(core)
    vm = check_vmlinux_file(vmlinux)
    if dump.build_id and vm.build_id and not vm.build_id.startswith(dump.build_id.lower()):
        raise TargetError(
            f"vmlinux does not match the dump: vmlinux is {vm.release or '?'} "
            f"(build-id {vm.build_id[:12]}), dump is {dump.release or '?'} "
            f"(build-id {dump.build_id[:12]})")
    if dump.release and vm.release and dump.release != vm.release:
        raise TargetError(f"vmlinux does not match the dump: vmlinux is {vm.release}, "
                          f"dump is {dump.release}")
    return dump
