"""The kernel's own VMCOREINFO note, read from its memory.

The kernel keeps the text it hands to kdump (``SYMBOL(...)=``,
``NUMBER(...)=``, ``OFFSET(...)=`` lines) in ``vmcoreinfo_data`` with its
length in ``vmcoreinfo_size`` (kernel/kexec.c in v3.10, later
kernel/crash_core.c and kernel/vmcore_info.c).  Reading it from memory works the same
through every backend, on a dump and on a live kernel; numbers the kernel
exports there but not in debug info (``SECTION_SIZE_BITS``,
``PAGE_SLAB_MAPCOUNT_VALUE``) come from here.
"""

from typing import Dict, Optional

from ..errors import MissingSymbolError, ReadError
from .target import Target

__all__ = ["vmcoreinfo", "vmcoreinfo_number"]

_CACHE_ATTR = "_crashext_vmcoreinfo"
#: more than any kernel writes (VMCOREINFO_BYTES is one page)
_MAX = 1 << 16


def vmcoreinfo(t: Target) -> Dict[str, str]:
    """``{"NUMBER(SECTION_SIZE_BITS)": "27", ...}``; empty when the kernel
    has no such note or it cannot be read.  Cached on the target."""
    cached = getattr(t, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    out: Dict[str, str] = {}
    try:
        data = t.symbol("vmcoreinfo_data")
        # Since Linux kernel commit 203e9e41219b ("kexec: move vmcoreinfo out
        # of the kernel's .bss section") (in v4.13) a pointer to a page
        # allocated at boot; before, the array itself.
        if data.type_name.endswith("]"):
            addr = data.address
        else:
            addr = int(data)
        size = int(t.symbol("vmcoreinfo_size"))
        if addr and 0 < size <= _MAX:
            text = t.read_bytes(addr, size).decode("ascii", "replace")
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    out[key] = value
    except (MissingSymbolError, ReadError):
        pass
    try:
        setattr(t, _CACHE_ATTR, out)
    except AttributeError:
        pass
    return out


def vmcoreinfo_number(t: Target, name: str) -> Optional[int]:
    """``NUMBER(name)`` (decimal, possibly negative) or ``LENGTH(name)``, or None."""
    info = vmcoreinfo(t)
    for key in (f"NUMBER({name})", f"LENGTH({name})"):
        v = info.get(key)
        if v is not None:
            try:
                return int(v, 10)
            except ValueError:
                try:
                    return int(v, 16)
                except ValueError:
                    return None
    return None
